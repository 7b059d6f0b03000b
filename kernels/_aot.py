"""Ahead-of-time compilation of a kernel configuration for Hopper (sm_90), with no GPU present: what it costs in
registers, spills and shared memory, and whether its matrix products run on tensor cores.

Each Triton op module lists, in `aot_configs()`, every configuration its launchers can pick; tests/kernels compiles
them all (in a process where TRITON_INTERPRET is off, since the interpreter replaces `@triton.jit` functions).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field

HOPPER = ("cuda", 90, 32)  # backend, compute capability, warp size
HOPPER_SHARED_MEMORY = 227 * 1024  # the most shared memory one block may use on an H100/H200
MAX_REGISTERS = 255


@dataclass(frozen=True)
class AotConfig:
    """One launch configuration: the kernel, its argument types (Triton's signature strings, e.g. "*bf16", "i32",
    "constexpr"), the constexpr values, and the launch options."""

    name: str
    kernel: object  # a @triton.jit function
    signature: dict
    constexprs: dict
    num_warps: int
    num_stages: int
    tensor_cores: bool  # whether its tl.dot products must become MMA instructions
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AotReport:
    name: str
    registers: int
    spill_stores: int
    spill_loads: int
    stack_bytes: int
    shared_bytes: int
    mma: bool  # wgmma (Hopper) or mma (Ampere-style) instructions in the PTX


def compile_for_hopper(config: AotConfig) -> AotReport:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    source = ASTSource(fn=config.kernel, signature=config.signature, constexprs=config.constexprs)
    compiled = triton.compile(
        source, target=GPUTarget(*HOPPER), options=dict(num_warps=config.num_warps, num_stages=config.num_stages)
    )
    ptx = compiled.asm["ptx"]
    usage = _ptxas_usage(ptx, os.path.dirname(triton.__file__))
    return AotReport(
        name=config.name,
        shared_bytes=compiled.metadata.shared,
        mma=bool(re.search(r"\b(wgmma|mma)\.", ptx)),
        **usage,
    )


def _ptxas_usage(ptx: str, triton_dir: str) -> dict:
    """Registers, spills and stack from `ptxas -v` (the ptxas-blackwell in the triton wheel reads Triton's PTX)."""
    ptxas = os.path.join(triton_dir, "backends", "nvidia", "bin", "ptxas-blackwell")
    if not os.path.exists(ptxas):
        ptxas = os.path.join(triton_dir, "backends", "nvidia", "bin", "ptxas")
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(ptx)
    try:
        result = subprocess.run(
            [ptxas, "-v", "--gpu-name", "sm_90a", f.name, "-o", os.devnull], capture_output=True, text=True, check=True
        )
    finally:
        os.unlink(f.name)
    log = result.stderr

    def number(pattern: str) -> int:
        found = re.search(pattern, log)
        return int(found.group(1)) if found else 0

    return dict(
        registers=number(r"Used (\d+) registers"),
        spill_stores=number(r"(\d+) bytes spill stores"),
        spill_loads=number(r"(\d+) bytes spill loads"),
        stack_bytes=number(r"(\d+) bytes stack frame"),
    )
