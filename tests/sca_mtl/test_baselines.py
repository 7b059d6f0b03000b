"""The baselines of MTI-Net's code (single_task, mtl_baseline): their HighResolutionHead against the released
formula, and what they refuse. Shapes, gradients, parameter counts and Triton parity are the registry's generic
tests (test_registry.py, test_model_on_triton.py)."""

import pytest
import torch
import torch.nn.functional as F

from sca_mtl.models import build_model
from sca_mtl.models.heads import HighResolutionHead

CHANNELS = [18, 36, 72, 144]


def released_head(features, head: HighResolutionHead) -> torch.Tensor:
    """seg_hrnet.py's HighResolutionHead.forward restated with the head's weights: the branches upsampled
    bilinearly (align_corners False) to the first one's size, concatenated, conv, BN, ReLU, conv."""
    size = features[0].shape[2:]
    x = torch.cat([features[0], *(F.interpolate(f, size, mode="bilinear", align_corners=False)
                                  for f in features[1:])], dim=1)
    conv, norm, _, classifier = head.last_layer
    x = F.conv2d(x, conv.weight, conv.bias)
    x = F.batch_norm(x, None, None, norm.weight, norm.bias, training=True, eps=norm.eps)
    return F.conv2d(F.relu(x), classifier.weight, classifier.bias)


def test_high_resolution_head_is_the_released_formula():
    torch.manual_seed(0)
    head = HighResolutionHead(CHANNELS, 40, backend="torch").double().train()
    for module in head.modules():  # non-trivial BN affine parameters
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(module.weight)
            torch.nn.init.normal_(module.bias)
    features = [torch.randn(2, c, 16 // 2**k, 24 // 2**k, dtype=torch.float64) for k, c in enumerate(CHANNELS)]
    torch.testing.assert_close(head(features), released_head(features, head), rtol=1e-12, atol=1e-12)


def test_single_task_serves_one_task():
    with pytest.raises(ValueError, match="single_task serves one task, got 2 \\(semseg, depth\\)"):
        build_model("single_task", {"semseg": 40, "depth": 1}, kernels="torch")
