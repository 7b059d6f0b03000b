"""Every model of the registry (sca_mtl/models/registry.py) on the torch backend, on tiny inputs: output keys and
shapes, deep-supervision outputs, a gradient for every parameter, a state-dict round trip, determinism, the input
checks, and the parameter count of the released code where one exists. A model added to the registry is tested here
without touching this file, but for its released parameter counts."""

import pytest
import torch

from sca_mtl.models import MODELS, build_model, register_model
from tests._utils import same_outputs

NYUD_3 = {"semseg": 40, "depth": 1, "normals": 3}
NYUD_2 = {"semseg": 40, "depth": 1}
IMAGE = (2, 3, 64, 96)  # strides 4..32 give 16x24 down to 2x3 maps
NAMES = sorted(MODELS)

# Parameters of the released code's model for these tasks (counted from its construction, HRNet-18 included): SCA-MTL
# from kimsunkyung/SCA_MTL; the others from MTI-Net's code (models.py SingleTaskModel / MultiTaskModel with
# seg_hrnet.py's HighResolutionHead: 3,860,720 backbone parameters + 73,710 + 271 n_t per head; padnet.py PADNet on
# HighResolutionFuse; mti_net.py MTINet), which, given our weights by name, compute our outputs and deep supervision
# exactly (float64, train and eval mode; the baselines checked on 2026-12-02, PAD-Net and MTI-Net on 2026-12-06); ATRC
# from brdav/atrc's RelationalContextHead with the all-global genotype on its HRNet18-S (3,860,720 parameters, as
# ours), equal to our outputs to 1e-16 in float64 given our weights by name (2026-12-06); DenseMTL from
# astra-vision/DenseMTL's resnet101_ours_SD/SDN configs: torchvision's ResNet-101 without its classifier (42,500,160,
# as timm's), its DecoderHead per task (whose outputs ours equal bitwise in float64 given its weights, 2026-12-06) and
# the exchange's modules (tests/sca_mtl/test_xtam.py).
RELEASED_PARAMETERS = {
    ("sca_mtl", "nyud-3"): 39_965_151,
    ("sca_mtl", "nyud-2"): 25_760_549,
    ("densemtl", "nyud-3"): 111_011_608,
    ("densemtl", "nyud-2"): 87_404_114,
    ("atrc_global", "nyud-3"): 4_482_450,
    ("atrc_global", "nyud-2"): 4_253_296,
    ("mti_net", "nyud-3"): 12_653_616,
    ("mti_net", "nyud-2"): 8_578_179,
    ("mti_net", "pascal-3"): 12_646_531,
    ("mti_net", "pascal-2"): 8_568_914,
    ("pad_net", "nyud-3"): 12_091_318,
    ("pad_net", "nyud-2"): 7_019_056,
    ("pad_net", "pascal-3"): 12_084_636,
    ("pad_net", "pascal-2"): 7_010_318,
    ("mtl_baseline", "nyud-3"): 4_093_774,
    ("mtl_baseline", "nyud-2"): 4_019_251,
    ("single_task", "semseg"): 3_945_270,
    ("single_task", "depth"): 3_934_701,
    ("single_task", "normals"): 3_935_243,
}
TASK_SETS = {"nyud-3": NYUD_3, "nyud-2": NYUD_2, "pascal-3": {"semseg": 21, "human_parts": 7, "normals": 3},
             "pascal-2": {"semseg": 21, "normals": 3}, "semseg": {"semseg": 40}, "depth": {"depth": 1},
             "normals": {"normals": 3}}


def tasks_of(name: str, tasks: dict) -> dict:
    """`tasks`, or as many of them as the model serves (`max_tasks`)."""
    return dict(list(tasks.items())[:getattr(MODELS[name], "max_tasks", None)])


@pytest.fixture(scope="module", params=NAMES)
def built(request):
    """(model, its tasks): each registered model with NYUD_3, or as many of its tasks as it serves."""
    torch.manual_seed(0)
    tasks = tasks_of(request.param, NYUD_3)
    return build_model(request.param, tasks, kernels="torch"), tasks


@pytest.mark.parametrize("name, task_set", sorted(RELEASED_PARAMETERS))
def test_parameter_count_matches_the_released_code(name, task_set):
    model = build_model(name, TASK_SETS[task_set], kernels="torch")
    assert sum(p.numel() for p in model.parameters()) == RELEASED_PARAMETERS[name, task_set]


def test_output_and_deep_supervision_shapes(built):
    model, tasks = built
    out = model(torch.randn(IMAGE))
    assert set(out) - {"deep_supervision"} == set(tasks)
    for task, channels in tasks.items():
        assert out[task].shape == (2, channels, 64, 96)
    for scale, predictions in out.get("deep_supervision", {}).items():
        assert set(predictions) == set(tasks), scale
        for task, p in predictions.items():
            stride = 64 // p.shape[2]
            assert stride >= 2 and stride & (stride - 1) == 0, (scale, task, tuple(p.shape))
            assert p.shape == (2, tasks[task], 64 // stride, 96 // stride), (scale, task)


def _loss(out, tasks) -> torch.Tensor:
    maps = [out[task] for task in tasks]
    maps += [p for scale in out.get("deep_supervision", {}).values() for p in scale.values()]
    return sum((m * torch.randn_like(m)).sum() for m in maps)


def test_every_parameter_gets_a_nonzero_gradient(built):
    """Every parameter is connected to an output. A zero-initialised gate (ATRC's context projection BatchNorm,
    DenseMTL's per-channel alpha) passes no gradient upstream at initialisation, by design: such gates are opened
    first (to 1)."""
    model, tasks = built
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d) and not module.weight.any():
                module.weight.fill_(1.0)
        for name, parameter in model.named_parameters():
            if name.endswith("alpha") and not parameter.any():
                parameter.fill_(1.0)
    model.train()
    model.zero_grad(set_to_none=True)
    _loss(model(torch.randn(IMAGE)), tasks).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"{len(missing)} parameters without gradient, e.g. {missing[:5]}"


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name):
    """A model built with other random weights and given the state dict computes the same outputs, bitwise."""
    tasks = tasks_of(name, NYUD_2)
    torch.manual_seed(1)
    source = build_model(name, tasks, kernels="torch").eval()
    torch.manual_seed(2)
    copy = build_model(name, tasks, kernels="torch").eval()
    copy.load_state_dict(source.state_dict())
    assert same_outputs(copy, source, torch.randn(IMAGE))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output(name):
    tasks = tasks_of(name, NYUD_2)
    image = torch.randn(IMAGE)
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build_model(name, tasks, kernels="torch").eval()
        with torch.no_grad():
            outputs.append(model(image))
    for task in tasks:
        assert torch.equal(outputs[0][task], outputs[1][task])


@pytest.mark.parametrize(
    "shape, words",
    [((2, 3, 64, 80), ["32", "(2, 3, 64, 80)"]), ((2, 3, 48, 96), ["(2, 3, 48, 96)"]),
     ((3, 64, 96), ["(3, 64, 96)"]), ((2, 1, 64, 96), ["(2, 1, 64, 96)"])],
    ids=["width-80", "height-48", "rank-3", "one-channel"],
)
def test_forward_rejects_bad_images(built, shape, words):
    with pytest.raises(ValueError) as info:
        built[0](torch.randn(shape))
    assert "image" in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_empty_batch_gives_empty_outputs(built):
    model, tasks = built
    with torch.no_grad():
        out = model.eval()(torch.randn(0, 3, 64, 96))
    assert {task: tuple(out[task].shape) for task in tasks} == {t: (0, c, 64, 96) for t, c in tasks.items()}


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="'sca_mtl' is registered twice"):
        register_model("sca_mtl")(torch.nn.Identity)
    assert MODELS["sca_mtl"].__name__ == "SCAMTL"
