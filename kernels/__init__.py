"""sca-mtl kernels: the model's three hot ops, each with a pure-PyTorch reference and a Triton implementation.

    import kernels
    kernels.set_backend("triton")             # process default; env SCA_MTL_KERNELS sets the initial value
    with kernels.use_backend("torch"): ...    # a block with another backend
    out = kernels.linear_cross_attention(q, k, v)

The functions here dispatch to the current backend at call time; `get_op(name, backend)` returns one backend's
implementation (what model layers keep). Both backends share these signatures exactly.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence

import torch

from ._checks import Stackable
from ._interpret import enable_interpreter_without_cuda
from .dispatch import BACKENDS, get_backend, get_op, resolve_backend, set_backend, use_backend

enable_interpreter_without_cuda()  # before anything imports triton (see _interpret.py); nothing above does

__all__ = [
    "BACKENDS",
    "concat_conv1x1",
    "get_backend",
    "get_op",
    "linear_cross_attention",
    "resolve_backend",
    "set_backend",
    "use_backend",
    "window_attention",
]


def linear_cross_attention(
    q: Stackable, k: Stackable, v: Stackable, *, feature_map: str = "softplus", eps: float = 1e-12
) -> torch.Tensor:
    """Linear cross attention. q: (B, D, Lq), k: (B, D, Ls) pre-activations; v: (B, E, Ls) -> (B, E, Lq). Each of
    q, k, v may also be a list of parts of one shape: the call on their concatenation along the batch, which the
    Triton backend reads in place (several attentions in one call without copying their inputs).

    out[b, :, i] = sum_a (phi(q_i) . phi(k_a)) v_a / max(sum_a phi(q_i) . phi(k_a), eps), phi = softplus or identity.
    """
    return get_op("linear_cross_attention")(q, k, v, feature_map=feature_map, eps=eps)


def window_attention(
    qkv: torch.Tensor,
    rel_bias: torch.Tensor,
    qkv_pad: torch.Tensor | None = None,
    *,
    num_heads: int,
    window_size: int,
    shift_size: int = 0,
    scale: float | None = None,
) -> torch.Tensor:
    """Swin (shifted-)window attention. qkv: (B, H, W, 3C), rel_bias: (num_heads, N, N) -> (B, H, W, C).

    Pads to whole windows with `qkv_pad`, rolls by -shift_size, attends per window with the relative-position bias
    and the -100 shift mask, merges, rolls back and crops (see kernels/reference/window_attention.py).
    """
    return get_op("window_attention")(
        qkv, rel_bias, qkv_pad, num_heads=num_heads, window_size=window_size, shift_size=shift_size, scale=scale
    )


def concat_conv1x1(
    inputs: Sequence[torch.Tensor],
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    residual: torch.Tensor | None = None,
    activation: str | None = None,
    out_size: Sequence[int] | None = None,
) -> torch.Tensor:
    """act(W . concat(bilinearly upsampled inputs) + bias + residual). inputs: NCHW tensors -> (B, Cout, H, W)."""
    return get_op("concat_conv1x1")(
        inputs, weight, bias, residual=residual, activation=activation, out_size=out_size
    )


class _Package(types.ModuleType):
    """Importing a submodule sets the package attribute of the same name to it, and the Triton op module of
    window_attention is kernels/window_attention.py: without this guard, importing it would replace the public
    function `kernels.window_attention` by that module. (Import a Triton op module with importlib.import_module, or
    take its function from `get_op(name, "triton")`.)"""

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and callable(getattr(self, name, None)):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
