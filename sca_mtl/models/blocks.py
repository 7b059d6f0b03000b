"""Convolutional building blocks shared by the models (the MTI-Net code base's conventions)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(
    in_channels: int,
    out_channels: int,
    *,
    relu: bool,
    kernel_size: int = 1,
    dilation: int = 1,
    bn_momentum: float = 0.1,
) -> nn.Sequential:
    """Conv without bias (1x1 by default; "same" padding), BatchNorm, optionally ReLU ("CBR1" / "CB1" in
    MODEL_SPEC.md)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=dilation * (kernel_size // 2), dilation=dilation,
                     bias=False)
    layers = [conv, nn.BatchNorm2d(out_channels, momentum=bn_momentum)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def shortcut(in_channels: int, out_channels: int) -> nn.Module:
    """A residual block's shortcut: identity, or conv1x1-BN (PyTorch's default momentum) when the width changes."""
    return nn.Identity() if in_channels == out_channels else conv_bn(in_channels, out_channels, relu=False)


class ResBlock(nn.Module):
    """ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN plus the shortcut (identity, or conv1x1-BN when the width
    changes), then ReLU. `bn_momentum` is bn1's and bn2's: the released code passes its momentum to those two only,
    the shortcut's BatchNorm keeps PyTorch's default (it matters for CTAM's fuse block, built with 0.01)."""

    def __init__(self, in_channels: int, out_channels: int, *, bn_momentum: float = 0.1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels, momentum=bn_momentum)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels, momentum=bn_momentum)
        self.shortcut = shortcut(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class Bottleneck(nn.Module):
    """ResNet bottleneck block (PAD-Net's heads): conv1x1-BN-ReLU to `out_channels // 4`, conv3x3-BN-ReLU,
    conv1x1-BN back to `out_channels`, plus the shortcut (identity, or conv1x1-BN when the width changes), then
    ReLU."""

    expansion = 4  # out_channels over the inner width

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        if out_channels % self.expansion:
            raise ValueError(f"out_channels must be a multiple of {self.expansion}, got {out_channels}")
        width = out_channels // self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = shortcut(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class SqueezeExcitation(nn.Module):
    """Channel gating: x * sigmoid(W2 relu(W1 mean_hw(x))), with a C -> C // reduction bottleneck."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.gate = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x.mean(dim=(2, 3)))[:, :, None, None]
