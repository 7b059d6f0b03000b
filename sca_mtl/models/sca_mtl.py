"""SCA-MTL (Kim, Choi, Min, ICIP 2022), as the released code computes it (MODEL_SPEC.md 3-4), on the skeleton of
MTI-Net (Vandenhende et al., ECCV 2020), whose four parts it replaces:

    image -> HRNet branches F̄k (k = 0..3, stride 4..32)
          -> Fk = [ATT(F̄k), F̄k]                                      (self-attention, widths doubled: C = 2 F̄)
    for k = 3, 2, 1, 0 (coarse to fine):
          F_t^k, p_t^k = ScaleHead_t([Fk, up2(G_t^{k+1})])            (p_t^k: deep supervision)
          F̂_t^k      = CTAM_k({F_t^k})                                (cross-task attention)
          G_t^k      = FPMA_k({F̂_t^k})   for k > 0                    (propagation to the next finer scale)
    p_t = up4(CSAMHead_t(F̂_t^0..3))                                   (cross-scale attention + aggregation)

Scale index k here is the code's (0 = finest, stride 4); the paper's is k + 1.

Table 5's ablation turns the parts off one by one, each falling back to MTI-Net's: without ATT, Fk = F̄k; without
FPMA, the propagation's gate is MTI-Net's convolutional one; without CTAM, F̂ is MTI-Net's multi-modal distillation
of the F_t^k, and the propagation reads F_t^k rather than F̂_t^k (MTI-Net distils after propagating); without CSAM,
p_t = up4(HighResolutionHead_t(F̂_t^0..3)). With all four off, the network is MTI-Net (`mti_net`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import check_image
from .blocks import ResBlock, conv_bn
from .distillation import MultiModalDistillation
from .heads import HighResolutionHead, ScaleHead, upsample
from .layers import ConcatConv1x1, CrossAttention, batched_cross_attention
from .propagation import FeaturePropagation, non_linear_gate
from .registry import register_model
from .swin import SwinAttention


class CrossTaskAttention(nn.Module):
    """CTAM: F̂_t = F_t + Fuse([[F_t, CA_{t<-a}(F_t, F_a)] for sources a != t, last source first]).

    One CrossAttention per ordered task pair, all pairs' attentions in one op call; one Fuse ResBlock (BN momentum
    0.01) shared by all targets."""

    def __init__(self, tasks: Sequence[str], channels: int, *, qk_convs: int, backend):
        super().__init__()
        self.tasks = list(tasks)
        self.attention = nn.ModuleDict(
            {
                self._pair(target, source): CrossAttention(channels, qk_convs=qk_convs, backend=backend)
                for target in self.tasks
                for source in self.tasks
                if source != target
            }
        )
        self.fuse = ResBlock(2 * channels * (len(self.tasks) - 1), channels, bn_momentum=0.01)

    @staticmethod
    def _pair(target: str, source: str) -> str:
        return f"{target}_from_{source}"

    def _pairs(self) -> list[tuple[str, str]]:
        """(target, source) of every attention, target-major, each target's sources last first: the order of the
        released code's Fuse input."""
        return [(target, source) for target in self.tasks for source in reversed(self.tasks) if source != target]

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pairs = self._pairs()
        attended = batched_cross_attention(  # every pair's maps have one shape: one op call for all pairs
            [self.attention[self._pair(target, source)] for target, source in pairs],
            [features[target] for target, _ in pairs],
            [features[source] for _, source in pairs],
        )
        pieces = {target: [] for target in self.tasks}
        for (target, _), attention in zip(pairs, attended):
            pieces[target] += [features[target], attention]
        return {target: features[target] + self.fuse(torch.cat(pieces[target], dim=1)) for target in self.tasks}


class CrossScaleHead(nn.Module):
    """CSAM + feature aggregation for one task.

    For every target scale k < K-1 and coarser source l: CAM_{k<-l} = [F̂k, CA_k(F̂k, P_{l->k}(F̂l))], CA_k shared by
    all sources of scale k, P_{l->k} a conv1x1-BN at the source's resolution. The CAMs of all scales and F̂_{K-1} go
    through one 1x1 conv at the finest resolution (upsampling inside the op), BN, ReLU, and a 1x1 conv to the
    task's outputs. The model runs the attentions of all tasks' heads together (`attention_calls`, then
    `aggregate_cams`): one op call per (k, l) instead of one per task."""

    def __init__(self, channels: Sequence[int], out_channels: int, *, qk_convs: int, backend):
        super().__init__()
        self.num_scales = len(channels)
        self.attention = nn.ModuleList(
            CrossAttention(c, qk_convs=qk_convs, backend=backend) for c in channels[:-1]
        )
        self.project = nn.ModuleDict(
            {
                self._pair(target, source): conv_bn(channels[source], channels[target], relu=False)
                for target, source in self._scale_pairs()
            }
        )
        width = sum(2 * c * (self.num_scales - 1 - k) for k, c in enumerate(channels[:-1])) + channels[-1]
        self.aggregate = ConcatConv1x1(width, width, backend=backend)
        self.aggregate_norm = nn.BatchNorm2d(width)
        self.classifier = ConcatConv1x1(width, out_channels, backend=backend)

    @staticmethod
    def _pair(target: int, source: int) -> str:
        return f"{source}_to_{target}"

    def _scale_pairs(self) -> list[tuple[int, int]]:
        """(target scale, coarser source scale) of every CAM, in the aggregation's order."""
        scales = range(self.num_scales)
        return [(target, source) for target in scales[:-1] for source in scales[target + 1 :]]

    def attention_calls(
        self, features: Sequence[torch.Tensor]
    ) -> list[tuple[CrossAttention, torch.Tensor, torch.Tensor]]:
        """CSAM's cross attentions as (layer, target map, projected source map), in the order of their CAMs."""
        return [
            (self.attention[target], features[target], self.project[self._pair(target, source)](features[source]))
            for target, source in self._scale_pairs()
        ]

    def aggregate_cams(self, features: Sequence[torch.Tensor], attended: Sequence[torch.Tensor]) -> torch.Tensor:
        """The outputs from the attended maps of `attention_calls` (same order) and the features."""
        segments = []
        for (target, _), attention in zip(self._scale_pairs(), attended, strict=True):
            segments += [features[target], attention]
        segments.append(features[-1])
        aggregated = F.relu(self.aggregate_norm(self.aggregate(segments)), inplace=True)
        return self.classifier([aggregated])

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.aggregate_cams(features, [layer(t, s) for layer, t, s in self.attention_calls(features)])


@register_model("sca_mtl")
class SCAMTL(nn.Module):
    """The SCA-MTL network. forward(image) -> {task: (B, n_t, H, W), "deep_supervision": {"scale_k": {task: p_t^k}}}.

    Args:
        tasks: {task name: output channels}, at least two (CTAM and the distillation work across tasks).
        backbone: a module returning the four branch maps; `backbone.feature_info.channels()` gives their widths.
        att, fpma, ctam, csam: SCA-MTL's four parts, each replaced by MTI-Net's when False (Table 5's ablation).
        auxiliary_tasks: {task name: output channels} of tasks predicted only at the scales (deep supervision), whose
            features are propagated and distilled into the main tasks' (MTI-Net's auxiliary tasks). Only with
            ctam=False: the released SCA-MTL code's CTAM has no output for them, so its propagation cannot run.
        qk_convs: 2 for the released code's Conv-BN-ReLU-Conv-BN query/key projections, 1 for the paper's Conv-BN.
        window_size, att_heads, fpma_heads, att_drop_path: the Swin attention settings of ATT and FPMA.
        backend: the kernels' backend for every op-calling layer, fixed here ("torch" or "triton").
    """

    min_tasks = 2

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: nn.Module,
        *,
        att: bool = True,
        fpma: bool = True,
        ctam: bool = True,
        csam: bool = True,
        auxiliary_tasks: Mapping[str, int] | None = None,
        qk_convs: int = 2,
        window_size: int = 7,
        att_heads: int = 6,
        fpma_heads: int = 4,
        att_drop_path: float = 0.2,
        backend: str,
    ):
        super().__init__()
        if auxiliary_tasks and ctam:
            raise ValueError("auxiliary tasks need MTI-Net's distillation (ctam: false): CTAM serves main tasks only")
        self.tasks = dict(tasks)
        scale_tasks = {**self.tasks, **(auxiliary_tasks or {})}  # every task predicted at the scales
        self.backbone = backbone
        branch_channels = list(backbone.feature_info.channels())
        # with ATT, each scale is the attention output concatenated with the branch
        channels = [2 * c for c in branch_channels] if att else branch_channels
        self.channels = channels
        num_scales = len(channels)
        names, scale_names = list(self.tasks), list(scale_tasks)

        self.attention = nn.ModuleList(
            SwinAttention(c, att_heads, depth=2, window_size=window_size, drop_path=att_drop_path, backend=backend)
            for c in branch_channels
        ) if att else None
        self.scale_heads = nn.ModuleList(
            nn.ModuleDict(
                {
                    task: ScaleHead(channels[k] + (channels[k + 1] if k + 1 < num_scales else 0), channels[k], n)
                    for task, n in scale_tasks.items()
                }
            )
            for k in range(num_scales)
        )
        self.ctam = ctam
        self.cross_task = nn.ModuleList(
            CrossTaskAttention(names, c, qk_convs=qk_convs, backend=backend) if ctam
            else MultiModalDistillation(names, scale_names, c)
            for c in channels
        )

        def gate(width: int) -> nn.Module:
            if fpma:
                return SwinAttention(width, fpma_heads, depth=1, window_size=window_size, backend=backend)
            return non_linear_gate(width)

        # propagate[k - 1] carries scale k's features to scale k - 1 (no propagation out of the finest scale).
        self.propagate = nn.ModuleList(
            FeaturePropagation(scale_names, c, gate(len(scale_names) * c)) for c in channels[1:]
        )
        self.csam = csam
        self.heads = nn.ModuleDict(
            {
                task: CrossScaleHead(channels, n, qk_convs=qk_convs, backend=backend) if csam
                else HighResolutionHead(channels, n, backend=backend)
                for task, n in self.tasks.items()
            }
        )

    def forward(self, image: torch.Tensor) -> dict[str, object]:
        check_image(image)
        scales = self.backbone(image)
        if self.attention is not None:
            scales = [torch.cat([attention(x), x], dim=1) for attention, x in zip(self.attention, scales)]

        distilled: list[dict[str, torch.Tensor]] = [{} for _ in scales]
        deep_supervision = {}
        propagated = None
        for k in reversed(range(len(scales))):
            features, predictions = {}, {}
            for task, head in self.scale_heads[k].items():
                x = scales[k]
                if propagated is not None:
                    x = torch.cat([x, upsample(propagated[task], x.shape[2:])], dim=1)
                features[task], predictions[task] = head(x)
            deep_supervision[f"scale_{k}"] = predictions
            distilled[k] = self.cross_task[k](features)
            if k > 0:
                propagated = self.propagate[k - 1](distilled[k] if self.ctam else features)

        scale_maps = {task: [d[task] for d in distilled] for task in self.heads}  # F̂_t^0..3 per task
        out: dict[str, object] = {
            task: upsample(prediction, image.shape[2:]) for task, prediction in self._aggregate(scale_maps).items()
        }
        # scale_0 (finest) first; sorted by name alone, since torch 2.11's dynamo cannot sort (name, tensors) pairs
        out["deep_supervision"] = {name: deep_supervision[name] for name in sorted(deep_supervision)}
        return out

    def _aggregate(self, scale_maps: Mapping[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Each task's prediction at stride 4 from its distilled maps of all scales."""
        if not self.csam:
            return {task: head(scale_maps[task]) for task, head in self.heads.items()}
        calls = [head.attention_calls(scale_maps[task]) for task, head in self.heads.items()]
        # the tasks' CSAM calls at one position share their shapes: one op call for each position
        attended = [batched_cross_attention(*zip(*same_position)) for same_position in zip(*calls)]
        return {
            task: head.aggregate_cams(scale_maps[task], [a[i] for a in attended])
            for i, (task, head) in enumerate(self.heads.items())
        }
