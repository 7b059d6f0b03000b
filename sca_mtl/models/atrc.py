"""ATRC (Bruggemann et al., ICCV 2021) with every source -> target context fixed to the global one, as brdav/atrc
builds it for its `GlobalRelationalContextHead` (config relationalglobal.yaml; MODEL_SPEC.md 5.5). ATRC's
architecture search picks one of five contexts per task pair; this model is its all-global point, which needs no
search and no auxiliary heads:

    X     = [F1, up(F2), up(F3), up(F4)]                                         (270 channels at stride 4)
    F_t   = ReLU(BN(conv3x3(X)))                                                  (67 = 270 // 4 channels)
    C_t   = BN0(conv1x1([CA_{t<-s}(F_t, F_s) for every s, the target included]))  (each CA 67 -> 33 channels)
    F̂_t   = Dropout2d(ReLU(BN(conv1x1([F_t, C_t]))))                              (134 -> 67)
    p_t   = up(conv1x1(F̂_t))

CA is SCA-MTL's cross attention (the same softplus linear attention with eps 1e-12), all T^2 of them in one
`kernels.linear_cross_attention` call; BN0 starts at zero weight and bias (the released zero_init), so training
starts from the task features alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .backbone import check_image
from .blocks import conv_bn
from .heads import upsample
from .layers import CrossAttention, batched_cross_attention
from .registry import register_model

TASK_REDUCTION = 4  # task features at a quarter of the concatenated backbone width
ATTENTION_REDUCTION = 2  # each context block at half the task width
DROPOUT = 0.05  # the released Dropout2d after the fusion
LOGITS_STD = 0.01  # the released init of the final 1x1 convs (normal, zero bias)


class GlobalContextDistillation(nn.Module):
    """ATRC's ATRCModule with every context global: forward({task: F_t}) -> {task: F̂_t}."""

    def __init__(self, tasks: list[str], channels: int, attention_channels: int, *, dropout: float, backend):
        super().__init__()
        self.tasks = list(tasks)
        self.attention = nn.ModuleDict(
            {
                target: nn.ModuleDict(
                    {source: CrossAttention(channels, attention_channels, backend=backend) for source in self.tasks}
                )
                for target in self.tasks
            }
        )
        self.project = nn.ModuleDict(
            {task: conv_bn(attention_channels * len(self.tasks), channels, relu=False) for task in self.tasks}
        )
        for projection in self.project.values():
            nn.init.zeros_(projection[1].weight)
            nn.init.zeros_(projection[1].bias)
        self.fuse = nn.ModuleDict(
            {task: nn.Sequential(conv_bn(2 * channels, channels, relu=True), nn.Dropout2d(dropout))
             for task in self.tasks}
        )

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pairs = [(target, source) for target in self.tasks for source in self.tasks]
        attended = batched_cross_attention(  # every pair's maps have one shape: one op call for all T^2 pairs
            [self.attention[target][source] for target, source in pairs],
            [features[target] for target, _ in pairs],
            [features[source] for _, source in pairs],
        )
        out = {}
        for i, target in enumerate(self.tasks):
            contexts = torch.cat(attended[i * len(self.tasks):(i + 1) * len(self.tasks)], dim=1)
            out[target] = self.fuse[target](torch.cat([features[target], self.project[target](contexts)], dim=1))
        return out


@register_model("atrc_global")
class ATRCGlobal(nn.Module):
    """forward(image) -> {task: (B, n_t, H, W)}. dropout: of the fusion (the released 0.05)."""

    def __init__(self, tasks: Mapping[str, int], backbone: nn.Module, *, dropout: float = DROPOUT, backend=None):
        super().__init__()
        self.tasks = dict(tasks)
        self.backbone = backbone
        width = sum(backbone.feature_info.channels())
        channels = width // TASK_REDUCTION
        self.features = nn.ModuleDict(
            {
                task: conv_bn(width, channels, relu=True, kernel_size=3)
                for task in self.tasks
            }
        )
        self.distillation = GlobalContextDistillation(list(self.tasks), channels, channels // ATTENTION_REDUCTION,
                                                      dropout=dropout, backend=backend)
        self.predict = nn.ModuleDict({task: nn.Conv2d(channels, n, 1) for task, n in self.tasks.items()})
        for conv in self.predict.values():
            nn.init.normal_(conv.weight, std=LOGITS_STD)
            nn.init.zeros_(conv.bias)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        check_image(image)
        branches = self.backbone(image)
        size = branches[0].shape[2:]
        x = torch.cat([branches[0], *(upsample(b, size) for b in branches[1:])], dim=1)
        distilled = self.distillation({task: layer(x) for task, layer in self.features.items()})
        return {task: upsample(conv(distilled[task]), image.shape[2:]) for task, conv in self.predict.items()}
