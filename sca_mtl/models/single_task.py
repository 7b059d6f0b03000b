"""MTI-Net's single-task baseline (its models.py SingleTaskModel with the HRNet head): the HRNet backbone and one
HighResolutionHead, the prediction upsampled bilinearly to the image. One network per task: its metrics are the
reference of Δm."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .backbone import check_image
from .heads import HighResolutionHead, upsample
from .registry import register_model


@register_model("single_task")
class SingleTask(nn.Module):
    max_tasks = 1

    def __init__(self, tasks: Mapping[str, int], backbone: nn.Module, *, backend=None):
        super().__init__()
        (self.task, channels), = tasks.items()
        self.backbone = backbone
        self.decoder = HighResolutionHead(backbone.feature_info.channels(), channels, backend=backend)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        check_image(image)
        return {self.task: upsample(self.decoder(self.backbone(image)), image.shape[2:])}
