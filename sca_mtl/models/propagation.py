"""MTI-Net's feature propagation module (FPM), which carries every task's features of one scale to the next finer
one, and the gate that SCA-MTL's FPMA swaps in:

    X = [F_t for t]  (task-major, N*C channels),   M = softmax over groups of N consecutive channels of A(X)
    G_t = SE_t(ResBlock_{NC->C}(M ⊙ X)) + F_t

A is MTI-Net's convolutional `non_linear_gate` or, in FPMA, a Swin window attention. Both views, (B, C, N, H, W),
group N *consecutive* channels, which mixes tasks' channels rather than comparing one channel across tasks: the
grouping MTI-Net's code uses and SCA-MTL's inherited, kept here for equality with both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .blocks import ResBlock, SqueezeExcitation

GATE_REDUCTION = 4  # MTI-Net's non-linear gate works at a quarter of the concatenated width


def non_linear_gate(width: int) -> nn.Sequential:
    """MTI-Net's f: ResBlock(width -> width/4), ResBlock(width/4), conv1x1(width/4 -> width, with bias)."""
    hidden = width // GATE_REDUCTION
    return nn.Sequential(ResBlock(width, hidden), ResBlock(hidden, hidden), nn.Conv2d(hidden, width, 1))


class FeaturePropagation(nn.Module):
    """forward({task: F_t}) -> {task: G_t}, all (B, C, H, W); `attention` maps (B, N*C, H, W) to the same shape."""

    def __init__(self, tasks: Sequence[str], channels: int, attention: nn.Module):
        super().__init__()
        self.tasks = list(tasks)
        self.attention = attention
        self.squeeze = ResBlock(len(self.tasks) * channels, channels)
        self.excite = nn.ModuleDict({task: SqueezeExcitation(channels) for task in self.tasks})

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = torch.cat([features[task] for task in self.tasks], dim=1)
        batch, width, height, w = x.shape
        groups = (batch, width // len(self.tasks), len(self.tasks), height, w)
        gate = self.attention(x).reshape(groups).softmax(dim=2)
        shared = self.squeeze((gate * x.view(groups)).view(batch, width, height, w))
        return {task: self.excite[task](shared) + features[task] for task in self.tasks}
