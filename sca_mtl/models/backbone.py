"""The backbones, from timm: HRNet returning its four raw branch outputs (strides 4, 8, 16, 32), and the dilated
ResNet of DenseMTL returning its five stage outputs (strides 2, 4, 8, 16, 16)."""

from __future__ import annotations

import os

import timm
import torch
from torch import nn

from ..config import SIZE_MULTIPLE

# The released code (MTI-Net's seg_hrnet) differs from timm's HRNet in two training-time details we follow:
BACKBONE_BN_MOMENTUM = 0.01  # timm uses 0.1
FUSE_UPSAMPLING = "bilinear"  # timm's fuse layers upsample lower branches with "nearest"
# the coarsest branch is at stride 32 and every finer head upsamples it exactly x2 (the config checks sizes with it)
MIN_STRIDE = SIZE_MULTIPLE
RESNET_OUTPUT_STRIDE = 16  # DenseMTL's ResNet: its last stage dilated instead of strided


def check_image(image: torch.Tensor) -> None:
    """The models' input: a (B, 3, H, W) tensor with H and W multiples of the backbone's coarsest stride."""
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be a (B, 3, H, W) tensor, got {shape}")
    if image.shape[2] % MIN_STRIDE or image.shape[3] % MIN_STRIDE:
        raise ValueError(
            f"image height and width must be multiples of {MIN_STRIDE}, got shape {tuple(image.shape)}"
        )


def build_backbone(
    name: str = "hrnet_w18_small_v2", pretrained: None | bool | str = None, *, bn_momentum: float = BACKBONE_BN_MOMENTUM
) -> nn.Module:
    """timm HRNet with `features_only=True, feature_location=""`: forward(image) -> [F1, F2, F3, F4] at strides
    4..32 (18/36/72/144 channels for hrnet_w18_small_v2); or a timm ResNet at output stride 16: [f0..f4] at strides
    2, 4, 8, 16, 16 (64/256/512/1024/2048 for resnet101). `backbone.feature_info.channels()` lists the widths.

    pretrained: None/False for random weights, a local checkpoint path (timm's format; classifier keys are dropped),
    or True for timm's own download (needs network access). bn_momentum: of every BatchNorm (the released code's
    0.01 averages over about 100 steps: short runs evaluate better with more).
    """
    if name.startswith("hrnet"):
        kwargs = dict(features_only=True, feature_location="", out_indices=(1, 2, 3, 4))
    elif name.startswith("resnet"):
        kwargs = dict(features_only=True, output_stride=RESNET_OUTPUT_STRIDE, out_indices=(0, 1, 2, 3, 4))
    else:
        raise ValueError(f"backbone must be a timm HRNet (e.g. 'hrnet_w18_small_v2') or ResNet ('resnet101'), got "
                         f"{name!r}")
    if isinstance(pretrained, (str, os.PathLike)):
        if not os.path.isfile(pretrained):
            raise FileNotFoundError(f"pretrained backbone checkpoint not found: {pretrained}")
        kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=os.fspath(pretrained)))
    else:
        kwargs.update(pretrained=bool(pretrained))
    backbone = timm.create_model(name, **kwargs)
    for module in backbone.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = bn_momentum
        elif isinstance(module, nn.Upsample):
            module.mode, module.align_corners = FUSE_UPSAMPLING, False
    return backbone
