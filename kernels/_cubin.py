"""Reading a kernel compiled for Hopper without a GPU: the resources its cubin declares and its SASS listing, through
the `cuobjdump` shipped in the triton wheel. The cubin is what the JIT builds (Triton's own ptxas and flags), so
these are the figures the GPU would see. Used by the ahead-of-time compile checks (kernels/_aot.py) and the static
cost report (profiling/)."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

_INSTRUCTION = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)((?:\.[A-Za-z0-9_]+)*)"
                          r"\s*([^;]*);")
_BRANCH_TARGET = re.compile(r"0x([0-9a-f]+)")
_RESOURCES = re.compile(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)")
_WIDTH_BYTES = {"128": 16, "64": 8, "U16": 2, "S16": 2, "U8": 1, "S8": 1}


@dataclass(frozen=True)
class Instruction:
    address: int
    opcode: str  # e.g. LDG
    modifiers: tuple  # e.g. ("E", "128")
    target: int | None  # branch target address


def _cuobjdump(cubin: bytes, flag: str) -> str:
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
    try:
        return subprocess.run([tool, flag, f.name], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)


def resources(cubin: bytes) -> dict:
    """registers, stack bytes, static shared bytes and local bytes per thread that the cubin declares."""
    found = _RESOURCES.search(_cuobjdump(cubin, "-res-usage"))
    registers, stack, shared, local = (int(v) for v in found.groups())
    return dict(registers=registers, stack_bytes=stack, static_shared_bytes=shared, local_bytes=local)


def instructions(cubin: bytes) -> list[Instruction]:
    """The kernel's SASS, without the padding after its last EXIT (a branch to itself and NOPs)."""
    listing = []
    for line in _cuobjdump(cubin, "-sass").splitlines():
        found = _INSTRUCTION.match(line)
        if not found:
            continue
        address, opcode, modifiers, operands = found.groups()
        target = None
        if opcode == "BRA":
            hit = _BRANCH_TARGET.search(operands)
            target = int(hit.group(1), 16) if hit else None
        listing.append(Instruction(int(address, 16), opcode, tuple(m for m in modifiers.split(".") if m), target))
    while listing and (listing[-1].opcode == "NOP" or listing[-1].target == listing[-1].address):
        listing.pop()
    return listing


def width_bytes(instruction: Instruction) -> int:
    """Bytes per thread of a global or local load/store: .128/.64 vectors, .U16/.S16/.U8/.S8 narrow, else 32-bit."""
    return next((_WIDTH_BYTES[m] for m in instruction.modifiers if m in _WIDTH_BYTES), 4)


def spill_bytes(listing: list[Instruction]) -> tuple[int, int]:
    """(bytes stored, bytes loaded) per thread by the local-memory stores (STL) and loads (LDL) of a listing: Triton
    kernels use local memory for register spills only."""
    return (sum(width_bytes(i) for i in listing if i.opcode == "STL"),
            sum(width_bytes(i) for i in listing if i.opcode == "LDL"))
