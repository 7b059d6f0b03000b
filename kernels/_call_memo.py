"""What the checks and the planning of an op call produced, kept per call key.

The validators and planners of the Triton ops read only their arguments' metadata: each tensor's type, shape,
strides, dtype and device, and the other arguments' values. At the model's calls they are a large part of an op
call's host time (the 13-input aggregation of the concat conv: ~80 of ~220 us on this project's CPU, README, static
cost), and a training step repeats the same calls. So each op keys a call by exactly that metadata (`call_key`) and
keeps what its checks and planning returned (`CallMemo`): a call whose key was seen skips them. Nothing
address-dependent is keyed or kept: what depends on the tensors' addresses (offsets between stacked parts, alignment) is
computed at every call. Under torch.compile the ops do not use the memo (symbolic sizes).
"""

from __future__ import annotations

import torch

MEMO_SIZE = 256  # distinct calls per op kept (the SCA-MTL step makes at most a few dozen per op)


def call_key(tensors, *values) -> tuple:
    """The key of a call: each of `tensors` (None allowed) as (type, shape, strides, dtype, device); each other value
    as (type, value), a list or tuple as (its type, its items' types, its items), so that True and 1 differ. TypeError
    when a value is not hashable (the call's checks then run, and reject it or hold it unmemoised)."""
    key = (*map(_tensor_key, tensors), *map(_value_key, values))
    hash(key)
    return key


def _tensor_key(t: torch.Tensor | None) -> tuple | None:
    return None if t is None else (type(t), t.shape, t.stride(), t.dtype, t.device)


def _value_key(value) -> tuple:
    if isinstance(value, (list, tuple)):
        return type(value), tuple(map(type, value)), tuple(value)
    return type(value), value


class CallMemo:
    """A bounded map from call keys to what the calls' checks and planning produced; the oldest entry leaves when
    it is full. A key of None (a call without one) is never kept."""

    def __init__(self, size: int = MEMO_SIZE):
        self._entries: dict = {}
        self._size = size

    def get(self, key: tuple | None):
        return None if key is None else self._entries.get(key)

    def put(self, key: tuple | None, value) -> None:
        if key is None:
            return
        if len(self._entries) >= self._size:
            self._entries.pop(next(iter(self._entries)), None)
        self._entries[key] = value

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def memo_key(tensors, *values) -> tuple | None:
    """`call_key`, or None under torch.compile (symbolic sizes) and for an unhashable value or a tensor argument that
    is not a tensor (the checks reject it)."""
    if torch.compiler.is_compiling():
        return None
    try:
        return call_key(tensors, *values)
    except (TypeError, AttributeError):
        return None
