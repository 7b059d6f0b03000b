"""PAD-Net's multi-modal distillation (Xu et al., CVPR 2018, as MTI-Net's code builds it): PAD-Net runs it once at
stride 4, MTI-Net once per scale. Every other task's features, gated by a spatial attention mask, are added to the
target's:

    F̂_t = F_t + Σ_{a ∈ sources, a ≠ t} SA_{t<-a}(F_a),    SA(x) = conv3x3(x) ⊙ sigmoid(conv3x3'(x))    (no biases)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn


class SpatialAttention(nn.Module):
    """SA(x) = conv(x) ⊙ sigmoid(mask(x)), both 3x3 convolutions without bias, to `out_channels` (default: the input's
    width; DenseMTL's exchange halves it)."""

    def __init__(self, channels: int, out_channels: int | None = None):
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        self.conv = nn.Conv2d(channels, out_channels, 3, padding=1, bias=False)
        self.mask = nn.Conv2d(channels, out_channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * torch.sigmoid(self.mask(x))


class MultiModalDistillation(nn.Module):
    """forward({task: F_task}) -> {target: F̂_target}: one SpatialAttention per (target, other source) pair.

    targets: the tasks refined (the final predictions'); sources: the tasks whose features are distilled into them
    (the targets, and any auxiliary tasks)."""

    def __init__(self, targets: Sequence[str], sources: Sequence[str], channels: int):
        super().__init__()
        self.attention = nn.ModuleDict(
            {
                target: nn.ModuleDict({source: SpatialAttention(channels) for source in sources if source != target})
                for target in targets
            }
        )

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            target: features[target] + sum(layer(features[source]) for source, layer in attention.items())
            for target, attention in self.attention.items()
        }
