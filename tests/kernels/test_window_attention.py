"""The Triton kernels.window_attention against its reference in float64 (forward and every gradient, random upstream
gradient, NaN-poisoned outputs), against timm's Swin block (outside oracle), determinism, which backend ran, bad
input, and the benchmark's dry run. On CPU the kernels run through Triton's interpreter at small sizes; the model's
shapes in half precision are GPU tests."""

from __future__ import annotations

import importlib

import pytest
import torch

import kernels
from bench.shapes import model_op_calls
from kernels._launch import COMPILE_OPTIONS
from kernels.reference import window_attention_ref
from tests._utils import assert_kernel_close, grads, record_calls

wa = importlib.import_module("kernels.window_attention")  # the module (kernels.window_attention is the public op)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
GRAD_NAMES = ("qkv", "rel_bias", "qkv_pad")


def make_inputs(batch, height, width, heads, head_dim, window, *, dtype=torch.float32, with_pad=True,
                device=DEVICE):
    """qkv (B, H, W, 3C), rel_bias (heads, N, N) and qkv_pad (3C,) (or None), leaves in `dtype`."""
    channels = heads * head_dim
    qkv = torch.randn(batch, height, width, 3 * channels, device=device).to(dtype)
    rel_bias = torch.randn(heads, window**2, window**2, device=device).to(dtype)
    qkv_pad = torch.randn(3 * channels, device=device).to(dtype) if with_pad else None
    return qkv, rel_bias, qkv_pad


def run_and_compare(inputs, *, num_heads, window_size, shift_size, scale=None, dtype=torch.float32):
    """Triton forward + backward against the reference in float64 on the same (rounded) inputs, random dO."""
    qkv, rel_bias, qkv_pad = inputs
    leaves = [t.detach().requires_grad_() if t is not None else None for t in inputs]  # strides kept
    ref_leaves = [t.detach().double().requires_grad_() if t is not None else None for t in inputs]
    kwargs = dict(num_heads=num_heads, window_size=window_size, shift_size=shift_size, scale=scale)

    out = wa.window_attention(*leaves, **kwargs)
    expected = window_attention_ref(*ref_leaves, **kwargs)
    assert out.dtype == qkv.dtype
    assert_kernel_close("out", out, expected, dtype)

    upstream = torch.randn_like(expected)
    out.backward(upstream.to(out.dtype))
    expected.backward(upstream)
    present = [(name, t, r) for name, t, r in zip(GRAD_NAMES, leaves, ref_leaves) if t is not None]
    actual_grads = grads(*[t for _, t, _ in present])
    expected_grads = grads(*[r for _, _, r in present])
    for (name, leaf, _), got, want in zip(present, actual_grads, expected_grads):
        assert got.dtype == leaf.dtype, f"d{name} has dtype {got.dtype}, expected {leaf.dtype}"
        assert_kernel_close(f"d{name}", got, want, dtype)


CASES = [  # (B, H, W, heads, head_dim, window, shift, with qkv_pad)
    pytest.param(2, 14, 14, 2, 3, 7, 0, True, id="divisible-unshifted-hd3"),
    pytest.param(1, 14, 21, 2, 3, 7, 3, True, id="divisible-shifted-hd3"),
    pytest.param(1, 10, 12, 3, 6, 7, 3, True, id="padded-shifted-hd6"),
    pytest.param(1, 10, 12, 1, 24, 7, 0, True, id="padded-unshifted-hd24"),
    pytest.param(2, 5, 6, 8, 3, 7, 3, False, id="smaller-than-window-8heads-zero-pad"),
    pytest.param(1, 9, 17, 4, 3, 8, 4, True, id="window8-shift4-padded"),
    pytest.param(1, 16, 8, 1, 6, 8, 0, True, id="window8-divisible-1head"),
    pytest.param(1, 9, 10, 2, 54, 7, 3, True, id="padded-shifted-hd54"),
    # rolled by 6, the padded rows and columns land in the first and second window rows and columns, not the last
    pytest.param(1, 12, 19, 2, 3, 7, 6, True, id="shift6-padding-inside"),
    pytest.param(1, 11, 13, 2, 12, 5, 2, True, id="window5-shift2-padded"),
]


@pytest.mark.parametrize("batch, height, width, heads, head_dim, window, shift, with_pad", CASES)
def test_matches_reference(batch, height, width, heads, head_dim, window, shift, with_pad):
    inputs = make_inputs(batch, height, width, heads, head_dim, window, with_pad=with_pad)
    run_and_compare(inputs, num_heads=heads, window_size=window, shift_size=shift)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_half_precision_matches_reference(dtype):
    inputs = make_inputs(1, 10, 12, 3, 6, 7, dtype=dtype)
    run_and_compare(inputs, num_heads=3, window_size=7, shift_size=3, dtype=dtype)


@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "one-element-off"])
def test_backward_caps_registers_only_where_aligned(monkeypatch, offset):
    """The 16-bit backward at 8 warps is capped at BWD_MAX_REGISTERS only where the JIT may assume what the capped
    ahead-of-time compile assumes (aligned pointers and strides: test_compile finds it without spills); qkv one
    element off its 16-byte alignment runs uncapped. Both match the reference."""
    options = []
    launch = wa._bwd_launch
    monkeypatch.setattr(wa, "_bwd_launch", lambda *args: options.append(launch(*args)) or options[-1])
    heads, head_dim = 2, 12  # 8 warps at 16 bits
    qkv, rel_bias, qkv_pad = make_inputs(1, 10, 12, heads, head_dim, 7, dtype=torch.bfloat16)
    buffer = qkv.new_empty(qkv.numel() + offset)
    shifted = buffer[offset:].view(qkv.shape).copy_(qkv)
    run_and_compare((shifted, rel_bias, qkv_pad), num_heads=heads, window_size=7, shift_size=3, dtype=torch.bfloat16)
    capped = dict(maxnreg=wa.BWD_MAX_REGISTERS) if offset == 0 else {}
    assert options == [dict(num_warps=wa.BWD_NUM_WARPS, **COMPILE_OPTIONS, **capped)]


@pytest.mark.parametrize("sms, programs", [(1, 1), (5, 5)], ids=["one-program", "uneven-ranges"])
def test_many_windows_per_program(monkeypatch, sms, programs):
    """Few SMs: every backward program walks a contiguous range of windows across rows and images (the bias gradient
    accumulated across them in registers, the padded tokens' rows from several windows; 24 windows in 5 ranges of
    at most 5), and every forward program takes all the heads of its window (the head loop)."""
    monkeypatch.setattr(wa, "sm_count", lambda device: sms)
    assert wa._programs_per_head(24, 2, torch.device(DEVICE)) == programs
    assert wa._heads_per_program(24, 2, 3, torch.device(DEVICE)) == 2
    inputs = make_inputs(2, 19, 24, 2, 3, 7)  # 2 images of 3 x 4 windows, padded in both directions
    run_and_compare(inputs, num_heads=2, window_size=7, shift_size=3)


def test_strided_inputs_and_explicit_scale():
    """Any strides are walked as they are (no copy): channels-first storage, a transposed bias, a strided pad."""
    batch, height, width, heads, head_dim, window = 1, 10, 9, 2, 6, 7
    channels = heads * head_dim
    qkv = torch.randn(batch, 3 * channels, height, width, device=DEVICE).permute(0, 2, 3, 1)
    rel_bias = torch.randn(heads, window**2, window**2, device=DEVICE).transpose(1, 2)
    qkv_pad = torch.randn(2 * 3 * channels, device=DEVICE)[::2]
    assert qkv.stride(-1) != 1 and rel_bias.stride(-1) != 1 and qkv_pad.stride(-1) == 2
    run_and_compare((qkv, rel_bias, qkv_pad), num_heads=heads, window_size=window, shift_size=3, scale=0.3)


def test_deterministic(monkeypatch):
    """Forward and backward twice: every output and gradient bitwise equal (fixed-order partial reductions)."""
    monkeypatch.setattr(wa, "sm_count", lambda device: 1)  # several windows per program
    inputs = make_inputs(2, 10, 12, 2, 6, 7)
    upstream = torch.randn(2, 10, 12, 12, device=DEVICE)
    results = []
    for _ in range(2):
        leaves = [t.detach().clone().requires_grad_() for t in inputs]
        out = wa.window_attention(*leaves, num_heads=2, window_size=7, shift_size=3)
        out.backward(upstream)
        results.append([out.detach(), *grads(*leaves)])
    for name, first, second in zip(("out", *GRAD_NAMES), *results):
        assert torch.equal(first, second), f"{name} differs between two runs"


def test_triton_backend_runs_the_kernels_and_not_the_reference(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the torch reference ran under the triton backend")

    calls = record_calls(monkeypatch, wa, ("window_attention_fwd", "window_attention_bwd"))
    reference_module = importlib.import_module("kernels.reference.window_attention")
    for name in ("window_attention_ref", "_partition", "_merge", "shift_mask", "shift_region_ids"):
        monkeypatch.setattr(reference_module, name, forbidden)
    monkeypatch.setattr(kernels.reference, "window_attention_ref", forbidden)

    qkv, rel_bias, qkv_pad = (t.requires_grad_() for t in make_inputs(1, 9, 9, 2, 3, 7))
    with kernels.use_backend("triton"):
        out = kernels.window_attention(qkv, rel_bias, qkv_pad, num_heads=2, window_size=7, shift_size=3)
    out.backward(torch.randn_like(out))
    assert calls == ["window_attention_fwd", "window_attention_bwd"]
    assert all(t.grad is not None for t in (qkv, rel_bias, qkv_pad))


def test_autocast_runs_in_the_autocast_dtype():
    qkv, rel_bias, qkv_pad = make_inputs(1, 8, 8, 2, 3, 7)
    device_type = torch.device(DEVICE).type
    with torch.autocast(device_type, dtype=torch.bfloat16):
        out = wa.window_attention(qkv, rel_bias, qkv_pad, num_heads=2, window_size=7)
    expected = wa.window_attention(qkv.bfloat16(), rel_bias.bfloat16(), qkv_pad.bfloat16(), num_heads=2,
                                   window_size=7)
    assert out.dtype == torch.bfloat16 and torch.equal(out, expected)


@pytest.mark.parametrize("shape", [(0, 5, 5, 36), (2, 0, 5, 36), (2, 5, 0, 36)], ids=["batch", "height", "width"])
def test_empty_input_gives_empty_output_and_zero_gradients(shape):
    qkv = torch.randn(*shape, device=DEVICE, requires_grad=True)
    rel_bias = torch.randn(2, 49, 49, device=DEVICE, requires_grad=True)
    qkv_pad = torch.randn(36, device=DEVICE, requires_grad=True)
    out = wa.window_attention(qkv, rel_bias, qkv_pad, num_heads=2, window_size=7, shift_size=3)
    assert out.shape == shape[:3] + (12,)
    out.backward(torch.randn_like(out))
    assert qkv.grad.shape == qkv.shape
    assert torch.equal(rel_bias.grad, torch.zeros_like(rel_bias))
    assert torch.equal(qkv_pad.grad, torch.zeros_like(qkv_pad))


@pytest.mark.parametrize("kwargs, inputs, error, words", [
    pytest.param(dict(num_heads=2, window_size=7), make_inputs(1, 5, 5, 2, 3, 7, dtype=torch.float64, device="cpu"),
                 TypeError, ["qkv", "float64", "triton"], id="float64"),
    pytest.param(dict(num_heads=1, window_size=9), make_inputs(1, 5, 5, 1, 3, 9, device="cpu"), ValueError,
                 ["window_size", "8", "9"], id="window-9"),
    # 65536 x 65536 tokens of 6 channels (an expanded view: no memory): 2.6e10 elements per image
    pytest.param(dict(num_heads=1, window_size=7),
                 (torch.randn(6).expand(1, 2**16, 2**16, 6), torch.randn(1, 49, 49), None), ValueError,
                 ["spans", "per padded image", "int32"], id="image-beyond-int32"),
])
def test_rejects_what_the_kernels_cannot_take(kwargs, inputs, error, words):
    with pytest.raises(error) as info:
        wa.window_attention(*inputs, **kwargs)
    for word in words:
        assert word in str(info.value), f"{word!r} missing from: {info.value}"


@pytest.mark.parametrize("shift", [0, 3], ids=["unshifted", "shifted"])
def test_matches_timm_swin_block_on_divisible_maps(shift):
    """Outside oracle: timm's SwinTransformerBlock attention branch (roll, partition, WindowAttention with its own
    relative-position index and shift mask, merge, roll back) in float64 with the same weights as our layer
    running the Triton op in float32: output and the gradients of the input and every parameter."""
    from timm.models.swin_transformer import SwinTransformerBlock

    from sca_mtl.models.layers import WindowAttention

    dim, heads, window, size = 12, 3, 7, (14, 21)
    block = SwinTransformerBlock(dim, size, num_heads=heads, window_size=window, shift_size=shift,
                                 always_partition=True).double().eval().to(DEVICE)
    layer = WindowAttention(dim, heads, window, shift, backend="triton").to(DEVICE)
    with torch.no_grad():
        block.attn.relative_position_bias_table.normal_()
        layer.qkv.load_state_dict(block.attn.qkv.state_dict())
        layer.proj.load_state_dict(block.attn.proj.state_dict())
        layer.relative_position_bias_table.copy_(block.attn.relative_position_bias_table)
    x = torch.randn(2, *size, dim, device=DEVICE, dtype=torch.float64)
    x_ours = x.float().requires_grad_()
    x_timm = x.clone().requires_grad_()
    out, expected = layer(x_ours), block._attn(x_timm)
    assert_kernel_close("out", out, expected, torch.float32)

    upstream = torch.randn_like(expected)
    out.backward(upstream.float())
    expected.backward(upstream)
    assert_kernel_close("dx", x_ours.grad, x_timm.grad, torch.float32)
    ours, theirs = dict(layer.named_parameters()), dict(block.attn.named_parameters())
    for name, param in ours.items():
        assert_kernel_close(f"d{name}", param.grad, theirs[name].grad, torch.float32)


def test_benchmark_dry_run():
    """The benchmark's provider code runs on tiny shapes (CPU: no torch.compile) and gives finite results."""
    from bench.bench_window_attention import dry_run

    dry_run(DEVICE)


# ----------------------------------------------------------------------------------------------------------------------
# GPU: the model's eleven shapes at batch 8 (half precision, and fp32 on TF32), two launches per forward (the table
# and the attention)
# ----------------------------------------------------------------------------------------------------------------------


MODEL_CALLS = [pytest.param(call, id=call.case.split("/")[1])
               for call in model_op_calls() if call.op == "window_attention"]  # bench/shapes.py


def _model_inputs(call, dtype):
    """This module's inputs (make_inputs) at the shapes of a model call, and the call's keyword arguments."""
    (batch, height, width, three_c), options = call.tensors[0], dict(call.kwargs)
    heads, window = options["num_heads"], options["window_size"]
    return make_inputs(batch, height, width, heads, three_c // (3 * heads), window, dtype=dtype), options


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=["bf16", "fp16", "fp32-tf32"])
@pytest.mark.parametrize("call", MODEL_CALLS)
def test_model_shapes_match_reference(call, dtype):
    inputs, options = _model_inputs(call, dtype)
    run_and_compare(inputs, **options, dtype=dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("call", MODEL_CALLS[:2])
def test_model_shapes_deterministic(call):
    inputs, options = _model_inputs(call, torch.bfloat16)
    upstream = torch.randn(*inputs[0].shape[:3], inputs[0].shape[3] // 3, device=DEVICE, dtype=torch.bfloat16)
    results = []
    for _ in range(2):
        leaves = [t.detach().clone().requires_grad_() for t in inputs]
        out = wa.window_attention(*leaves, **options)
        out.backward(upstream)
        results.append([out.detach(), *grads(*leaves)])
    for name, first, second in zip(("out", *GRAD_NAMES), *results):
        assert torch.equal(first, second), f"{name} differs between two runs"


@pytest.mark.gpu
def test_forward_is_two_launches():
    """The slot bias table and the attention: nothing else (no copy, no padding, no mask)."""
    from bench.bench_window_attention import gpu_work_items

    inputs, options = _model_inputs(MODEL_CALLS[1].values[0], torch.bfloat16)  # the largest map, shifted
    call = lambda: wa.window_attention(*inputs, **options)  # noqa: E731
    call()  # compile first
    assert gpu_work_items(call) == 2
