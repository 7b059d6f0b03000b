"""Input validation shared by both backends of every op: the same error for the same bad call, before any work.

Every message names the argument and gives the expected and the actual shape, dtype or device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

FEATURE_MAPS = ("softplus", "identity")
Stackable = torch.Tensor | Sequence[torch.Tensor]  # a tensor, or parts stacked along the batch
ACTIVATIONS = (None, "relu")


def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


def check_tensor(name: str, value: object, ndim: int, layout: str) -> None:
    """`value` is a floating-point tensor of rank `ndim`; `layout` names its dims, e.g. "(B, D, L)"."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a {ndim}-D torch.Tensor {layout}, got {type(value).__name__}")
    if value.dim() != ndim:
        raise ValueError(f"{name} must be a {ndim}-D tensor {layout}, got shape {_shape(value)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")


def check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def check_same_device_and_dtype(**tensors: torch.Tensor | None) -> None:
    """All given tensors (None entries skipped) live on one device and share one dtype."""
    named = [(name, t) for name, t in tensors.items() if t is not None]
    first_name, first = named[0]
    for name, t in named[1:]:
        if t.device != first.device:
            raise ValueError(
                f"{name} must be on the same device as {first_name}: {first_name} is on {first.device}, "
                f"{name} is on {t.device}"
            )
        if t.dtype != first.dtype:
            raise ValueError(
                f"{name} must have the same dtype as {first_name}: {first_name} is {first.dtype}, {name} is {t.dtype}"
            )


def check_linear_cross_attention(q: Stackable, k: Stackable, v: Stackable, feature_map: str,
                                 eps: float) -> tuple[list, list, list]:
    """q, k, v as lists of parts: a tensor is one part; a list or tuple of tensors of one shape stands for their
    concatenation along the batch."""
    q, k, v = (_parts(name, x, layout) for name, x, layout in
               (("q", q, "(B, D, Lq)"), ("k", k, "(B, D, Ls)"), ("v", v, "(B, E, Ls)")))
    check_same_device_and_dtype(q=q[0], k=k[0], v=v[0])
    q_shape, k_shape, v_shape = _stacked_shape(q), _stacked_shape(k), _stacked_shape(v)
    if k_shape[:2] != q_shape[:2]:
        raise ValueError(f"q (B, D, Lq) and k (B, D, Ls) must agree in B and D: q has shape {q_shape}, "
                         f"k has shape {k_shape}")
    if v_shape[0] != k_shape[0] or v_shape[2] != k_shape[2]:
        raise ValueError(f"k (B, D, Ls) and v (B, E, Ls) must agree in B and Ls: k has shape {k_shape}, "
                         f"v has shape {v_shape}")
    if feature_map not in FEATURE_MAPS:
        raise ValueError(f"feature_map must be one of {FEATURE_MAPS}, got {feature_map!r}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    return q, k, v


def _parts(name: str, value: object, layout: str) -> list:
    """A tensor, or a non-empty sequence of tensors of one shape, device and dtype, as a list of parts."""
    if not isinstance(value, (list, tuple)):
        check_tensor(name, value, 3, layout)
        return [value]
    if not value:
        raise ValueError(f"{name} must be a tensor {layout} or a non-empty sequence of them, got an empty sequence")
    first = value[0]
    check_tensor(f"{name}[0]", first, 3, layout)
    if all(isinstance(part, torch.Tensor) and part.shape == first.shape and part.dtype == first.dtype
           and part.device == first.device for part in value[1:]):  # the model's calls: a few microseconds
        return list(value)
    for i, part in enumerate(value):
        check_tensor(f"{name}[{i}]", part, 3, layout)
    check_same_device_and_dtype(**{f"{name}[{i}]": part for i, part in enumerate(value)})
    shapes = [_shape(part) for part in value]
    if len(set(shapes)) > 1:
        raise ValueError(f"the parts of {name} must share one shape {layout} to be stacked, got shapes {shapes}")
    return list(value)


def _stacked_shape(parts: list) -> tuple:
    """The shape of the parts' concatenation along the batch."""
    return (parts[0].shape[0] * len(parts), *parts[0].shape[1:])


def check_window_attention(
    qkv: torch.Tensor,
    rel_bias: torch.Tensor,
    qkv_pad: torch.Tensor | None,
    num_heads: int,
    window_size: int,
    shift_size: int,
    scale: float | None,
) -> None:
    check_tensor("qkv", qkv, 4, "(B, H, W, 3C)")
    check_int("num_heads", num_heads, 1)
    check_int("window_size", window_size, 1)
    check_int("shift_size", shift_size, 0)
    if shift_size >= window_size:
        raise ValueError(f"shift_size must be smaller than window_size={window_size}, got {shift_size}")
    if qkv.shape[-1] % (3 * num_heads):
        raise ValueError(
            f"qkv's last dim must be 3 * num_heads * head_dim with num_heads={num_heads}, got shape {_shape(qkv)}"
        )
    tokens = window_size * window_size
    check_tensor("rel_bias", rel_bias, 3, "(num_heads, N, N)")
    if _shape(rel_bias) != (num_heads, tokens, tokens):
        raise ValueError(
            f"rel_bias must have shape (num_heads, N, N) = {(num_heads, tokens, tokens)} for num_heads={num_heads}, "
            f"window_size={window_size}, got shape {_shape(rel_bias)}"
        )
    if qkv_pad is not None:
        check_tensor("qkv_pad", qkv_pad, 1, "(3C,)")
        if qkv_pad.shape[0] != qkv.shape[-1]:
            raise ValueError(
                f"qkv_pad must have shape (3C,) = ({qkv.shape[-1]},) to match qkv of shape {_shape(qkv)}, "
                f"got shape {_shape(qkv_pad)}"
            )
    check_same_device_and_dtype(qkv=qkv, rel_bias=rel_bias, qkv_pad=qkv_pad)
    if scale is not None and not scale > 0:
        raise ValueError(f"scale must be > 0 or None, got {scale!r}")


def check_concat_conv1x1(
    inputs: Sequence[torch.Tensor],
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    residual: torch.Tensor | None,
    activation: str | None,
    out_size: Sequence[int] | None,
) -> tuple:
    """Validates the call and returns the output size (H, W)."""
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(f"inputs must be a list or tuple of (B, C_i, H_i, W_i) tensors, got {type(inputs).__name__}")
    if len(inputs) == 0:
        raise ValueError("inputs must hold at least one (B, C_i, H_i, W_i) tensor, got an empty sequence")
    for i, x in enumerate(inputs):
        check_tensor(f"inputs[{i}]", x, 4, "(B, C_i, H_i, W_i)")
        if x.shape[0] != inputs[0].shape[0]:
            raise ValueError(
                f"inputs[{i}] must have the batch size of inputs[0]: inputs[0] has shape {_shape(inputs[0])}, "
                f"inputs[{i}] has shape {_shape(x)}"
            )
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor (Cout, Cin) or (Cout, Cin, 1, 1), got {type(weight).__name__}")
    if not (weight.dim() == 2 or (weight.dim() == 4 and weight.shape[2:] == (1, 1))):
        raise ValueError(f"weight must have shape (Cout, Cin) or (Cout, Cin, 1, 1), got shape {_shape(weight)}")
    in_channels = [x.shape[1] for x in inputs]
    if weight.shape[1] != sum(in_channels):
        raise ValueError(
            f"weight must have Cin = sum of the input channels {in_channels} = {sum(in_channels)}, "
            f"got shape {_shape(weight)}"
        )
    out_channels = weight.shape[0]
    if bias is not None:
        check_tensor("bias", bias, 1, "(Cout,)")
        if bias.shape[0] != out_channels:
            raise ValueError(f"bias must have shape (Cout,) = ({out_channels},), got shape {_shape(bias)}")

    if out_size is None:  # the largest input's; a loop, not max(key=...), which torch.compile cannot trace for
        out_size = tuple(inputs[0].shape[2:])  # symbolic (dynamic) sizes
        for x in inputs[1:]:
            if x.shape[2] * x.shape[3] > out_size[0] * out_size[1]:
                out_size = tuple(x.shape[2:])
    elif (
        len(out_size) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in out_size)
    ):
        raise ValueError(f"out_size must be a pair of positive ints (H, W) or None, got {out_size!r}")
    out_size = tuple(out_size)
    for i, x in enumerate(inputs):
        if x.shape[2] > out_size[0] or x.shape[3] > out_size[1]:
            raise ValueError(
                f"inputs[{i}] of shape {_shape(x)} is larger than the output size {out_size}: "
                f"the op only upsamples (bilinear), it never downsamples"
            )
    if residual is not None:
        expected = (inputs[0].shape[0], out_channels, *out_size)
        check_tensor("residual", residual, 4, "(B, Cout, H, W)")
        if _shape(residual) != expected:
            raise ValueError(f"residual must have shape (B, Cout, H, W) = {expected}, got shape {_shape(residual)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    check_same_device_and_dtype(
        **{f"inputs[{i}]": x for i, x in enumerate(inputs)}, weight=weight, bias=bias, residual=residual
    )
    return out_size
