"""The Triton ops as torch.library custom operators (kernels/_library.py).

torch.library.opcheck checks each operator's schema, its fake implementation (output shapes, dtypes and strides
against the real run, also with dynamic shapes) and the autograd registration; torch.compile with fullgraph=True
then traces code calling the public ops without a graph break, and gives what eager mode gives. The "aot_eager"
backend runs dynamo and AOTAutograd (where graph breaks and autograd are decided) and the same kernels; without a
GPU they run through the interpreter (Inductor on a GPU treats the operators as the same opaque calls).
"""

from __future__ import annotations

import importlib

import pytest
import torch

from tests._utils import assert_kernel_close, grads

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
OPS = torch.ops.sca_mtl


def linear_attention_args():
    """Two attentions stacked: q, k and v each as two parts, as the model's batched calls pass them."""
    q, k, v = ([torch.randn(2, c, n, device=DEVICE) for _ in range(2)] for c, n in ((6, 20), (6, 13), (5, 13)))
    return (q, k, v), dict(feature_map="softplus", eps=1e-12)


def window_attention_args():
    qkv = torch.randn(1, 5, 9, 3 * 8, device=DEVICE)
    bias = torch.randn(2, 16, 16, device=DEVICE)
    pad = torch.randn(3 * 8, device=DEVICE)
    return (qkv, bias, pad), dict(num_heads=2, window_size=4, shift_size=2, scale=None)


def concat_conv_args():
    full, half = torch.randn(2, 3, 6, 8, device=DEVICE), torch.randn(2, 5, 3, 4, device=DEVICE)
    weight = torch.randn(4, 3 + 5 + 3, device=DEVICE)
    bias = torch.randn(4, device=DEVICE)
    return ([full, half, full], weight, bias), dict(activation="relu")


# op -> (Triton module, inputs and options of its public function)
PUBLIC = {
    "linear_cross_attention": ("linear_attention", linear_attention_args),
    "window_attention": ("window_attention", window_attention_args),
    "concat_conv1x1": ("concat_conv", concat_conv_args),
}


def triton_op(op):
    """The Triton public function of `op` (importing the module registers its operators)."""
    module, _ = PUBLIC[op]
    return getattr(importlib.import_module(f"kernels.{module}"), op)


def leaves_of(args):
    """The tensors among args (also inside lists) as fresh leaves that require grad, and args rebuilt on them."""
    def leaf(t):
        return t.detach().clone().requires_grad_()

    rebuilt = [[leaf(t) for t in a] if isinstance(a, list) else leaf(a) for a in args]
    flat = [t for a in rebuilt for t in (a if isinstance(a, list) else [a])]
    return rebuilt, flat


def run(fn, args, options, upstream=None):
    """Output and input gradients of fn(*args, **options) on fresh leaves, with a random upstream gradient."""
    rebuilt, flat = leaves_of(args)
    out = fn(*rebuilt, **options)
    upstream = torch.randn_like(out) if upstream is None else upstream
    out.backward(upstream)
    return out.detach(), grads(*flat), upstream


# --- opcheck: schema, fake implementations, autograd registration --------------------------------------------------


def operator_cases():
    """(name, operator, args) for each forward and backward operator, on the inputs above."""
    (q, k, v), la = linear_attention_args()
    (qkv, bias, pad), wa = window_attention_args()
    (inputs, weight, conv_bias), _ = concat_conv_args()
    for op in PUBLIC:
        triton_op(op)
    la_fwd = OPS.linear_cross_attention_fwd(q, k, v, la["feature_map"], la["eps"])
    window = (wa["num_heads"], wa["window_size"], wa["shift_size"], wa["scale"])
    window_out, table = OPS.window_attention_fwd(qkv, bias, pad, *window)
    uniques, occurrence = inputs[:2], [0, 1, 0]
    conv_out = OPS.concat_conv1x1_fwd(uniques, occurrence, weight, conv_bias, None, True, [6, 8])
    return [
        ("linear_cross_attention_fwd", (q, k, v, la["feature_map"], la["eps"])),
        ("linear_cross_attention_bwd", (torch.randn_like(la_fwd[0]), q, k, v, *la_fwd[1:], la["feature_map"],
                                        la["eps"])),
        ("window_attention_fwd", (qkv, bias, pad, *window)),
        ("window_attention_fwd", (qkv, bias, None, *window)),
        ("window_attention_bwd", (torch.randn_like(window_out), qkv, bias, table, pad, *window)),
        ("window_attention_bwd", (torch.randn_like(window_out), qkv, bias, table, None, *window)),
        ("concat_conv1x1_fwd", (uniques, occurrence, weight, conv_bias, None, True, [6, 8])),
        ("concat_conv1x1_fwd", (uniques, occurrence, weight, None, torch.randn_like(conv_out), False, [6, 8])),
        ("concat_conv1x1_bwd", (torch.randn_like(conv_out), uniques, occurrence, conv_out, weight, conv_bias, True,
                                [True, False, True, True, False])),
        ("concat_conv1x1_bwd", (torch.randn_like(conv_out), uniques, occurrence, None, weight, None, False,
                                [False, True, False, False, True])),
    ]


OPERATOR_CASES = 10  # the length of operator_cases(): the inputs are built per test


@pytest.mark.parametrize("index", range(OPERATOR_CASES), ids=lambda i: f"case{i}")
def test_operator_passes_opcheck(index):
    cases = operator_cases()
    assert len(cases) == OPERATOR_CASES  # no case left untested
    name, args = cases[index]
    operator = getattr(OPS, name).default

    def requiring_grad(a):  # the forward operators' autograd registration is checked with differentiable inputs
        if isinstance(a, torch.Tensor) and name.endswith("_fwd"):
            return a.detach().clone().requires_grad_()
        if isinstance(a, list) and a and isinstance(a[0], torch.Tensor):
            return [requiring_grad(t) for t in a]
        return a

    torch.library.opcheck(operator, tuple(requiring_grad(a) for a in args))


# --- torch.compile ------------------------------------------------------------------------------------------------


def eager_and_compiled(op):
    """(public function, its torch.compile with fullgraph=True (a graph break is an error), args, options)."""
    _, make_args = PUBLIC[op]
    args, options = make_args()
    fn = triton_op(op)
    torch._dynamo.reset()
    return fn, torch.compile(fn, backend="aot_eager", fullgraph=True), args, options


@pytest.mark.parametrize("op", PUBLIC)
def test_compiled_without_graph_break_matches_eager(op):
    fn, compiled, args, options = eager_and_compiled(op)
    out, input_grads, upstream = run(fn, args, options)
    compiled_out, compiled_grads, _ = run(compiled, args, options, upstream)
    assert torch.equal(compiled_out, out)
    for got, want in zip(compiled_grads, input_grads):
        assert torch.equal(got, want)


@pytest.mark.parametrize("op", PUBLIC)
def test_compiled_under_autocast_computes_in_bfloat16(op):
    fn, compiled, args, options = eager_and_compiled(op)
    device_type = torch.device(DEVICE).type
    with torch.autocast(device_type, dtype=torch.bfloat16):
        out, _, upstream = run(fn, args, options)
        compiled_out, _, _ = run(compiled, args, options, upstream)
    assert compiled_out.dtype == out.dtype == torch.bfloat16
    assert_kernel_close("compiled out", compiled_out, out.double(), torch.bfloat16)
