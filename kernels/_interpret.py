"""Triton without a GPU: the kernels run through Triton's interpreter. TRITON_INTERPRET must be set before triton
is first imported (triton's own `@jit` helpers such as tl.max are built then), so `import kernels` sets it; the
warning comes only when a Triton kernel module is actually used."""

from __future__ import annotations

import os
import warnings

import torch

_warned = False


def enable_interpreter_without_cuda() -> None:
    """Set TRITON_INTERPRET=1 when there is no CUDA device. A value the caller set wins: the ahead-of-time compile
    checks import the kernel modules with TRITON_INTERPRET=0 on a machine without a GPU."""
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


def warn_if_interpreting() -> None:
    """Once per process: the Triton kernels run, but through the interpreter."""
    global _warned
    if not _warned and os.environ.get("TRITON_INTERPRET") == "1":
        _warned = True
        warnings.warn(
            "kernels: no CUDA device, the triton backend runs through Triton's interpreter: "
            "for checking the math, not for speed",
            stacklevel=3,
        )


def use_interpreter_without_cuda() -> None:
    """What a Triton op module calls before its first `@triton.jit`."""
    enable_interpreter_without_cuda()
    warn_if_interpreting()
