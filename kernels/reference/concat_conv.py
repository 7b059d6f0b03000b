"""Reference of `kernels.concat_conv1x1`: bilinear upsampling + concatenation + 1x1 convolution + epilogue.

    out = act(W . concat_i(up_i(x_i)) + bias + residual)

with up_i the bilinear resize (align_corners=False) of input i to the output size (identity when it already has
that size), W of shape (Cout, sum_i C_i), act in {None, relu}. The same tensor may appear several times in the
inputs (every occurrence is its own K segment). The Triton kernel computes the same thing without materialising the
upsampled maps or the concatenation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .._autocast import autocast_aware
from .._checks import check_concat_conv1x1


@autocast_aware
def concat_conv1x1_ref(
    inputs: Sequence[torch.Tensor],
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    residual: torch.Tensor | None = None,
    activation: str | None = None,
    out_size: Sequence[int] | None = None,
) -> torch.Tensor:
    """inputs: NCHW tensors (B, C_i, H_i, W_i), weight: (Cout, sum C_i[, 1, 1]) -> (B, Cout, H, W)."""
    out_size = check_concat_conv1x1(inputs, weight, bias, residual, activation, out_size)
    maps = [
        x if tuple(x.shape[2:]) == out_size else F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)
        for x in inputs
    ]
    out = F.conv2d(torch.cat(maps, dim=1), weight.reshape(weight.shape[0], -1, 1, 1), bias)
    if residual is not None:
        out = out + residual
    if activation == "relu":
        out = torch.relu(out)
    return out
