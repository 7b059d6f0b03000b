"""concat_conv1x1_ref against bilinear interpolation matrices + concatenation + an einsum 1x1 conv, in float64,
and against F.interpolate + torch.cat + F.conv2d."""

import pytest
import torch
import torch.nn.functional as F

from kernels.reference import concat_conv1x1_ref
from tests._utils import FLOAT64_TOL, assert_close, grads


def bilinear_matrix(n_out: int, n_in: int) -> torch.Tensor:
    """(n_out, n_in) weights of 1-D linear interpolation with align_corners=False: output pixel centre i maps to
    source coordinate (i + 0.5) * n_in / n_out - 0.5, clamped at 0, between source pixels floor and floor + 1."""
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = min(int(src), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        frac = src - lo
        matrix[i, lo] += 1 - frac
        matrix[i, hi] += frac
    return matrix


def explicit_concat_conv(inputs, weight, bias, residual, activation, out_size):
    maps = [
        torch.einsum("yh,bchw,xw->bcyx", bilinear_matrix(out_size[0], x.shape[2]), x,
                     bilinear_matrix(out_size[1], x.shape[3]))
        for x in inputs
    ]
    out = torch.einsum("oc,bcyx->boyx", weight.reshape(weight.shape[0], -1), torch.cat(maps, dim=1))
    if bias is not None:
        out = out + bias[None, :, None, None]
    if residual is not None:
        out = out + residual
    return out.relu() if activation == "relu" else out


CASES = [  # (input specs (C, H, W) with repeats by index, out channels, out_size or None)
    pytest.param([(5, 12, 16)], 7, None, id="single-input-no-resize"),
    pytest.param([(3, 12, 16), (6, 6, 8), (4, 3, 4)], 9, None, id="three-resolutions-x1-x2-x4"),
    pytest.param([(3, 16, 16), (5, 2, 2)], 4, None, id="x8"),
    pytest.param([(3, 13, 11), (2, 5, 4), (3, 7, 9)], 6, None, id="odd-sizes-non-integer-ratios"),
    pytest.param([(4, 6, 8)], 3, (15, 20), id="explicit-out-size"),
]


@pytest.mark.parametrize("specs, out_channels, out_size", CASES)
@pytest.mark.parametrize("with_bias, with_residual, activation", [(True, True, "relu"), (False, False, None)],
                         ids=["bias-residual-relu", "plain"])
def test_matches_explicit_interpolation_and_conv(specs, out_channels, out_size, with_bias, with_residual, activation):
    inputs = [torch.randn(2, c, h, w, dtype=torch.float64) for c, h, w in specs]
    size = out_size or max(((h, w) for _, h, w in specs), key=lambda hw: hw[0] * hw[1])
    weight = torch.randn(out_channels, sum(c for c, _, _ in specs), dtype=torch.float64)
    bias = torch.randn(out_channels, dtype=torch.float64) if with_bias else None
    residual = torch.randn(2, out_channels, *size, dtype=torch.float64) if with_residual else None
    tensors = [t for t in (*inputs, weight, bias, residual) if t is not None]
    leaves = [t.clone().requires_grad_() for t in tensors]
    ref_leaves = [t.clone().requires_grad_() for t in tensors]

    def call(fn, ts):
        xs, rest = ts[: len(inputs)], list(ts[len(inputs):])
        w = rest.pop(0)
        b = rest.pop(0) if with_bias else None
        r = rest.pop(0) if with_residual else None
        return fn(xs, w, b, r)

    out = call(lambda xs, w, b, r: concat_conv1x1_ref(xs, w, b, residual=r, activation=activation,
                                                      out_size=out_size), leaves)
    expected = call(lambda xs, w, b, r: explicit_concat_conv(xs, w, b, r, activation, size), ref_leaves)
    assert_close("out", out, expected, **FLOAT64_TOL)

    upstream = torch.randn_like(expected)
    out.backward(upstream)
    expected.backward(upstream)
    for i, (got, want) in enumerate(zip(grads(*leaves), grads(*ref_leaves))):
        assert_close(f"grad of tensor {i}", got, want, **FLOAT64_TOL)


def test_repeated_inputs_are_separate_segments():
    """The same tensor twice (as CSAM's aggregation does with the target map) against interpolate + cat + conv2d;
    each segment's weights multiply it separately and its gradient is the sum of both uses."""
    fine = torch.randn(2, 3, 8, 12, dtype=torch.float64, requires_grad=True)
    coarse = torch.randn(2, 4, 4, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, 3 + 4 + 3 + 4, 1, 1, dtype=torch.float64, requires_grad=True)
    out = concat_conv1x1_ref([fine, coarse, fine, coarse], weight)
    up = F.interpolate(coarse, size=(8, 12), mode="bilinear", align_corners=False)
    expected = F.conv2d(torch.cat([fine, up, fine, up], dim=1), weight)
    assert_close("out", out, expected, **FLOAT64_TOL)
    upstream = torch.randn_like(out)
    got = torch.autograd.grad(out, (fine, coarse, weight), upstream)
    want = torch.autograd.grad(expected, (fine, coarse, weight), upstream)
    for name, g, w in zip(("fine", "coarse", "weight"), got, want):
        assert_close(f"d{name}", g, w, **FLOAT64_TOL)


def test_distinct_constant_segments_land_on_their_weight_columns():
    """Each input filled with its own constant: output = sum_i c_i * (sum of weight columns of segment i)."""
    specs = [(2, 6, 6), (3, 3, 3), (1, 6, 6)]
    constants = [1.0, 10.0, 100.0]
    inputs = [torch.full((1, c, h, w), value, dtype=torch.float64) for (c, h, w), value in zip(specs, constants)]
    weight = torch.randn(4, 6, dtype=torch.float64)
    out = concat_conv1x1_ref(inputs, weight)
    columns = torch.split(weight, [c for c, _, _ in specs], dim=1)
    expected = sum(value * cols.sum(dim=1) for value, cols in zip(constants, columns))
    assert_close("out", out, expected[None, :, None, None].expand_as(out), **FLOAT64_TOL)
