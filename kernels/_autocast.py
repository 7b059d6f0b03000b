"""Autocast awareness shared by both backends of every op."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch


def _first_tensor(obj: Any):
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, (list, tuple)):
        for item in obj:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _cast(obj: Any, dtype: torch.dtype) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if obj.is_floating_point() else obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cast(item, dtype) for item in obj)
    return obj


def autocast_aware(fn: Callable) -> Callable:
    """Run `fn` the way autocast runs a matmul: floating tensor arguments (also inside lists) are cast to the
    autocast dtype of their device when autocast is on, and the body runs with autocast off so that the op alone
    decides where it computes in float32. Outside autocast the call is untouched."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        tensor = _first_tensor(list(args) + list(kwargs.values()))
        if tensor is None:
            return fn(*args, **kwargs)
        device_type = tensor.device.type
        if not torch.is_autocast_enabled(device_type):
            return fn(*args, **kwargs)
        dtype = torch.get_autocast_dtype(device_type)
        args = _cast(args, dtype)
        kwargs = {key: _cast(value, dtype) for key, value in kwargs.items()}
        with torch.autocast(device_type, enabled=False):
            return fn(*args, **kwargs)

    return wrapper
