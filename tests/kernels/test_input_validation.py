"""Bad input gets a ValueError/TypeError naming the argument and the shapes, from every backend, before any work;
empty inputs give empty outputs."""

import pytest
import torch

import kernels
from kernels import dispatch


def _available(op):
    """Backends whose implementation exists on this checkout (the triton ones land op by op)."""
    backends = ["torch"]
    try:
        dispatch.get_op(op, "triton")
        backends.append("triton")
    except NotImplementedError:
        pass
    return backends


def _cases(op, calls):
    return [pytest.param(op, backend, *call, id=f"{op}-{backend}-{call_id}") for backend in _available(op)
            for call_id, *call in calls]


def t(*shape, dtype=torch.float32):
    return torch.randn(*shape, dtype=dtype)


LINEAR_ATTENTION_BAD = [
    ("q-rank", (t(2, 4), t(2, 4, 5), t(2, 3, 5)), {}, ValueError, ["q", "(2, 4)"]),
    ("batch", (t(2, 4, 6), t(3, 4, 5), t(3, 3, 5)), {}, ValueError, ["q", "k", "(2, 4, 6)", "(3, 4, 5)"]),
    ("D", (t(2, 4, 6), t(2, 5, 5), t(2, 3, 5)), {}, ValueError, ["(2, 4, 6)", "(2, 5, 5)"]),
    ("Ls", (t(2, 4, 6), t(2, 4, 5), t(2, 3, 7)), {}, ValueError, ["k", "v", "(2, 4, 5)", "(2, 3, 7)"]),
    ("dtype", (t(2, 4, 6), t(2, 4, 5, dtype=torch.float64), t(2, 3, 5)), {}, ValueError, ["k", "float64"]),
    ("device", (t(2, 4, 6), torch.empty(2, 4, 5, device="meta"), t(2, 3, 5)), {}, ValueError, ["k", "meta", "cpu"]),
    ("int", (t(2, 4, 6), torch.ones(2, 4, 5, dtype=torch.long), t(2, 3, 5)), {}, TypeError, ["k", "int64"]),
    ("not-tensor", ({"q": 1.0}, t(2, 4, 5), t(2, 3, 5)), {}, TypeError, ["q", "dict"]),
    ("part-not-tensor", ([1.0], t(2, 4, 5), t(2, 3, 5)), {}, TypeError, ["q[0]", "float"]),
    ("no-parts", ([], t(2, 4, 5), t(2, 3, 5)), {}, ValueError, ["q", "empty sequence"]),
    ("part-shapes", ([t(1, 4, 6), t(1, 4, 7)], t(2, 4, 5), t(2, 3, 5)), {}, ValueError,
     ["parts of q", "(1, 4, 6)", "(1, 4, 7)"]),
    ("part-dtypes", ([t(1, 4, 6), t(1, 4, 6, dtype=torch.float64)], t(2, 4, 5), t(2, 3, 5)), {}, ValueError,
     ["q[1]", "float64"]),
    ("stacked-batch", ([t(1, 4, 6), t(1, 4, 6)], [t(3, 4, 5)], t(3, 3, 5)), {}, ValueError,
     ["q", "k", "(2, 4, 6)", "(3, 4, 5)"]),
    ("feature-map", (t(1, 2, 3), t(1, 2, 3), t(1, 2, 3)), {"feature_map": "elu"}, ValueError, ["feature_map"]),
    ("eps", (t(1, 2, 3), t(1, 2, 3), t(1, 2, 3)), {"eps": 0.0}, ValueError, ["eps"]),
]


W = dict(num_heads=2, window_size=7)
WINDOW_ATTENTION_BAD = [
    ("qkv-rank", (t(2, 5, 36), t(2, 49, 49)), W, ValueError, ["qkv", "(2, 5, 36)"]),
    ("heads-split", (t(1, 5, 5, 30), t(4, 49, 49)), dict(num_heads=4, window_size=7), ValueError,
     ["qkv", "num_heads=4", "(1, 5, 5, 30)"]),
    ("bias-shape", (t(1, 5, 5, 36), t(2, 64, 64)), W, ValueError, ["rel_bias", "(2, 49, 49)", "(2, 64, 64)"]),
    ("pad-shape", (t(1, 5, 5, 36), t(2, 49, 49), t(12)), W, ValueError, ["qkv_pad", "(36,)", "(12,)"]),
    ("dtype", (t(1, 5, 5, 36), t(2, 49, 49, dtype=torch.float64)), W, ValueError, ["rel_bias", "float64"]),
    ("device", (t(1, 5, 5, 36), t(2, 49, 49), torch.empty(36, device="meta")), W, ValueError,
     ["qkv_pad", "meta", "cpu"]),
    ("shift", (t(1, 5, 5, 36), t(2, 49, 49)), dict(W, shift_size=7), ValueError, ["shift_size", "7"]),
    ("window", (t(1, 5, 5, 36), t(2, 1, 1)), dict(num_heads=2, window_size=0), ValueError, ["window_size"]),
    ("heads-type", (t(1, 5, 5, 36), t(2, 49, 49)), dict(num_heads=2.0, window_size=7), TypeError, ["num_heads"]),
]


CONCAT_CONV_BAD = [
    ("not-a-list", (t(1, 2, 4, 4), t(3, 2)), {}, TypeError, ["inputs", "Tensor"]),
    ("empty-list", ([], t(3, 2)), {}, ValueError, ["inputs"]),
    ("input-rank", ([t(1, 2, 4)], t(3, 2)), {}, ValueError, ["inputs[0]", "(1, 2, 4)"]),
    ("batch", ([t(1, 2, 4, 4), t(2, 3, 2, 2)], t(3, 5)), {}, ValueError, ["inputs[1]", "(1, 2, 4, 4)", "(2, 3, 2, 2)"]),
    ("cin", ([t(1, 2, 4, 4), t(1, 3, 2, 2)], t(3, 4)), {}, ValueError, ["weight", "[2, 3]", "(3, 4)"]),
    ("weight-3x3", ([t(1, 2, 4, 4)], t(3, 2, 3, 3)), {}, ValueError, ["weight", "(3, 2, 3, 3)"]),
    ("bias", ([t(1, 2, 4, 4)], t(3, 2), t(4)), {}, ValueError, ["bias", "(3,)", "(4,)"]),
    ("residual", ([t(1, 2, 4, 4)], t(3, 2)), {"residual": t(1, 3, 4, 5)}, ValueError,
     ["residual", "(1, 3, 4, 4)", "(1, 3, 4, 5)"]),
    ("downsample", ([t(1, 2, 8, 8)], t(3, 2)), {"out_size": (4, 4)}, ValueError,
     ["inputs[0]", "(1, 2, 8, 8)", "(4, 4)"]),
    ("activation", ([t(1, 2, 4, 4)], t(3, 2)), {"activation": "gelu"}, ValueError, ["activation", "gelu"]),
    ("dtype", ([t(1, 2, 4, 4)], t(3, 2, dtype=torch.float64)), {}, ValueError, ["weight", "float64"]),
    ("device", ([t(1, 2, 4, 4), torch.empty(1, 1, 2, 2, device="meta")], t(3, 3)), {}, ValueError,
     ["inputs[1]", "meta", "cpu"]),
]


@pytest.mark.parametrize(
    "op, backend, args, kwargs, error, words",
    _cases("linear_cross_attention", LINEAR_ATTENTION_BAD)
    + _cases("window_attention", WINDOW_ATTENTION_BAD)
    + _cases("concat_conv1x1", CONCAT_CONV_BAD),
)
def test_bad_input_is_rejected_naming_the_argument(op, backend, args, kwargs, error, words):
    with pytest.raises(error) as info:
        dispatch.get_op(op, backend)(*args, **kwargs)
    for word in words:
        assert word in str(info.value), f"{word!r} missing from: {info.value}"


def test_empty_inputs_give_empty_outputs():
    out = kernels.linear_cross_attention(t(0, 4, 6), t(0, 4, 5), t(0, 3, 5))
    assert out.shape == (0, 3, 6)
    out = kernels.linear_cross_attention(t(2, 4, 0), t(2, 4, 5), t(2, 3, 5))
    assert out.shape == (2, 3, 0)
    for shape in [(0, 5, 5, 36), (2, 0, 5, 36), (2, 5, 0, 36)]:
        out = kernels.window_attention(t(*shape), t(2, 49, 49), num_heads=2, window_size=7, shift_size=3)
        assert out.shape == shape[:3] + (12,)
    out = kernels.concat_conv1x1([t(0, 2, 4, 4), t(0, 3, 2, 2)], t(6, 5))
    assert out.shape == (0, 6, 4, 4)


def test_an_empty_source_attends_to_nothing():
    out = kernels.linear_cross_attention(t(2, 4, 6), t(2, 4, 0), t(2, 3, 0))
    assert torch.equal(out, torch.zeros(2, 3, 6))


def test_the_launchers_device_check_names_the_argument():
    """kernels/_triton.check_device, which every Triton op calls (on a CPU-only machine no CUDA tensor exists to
    pass the ops themselves; the meta device cannot go through their autocast wrapper)."""
    from kernels._triton import check_device

    with pytest.raises(ValueError, match=r"q must be on a (cpu|cuda) device .* got meta"):
        check_device("q", torch.empty(1, 2, 3, device="meta"))
