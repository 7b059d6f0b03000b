"""Parity of the Triton linear cross attention (kernels/linear_attention.py) with its reference computed in float64.

Every case runs the Triton op forward and backward with a random upstream gradient and compares the output and
the gradients of q, k and v with `assert_kernel_close` (KERNEL_TOL). Without CUDA the kernels run through Triton's
interpreter on small shapes; the tests marked `gpu` run the model's real shapes in half precision.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import kernels
import kernels.reference.linear_attention as reference_module
from bench.shapes import make_args, model_op_calls
from kernels import linear_attention as la
from kernels.reference import linear_cross_attention_ref
from tests._utils import assert_kernel_close, grads, record_calls

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def make_inputs(batch, d, e, lq, ls, dtype, *, level=0.0, value_offset=0.0):
    """Pre-activations around `level` and values around `value_offset`, rounded to `dtype` once."""
    q = (level + torch.randn(batch, d, lq, device=DEVICE)).to(dtype)
    k = (level + torch.randn(batch, d, ls, device=DEVICE)).to(dtype)
    v = (value_offset + torch.randn(batch, e, ls, device=DEVICE)).to(dtype)
    return q, k, v


def run_triton(q, k, v, upstream=None, **options):
    """Output and (dq, dk, dv) of the Triton op on leaf copies of the inputs; the upstream gradient is random."""
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = la.linear_cross_attention(*leaves, **options)
    if upstream is None:
        upstream = torch.randn_like(out)
    out.backward(upstream)
    return out.detach(), grads(*leaves), upstream


def run_reference(q, k, v, upstream, **options):
    """The same in float64 on upcast copies of the same (rounded) inputs."""
    leaves = [t.detach().double().requires_grad_() for t in (q, k, v)]
    out = linear_cross_attention_ref(*leaves, **options)
    out.backward(upstream.double())
    return out.detach(), grads(*leaves)


def check_parity(q, k, v, upstream=None, **options):
    out, triton_grads, upstream = run_triton(q, k, v, upstream, **options)
    expected, expected_grads = run_reference(q, k, v, upstream, **options)
    assert out.dtype == q.dtype and out.shape == expected.shape
    assert_kernel_close("out", out, expected, q.dtype)
    for name, got, want in zip(("dq", "dk", "dv"), triton_grads, expected_grads):
        assert got.dtype == q.dtype
        assert_kernel_close(name, got, want, q.dtype)
    return out


# (B, D, E, Lq, Ls). The channel counts select the two paths: D, E <= 64 (one 64-wide state tile, dS fused into the
# backward's target pass) and wider (64-wide tiles looped over, a separate dS pass); lengths cross the token blocks.
SHAPES = [
    pytest.param(2, 8, 8, 33, 33, id="self-Lq=Ls"),
    pytest.param(2, 8, 8, 70, 17, id="cross-Lq>Ls"),
    pytest.param(1, 8, 8, 13, 131, id="cross-Lq<Ls"),
    pytest.param(2, 6, 20, 29, 41, id="D<E"),
    pytest.param(1, 24, 5, 31, 23, id="D>E"),
    pytest.param(1, 5, 7, 97, 89, id="prime-lengths"),
    pytest.param(1, 3, 2, 65, 65, id="block-plus-one"),
    pytest.param(1, 1, 1, 1, 1, id="one-of-everything"),
    pytest.param(1, 36, 36, 70, 65, id="model-width-36"),
    pytest.param(1, 72, 72, 40, 33, id="model-width-72"),
    pytest.param(1, 144, 144, 20, 17, id="model-width-144"),
    pytest.param(1, 288, 288, 9, 11, id="model-width-288"),
    pytest.param(1, 130, 40, 21, 19, id="wide-D-narrow-E"),
]


@pytest.mark.parametrize("batch, d, e, lq, ls", SHAPES)
def test_matches_reference_fp32(batch, d, e, lq, ls):
    check_parity(*make_inputs(batch, d, e, lq, ls, torch.float32))


HALF_SHAPES = [
    pytest.param(2, 8, 8, 33, 33, id="self"),
    pytest.param(1, 12, 20, 45, 70, id="cross-D<E"),
    pytest.param(1, 72, 72, 17, 19, id="model-width-72"),
    pytest.param(1, 144, 144, 9, 10, id="model-width-144"),
    pytest.param(1, 72, 72, 9, 144, id="model-width-72-aligned-source"),
]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("batch, d, e, lq, ls", HALF_SHAPES)
def test_matches_reference_half(batch, d, e, lq, ls, dtype):
    check_parity(*make_inputs(batch, d, e, lq, ls, dtype))


def test_identity_feature_map():
    q, k, v = make_inputs(2, 8, 6, 30, 25, torch.float32)
    q, k = q.abs() + 0.1, k.abs() + 0.1  # a positive denominator: the weights are a proper average
    check_parity(q, k, v, feature_map="identity")


def test_identity_feature_map_clamps_negative_denominators():
    """With identity features the denominator can be negative: max(den, eps) then divides by eps, as the reference."""
    q, k, v = make_inputs(1, 4, 3, 40, 30, torch.float32)
    check_parity(q, k, v, feature_map="identity", eps=1e-3)


# float16 is left out at -30: the outputs and gradients (~1e-11) lie below float16's smallest subnormal.
@pytest.mark.parametrize("level, dtype", [
    pytest.param(-30.0, torch.float32, id="minus30-fp32"),
    pytest.param(-30.0, torch.bfloat16, id="minus30-bf16"),
    pytest.param(30.0, torch.float32, id="plus30-fp32"),
    pytest.param(30.0, torch.bfloat16, id="plus30-bf16"),
    pytest.param(30.0, torch.float16, id="plus30-fp16"),
])
def test_extreme_preactivations(level, dtype):
    """softplus(-30) ~ 9e-14: the denominator falls below eps and the output is num / eps; at +30 the features
    are 30 +- 1, a large mean over a small spread."""
    out = check_parity(*make_inputs(2, 8, 6, 40, 150, dtype, level=level))
    assert torch.isfinite(out).all()


def test_zero_value_rows_and_tokens():
    q, k, v = make_inputs(2, 10, 9, 30, 40, torch.float32)
    v[:, ::3] = 0  # whole channels
    v[:, :, 5:12] = 0  # some tokens
    out = check_parity(q, k, v)
    assert torch.equal(out[:, ::3], torch.zeros_like(out[:, ::3]))  # exactly zero: v's mean is 0 there too


@pytest.mark.parametrize("value_offset", [0.0, 5.0], ids=["v-centred", "v-offset"])
def test_outputs_are_convex_combinations_of_values(value_offset):
    """The weights phi(q_i) . phi(k_a) are positive and normalised: every output lies between the smallest and
    the largest value of its channel (up to float32 rounding)."""
    q, k, v = make_inputs(2, 16, 12, 50, 70, torch.float32, value_offset=value_offset)
    out = la.linear_cross_attention(q, k, v)
    low, high = v.amin(dim=2, keepdim=True), v.amax(dim=2, keepdim=True)
    slack = 1e-5 * v.abs().amax()
    assert (out >= low - slack).all() and (out <= high + slack).all()


@pytest.mark.parametrize("batch, d, e, lq, ls", [
    pytest.param(2, 8, 8, 200, 300, id="fused-many-splits"),
    pytest.param(1, 130, 20, 40, 150, id="separate-dS-pass"),
])
def test_forward_and_backward_are_bitwise_deterministic(batch, d, e, lq, ls):
    q, k, v = make_inputs(batch, d, e, lq, ls, torch.float32)
    first_out, first_grads, upstream = run_triton(q, k, v)
    second_out, second_grads, _ = run_triton(q, k, v, upstream)
    assert torch.equal(first_out, second_out)
    for first, second in zip(first_grads, second_grads):
        assert torch.equal(first, second)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("batch, d, e, lq, ls", [
    pytest.param(2, 12, 10, 150, 170, id="fused"),
    pytest.param(1, 70, 9, 50, 110, id="separate-dS-pass"),
])
def test_splits_of_many_blocks(batch, d, e, lq, ls, dtype, monkeypatch):
    """On a GPU each split sweeps many token blocks (19,200 tokens in 11 splits at batch 48); the small shapes here
    would get one block per split from the 132 SMs assumed without CUDA. One SM gives one or two splits. bf16 inputs
    also store the state matrices in bf16 (`state_matrix_dtype`)."""
    monkeypatch.setattr(la, "sm_count", lambda device: 1)
    assert la.split(10, 1, torch.device(DEVICE), 1) < 10
    check_parity(*make_inputs(batch, d, e, lq, ls, dtype, value_offset=2.0))


# --- stacked parts: several attentions of one call, each input given as parts read in place -------------------------


def check_stacked_parity(q_parts, k_parts, v_parts, dtype, *, copies_allowed=True):
    """The Triton op on parts against the float64 reference on their concatenation, every part's gradient checked.
    The parts may be views (of one buffer): gradients are taken with respect to them. Without `copies_allowed`, the
    op's forward and backward must not concatenate the parts."""
    parts = [list(q_parts), list(k_parts), list(v_parts)]
    flat = [p for each in parts for p in each]
    with pytest.MonkeyPatch.context() as patch:
        if not copies_allowed:
            patch.setattr(torch, "cat", lambda *args, **kwargs: pytest.fail("the parts were concatenated"))
        out = la.linear_cross_attention(*parts)
        upstream = torch.randn_like(out)
        part_grads = torch.autograd.grad(out, flat, upstream)
    expected, expected_grads = run_reference(*(torch.cat(each).detach() for each in parts), upstream)
    assert out.dtype == dtype
    assert_kernel_close("out", out, expected, dtype)
    sizes = [len(each) for each in parts]
    for name, size, want in zip(("dq", "dk", "dv"), sizes, expected_grads):
        got, part_grads = torch.cat(part_grads[:size]), part_grads[size:]
        assert_kernel_close(name, got, want, dtype)


def part_unit(*inputs):
    """The PART_UNIT of a launch reading all parts of the stacked inputs."""
    stacked = [la.Stacked.of(parts) for parts in inputs]
    return la._part_unit(stacked, 0, len(inputs[0]))


def separate_parts(num_parts, batch, d, e, lq, ls, dtype):
    """q, k, v parts in allocations of their own (as the model's projections make them), requiring grad."""
    made = [make_inputs(batch, d, e, lq, ls, dtype, value_offset=1.0) for _ in range(num_parts)]
    return [[t.requires_grad_() for t in each] for each in zip(*made)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("num_parts, batch, d, e, lq, ls", [
    pytest.param(3, 2, 8, 8, 33, 21, id="fused"),
    pytest.param(2, 1, 72, 40, 20, 17, id="separate-dS-pass"),
    pytest.param(la.MAX_PARTS + 3, 1, 5, 7, 19, 23, id="two-launch-sequences"),
])
def test_stacked_parts_are_read_in_place(num_parts, batch, d, e, lq, ls, dtype):
    q, k, v = separate_parts(num_parts, batch, d, e, lq, ls, dtype)
    assert part_unit(q, k, v) == la.ALIGNED_PART_UNIT  # separate allocations: the aligned launches
    check_stacked_parity(q, k, v, dtype, copies_allowed=False)


def test_parts_at_unaligned_offsets_of_one_buffer():
    """Parts that lie an odd number of elements apart take the launches with unit offsets."""
    batch, d, e, lq, ls = 1, 6, 5, 21, 17
    shapes = [(batch, d, lq)] * 2 + [(batch, d, ls)] * 2 + [(batch, e, ls)] * 2
    sizes = [math.prod(shape) for shape in shapes]
    buffer = torch.randn(sum(sizes) + len(sizes), device=DEVICE, requires_grad=True)
    starts = np.cumsum([1] + [size + 1 for size in sizes[:-1]])  # one element between parts: odd offsets
    views = [buffer[start:start + size].view(shape) for start, size, shape in zip(starts, sizes, shapes)]
    q, k, v = views[0:2], views[2:4], views[4:6]
    assert part_unit(q, k, v) == 1
    check_stacked_parity(q, k, v, torch.float32, copies_allowed=False)


@pytest.mark.parametrize("layout", ["counts-differ", "strides-differ"])
def test_parts_unlike_the_models_are_copied_first(layout):
    """Inputs whose parts the kernels cannot read in place (another number of parts per input, or parts of one input
    with different strides) give the same results through copies."""
    q, k, v = separate_parts(2, 2, 6, 5, 21, 17, torch.float32)
    if layout == "counts-differ":
        k = [torch.cat(k).detach().requires_grad_()]
    else:
        v[1] = v[1].detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
    check_stacked_parity(q, k, v, torch.float32)


# The gradients scale with 1 / den, ~1e-6 here: a larger upstream gradient keeps them in float16's normal range,
# so that the comparison measures the kernel rather than float16's subnormals.
OVERFLOW_UPSTREAM_SCALE = 64.0


def test_float16_long_source_does_not_overflow():
    """sum_a softplus(k_a) over 9,000 tokens near +8 is ~7e4 > 65504: the state and normaliser stay fp32."""
    q, k, v = make_inputs(1, 4, 3, 16, 9000, torch.float16, level=8.0, value_offset=1.0)
    upstream = OVERFLOW_UPSTREAM_SCALE * torch.randn(1, 3, 16, device=DEVICE, dtype=torch.float16)
    out = check_parity(q, k, v, upstream)
    assert torch.isfinite(out).all()


def strided_inputs(batch, d, e, lq, ls):
    """(B, C, L) views as the model makes them, none of them contiguous: q from a channels_last NCHW map, k a
    channel slice of a wider tensor, v with its batch dim innermost."""
    q = torch.randn(batch, d, 5, lq // 5, device=DEVICE).to(memory_format=torch.channels_last).flatten(2)
    k = torch.randn(batch, 2 * d, ls, device=DEVICE)[:, d:]
    v = torch.randn(ls, e, batch, device=DEVICE).permute(2, 1, 0)
    return q, k, v


def test_strided_inputs_and_upstream_gradient_are_read_in_place():
    q, k, v = strided_inputs(2, 7, 5, 30, 26)
    assert not (q.is_contiguous() or k.is_contiguous() or v.is_contiguous())
    upstream = torch.randn(2, 30, 5, device=DEVICE).transpose(1, 2)  # (B, E, Lq), L not contiguous
    check_parity(q, k, v, upstream)


def test_autocast_casts_inputs_like_the_reference():
    q, k, v = make_inputs(1, 8, 8, 20, 30, torch.float32)
    device_type = torch.device(DEVICE).type
    with torch.autocast(device_type, dtype=torch.bfloat16):
        out = la.linear_cross_attention(q, k, v)
        expected = linear_cross_attention_ref(q, k, v)
    assert out.dtype == expected.dtype == torch.bfloat16
    reference = linear_cross_attention_ref(*(t.to(torch.bfloat16).double() for t in (q, k, v)))
    assert_kernel_close("out", out, reference, torch.bfloat16)


@pytest.mark.parametrize("shape", [(0, 4, 3, 6, 5), (2, 4, 3, 0, 5), (2, 4, 3, 6, 0), (2, 0, 3, 6, 5), (2, 4, 0, 6, 5)],
                         ids=["B=0", "Lq=0", "Ls=0", "D=0", "E=0"])
def test_empty_sizes_give_the_reference_results_without_a_launch(shape, monkeypatch):
    monkeypatch.setattr(la, "split", lambda *args: pytest.fail("a kernel was about to launch"))
    q, k, v = make_inputs(*shape, torch.float32)
    out, (dq, dk, dv), upstream = run_triton(q, k, v)
    expected, expected_grads = run_reference(q, k, v, upstream)
    assert torch.equal(out, expected.float())
    for got, want in zip((dq, dk, dv), expected_grads):
        assert torch.equal(got, want.float())


def test_float64_is_rejected_naming_the_argument():
    q, k, v = (t.double() for t in make_inputs(1, 2, 2, 3, 3, torch.float32))
    with pytest.raises(TypeError, match="q must be one of"):
        la.linear_cross_attention(q, k, v)


def test_planes_beyond_int32_indexing_are_rejected():
    huge = torch.empty_strided((1, 2, 3), (2**33, 2**31, 1), device="meta")
    with pytest.raises(ValueError, match=r"q of shape \(1, 2, 3\).*int32"):
        la._check_walkable("q", huge)


def test_the_triton_backend_runs_the_kernels_and_never_the_reference(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the reference ran under the triton backend")

    calls = record_calls(monkeypatch, la, ("linear_cross_attention_fwd", "linear_cross_attention_bwd"))
    monkeypatch.setattr(reference_module, "linear_cross_attention_ref", forbidden)
    monkeypatch.setattr(kernels.reference, "linear_cross_attention_ref", forbidden)
    monkeypatch.setattr(reference_module, "FEATURE_MAP_FUNCTIONS", {})
    q, k, v = (t.requires_grad_() for t in make_inputs(1, 4, 3, 9, 7, torch.float32))
    with kernels.use_backend("triton"):
        out = kernels.linear_cross_attention(q, k, v)
    out.backward(torch.randn_like(out))
    assert calls == ["linear_cross_attention_fwd", "linear_cross_attention_bwd"]
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (q, k, v))


@pytest.mark.parametrize("d, e, fused", [(36, 36, True), (64, 8, True), (72, 72, False), (288, 288, False),
                                         (130, 40, False), (20, 65, False)])
def test_the_shapes_reach_both_paths(d, e, fused):
    """The shape tables reach both paths: the whole state in one tile (dS fused into the target pass) or not."""
    assert la.fuses_state(d, e) == fused


def test_the_half_shapes_reach_both_source_launches():
    """bf16 sources of a multiple of 16 tokens take the non-fused source pass's 128-token blocks, the others 64."""
    launches = {la._source_launch(ls, torch.bfloat16) for _, d, e, _, ls in (p.values for p in HALF_SHAPES)
                if not la.fuses_state(d, e)}
    assert launches == {la.SOURCE_LAUNCH, la.SOURCE_ALIGNED_LAUNCH}


def test_split_of_the_hot_call_runs_two_full_waves():
    """CTAM at stride 4: 48 stacked attentions, 19,200 tokens in blocks of 32, 2 CTAs on 132 SMs: 11 splits,
    528 programs, exactly two waves (6 splits, the old rule, ran 288 programs in 2.2 waves)."""
    assert la.split(600, 48, torch.device(DEVICE), 2) == 11


def test_softplus_polynomial_is_accurate_to_a_few_ulps():
    """log1p(e) ~ e P(e) evaluated as the kernels do (fp32 Horner) over [0, 1], subnormal e included, against
    float64: the relative error bound the module states."""
    e = np.concatenate([np.linspace(0.0, 1.0, 400_001), np.logspace(-44, 0, 40_001)]).astype(np.float32)
    coefficients = [np.float32(c) for c in la.LOG1P_POLYNOMIAL.value]
    p = np.full_like(e, coefficients[-1])
    for c in coefficients[-2::-1]:
        p = p * e + c
    got = (p * e).astype(np.float64)
    want = np.log1p(e.astype(np.float64))
    inside = want > 0
    assert np.max(np.abs(got[inside] - want[inside]) / want[inside]) < 4e-7
    assert got[~inside].max() == 0.0


def test_benchmark_dry_run():
    from bench.bench_linear_attention import dry_run

    rows = dry_run()
    assert {r["provider"] for r in rows} == {"torch", "triton"}


# --- the model's calls (NYUD-v2 480 x 640, batch 8: bench/shapes.py) on a GPU ---------------------------------

MODEL_CALLS = [  # (batch: the model stacks its attentions of one shape, D = E, Lq, Ls)
    pytest.param(q[0], q[1], q[2], k[2], id=call.case.split("/")[1])
    for call in model_op_calls() if call.op == "linear_cross_attention"
    for q, k in [(call.stacked_shape(0), call.stacked_shape(1))]
]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=["bf16", "fp16", "fp32"])
@pytest.mark.parametrize("batch, width, lq, ls", MODEL_CALLS)
def test_model_shapes_on_gpu(batch, width, lq, ls, dtype):
    q, k, v = make_inputs(batch, width, width, lq, ls, dtype)
    check_parity(q, k, v.relu())  # relu values, as the model's: mean ~ spread, the backward's hard case


@pytest.mark.gpu
def test_float16_at_19200_tokens_does_not_overflow_on_gpu():
    q, k, v = make_inputs(8, 36, 36, 19200, 19200, torch.float16, level=4.0, value_offset=2.0)
    upstream = OVERFLOW_UPSTREAM_SCALE * torch.randn(8, 36, 19200, device=DEVICE, dtype=torch.float16)
    out = check_parity(q, k, v, upstream)
    assert torch.isfinite(out).all()


@pytest.mark.gpu
@pytest.mark.parametrize("batch, width, lq, ls", [c for c in MODEL_CALLS if c.id in ("b48-d36-19200", "b48-d288-300")])
def test_model_shapes_are_bitwise_deterministic_on_gpu(batch, width, lq, ls):
    q, k, v = make_inputs(batch, width, width, lq, ls, torch.bfloat16)
    first_out, first_grads, upstream = run_triton(q, k, v)
    second_out, second_grads, _ = run_triton(q, k, v, upstream)
    assert torch.equal(first_out, second_out)
    assert all(torch.equal(a, b) for a, b in zip(first_grads, second_grads))


@pytest.mark.gpu
@pytest.mark.parametrize("call", [c for c in model_op_calls() if c.op == "linear_cross_attention"],
                         ids=lambda call: call.case.split("/")[1])
def test_model_calls_as_their_parts_on_gpu(call):
    """Each of the model's calls as the model makes it: every layer's q, k, v a part, read in place (bf16)."""
    (q, k, v), _ = make_args(call, torch.bfloat16, DEVICE, requires_grad=True)
    check_stacked_parity(q, k, v, torch.bfloat16, copies_allowed=False)
