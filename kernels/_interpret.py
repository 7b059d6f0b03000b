"""Triton without a GPU: the kernels run through Triton's interpreter, which must be switched on before the first
`@triton.jit` of a kernel module runs (the decorator reads TRITON_INTERPRET)."""

from __future__ import annotations

import os
import warnings

import torch

_warned = False


def use_interpreter_without_cuda() -> None:
    """Set TRITON_INTERPRET=1 when there is no CUDA device, and warn once. A value the caller set wins: the
    ahead-of-time compile checks import the kernel modules with TRITON_INTERPRET=0 on a machine without a GPU."""
    global _warned
    if torch.cuda.is_available():
        return
    os.environ.setdefault("TRITON_INTERPRET", "1")
    if not _warned:
        _warned = True
        warnings.warn(
            "kernels: no CUDA device, the triton backend runs through Triton's interpreter: "
            "for checking the math, not for speed",
            stacklevel=3,
        )
