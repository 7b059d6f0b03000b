"""The "ATT" self-attention of SCA-MTL (MODEL_SPEC.md 4.2): a Swin stage whose blocks have no MLP."""

from __future__ import annotations

import torch
from timm.layers import DropPath
from torch import nn

from .layers import WindowAttention


class SwinBlock(nn.Module):
    """x + DropPath(WindowAttention(LayerNorm(x))) on a channels-last map (B, H, W, C); the released code removed
    the block's MLP branch."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, drop_path: float, *, backend):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size, shift_size, backend=backend)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.attn(self.norm1(x)))


class SwinAttention(nn.Module):
    """NCHW -> NCHW, same width: 1x1-conv embedding, LayerNorm, `depth` Swin blocks alternating unshifted and shifted
    (by window_size // 2) windows, stochastic depth rising linearly from 0 to `drop_path`, final LayerNorm."""

    def __init__(
        self, dim: int, num_heads: int, depth: int, window_size: int = 7, drop_path: float = 0.0, *, backend=None
    ):
        super().__init__()
        self.embed = nn.Conv2d(dim, dim, 1)
        self.embed_norm = nn.LayerNorm(dim)
        rates = torch.linspace(0, drop_path, depth).tolist()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window_size, (i % 2) * (window_size // 2), rates[i], backend=backend)
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed_norm(self.embed(x).permute(0, 2, 3, 1))
        for block in self.blocks:
            x = block(x)
        return self.norm(x).permute(0, 3, 1, 2)
