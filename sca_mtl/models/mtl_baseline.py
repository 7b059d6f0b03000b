"""MTI-Net's multi-task baseline (its models.py MultiTaskModel with HRNet heads): one shared HRNet backbone and one
HighResolutionHead per task, each prediction upsampled bilinearly to the image."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .backbone import check_image
from .heads import HighResolutionHead, upsample
from .registry import register_model


@register_model("mtl_baseline")
class MTLBaseline(nn.Module):
    def __init__(self, tasks: Mapping[str, int], backbone: nn.Module, *, backend=None):
        super().__init__()
        self.tasks = dict(tasks)
        self.backbone = backbone
        channels = backbone.feature_info.channels()
        self.decoders = nn.ModuleDict(
            {task: HighResolutionHead(channels, n, backend=backend) for task, n in self.tasks.items()}
        )

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        check_image(image)
        features = self.backbone(image)
        return {task: upsample(decoder(features), image.shape[2:]) for task, decoder in self.decoders.items()}
