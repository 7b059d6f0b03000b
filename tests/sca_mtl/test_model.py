"""The SCA-MTL network on the torch backend: the op calls it makes, its batched attentions, the backend its layers
keep, its options and its build checks. What every registered model must do (shapes, gradients, parameter counts,
input checks) is tested for all of them in test_registry.py."""

import pytest
import torch
import torch.nn.functional as F

import kernels
from kernels import dispatch
from sca_mtl.models import build_model
from sca_mtl.models.layers import batched_cross_attention
from tests._utils import record_implementations

NYUD_3 = {"semseg": 40, "depth": 1, "normals": 3}
NYUD_2 = {"semseg": 40, "depth": 1}
IMAGE = (2, 3, 64, 96)  # strides 4..32 give 16x24 down to 2x3 maps: every window attention pads


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("sca_mtl", NYUD_3, kernels="torch")


def test_op_calls_per_forward(monkeypatch):
    """10 linear cross attention calls (CTAM: one per scale, its 6 ordered pairs stacked along the batch; CSAM: one
    per (target, source) scale pair, the 3 tasks stacked), 11 window attentions (ATT: 2 x 4 scales; FPMA: 3), 6 concat
    convs (2 per task), the aggregation receiving maps of all 4 resolutions."""
    calls = {op: [] for op in dispatch.OP_MODULES}
    real_get_op = dispatch.get_op

    def recording_get_op(op, backend=None):
        fn = real_get_op(op, backend)

        def record(*args, **kwargs):
            calls[op].append(args)
            return fn(*args, **kwargs)

        return record

    monkeypatch.setattr("sca_mtl.models.layers.get_op", recording_get_op)
    model = build_model("sca_mtl", NYUD_3, kernels="torch").eval()
    with torch.no_grad():
        model(torch.randn(IMAGE))
    assert {op: len(c) for op, c in calls.items()} == {
        "linear_cross_attention": 10, "window_attention": 11, "concat_conv1x1": 6
    }
    batch = IMAGE[0]
    ctam, csam = calls["linear_cross_attention"][:4], calls["linear_cross_attention"][4:]

    def stacked(parts):  # (number of parts, the parts' one shape): the op reads each layer's q, k, v in place
        assert len({tuple(part.shape) for part in parts}) == 1
        return len(parts), tuple(parts[0].shape)

    assert [(stacked(q), stacked(k), stacked(v)) for q, k, v in ctam] == [
        ((6, (batch, c, n)),) * 3 for c, n in [(288, 6), (144, 24), (72, 96), (36, 384)]]
    token_counts = [384, 96, 24, 6]  # scales 0..3
    assert [(stacked(q), stacked(k)) for q, k, _ in csam] == [
        ((3, (batch, c, token_counts[target])), (3, (batch, c, token_counts[source])))
        for target, c in enumerate([36, 72, 144]) for source in range(target + 1, 4)
    ]
    aggregation_inputs = calls["concat_conv1x1"][0][0]
    assert len(aggregation_inputs) == 13  # 2 x (3 + 2 + 1) CAM halves + the coarsest map
    assert {tuple(x.shape[2:]) for x in aggregation_inputs} == {(16, 24), (8, 12), (4, 6), (2, 3)}
    assert sum(x.shape[1] for x in aggregation_inputs) == 1080


def test_batched_attention_calls_equal_one_call_per_layer(model):
    """CTAM against its formula with one attention call per ordered pair, and the tasks' CSAM heads batched in the
    model against each head's own forward (one call per scale pair): to float32 rounding."""
    model.eval()
    image = torch.randn(IMAGE)
    distilled = []
    hooks = [ctam.register_forward_hook(lambda module, args, out: distilled.append((args[0], out)))
             for ctam in model.cross_task]
    with torch.no_grad():
        out = model(image)
    for hook in hooks:
        hook.remove()
    distilled.reverse()  # the model runs the scales coarse to fine

    with torch.no_grad():
        for ctam, (features, batched) in zip(model.cross_task, distilled):
            for target in NYUD_3:
                pieces = []
                for source in reversed([task for task in NYUD_3 if task != target]):  # the released code's order
                    attended = ctam.attention[f"{target}_from_{source}"](features[target], features[source])
                    pieces += [features[target], attended]
                expected = features[target] + ctam.fuse(torch.cat(pieces, dim=1))
                torch.testing.assert_close(batched[target], expected)
        for task, head in model.heads.items():
            expected = head([scale_out[task] for _, scale_out in distilled])
            torch.testing.assert_close(out[task], F.interpolate(expected, size=IMAGE[2:], mode="bilinear"))


def test_batched_cross_attention_rejects_mixed_shapes(model):
    layers = list(model.cross_task[3].attention.values())[:2]
    small, large = torch.randn(1, 288, 2, 3), torch.randn(1, 288, 4, 6)
    with pytest.raises(ValueError, match="sources must share one shape"):
        batched_cross_attention(layers, [small, small], [small, large])
    with pytest.raises(ValueError, match="as many targets"):
        batched_cross_attention(layers, [small], [small, small])


def test_layers_keep_the_backend_of_construction(monkeypatch):
    calls = record_implementations(monkeypatch)
    model = build_model("sca_mtl", NYUD_2, kernels="torch")
    assert {m.backend for m in model.modules() if hasattr(m, "backend")} == {"torch"}
    with kernels.use_backend("triton"):  # layers that looked their op up at call time would now run Triton kernels
        model.eval()(torch.randn(1, 3, 32, 32))
    assert {backend for backend, _ in calls} == {"torch"}
    assert {op for _, op in calls} == set(dispatch.OP_MODULES)  # every op was called


def test_default_backend_is_taken_at_construction():
    with kernels.use_backend("torch"):
        model = build_model("sca_mtl", NYUD_2)
    assert {m.backend for m in model.modules() if hasattr(m, "backend")} == {"torch"}


def test_pretrained_backbone_from_a_local_timm_checkpoint(tmp_path):
    """A timm classification checkpoint (with its classifier and incre/final layers) loads into the backbone."""
    import timm

    classifier = timm.create_model("hrnet_w18_small_v2")
    path = tmp_path / "hrnet_w18_small_v2.pth"
    torch.save(classifier.state_dict(), path)
    model = build_model("sca_mtl", NYUD_2, kernels="torch", pretrained=str(path))
    loaded = model.backbone.state_dict()
    source = classifier.state_dict()
    weights = [key for key in loaded if key.endswith("weight")]
    assert len(weights) > 100 and all(torch.equal(loaded[key], source[key]) for key in weights)


def test_paper_variant_of_the_query_key_projections():
    code = build_model("sca_mtl", NYUD_2, kernels="torch")
    paper = build_model("sca_mtl", NYUD_2, kernels="torch", qk_convs=1)
    ca = next(m for m in paper.modules() if type(m).__name__ == "CrossAttention")
    assert len(ca.query) == 1 and len(ca.key) == 1
    # each CrossAttention loses one Conv(C->C)+BN from both q and k
    widths = [m.value[0].in_channels for m in code.modules() if type(m).__name__ == "CrossAttention"]
    removed = sum(2 * (c * c + 2 * c) for c in widths)
    assert sum(p.numel() for p in code.parameters()) - sum(p.numel() for p in paper.parameters()) == removed


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(name="pad_net2", tasks=NYUD_2), ValueError, ["pad_net2", "sca_mtl"]),
        (dict(name="sca_mtl", tasks={"semseg": 40, "albedo": 3}), ValueError, ["albedo"]),
        (dict(name="sca_mtl", tasks={"semseg": 40, "depth": 2}), ValueError, ["depth", "1", "2"]),
        (dict(name="sca_mtl", tasks={"semseg": 40}), ValueError, ["'sca_mtl' serves at least 2 tasks, got 1 (semseg)"]),
        (dict(name="sca_mtl", tasks={}), ValueError, ["tasks"]),
        (dict(name="sca_mtl", tasks=NYUD_2, kernels="cuda"), ValueError, ["'cuda'"]),
        (dict(name="sca_mtl", tasks=NYUD_2, backbone="resnet50"), ValueError, ["resnet50"]),
        (dict(name="sca_mtl", tasks=NYUD_2, pretrained="/no/such/weights.pth"), FileNotFoundError,
         ["/no/such/weights.pth"]),
    ],
    ids=["model-name", "task-name", "task-channels", "one-task", "no-tasks", "backend", "backbone", "weights"],
)
def test_build_model_rejects(kwargs, error, words):
    with pytest.raises(error) as info:
        build_model(**kwargs)
    for word in words:
        assert word in str(info.value), f"{word!r} missing from: {info.value}"


def test_backbone_batchnorm_momentum():
    released = build_model("sca_mtl", NYUD_2, kernels="torch")
    short_run = build_model("sca_mtl", NYUD_2, kernels="torch", backbone_bn_momentum=0.1)
    for model, momentum in ((released, 0.01), (short_run, 0.1)):
        norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert norms and all(m.momentum == momentum for m in norms)


def test_ctam_fuse_momentum_is_the_released_codes():
    """The released fuse ResBlock sets momentum 0.01 on bn1 and bn2; its shortcut's BatchNorm keeps the default 0.1."""
    fuse = build_model("sca_mtl", NYUD_2, kernels="torch").cross_task[0].fuse
    assert (fuse.bn1.momentum, fuse.bn2.momentum, fuse.shortcut[1].momentum) == (0.01, 0.01, 0.1)
