"""Launcher helpers shared by the Triton ops: dtypes, the device's size, the int32 index limit, and how many splits
to share a reduction's blocks into."""

from __future__ import annotations

import functools

import torch

KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
TRITON_DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
INT32_MAX = 2**31 - 1
# What the JIT specialises integer arguments and pointers on: divisibility by this many (elements; bytes for pointers)
JIT_DIVISIBILITY = 16
# What the launchers assume where there is no GPU to ask (the interpreter; ahead-of-time compile checks): an H100.
DEFAULT_SM_COUNT = 132
# What a split program costs beyond its blocks (loading or storing its state or partials, its share of their
# reduce), in blocks: `best_split` then prefers fewer, longer programs where the waves come out the same.
PROGRAM_OVERHEAD_BLOCKS = 1
# Compile options every launch passes (and the ahead-of-time compiles: kernels/_aot.py). Fused multiply-adds are asked
# for explicitly: Triton 3.9 warns that its default (TRITON_DEFAULT_FP_FUSION) turns them off in 3.10, and the kernels'
# register and instruction budgets (tests/kernels/test_compile.py, the static report) were set with them on; without
# them each FFMA becomes an FMUL and an FADD (2-6% more SASS in the window attention's kernels, static counts on
# triton 3.8). Triton 3.9's TRITON_FORCE_DISABLE_FP_FUSION still turns them off.
COMPILE_OPTIONS = dict(enable_fp_fusion=True)


@functools.cache
def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of `device` (grids are sized to fill them)."""
    if device.type != "cuda":
        return DEFAULT_SM_COUNT
    return torch.cuda.get_device_properties(device).multi_processor_count


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for ints on the host: triton.cdiv is a @jit function, whose host call costs microseconds (a
    launcher computes a few per launch)."""
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    """The least power of two >= n (n >= 1) on the host: triton.next_power_of_2 is a constexpr function, whose
    host call costs microseconds, like triton.cdiv's."""
    return 1 << (n - 1).bit_length()


@functools.cache
def best_split(launches: tuple[tuple[int, int, int], ...], max_splits: int, split_cost_blocks: float = 0.0) -> int:
    """Into how many splits S (1..max_splits) to share the blocks of a reduction among the programs of `launches`,
    which take the same S, each given as (blocks, programs per split, slots: SMs x CTAs one SM holds). A launch's
    busiest SM runs ceil(S programs / slots) waves of programs of up to ceil(blocks / S) blocks (plus
    PROGRAM_OVERHEAD_BLOCKS): S minimises the sum of that over the launches, plus `split_cost_blocks` per split (the
    busiest SM's share of what each split adds beyond its programs, e.g. partials to reduce), so that no last wave
    runs partly empty where another S fills it (48 programs per split, 600 blocks, 2 CTAs on 132 SMs: S = 11, two
    full waves, rather than 6, 288 programs in 2.2 waves); the fewest splits of equals."""
    def busiest_sm(splits: int) -> float:
        return splits * split_cost_blocks + sum(
            ceil_div(splits * programs, slots) * (ceil_div(blocks, splits) + PROGRAM_OVERHEAD_BLOCKS)
            for blocks, programs, slots in launches)

    return min(range(1, max_splits + 1), key=busiest_sm)


def fp32_matmul_precision() -> str:
    """How float32 products run: "tf32" when PyTorch runs float32 matmuls on TF32 tensor cores
    (torch.backends.cuda.matmul.allow_tf32, which torch.set_float32_matmul_precision("high") sets), else "ieee", so
    that a float32 op computes what its matmul-based reference computes."""
    return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"


def check_kernel_dtype(name: str, tensor: torch.Tensor) -> None:
    """The Triton kernels take float32, float16 and bfloat16 (the references also take float64)."""
    if tensor.dtype not in KERNEL_DTYPES:
        names = ", ".join(str(d) for d in KERNEL_DTYPES)
        raise TypeError(f"{name} must be one of {names} for the triton backend, got {tensor.dtype}")


def needs_int64(*tensors: torch.Tensor) -> bool:
    """Whether an offset into one of these tensors can exceed int32: kernels then do their index math in int64."""
    return any(t.numel() > INT32_MAX for t in tensors)
