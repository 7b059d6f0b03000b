"""Reference of `kernels.window_attention`: Swin (shifted-)window multi-head self-attention with the semantics of
the released SCA-MTL code (a Swin-detection BasicLayer), from the qkv projection to just before the output proj.

For an H x W map whose tokens have been through the qkv Linear (qkv: B x H x W x 3C, last dim ordered
(3, heads, head_dim)):

1. pad bottom/right to multiples of the window w; a padded token takes `qkv_pad` (the released code pads the
   normalised tokens with zeros *before* the qkv Linear, so a padded token's q, k, v equal the Linear's bias);
2. if shift s > 0, roll the padded map by (-s, -s);
3. in every w x w window and head: softmax(scale * q k^T + rel_bias + mask) v, where mask is -100 between tokens of
   different regions of the shifted map (3 bands of rows [0, Hp-w), [Hp-w, Hp-s), [Hp-s, Hp), the same for
   columns: 9 regions, computed on the padded size) and 0 otherwise (no mask when s = 0);
4. merge the windows, roll back by (s, s), crop to H x W.

Scores and softmax are computed in float32, the result is returned in the input dtype.
"""

from __future__ import annotations

import torch

from .._autocast import autocast_aware
from .._checks import check_window_attention
from ._precision import upcast

SHIFT_MASK_VALUE = -100.0  # what Swin adds between regions of a shifted window (not -inf)


def shift_region_ids(height: int, width: int, window_size: int, shift_size: int, device=None) -> torch.Tensor:
    """(height, width) region id of every token of the rolled, padded map: 3 row bands x 3 column bands."""

    def bands(n: int) -> torch.Tensor:
        idx = torch.arange(n, device=device)
        return (idx >= n - window_size).long() + (idx >= n - shift_size).long()

    return bands(height)[:, None] * 3 + bands(width)[None, :]


def _partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(B, Hp, Wp, ...) -> (B, nW, w*w, ...), windows in row-major order, tokens row-major inside a window."""
    b, hp, wp = x.shape[:3]
    rest = x.shape[3:]
    x = x.reshape(b, hp // window_size, window_size, wp // window_size, window_size, *rest)
    x = x.transpose(2, 3)
    return x.reshape(b, (hp // window_size) * (wp // window_size), window_size * window_size, *rest)


def _merge(x: torch.Tensor, window_size: int, height: int, width: int) -> torch.Tensor:
    """Inverse of `_partition`: (B, nW, w*w, ...) -> (B, Hp, Wp, ...)."""
    b = x.shape[0]
    rest = x.shape[3:]
    x = x.reshape(b, height // window_size, width // window_size, window_size, window_size, *rest)
    return x.transpose(2, 3).reshape(b, height, width, *rest)


def shift_mask(height: int, width: int, window_size: int, shift_size: int, device=None) -> torch.Tensor:
    """(nW, N, N) additive mask of a shifted window pass over a padded height x width map."""
    regions = _partition(shift_region_ids(height, width, window_size, shift_size, device)[None], window_size)[0]
    different = regions[:, :, None] != regions[:, None, :]
    return torch.zeros(different.shape, device=device).masked_fill(different, SHIFT_MASK_VALUE)


def windowed_qkv(qkv: torch.Tensor, fill: torch.Tensor, num_heads: int, window_size: int, shift_size: int) -> tuple:
    """Pad the (B, H, W, 3C) map bottom/right to whole windows with `fill` (the (3C,) q, k, v of padded tokens), roll
    it by (-shift, -shift) and partition it: q, k, v each (B, nW, heads, N, head_dim), and the padded size."""
    batch, height, width, three_c = qkv.shape
    pad_h, pad_w = -height % window_size, -width % window_size
    x = qkv
    if pad_w:
        x = torch.cat([x, fill.expand(batch, height, pad_w, three_c)], dim=2)
    if pad_h:
        x = torch.cat([x, fill.expand(batch, pad_h, width + pad_w, three_c)], dim=1)
    if shift_size:
        x = torch.roll(x, shifts=(-shift_size, -shift_size), dims=(1, 2))
    padded = (height + pad_h, width + pad_w)
    windows = _partition(x.view(batch, *padded, 3, num_heads, three_c // (3 * num_heads)), window_size)
    q, k, v = windows.permute(3, 0, 1, 4, 2, 5).unbind(0)
    return q, k, v, padded


def merged_windows(out: torch.Tensor, padded: tuple, size: tuple, window_size: int, shift_size: int) -> torch.Tensor:
    """The inverse of `windowed_qkv` for the attention's output: (B, nW, heads, N, head_dim) windows back to the
    (B, H, W, C) map of `size`: merge, roll back by (shift, shift), crop the padding."""
    batch, _, heads, _, head_dim = out.shape
    out = _merge(out.transpose(2, 3), window_size, *padded).reshape(batch, *padded, heads * head_dim)
    if shift_size:
        out = torch.roll(out, shifts=(shift_size, shift_size), dims=(1, 2))
    return out[:, :size[0], :size[1]]


@autocast_aware
def window_attention_ref(
    qkv: torch.Tensor,
    rel_bias: torch.Tensor,
    qkv_pad: torch.Tensor | None = None,
    *,
    num_heads: int,
    window_size: int,
    shift_size: int = 0,
    scale: float | None = None,
) -> torch.Tensor:
    """qkv: (B, H, W, 3C), rel_bias: (num_heads, w*w, w*w), qkv_pad: (3C,) or None -> (B, H, W, C)."""
    check_window_attention(qkv, rel_bias, qkv_pad, num_heads, window_size, shift_size, scale)
    head_dim = qkv.shape[-1] // (3 * num_heads)
    scale = head_dim**-0.5 if scale is None else scale
    fill = qkv_pad if qkv_pad is not None else qkv.new_zeros(qkv.shape[-1])
    q, k, v, padded = windowed_qkv(upcast(qkv), upcast(fill), num_heads, window_size, shift_size)
    scores = (q * scale) @ k.transpose(-2, -1) + upcast(rel_bias)  # (B, nW, heads, N, N)
    if shift_size:
        scores = scores + shift_mask(*padded, window_size, shift_size, qkv.device)[:, None].to(scores)
    out = scores.softmax(dim=-1) @ v  # (B, nW, heads, N, head_dim)
    return merged_windows(out, padded, qkv.shape[1:3], window_size, shift_size).to(qkv.dtype)
