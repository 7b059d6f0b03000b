"""PAD-Net (Xu et al., CVPR 2018) on the HRNet backbone, as MTI-Net's code builds it (`pad_net` with
`fuse_hrnet: True`; MODEL_SPEC.md 5.3):

    X     = ReLU(BN(conv1x1([F1, up(F2), up(F3), up(F4)])))            (270 channels at stride 4, one op call)
    F_t   = Bottleneck(256) ∘ Bottleneck(270 -> 256)(X),   p_t^0 = conv1x1(F_t)           (initial predictions)
    F̂_t   = F_t + Σ_{a != t} SA_{t<-a}(F_a)                            (multi-modal distillation)
    p_t   = up(conv1x1(Bottleneck(256) ∘ Bottleneck(256)(F̂_t)))        (final predictions, at the image's size)

The initial predictions are returned as deep supervision ({"initial": {task: p_t^0}}): the loss upsamples them.
Auxiliary tasks get an initial prediction and are distillation sources, without a final head.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .backbone import check_image
from .blocks import Bottleneck
from .distillation import MultiModalDistillation
from .heads import ScaleHead, fuse_branches, upsample
from .registry import register_model

TASK_WIDTH = 256  # PAD-Net's per-task feature width (MTI-Net's `intermediate_channels`)


@register_model("pad_net")
class PADNet(nn.Module):
    min_tasks = 2  # distillation works across tasks

    def __init__(
        self, tasks: Mapping[str, int], backbone: nn.Module, *, auxiliary_tasks: Mapping[str, int] | None = None,
        backend=None,
    ):
        super().__init__()
        self.tasks = dict(tasks)
        initial_tasks = {**self.tasks, **(auxiliary_tasks or {})}
        self.backbone = backbone
        channels = backbone.feature_info.channels()
        self.fuse = nn.Sequential(*fuse_branches(channels, backend=backend))
        self.initial = nn.ModuleDict(
            {task: ScaleHead(sum(channels), TASK_WIDTH, n, block=Bottleneck) for task, n in initial_tasks.items()}
        )
        self.distillation = MultiModalDistillation(self.tasks, initial_tasks, TASK_WIDTH)
        self.final = nn.ModuleDict(
            {
                task: nn.Sequential(Bottleneck(TASK_WIDTH, TASK_WIDTH), Bottleneck(TASK_WIDTH, TASK_WIDTH),
                                    nn.Conv2d(TASK_WIDTH, n, 1))
                for task, n in self.tasks.items()
            }
        )

    def forward(self, image: torch.Tensor) -> dict[str, object]:
        check_image(image)
        fused = self.fuse(list(self.backbone(image)))
        features, initial = {}, {}
        for task, head in self.initial.items():
            features[task], initial[task] = head(fused)
        distilled = self.distillation(features)
        out: dict[str, object] = {
            task: upsample(head(distilled[task]), image.shape[2:]) for task, head in self.final.items()
        }
        out["deep_supervision"] = {"initial": initial}
        return out
