"""The device helpers the three ops share (kernels/_triton.py). On a GPU, TF32 products round their fp32 operands to
nearest (ties to even) through cvt.rn.tf32.f32 instead of letting the tensor core truncate them; the interpreter's
dot is exact in fp32 and takes them as they are. The integer rounding (`round_mantissa`, which the interpreter's
bf16 paths use) is checked on the CPU."""

from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl

from kernels._triton import dot, round_mantissa, round_to_tf32
from tests._utils import tf32

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SIZE = 16  # the smallest tl.dot


@triton.jit
def _dot_kernel(a_ptr, b_ptr, c_ptr, SIZE: tl.constexpr, DOT_PRECISION: tl.constexpr):
    offs = tl.arange(0, SIZE)
    tile = offs[:, None] * SIZE + offs[None, :]
    tl.store(c_ptr + tile, dot(tl.load(a_ptr + tile), tl.load(b_ptr + tile), None, DOT_PRECISION))


@triton.jit
def _round_kernel(x_ptr, y_ptr, SIZE: tl.constexpr, INTEGER: tl.constexpr):
    offs = tl.arange(0, SIZE)
    x = tl.load(x_ptr + offs)
    tl.store(y_ptr + offs, round_mantissa(x, 13) if INTEGER else round_to_tf32(x))


def _check_tf32_dot() -> None:
    a, b = (torch.randn(SIZE, SIZE, device=DEVICE) for _ in range(2))
    c = torch.empty(SIZE, SIZE, device=DEVICE)
    _dot_kernel[(1,)](a, b, c, SIZE=SIZE, DOT_PRECISION="tf32")
    rounded = (tf32(a).double() @ tf32(b).double()).float()
    truncated = (tf32(a, nearest=False).double() @ tf32(b, nearest=False).double()).float()
    accumulation = 1e-6 * rounded.abs().max()  # fp32 sums of 16 exact products
    assert (c - rounded).abs().max() <= accumulation, "the TF32 product is not that of the rounded operands"
    assert (c - truncated).abs().max() > 10 * accumulation, "the operands were truncated, not rounded"


def _check_ties_to_even(integer: bool) -> None:
    ulp = 2.0**-10  # of a TF32 value in [1, 2)
    x = torch.tensor([1 + ulp / 2, 1 + ulp + ulp / 2, -(1 + ulp / 2), 1 + 0.75 * ulp, 1 + 0.25 * ulp, float("inf")]
                     + [0.0] * 10, device=DEVICE)
    y = torch.empty_like(x)
    _round_kernel[(1,)](x, y, SIZE=SIZE, INTEGER=integer)
    expected = [1.0, 1 + 2 * ulp, -1.0, 1 + ulp, 1.0, float("inf")] + [0.0] * 10
    assert y.tolist() == expected


def test_integer_rounding_to_tf32_ties_to_even():
    _check_ties_to_even(integer=True)


@pytest.mark.gpu
def test_tf32_rounding_on_gpu():
    """TF32 products on the tensor cores take the operands rounded through cvt.rn.tf32.f32, ties to even (`pytest -m
    gpu` selects only marked tests, so the integer rounding is checked here again)."""
    _check_tf32_dot()
    _check_ties_to_even(integer=False)
    _check_ties_to_even(integer=True)
