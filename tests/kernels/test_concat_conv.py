"""The Triton `concat_conv1x1` against the reference in float64: the output and every gradient (each input, weight,
bias, residual) with a random upstream gradient, under NaN-poisoned allocations (tests/kernels/conftest.py).

On the CPU the kernels run through Triton's interpreter at small sizes (fp32, a few fp16/bf16 cases); the model's
aggregation shapes and HRNet's head in half precision are marked `gpu`."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import kernels
from bench.shapes import make_args, model_op_calls
from kernels import concat_conv as triton_op
from kernels import concat_conv_plan
from kernels.reference import concat_conv as reference_module
from tests._utils import assert_kernel_close, record_calls

FP32 = torch.float32
EPILOGUES = {  # id -> (bias, residual, activation)
    "bias-residual-relu": (True, True, "relu"),
    "plain": (False, False, None),
    "bias-relu": (True, False, "relu"),
}

# (input specs (C, H, W), order of the segments as indices into the specs (repeats = the same tensor object),
#  out channels, out_size or None, epilogue)
CASES = [
    pytest.param([(5, 9, 13)], None, 7, None, "plain", id="one-input-x1-odd"),
    pytest.param([(5, 9, 13)], None, 7, None, "bias-residual-relu", id="one-input-x1-odd-epilogue"),
    pytest.param([(6, 8, 12), (10, 4, 6)], None, 9, None, "bias-residual-relu", id="two-inputs-x2"),
    pytest.param([(3, 16, 16), (6, 8, 8), (4, 4, 4)], None, 5, None, "plain", id="three-x1-x2-x4"),
    pytest.param([(3, 16, 24), (5, 2, 3)], None, 4, None, "bias-relu", id="x8"),
    pytest.param([(2, 6, 128), (3, 2, 2)], None, 4, None, "plain", id="x3-x64-adjoint-in-two-chunks"),
    pytest.param([(3, 13, 11), (2, 5, 4), (3, 7, 9)], None, 6, None, "bias-residual-relu", id="non-integer-ratios"),
    pytest.param([(3, 13, 11), (2, 5, 4), (3, 7, 9)], None, 6, None, "plain", id="non-integer-ratios-plain"),
    pytest.param([(2, 12, 10), (3, 6, 5), (4, 3, 3), (5, 12, 10), (1, 5, 7), (7, 2, 2)], None, 8, None,
                 "bias-residual-relu", id="six-inputs"),
    pytest.param([(3, 10, 12), (4, 10, 5), (2, 4, 12)], None, 6, None, "plain", id="one-axis-upsampled"),
    pytest.param([(4, 6, 8), (3, 5, 5)], None, 3, (15, 20), "bias-residual-relu", id="out-size-all-upsampled"),
    pytest.param([(3, 8, 12), (4, 4, 6)], [0, 1, 0, 1, 0], 5, None, "bias-relu", id="repeated-inputs"),
    pytest.param([(3, 8, 12), (4, 4, 6)], [0, 1, 0, 1, 0], 5, None, "plain", id="repeated-inputs-plain"),
    pytest.param([(20, 6, 8), (21, 3, 4)], None, 130, None, "bias-residual-relu", id="tiles-cross-k-and-m-blocks"),
    # the upsampling epilogue's 2-D tiles: 3 x 3 of them, cut by the image's right and bottom edges
    pytest.param([(3, 9, 70), (4, 3, 20), (2, 5, 9)], None, 6, None, "bias-residual-relu", id="epilogue-tiles-2d"),
    pytest.param([(3, 10, 96), (4, 5, 48), (2, 3, 24)], None, 6, None, "bias-residual-relu",
                 id="epilogue-tiles-2d-vectorised"),
    # five distinct tensors at one resolution: more than one launch takes, concatenated first
    pytest.param([(2, 6, 8), (3, 3, 4), (1, 6, 8), (2, 6, 8), (1, 6, 8), (2, 6, 8)], [0, 1, 2, 3, 4, 5, 0], 4, None,
                 "bias-relu", id="five-tensors-at-one-resolution"),
]


def _model_segments(channels, sizes, batch, dtype, device="cpu"):
    """SCA-MTL's aggregation inputs: [F1, CA(1<-2), F1, CA(1<-3), F1, CA(1<-4), F2, CA(2<-3), F2, CA(2<-4), F3,
    CA(3<-4), F4] (F1 three times and F2 twice, the same tensor objects)."""
    features = [torch.randn(batch, c, *hw, dtype=dtype, device=device) for c, hw in zip(channels, sizes)]
    segments = []
    for target in range(3):
        for _source in range(target + 1, 4):
            segments += [features[target], torch.randn_like(features[target])]
    return segments + [features[3]]


def _build(specs, order, out_channels, out_size, epilogue, dtype, batch=2, device="cpu"):
    """Inputs (in segment order, repeats sharing one tensor), weight, bias, residual and the output size."""
    with_bias, with_residual, activation = epilogue
    tensors = [torch.randn(batch, c, h, w, dtype=dtype, device=device) for c, h, w in specs]
    inputs = [tensors[i] for i in (order if order is not None else range(len(specs)))]
    size = out_size or max((tuple(x.shape[2:]) for x in inputs), key=lambda hw: hw[0] * hw[1])
    cin = sum(x.shape[1] for x in inputs)
    weight = torch.randn(out_channels, cin, dtype=dtype, device=device) / cin**0.5
    bias = torch.randn(out_channels, dtype=dtype, device=device) if with_bias else None
    residual = torch.randn(batch, out_channels, *size, dtype=dtype, device=device) if with_residual else None
    return inputs, weight, bias, residual, activation, out_size


def _run(fn, inputs, weight, bias, residual, activation, out_size, upstream=None, dtype=None):
    """Output and the gradients of (unique inputs..., weight, bias, residual) for a (cast) copy of the leaves."""
    uniques = list({id(x): x for x in inputs}.values())
    leaves = {id(t): t.detach().to(dtype or t.dtype).requires_grad_() for t in (*uniques, weight, bias, residual)
              if t is not None}
    copy = [leaves[id(x)] for x in inputs]

    def leaf(t):
        return leaves[id(t)] if t is not None else None

    out = fn(copy, leaf(weight), leaf(bias), residual=leaf(residual), activation=activation, out_size=out_size)
    upstream = torch.randn_like(out) if upstream is None else upstream.to(out.dtype)
    out.backward(upstream)
    grads = {name: t.grad for name, t in zip(_names(inputs, weight, bias, residual), leaves.values())}
    return out, grads, upstream


def _names(inputs, weight, bias, residual):
    uniques = list({id(x): x for x in inputs}.values())
    names = [f"d input {i}" for i in range(len(uniques))] + ["d weight"]
    return names + (["d bias"] if bias is not None else []) + (["d residual"] if residual is not None else [])


def _check_against_reference(inputs, weight, bias, residual, activation, out_size, dtype):
    """Output and gradients against the float64 reference. With ReLU, the reference's backward takes the kernel's
    decisions (the sign of its output): where the pre-activation Z lies within rounding of 0 the derivative is
    ill-conditioned, and at the GPU tests' sizes any rounding flips some. tests/kernels/simulate_relu_flips.py
    simulates the bf16 path at test_gpu_hrnet_head's shapes in float64 (batch 4, 20.7 M outputs): 4,059 flips from
    the bf16 Y_g (torch's own bf16 interpolate + conv: 4,214; 453 when Y_g was a TF32 operand), and the gradients
    then miss KERNEL_TOL by up to 31x against the reference's mask (one flip fails d residual), 0.09x of it against
    the kernel's. The output check still bounds every flipped element's Z within the tolerance
    of 0, and a kernel that masks by anything but its output's sign still fails."""
    with kernels.use_backend("triton"):
        out, grads, upstream = _run(kernels.concat_conv1x1, inputs, weight, bias, residual, activation, out_size)
    relu = activation == "relu"
    expected, expected_grads, _ = _run(reference_module.concat_conv1x1_ref, inputs, weight, bias, residual,
                                       None if relu else activation, out_size,
                                       upstream=upstream * (out > 0) if relu else upstream, dtype=torch.float64)
    if relu:
        expected = expected.relu()
    assert out.dtype == dtype
    assert_kernel_close("out", out, expected, dtype)
    assert set(grads) == set(expected_grads)
    for name, grad in grads.items():
        assert grad is not None and grad.dtype == dtype, name
        assert_kernel_close(name, grad, expected_grads[name], dtype)


@pytest.mark.parametrize("specs, order, out_channels, out_size, epilogue", CASES)
def test_matches_reference_fp32(specs, order, out_channels, out_size, epilogue):
    _check_against_reference(*_build(specs, order, out_channels, out_size, EPILOGUES[epilogue], FP32), FP32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("specs, order, out_channels, out_size, epilogue",
                         [case for case in CASES if case.id in ("non-integer-ratios", "repeated-inputs")])
def test_matches_reference_half(specs, order, out_channels, out_size, epilogue, dtype):
    _check_against_reference(*_build(specs, order, out_channels, out_size, EPILOGUES[epilogue], dtype), dtype)


def test_model_aggregation_pattern_small():
    """The 13-segment pattern of SCA-MTL's aggregation (F1 x3, F2 x2, four resolutions), tiny channels."""
    inputs = _model_segments([3, 5, 6, 7], [(16, 16), (8, 8), (4, 4), (2, 2)], batch=2, dtype=FP32)
    cin = sum(x.shape[1] for x in inputs)
    weight, bias = torch.randn(11, cin) / cin**0.5, torch.randn(11)
    _check_against_reference(inputs, weight, bias, None, None, None, FP32)


def test_distinct_constant_segments():
    """Every segment a different constant: a segment read at another's offset, or a merged column on the wrong
    row, changes the output and the gradients."""
    specs = [(3, 8, 10), (5, 4, 5), (2, 8, 10), (4, 2, 3)]
    inputs = [torch.full((2, c, h, w), float(i + 1) * (-1) ** i) for i, (c, h, w) in enumerate(specs)]
    inputs.append(inputs[1])  # a repeat of the second constant
    cin = sum(x.shape[1] for x in inputs)
    weight, bias = torch.randn(6, cin), torch.randn(6)
    _check_against_reference(inputs, weight, bias, None, "relu", None, FP32)


def test_layouts_channels_last_strided_and_4d_weight():
    """Inputs channels-last, channel-sliced and spatially strided (the general-stride loader), a channels-last
    residual, a transposed 4-D weight view, and a non-contiguous upstream gradient."""
    base = torch.randn(2, 8, 12, 16)
    channels_last = torch.randn(2, 5, 6, 8).to(memory_format=torch.channels_last)
    sliced = base[:, 2:7]
    strided = torch.randn(2, 3, 12, 32)[:, :, :, ::2]
    inputs = [sliced, channels_last, strided]
    weight = torch.randn(13, 6).t()[:, :, None, None]  # (6, 13, 1, 1), not contiguous
    residual = torch.randn(2, 6, 12, 16).to(memory_format=torch.channels_last)
    _check_against_reference(inputs, weight, None, residual, None, None, FP32)
    with kernels.use_backend("triton"):
        out = kernels.concat_conv1x1(inputs, weight.detach())
        upstream = torch.randn(2, 12, 16, 6).permute(0, 3, 1, 2)  # a channels-last gradient
        leaf = inputs[0].detach().requires_grad_()
        kernels.concat_conv1x1([leaf, *inputs[1:]], weight).backward(upstream)
    expected = reference_module.concat_conv1x1_ref([x.double() for x in inputs], weight.double())
    assert_kernel_close("out", out, expected, FP32)
    x64 = inputs[0].double().requires_grad_()
    reference_module.concat_conv1x1_ref([x64, *[x.double() for x in inputs[1:]]], weight.double()).backward(
        upstream.double())
    assert_kernel_close("d input 0 (strided upstream)", leaf.grad, x64.grad, FP32)


def test_only_some_inputs_require_grad():
    inputs = [torch.randn(2, 3, 8, 8), torch.randn(2, 4, 4, 4, requires_grad=True)]
    weight = torch.randn(5, 7)
    with kernels.use_backend("triton"):
        out = kernels.concat_conv1x1(inputs, weight)
        upstream = torch.randn_like(out)
        (grad,) = torch.autograd.grad(out, inputs[1], upstream)
    x64 = inputs[1].detach().double().requires_grad_()
    expected = reference_module.concat_conv1x1_ref([inputs[0].double(), x64], weight.double())
    (expected_grad,) = torch.autograd.grad(expected, x64, upstream.double())
    assert_kernel_close("d input 1", grad, expected_grad, FP32)


def test_autocast_casts_like_the_reference():
    inputs = [torch.randn(2, 3, 8, 8), torch.randn(2, 4, 4, 4)]
    weight, bias = torch.randn(5, 7), torch.randn(5)
    with torch.autocast("cpu", dtype=torch.bfloat16), kernels.use_backend("triton"):
        out = kernels.concat_conv1x1(inputs, weight, bias, activation="relu")
    expected = reference_module.concat_conv1x1_ref([x.bfloat16().double() for x in inputs],
                                                   weight.bfloat16().double(), bias.bfloat16().double(),
                                                   activation="relu")
    assert out.dtype == torch.bfloat16
    assert_kernel_close("out", out, expected, torch.bfloat16)


def test_plan_of_repeated_inputs():
    """Repeats of one tensor object are one unique input (equal values in another tensor are not); the forward keeps a
    row block per segment, the backward one per unique input; every forward group starts on a whole BLOCK_K of rows
    and is padded to one, every backward group on ALIGN_ELEMENTS."""
    a, b = torch.randn(1, 2, 4, 4), torch.randn(1, 3, 2, 2)
    uniques, occurrence = triton_op._unique_inputs([a, b, a, b, a, a.clone()])
    plan = triton_op._plan(uniques, occurrence, torch.randn(4, 16), (4, 4))
    assert len(uniques) == 3 and uniques[0] is a and uniques[1] is b
    assert plan.occurrence == (0, 1, 0, 1, 0, 2)
    assert [g.num_rows for g in plan.segments.groups] == [2 * 4, 3 * 2]
    assert [g.num_rows for g in plan.uniques.groups] == [2 + 2, 3]
    assert [g.tensors for g in plan.segments.groups] == [(0, 2), (1,)]
    blocks = (concat_conv_plan.FWD_BLOCK_K, concat_conv_plan.ALIGN_ELEMENTS)
    for layout, block in zip((plan.segments, plan.uniques), blocks):
        assert [g.full for g in layout.groups] == [True, False]
        assert all(g.row0 % block == 0 and g.padded_rows % block == 0 for g in layout.groups)


def test_weight_gradient_splits_fill_whole_waves():
    """d W at 120 x 160, batch 8 (2,400 pixel blocks; one CTA per SM on 132 SMs). The classifiers' (1080 input rows,
    40 output channels: 9 tiles per split): 29 pixel splits, 261 programs in two waves, where filling two programs
    per SM (the rule before) took 30, 270 programs in three, the last one holding 6. A group of 256 of 1080 rows
    into 1080 output channels (18 tiles per split, like the aggregation's largest): 7 splits, one wave of 126
    programs; fuller waves (22 splits, 396 programs in three) would not pay for 15 more d W partials of 4.7 MB that
    the reduce reads."""
    tiles = concat_conv_plan.backward_tiles("dw", 2, "tf32", True)
    for rows, out_channels, splits in ((1080, 40, 29), (256, 1080, 7)):
        group = SimpleNamespace(pixels=120 * 160, num_rows=rows)
        plan = SimpleNamespace(batch=8, out_channels=out_channels, uniques=SimpleNamespace(rows=1080))
        assert triton_op._splits(plan, [(group, tiles)], 2, torch.device("cpu")) == splits


def test_second_call_reuses_the_plan_and_copies_no_table(monkeypatch):
    """The tables depend on shapes only: a second call of the same shapes, forward and backward, builds no plan and
    creates no tensor from host data (on a GPU: no host-to-device copy, so that the op can be captured in a graph)."""
    inputs = [torch.randn(2, 3, 8, 12, requires_grad=True), torch.randn(2, 5, 4, 6, requires_grad=True)]
    weight = torch.randn(6, 8, requires_grad=True)
    uploads = []
    original = torch.tensor

    def recording(*args, **kwargs):
        uploads.append(args)
        return original(*args, **kwargs)

    def call():
        with kernels.use_backend("triton"):
            kernels.concat_conv1x1(inputs, weight, activation="relu").sum().backward()

    concat_conv_plan.make_plan.cache_clear()  # whatever other tests built: this signature's first call builds it
    triton_op._CALLS.clear()  # and the plans of the calls they made
    monkeypatch.setattr(torch, "tensor", recording)
    misses = concat_conv_plan.make_plan.cache_info().misses
    call()
    assert uploads and concat_conv_plan.make_plan.cache_info().misses == misses + 1  # the first call builds it
    uploads.clear()
    call()
    assert uploads == [] and concat_conv_plan.make_plan.cache_info().misses == misses + 1


def test_inputs_at_other_addresses_reuse_the_plan():
    """Same shapes, new tensors (other addresses, so other offsets between a group's tensors): the cached plan serves
    them, with the right values."""
    specs = [(3, 8, 12), (4, 8, 12), (2, 4, 6)]
    first = _build(specs, None, 5, None, EPILOGUES["bias-relu"], FP32)
    misses = concat_conv_plan.make_plan.cache_info().misses
    _check_against_reference(*_build(specs, None, 5, None, EPILOGUES["bias-relu"], FP32), FP32)
    _check_against_reference(*first, FP32)
    assert concat_conv_plan.make_plan.cache_info().misses <= misses + 1


def test_tensors_of_a_group_at_unaligned_offsets():
    """Two tensors of one resolution whose address difference is not a multiple of 16 elements (a view at an odd
    storage offset): the launch takes the table in elements instead of 16-element units."""
    first = torch.randn(2, 3, 8, 8)
    second = torch.randn(2 * 4 * 8 * 8 + 5)[5:].view(2, 4, 8, 8)
    assert (second.data_ptr() - first.data_ptr()) // 4 % concat_conv_plan.ALIGN_ELEMENTS
    weight, bias = torch.randn(5, 7) / 7**0.5, torch.randn(5)
    _check_against_reference([first, second], weight, bias, None, "relu", None, FP32)


@pytest.mark.parametrize("allow_tf32", [False], ids=["ieee"])
def test_fp32_ieee_products(monkeypatch, allow_tf32):
    """float32 with cuDNN's TF32 off: the IEEE tiles and the upsampling epilogue's IEEE products."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", allow_tf32)
    built = _build([(3, 9, 70), (4, 3, 20), (2, 5, 9)], None, 6, None, EPILOGUES["bias-residual-relu"], FP32)
    _check_against_reference(*built, FP32)


def test_deterministic():
    """Forward and backward twice: every output and gradient bitwise equal."""
    built = _build([(3, 8, 8), (4, 4, 4)], None, 5, None, EPILOGUES["bias-residual-relu"], FP32)
    upstream = None
    results = []
    with kernels.use_backend("triton"):
        for _ in range(2):
            out, grads, upstream = _run(kernels.concat_conv1x1, *built, upstream=upstream)
            results.append((out, grads))
    (out1, grads1), (out2, grads2) = results
    assert torch.equal(out1, out2)
    for name in grads1:
        assert torch.equal(grads1[name], grads2[name]), name


def test_triton_backend_runs_the_kernels_and_no_reference(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the reference ran")

    calls = record_calls(monkeypatch, triton_op, ("concat_conv1x1_fwd", "concat_conv1x1_bwd"))
    monkeypatch.setattr(reference_module, "concat_conv1x1_ref", forbidden)
    monkeypatch.setattr(reference_module.F, "interpolate", forbidden)
    monkeypatch.setattr(reference_module.F, "conv2d", forbidden)
    inputs = [torch.randn(1, 2, 6, 6, requires_grad=True), torch.randn(1, 3, 3, 3, requires_grad=True)]
    with kernels.use_backend("triton"):
        out = kernels.concat_conv1x1(inputs, torch.randn(4, 5, requires_grad=True), activation="relu")
    out.sum().backward()
    assert calls == ["concat_conv1x1_fwd", "concat_conv1x1_bwd"]
    assert all(x.grad is not None for x in inputs)


def test_empty_inputs_give_empty_outputs_and_gradients():
    inputs = [torch.randn(0, 2, 4, 4, requires_grad=True), torch.randn(0, 3, 2, 2, requires_grad=True)]
    weight = torch.randn(6, 5, requires_grad=True)
    with kernels.use_backend("triton"):
        out = kernels.concat_conv1x1(inputs, weight, torch.randn(6, requires_grad=True))
        out.sum().backward()
        no_out_channels = kernels.concat_conv1x1([torch.randn(2, 3, 4, 4)], torch.randn(0, 3))
    assert out.shape == (0, 6, 4, 4) and no_out_channels.shape == (2, 0, 4, 4)
    assert inputs[1].grad.shape == (0, 3, 2, 2) and torch.equal(weight.grad, torch.zeros(6, 5))


@pytest.mark.parametrize("args, error, words", [
    pytest.param(([torch.randn(1, 2, 4, 4, dtype=torch.float64)], torch.randn(3, 2, dtype=torch.float64)),
                 TypeError, ["inputs[0]", "float64"], id="float64"),
    pytest.param(([torch.randn(1, 2, 4, 4), torch.randn(1, 2, 0, 3)], torch.randn(3, 4)), ValueError,
                 ["inputs[1]", "(1, 2, 0, 3)"], id="empty-map"),
])
def test_triton_specific_bad_input(args, error, words):
    with pytest.raises(error) as info, kernels.use_backend("triton"):
        kernels.concat_conv1x1(*args)
    for word in words:
        assert word in str(info.value)


def test_benchmark_dry_run():
    from bench import bench_concat_conv

    bench_concat_conv.dry_run()


# ---------------------------------------------------------------------------------------------------------------------
# Real sizes and half precision: GPU only
# ---------------------------------------------------------------------------------------------------------------------

MODEL_CALLS = [pytest.param(call, id=call.case.split("/")[1])
               for call in model_op_calls() if call.op == "concat_conv1x1"]  # bench/shapes.py


def _model_inputs(call, dtype):
    """(inputs, weight, bias) at a model call's shapes (the aggregation's repeated inputs one tensor each), the weight
    scaled by 1 / sqrt(fan-in) as an initialised layer's, so that outputs stay of the inputs' order."""
    (inputs, weight, bias), _ = make_args(call, dtype, "cuda")
    return inputs, weight / weight.shape[1] ** 0.5, bias


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=["bf16", "fp16", "fp32"])
@pytest.mark.parametrize("call", MODEL_CALLS)
def test_gpu_model_calls(call, dtype):
    """Batch 8: the aggregation (13 segments at 4 resolutions, 1080 -> 1080 with bias) and the classifiers."""
    _check_against_reference(*_model_inputs(call, dtype), None, None, None, dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_gpu_hrnet_head(dtype):
    """HRNet-W18's resize-concat head: 18 + 36 + 72 + 144 -> 270 with bias, residual and ReLU, batch 8."""
    specs = [(18, 120, 160), (36, 60, 80), (72, 30, 40), (144, 15, 20)]
    built = _build(specs, None, 270, None, EPILOGUES["bias-residual-relu"], dtype, batch=8, device="cuda")
    _check_against_reference(*built, dtype)


@pytest.mark.gpu
def test_gpu_deterministic_aggregation():
    inputs, weight, bias = _model_inputs(MODEL_CALLS[0].values[0], torch.bfloat16)  # the aggregation
    results, upstream = [], None
    with kernels.use_backend("triton"):
        for _ in range(2):
            out, grads, upstream = _run(kernels.concat_conv1x1, inputs, weight, bias, None, "relu", None,
                                        upstream=upstream)
            results.append((out, grads))
    assert torch.equal(results[0][0], results[1][0])
    for name in results[0][1]:
        assert torch.equal(results[0][1][name], results[1][1][name]), name


@pytest.mark.gpu
def test_gpu_cuda_graph_replays_forward_and_backward():
    """The aggregation's forward and backward captured in a CUDA graph (after eager warm-up calls, which compile the
    kernels and build the plan) and replayed on new values copied into the captured tensors: bitwise equal to eager
    on the same values (the kernels are deterministic)."""
    inputs, weight, bias = _model_inputs(MODEL_CALLS[0].values[0], torch.bfloat16)
    uniques = list({id(x): x for x in inputs}.values())
    leaves = [t.detach().clone().requires_grad_() for t in (*uniques, weight, bias)]
    position = {id(u): i for i, u in enumerate(uniques)}
    upstream = torch.randn(inputs[0].shape[0], weight.shape[0], *inputs[0].shape[2:], dtype=torch.bfloat16,
                           device="cuda")

    def step():
        segments = [leaves[position[id(x)]] for x in inputs]
        out = kernels.concat_conv1x1(segments, leaves[-2], leaves[-1], activation="relu")
        return (out, *torch.autograd.grad(out, leaves, upstream))

    with kernels.use_backend("triton"):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            captured = step()
        with torch.no_grad():
            for leaf in (*leaves, upstream):
                leaf.copy_(torch.randn_like(leaf))
        graph.replay()
        torch.cuda.synchronize()
        eager = step()
    for name, replayed, expected in zip(["out", *(f"grad {i}" for i in range(len(leaves)))], captured, eager):
        assert torch.equal(replayed, expected), name
