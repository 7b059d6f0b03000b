"""The layers that call the kernels' ops. Each resolves its backend ("torch" or "triton") once, at construction,
and keeps it: a model runs on the kernels it was built with, whatever the process default does later."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from kernels import get_op, resolve_backend

from .blocks import conv_bn


class WindowAttention(nn.Module):
    """Swin window multi-head self-attention on a channels-last map (B, H, W, C): qkv Linear, the windowed attention
    with relative-position bias (shifted by `shift_size` when > 0, padded to whole windows) through
    `kernels.window_attention`, proj Linear. Padded tokens take the qkv Linear's bias, as in the released code, which
    pads the normalised tokens with zeros before the Linear."""

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, shift_size: int = 0, *, backend=None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim must be divisible by num_heads={num_heads}, got {dim}")
        self.backend = resolve_backend(backend)
        self._attend = get_op("window_attention", self.backend)
        self.num_heads, self.window_size, self.shift_size = num_heads, window_size, shift_size
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)

    def relative_position_bias(self) -> torch.Tensor:
        """(num_heads, N, N) bias gathered from the table, N = window_size ** 2."""
        return self.relative_position_bias_table[self.relative_position_index].permute(2, 0, 1).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._attend(
            self.qkv(x),
            self.relative_position_bias(),
            self.qkv.bias,
            num_heads=self.num_heads,
            window_size=self.window_size,
            shift_size=self.shift_size,
        )
        return self.proj(out)


def relative_position_index(window_size: int) -> torch.Tensor:
    """(N, N) index into the ((2w-1)^2, heads) bias table: (dy + w-1) * (2w-1) + (dx + w-1), d = coord_i - coord_j."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
    coords = coords.flatten(1)  # (2, N)
    delta = coords[:, :, None] - coords[:, None, :] + (window_size - 1)  # (2, N, N), each in [0, 2w-2]
    return delta[0] * (2 * window_size - 1) + delta[1]


class CrossAttention(nn.Module):
    """CA(target, source) of MODEL_SPEC.md 4.4 (ATRC's global context block): softmax-free linear attention of the
    target's queries over the source's keys and values, from `in_channels` to `channels` (default: the same width),
    output at the target's size.

    q = softplus(proj_q(target)), k = softplus(proj_k(source)), v = relu(BN(conv1x1(source))); the softplus runs
    inside `kernels.linear_cross_attention`. proj_q and proj_k are Conv-BN-ReLU-Conv-BN (`qk_convs=2`, the released
    code) or Conv-BN (`qk_convs=1`, the paper's text)."""

    def __init__(self, in_channels: int, channels: int | None = None, *, qk_convs: int = 2, backend=None):
        super().__init__()
        if qk_convs < 1:
            raise ValueError(f"qk_convs must be >= 1, got {qk_convs}")
        channels = in_channels if channels is None else channels
        self.backend = resolve_backend(backend)
        self._attend = get_op("linear_cross_attention", self.backend)
        self.query = _qk_projection(in_channels, channels, qk_convs)
        self.key = _qk_projection(in_channels, channels, qk_convs)
        self.value = conv_bn(in_channels, channels, relu=True)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)

    def project(self, target: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The op's inputs: q (B, C, Lq) from the target, k and v (B, C, Ls) from the source."""
        return self.query(target).flatten(2), self.key(source).flatten(2), self.value(source).flatten(2)

    def forward(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        q, k, v = self.project(target, source)
        return self._attend(q, k, v).view(v.shape[0], v.shape[1], *target.shape[2:])


def batched_cross_attention(
    layers: Sequence[CrossAttention], targets: Sequence[torch.Tensor], sources: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """[layer(target, source) for each triple], in one op call: the calls' q, k and v stacked along the batch.

    Every layer projects its own q, k, v (their weights differ); the attention, one launch sequence instead of one
    per call, needs all targets of one shape and all sources of one shape. The op takes each layer's q, k and v as
    parts of its stacked inputs, which the Triton backend reads where the projections wrote them (no copy)."""
    if not len(layers) == len(targets) == len(sources) > 0:
        raise ValueError(
            f"need as many targets and sources as layers (at least one), got {len(layers)} layers, "
            f"{len(targets)} targets, {len(sources)} sources"
        )
    for name, maps in (("targets", targets), ("sources", sources)):
        shapes = {tuple(x.shape) for x in maps}
        if len(shapes) > 1:
            raise ValueError(f"{name} must share one shape to be stacked, got {sorted(shapes)}")
    backends = {layer.backend for layer in layers}
    if len(backends) > 1:
        raise ValueError(f"layers must share one backend, got {sorted(backends)}")
    q, k, v = (list(parts) for parts in zip(*map(CrossAttention.project, layers, targets, sources)))
    out = layers[0]._attend(q, k, v)
    return list(out.view(out.shape[0], out.shape[1], *targets[0].shape[2:]).chunk(len(layers)))


def _qk_projection(in_channels: int, channels: int, convs: int) -> nn.Sequential:
    """Conv-BN(-ReLU) layers from in_channels to channels, the last without ReLU (the op applies the softplus)."""
    widths = [in_channels] + [channels] * convs
    return nn.Sequential(*(conv_bn(a, b, relu=i < convs - 1) for i, (a, b) in enumerate(zip(widths, widths[1:]))))


class ConcatConv1x1(nn.Conv2d):
    """A 1x1 convolution (with nn.Conv2d's parameters, init and state-dict keys) over the channel concatenation of
    several NCHW maps, each bilinearly upsampled to `out_size` (default: the largest input's size) inside
    `kernels.concat_conv1x1`: neither the upsampled maps nor the concatenation is materialised by the Triton op."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, *, backend=None):
        super().__init__(in_channels, out_channels, kernel_size=1, bias=bias)
        self.backend = resolve_backend(backend)
        self._conv = get_op("concat_conv1x1", self.backend)

    def forward(self, inputs: Sequence[torch.Tensor], out_size: Sequence[int] | None = None) -> torch.Tensor:
        return self._conv(list(inputs), self.weight, self.bias, out_size=out_size)
