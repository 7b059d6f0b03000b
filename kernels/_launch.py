"""Launcher helpers shared by the Triton ops: dtypes, the device's size, and the int32 index limit."""

from __future__ import annotations

import functools

import torch

KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
TRITON_DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
INT32_MAX = 2**31 - 1
# What the launchers assume where there is no GPU to ask (the interpreter; ahead-of-time compile checks): an H100.
DEFAULT_SM_COUNT = 132


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
