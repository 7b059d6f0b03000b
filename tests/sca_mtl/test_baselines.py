"""The models of MTI-Net's code (single_task, mtl_baseline, pad_net, mti_net): their parts against the released
formulas, MTI-Net as SCA-MTL without its parts (Table 5's ablation), and the task counts they refuse. Shapes,
gradients, parameter counts and Triton parity are the registry's generic tests (test_registry.py,
test_model_on_triton.py)."""

import pytest
import torch
import torch.nn.functional as F

from sca_mtl.models import build_model
from sca_mtl.models.distillation import MultiModalDistillation
from sca_mtl.models.heads import HighResolutionHead
from sca_mtl.models.propagation import FeaturePropagation, non_linear_gate
from tests._utils import same_outputs

CHANNELS = [18, 36, 72, 144]
NYUD_2 = {"semseg": 40, "depth": 1}
IMAGE = (2, 3, 64, 96)
ABLATION = ["att", "fpma", "ctam", "csam"]  # Table 5's order: each row adds the next part


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


def randomise_batchnorms(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(m.weight)
            torch.nn.init.normal_(m.bias)


def test_high_resolution_head_is_the_released_formula():
    torch.manual_seed(0)
    head = HighResolutionHead(CHANNELS, 40, backend="torch").double().train()
    randomise_batchnorms(head)
    features = [torch.randn(2, c, 16 // 2**k, 24 // 2**k, dtype=torch.float64) for k, c in enumerate(CHANNELS)]
    torch.testing.assert_close(head(features), released_head(features, head), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "name, tasks, words",
    [("single_task", {"semseg": 40, "depth": 1}, "'single_task' serves exactly 1 task, got 2 (semseg, depth)"),
     ("pad_net", {"depth": 1}, "'pad_net' serves at least 2 tasks, got 1 (depth)"),
     ("mti_net", {"normals": 3}, "'mti_net' serves at least 2 tasks, got 1 (normals)")],
)
def test_models_refuse_a_task_count_they_cannot_serve(name, tasks, words):
    with pytest.raises(ValueError) as info:
        build_model(name, tasks, kernels="torch")
    assert words in str(info.value)


def test_distillation_is_the_released_formula():
    """padnet.py's MultiTaskDistillationModule: F_t + the sum over the other sources a of
    conv3x3(F_a) * sigmoid(conv3x3'(F_a)), auxiliary sources (here normals) included, targets only refined."""
    torch.manual_seed(0)
    distillation = MultiModalDistillation(["semseg", "depth"], ["semseg", "depth", "normals"], 8).double()
    features = {t: torch.randn(2, 8, 6, 10, dtype=torch.float64) for t in ("semseg", "depth", "normals")}
    out = distillation(features)
    assert set(out) == {"semseg", "depth"}
    for target in out:
        expected = features[target].clone()
        for source, layer in distillation.attention[target].items():
            x = features[source]
            expected += F.conv2d(x, layer.conv.weight, padding=1) * torch.sigmoid(F.conv2d(x, layer.mask.weight,
                                                                                           padding=1))
        assert sorted(distillation.attention[target]) == sorted({"semseg", "depth", "normals"} - {target})
        torch.testing.assert_close(out[target], expected, rtol=1e-12, atol=1e-12)


def test_feature_propagation_is_the_released_formula():
    """mti_net.py's FPM: the task-major concatenation X, mask = softmax over groups of N consecutive channels of
    f(X), G_t = SE_t(ResBlock(mask * X)) + F_t."""
    torch.manual_seed(0)
    tasks, channels = ["semseg", "depth", "normals"], 16
    fpm = FeaturePropagation(tasks, channels, non_linear_gate(3 * channels)).double().train()
    randomise_batchnorms(fpm)
    features = {t: torch.randn(2, channels, 4, 6, dtype=torch.float64) for t in tasks}
    x = torch.cat([features[t] for t in tasks], dim=1)
    mask = F.softmax(fpm.attention(x).view(2, channels, 3, 4, 6), dim=2)
    shared = fpm.squeeze((mask * x.view(2, channels, 3, 4, 6)).view(2, 3 * channels, 4, 6))
    out = fpm(features)
    for t in tasks:
        gate = fpm.excite[t].gate(shared.mean(dim=(2, 3)))
        torch.testing.assert_close(out[t], shared * gate[:, :, None, None] + features[t], rtol=1e-12, atol=1e-12)


def test_mti_net_is_sca_mtl_without_its_four_parts():
    """Table 5's baseline row: sca_mtl with att, fpma, ctam and csam off takes mti_net's state dict (strictly) and
    computes its outputs and deep supervision bitwise."""
    torch.manual_seed(0)
    mti_net = build_model("mti_net", NYUD_2, kernels="torch")
    ablated = build_model("sca_mtl", NYUD_2, kernels="torch", **dict.fromkeys(ABLATION, False))
    ablated.load_state_dict(mti_net.state_dict())
    assert same_outputs(ablated, mti_net, torch.randn(IMAGE))


@pytest.mark.parametrize("name, parameters", [("mti_net", 14_838_121), ("pad_net", 12_161_332)])
def test_auxiliary_tasks_are_deep_supervision_only(name, parameters):
    """MTI-Net's released +edges_normals configs: edge and normals predicted at the initial stage (deep supervision)
    and distilled into semseg and depth, with no final output; the released code's parameter count (its classes,
    given our weights by name, compute our outputs and deep supervision bitwise in float64: checked 2026-12-06)."""
    torch.manual_seed(0)
    auxiliary = {"edge": 1, "normals": 3}
    model = build_model(name, NYUD_2, kernels="torch", auxiliary_tasks=auxiliary)
    assert sum(p.numel() for p in model.parameters()) == parameters
    with torch.no_grad():
        out = model.eval()(torch.randn(IMAGE))
    assert set(out) == {*NYUD_2, "deep_supervision"}
    for scale, predictions in out["deep_supervision"].items():
        assert set(predictions) == {*NYUD_2, *auxiliary}, scale
        assert predictions["normals"].shape[:2] == (2, 3)


@pytest.mark.parametrize(
    "name, options, words",
    [("mtl_baseline", dict(auxiliary_tasks={"edge": 1}), "'mtl_baseline' does not take auxiliary tasks"),
     ("mti_net", dict(auxiliary_tasks={"depth": 1}), "tasks ['depth'] are both main and auxiliary tasks"),
     ("sca_mtl", dict(auxiliary_tasks={"edge": 1}), "auxiliary tasks need MTI-Net's distillation (ctam: false)"),
     ("sca_mtl", dict(foo=1), "'sca_mtl' does not take the options ['foo']: its options are att, fpma"),
     ("single_task", dict(qk_convs=1), "'single_task' does not take the options ['qk_convs']: it takes no options")],
    ids=["no-auxiliary", "both", "ctam", "unknown-option", "no-options"],
)
def test_build_model_refuses_options_the_model_does_not_take(name, options, words):
    tasks = {"semseg": 40} if name == "single_task" else NYUD_2
    with pytest.raises(ValueError) as info:
        build_model(name, tasks, kernels="torch", **options)
    assert words in str(info.value)


def test_each_ablation_row_adds_one_part():
    """Table 5's rows, from MTI-Net to SCA-MTL: each adds parameters, and each part appears exactly in the rows that
    switch it on (ATT: the Swin stages; FPMA: windowed gates; CTAM: cross attention in cross_task; CSAM: CSAM heads)."""
    counts = []
    for row in range(len(ABLATION) + 1):
        options = {part: i < row for i, part in enumerate(ABLATION)}
        model = build_model("sca_mtl", NYUD_2, kernels="torch", **options)
        counts.append(sum(p.numel() for p in model.parameters()))
        assert (model.attention is not None) == options["att"]
        assert all(type(p.attention).__name__ == ("SwinAttention" if options["fpma"] else "Sequential")
                   for p in model.propagate)
        assert all(type(m).__name__ == ("CrossTaskAttention" if options["ctam"] else "MultiModalDistillation")
                   for m in model.cross_task)
        assert all(type(h).__name__ == ("CrossScaleHead" if options["csam"] else "HighResolutionHead")
                   for h in model.heads.values())
    assert counts[0] == 8_578_179 and counts[-1] == 25_760_549  # MTI-Net's and SCA-MTL's released counts
    assert counts == sorted(set(counts)), counts


def test_atrc_contexts_start_closed():
    """ATRC's zero-initialised projection: at initialisation the T^2 global contexts add nothing, and the fused feature
    is that of the task features with a zero context."""
    torch.manual_seed(0)
    distillation = build_model("atrc_global", NYUD_2, kernels="torch").distillation.eval()
    features = {t: torch.randn(2, 67, 8, 12) for t in NYUD_2}
    with torch.no_grad():
        out = distillation(features)
        for task, feature in features.items():
            zero_context = torch.cat([feature, torch.zeros_like(feature)], dim=1)
            assert torch.equal(out[task], distillation.fuse[task](zero_context))


def test_mtl_baseline_with_densemtls_exchange():
    """`xtam_pool`: DenseMTL's exchange between the heads' features and their classifiers; without it the model is
    MTI-Net's baseline (its weights load strictly into the first part)."""
    torch.manual_seed(0)
    model = build_model("mtl_baseline", NYUD_2, kernels="torch", xtam_pool=2).eval()
    plain = build_model("mtl_baseline", NYUD_2, kernels="torch").eval()
    assert sum(p.numel() for p in model.parameters()) == 4_019_251 + sum(p.numel() for p in model.exchange.parameters())
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("exchange.")})
    image = torch.randn(IMAGE)
    with torch.no_grad():
        out = model(image)
        features = {t: plain.decoders[t].task_features(plain.backbone(image)) for t in NYUD_2}
        exchanged = model.exchange(features)
    for task in NYUD_2:
        expected = F.interpolate(model.decoders[task].last_layer[-1](exchanged[task]), IMAGE[2:], mode="bilinear",
                                 align_corners=False)
        torch.testing.assert_close(out[task], expected)


def test_densemtl_feeds_its_encoder_the_released_normalisation():
    """The data pipeline's ImageNet normalisation undone, then the released encoder's (x - 0.45) / 0.225."""
    from sca_mtl.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    model = build_model("densemtl", NYUD_2, kernels="torch")
    image = torch.randn(2, 3, 32, 32)
    pixels = image * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    torch.testing.assert_close(image * model.input_scale + model.input_shift, (pixels - 0.45) / 0.225)
    with pytest.raises(ValueError, match="'densemtl' runs on a timm resnet backbone"):
        build_model("densemtl", NYUD_2, kernels="torch", backbone="hrnet_w18_small_v2")
