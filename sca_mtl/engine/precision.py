"""Mixed precision: the `--amp` names and the autocast context they mean."""

from __future__ import annotations

import contextlib

import torch

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(name: str | None) -> torch.dtype | None:
    if name is None:
        return None
    if name not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {', '.join(AMP_DTYPES)} or null, got {name!r}")
    return AMP_DTYPES[name]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast in `dtype` on `device`, or nothing when dtype is None (full precision)."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)
