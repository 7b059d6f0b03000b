"""MTI-Net's multi-task baseline (its models.py MultiTaskModel with HRNet heads): one shared HRNet backbone and one
HighResolutionHead per task, each prediction upsampled bilinearly to the image.

With `xtam_pool` set, DenseMTL's exchange block (sca_mtl/models/xtam.py) runs between the heads' features (270
channels at stride 4) and their classifiers, its attention on the grid of stride 4 x xtam_pool: DenseMTL's cross-task
attention on the HRNet backbone and recipe the other models share."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .backbone import check_image
from .heads import HighResolutionHead, upsample
from .registry import register_model
from .xtam import ExchangeBlock


@register_model("mtl_baseline")
class MTLBaseline(nn.Module):
    def __init__(
        self, tasks: Mapping[str, int], backbone: nn.Module, *, xtam_pool: int | None = None, backend=None
    ):
        super().__init__()
        self.tasks = dict(tasks)
        self.backbone = backbone
        channels = backbone.feature_info.channels()
        self.decoders = nn.ModuleDict(
            {task: HighResolutionHead(channels, n, backend=backend) for task, n in self.tasks.items()}
        )
        self.exchange = None if xtam_pool is None else ExchangeBlock(list(self.tasks), sum(channels), xtam_pool)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        check_image(image)
        features = self.backbone(image)
        if self.exchange is None:
            return {task: upsample(decoder(features), image.shape[2:]) for task, decoder in self.decoders.items()}
        exchanged = self.exchange({task: decoder.task_features(features) for task, decoder in self.decoders.items()})
        return {task: upsample(decoder.last_layer[-1](exchanged[task]), image.shape[2:])
                for task, decoder in self.decoders.items()}
