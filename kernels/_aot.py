"""Ahead-of-time compilation of a kernel configuration for Hopper (sm_90), with no GPU present: what it costs in
registers, spills and shared memory, and whether its matrix products run on tensor cores. The figures are read from
the cubin Triton builds (kernels/_cubin.py), with the installed Triton's ptxas and flags, as its JIT would on a GPU.

Each Triton op module lists, in `aot_configs()`, every configuration its launchers can pick; tests/kernels compiles
them all (in a process where TRITON_INTERPRET is off, since the interpreter replaces `@triton.jit` functions).
"""

from __future__ import annotations

import re
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
    extra: dict = field(default_factory=dict)  # further compile options of the launch (e.g. maxnreg)
    # Arguments the compile may assume divisible by 16 (pointers: 16-byte aligned), as the JIT specialises them for a
    # launch; the launcher picks this configuration only where they are. Empty: the worst case (every load scalar).
    divisible: tuple = ()
    # CTAs per SM the launcher sizes this kernel's grid by (kernels split over the tokens): its registers and shared
    # memory must allow at least that many. 0: the launcher assumes none.
    ctas_per_sm: int = 0


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

    from ._cubin import instructions, resources, spill_bytes
    from ._launch import COMPILE_OPTIONS

    attrs = {(i,): [["tt.divisibility", 16]] for i, param in enumerate(config.kernel.params)
             if param.name in config.divisible}
    source = ASTSource(fn=config.kernel, signature=config.signature, constexprs=config.constexprs, attrs=attrs)
    compiled = triton.compile(
        source, target=GPUTarget(*HOPPER),
        options=dict(num_warps=config.num_warps, num_stages=config.num_stages, **COMPILE_OPTIONS, **config.extra),
    )
    cubin = compiled.asm["cubin"]
    used = resources(cubin)
    spill_stores, spill_loads = spill_bytes(instructions(cubin))
    return AotReport(
        name=config.name,
        registers=used["registers"],
        spill_stores=spill_stores,
        spill_loads=spill_loads,
        stack_bytes=used["stack_bytes"],
        shared_bytes=compiled.metadata.shared,
        mma=bool(re.search(r"\b(wgmma|mma)\.", compiled.asm["ptx"])),
    )
