"""DenseMTL (Lopes, Vu, de Charette, WACV 2023), as its released code builds it for its NYUDv2 configs
(resnet101_ours_SD/SDN/SDNE.yml; ../shared/DENSEMTL_SPEC.md 1): a dilated ResNet-101 encoder (output stride 16), one
monodepth2-style decoder per task with an ASPP at its first stage, and the exchange block (sca_mtl/models/xtam.py) at
stride 2 between the decoders' two sections:

    f0..f4  = ResNet-101((x - 0.45) / 0.225)                  (64 @ H/2, 256 @ H/4, 512 @ H/8, 1024, 2048 @ H/16)
    F_t     = decoder_t stages 4..1 (f)                        (128 @ H/2)     p_t^1 = conv1x1(F_t)   (intermediate)
    F̂       = exchange({F_t})                                  (one xTAM per ordered pair, attention at H/8)
    p_t     = conv1x1(decoder_t stage 0 (F̂_t))                 (64 @ H)                               (final)

Decoder stage i (widths 64, 128, 128, 256, 256 for i = 0..4): first = ASPP(2048 -> 256) at i = 4, else a
reflection-padded conv3x3 + ELU; then a nearest x2 upsampling when the map is smaller than the skip (or at i = 0),
concatenation with the skip f_{i-1} (i > 0), and a second conv3x3 + ELU.

The intermediate predictions are returned as deep supervision ({"scale_1": {task: p_t^1}}), which the loss
upsamples. Where this departs from the released code: the losses and loss weights are this package's task table's
(the released code trains depth with berHu on inverse depth, normals with 1 - cosine, edges as 2 classes), the
exchange's sources are sorted and its attention is fused (see xtam.py), and the encoder is timm's ResNet-101.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .backbone import check_image
from .blocks import conv_bn
from .registry import register_model
from .xtam import ExchangeBlock

MONODEPTH_MEAN, MONODEPTH_STD = 0.45, 0.225  # the released encoder's input normalisation, on [0, 1] pixels
DECODER_WIDTHS = (64, 128, 128, 256, 256)  # num_ch_dec, stages 0..4
ASPP_RATES = (6, 12, 18)
ASPP_DROPOUT = 0.5
EXCHANGE_STAGE = 1  # every released config exchanges once, after decoder stage 1 (H/2, 128 channels)
EXCHANGE_POOL = 4  # the attention grid at stride 2 x 4 = 8
ENCODER_CHANNELS = [64, 256, 512, 1024, 2048]


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """monodepth2's ConvBlock: reflection padding, conv3x3 with bias, ELU."""
    return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(in_channels, out_channels, 3), nn.ELU(inplace=True))


class ASPP(nn.Module):
    """DeepLabv3's atrous spatial pyramid pooling: a 1x1 branch, one 3x3 branch per rate, the image-pooling branch
    (broadcast back bilinearly), each conv-BN-ReLU, concatenated and projected (conv-BN-ReLU, dropout 0.5)."""

    def __init__(self, in_channels: int, out_channels: int, rates: Sequence[int] = ASPP_RATES):
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn(in_channels, out_channels, relu=True)]
            + [conv_bn(in_channels, out_channels, relu=True, kernel_size=3, dilation=rate) for rate in rates]
        )
        self.pooling = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_bn(in_channels, out_channels, relu=True))
        self.project = nn.Sequential(conv_bn((len(rates) + 2) * out_channels, out_channels, relu=True),
                                     nn.Dropout(ASPP_DROPOUT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.interpolate(self.pooling(x), size=x.shape[2:], mode="bilinear", align_corners=False)
        return self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1))


class Decoder(nn.Module):
    """One task's decoder; `run(features, x, stages)` runs the given stages (descending) from x."""

    def __init__(self, out_channels: int):
        super().__init__()
        widths, top = DECODER_WIDTHS, len(DECODER_WIDTHS) - 1
        self.first = nn.ModuleList(
            ASPP(ENCODER_CHANNELS[-1], widths[i]) if i == top else conv_block(widths[i + 1], widths[i])
            for i in range(top + 1)
        )
        self.second = nn.ModuleList(
            conv_block(widths[i] + (ENCODER_CHANNELS[i - 1] if i > 0 else 0), widths[i]) for i in range(top + 1)
        )
        self.side = nn.ModuleDict({str(i): nn.Conv2d(widths[i], out_channels, 1) for i in (0, EXCHANGE_STAGE)})

    def run(self, features: Sequence[torch.Tensor], x: torch.Tensor, stages: Sequence[int]) -> torch.Tensor:
        for i in stages:
            x = self.first[i](x)
            if i == 0 or x.shape[-1] < features[i - 1].shape[-1]:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            if i > 0:
                x = torch.cat([x, features[i - 1]], dim=1)
            x = self.second[i](x)
        return x


@register_model("densemtl")
class DenseMTL(nn.Module):
    """forward(image) -> {task: (B, n_t, H, W), "deep_supervision": {"scale_1": {task: (B, n_t, H/2, W/2)}}}."""

    min_tasks = 2
    backbone_name = "resnet101"  # what build_model builds when it is given no backbone

    def __init__(self, tasks: Mapping[str, int], backbone: nn.Module, *, backend=None):
        super().__init__()
        if list(backbone.feature_info.channels()) != ENCODER_CHANNELS:
            raise ValueError(f"densemtl needs a ResNet-101-like encoder ({ENCODER_CHANNELS} channels), got "
                             f"{list(backbone.feature_info.channels())}")
        self.tasks = dict(tasks)
        self.backbone = backbone
        self.decoders = nn.ModuleDict({task: Decoder(n) for task, n in self.tasks.items()})
        self.exchange = ExchangeBlock(list(self.tasks), DECODER_WIDTHS[EXCHANGE_STAGE], EXCHANGE_POOL)
        # the data pipeline's ImageNet normalisation, undone and redone as the released encoder's
        scale = torch.tensor(IMAGENET_STD) / MONODEPTH_STD
        shift = (torch.tensor(IMAGENET_MEAN) - MONODEPTH_MEAN) / MONODEPTH_STD
        self.register_buffer("input_scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", shift.view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> dict[str, object]:
        check_image(image)
        features = self.backbone(image * self.input_scale + self.input_shift)
        first = range(len(DECODER_WIDTHS) - 1, EXCHANGE_STAGE - 1, -1)  # stages 4..1
        second = range(EXCHANGE_STAGE - 1, -1, -1)  # stage 0
        task_features = {task: decoder.run(features, features[-1], first) for task, decoder in self.decoders.items()}
        exchanged = self.exchange(task_features)
        out: dict[str, object] = {
            task: decoder.side["0"](decoder.run(features, exchanged[task], second))
            for task, decoder in self.decoders.items()
        }
        out["deep_supervision"] = {
            f"scale_{EXCHANGE_STAGE}": {
                task: decoder.side[str(EXCHANGE_STAGE)](task_features[task]) for task, decoder in self.decoders.items()
            }
        }
        return out
