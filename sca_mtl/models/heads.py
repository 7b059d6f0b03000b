"""Heads shared by the models on the HRNet backbone: MTI-Net's HighResolutionHead (the baselines' task head) and
the branch fusion it starts with (PAD-Net's backbone output), the task head of the initial predictions (SCA-MTL's,
MTI-Net's and PAD-Net's), and bilinear upsampling as the released code does it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResBlock
from .layers import ConcatConv1x1


def upsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize to `size` (align_corners=False, as the released code)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ScaleHead(nn.Module):
    """One task's initial prediction at one scale: two blocks (ResBlocks by default, PAD-Net's Bottlenecks) to the
    given width, and a 1x1 conv deep-supervision output; forward(x) -> (features, prediction)."""

    def __init__(self, in_channels: int, channels: int, out_channels: int, *, block: type[nn.Module] = ResBlock):
        super().__init__()
        self.features = nn.Sequential(block(in_channels, channels), block(channels, channels))
        self.predict = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor):
        features = self.features(x)
        return features, self.predict(features)


def fuse_branches(channels: Sequence[int], *, backend=None) -> list[nn.Module]:
    """MTI-Net's HighResolutionFuse as layers: every branch upsampled bilinearly to the finest one's size and
    concatenated, Conv1x1 (with bias, one `concat_conv1x1` call) -> BN -> ReLU, at the summed width."""
    width = sum(channels)
    return [ConcatConv1x1(width, width, backend=backend), nn.BatchNorm2d(width), nn.ReLU()]


class HighResolutionHead(nn.Module):
    """MTI-Net's head on the HRNet branches (its seg_hrnet.py): every branch upsampled bilinearly to the finest one's
    size and concatenated (270 channels for HRNet-18), Conv1x1 (with bias) -> BN -> ReLU -> Conv1x1 to the task's
    channels, at stride 4. The upsampling, the concatenation and the first conv are one `concat_conv1x1` call (on
    Triton nothing of them is materialised). Module names are the released code's (`last_layer.0/1/3`)."""

    def __init__(self, channels: Sequence[int], out_channels: int, *, backend=None):
        super().__init__()
        classifier = nn.Conv2d(sum(channels), out_channels, 1)
        self.last_layer = nn.Sequential(*fuse_branches(channels, backend=backend), classifier)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.last_layer(list(features))

    def task_features(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """The head's own features (after its first conv, BN and ReLU), before the classifier `last_layer[-1]`."""
        return self.last_layer[:-1](list(features))
