"""Heads shared by the models on the HRNet backbone: the per-scale task head (SCA-MTL's and MTI-Net's initial
predictions), and bilinear upsampling as the released code does it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResBlock


def upsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize to `size` (align_corners=False, as the released code)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ScaleHead(nn.Module):
    """One task's head at one scale: two ResBlocks to the scale's width, and a 1x1 conv deep-supervision output."""

    def __init__(self, in_channels: int, channels: int, out_channels: int):
        super().__init__()
        self.features = nn.Sequential(ResBlock(in_channels, channels), ResBlock(channels, channels))
        self.predict = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor):
        features = self.features(x)
        return features, self.predict(features)
