"""linear_cross_attention_ref against the explicit L x L attention-weights matrix, in float64."""

import pytest
import torch
import torch.nn.functional as F

from kernels.reference import linear_cross_attention_ref
from tests._utils import FLOAT64_TOL, assert_close, grads


def explicit_attention(q, k, v, feature_map="softplus", eps=1e-12):
    """out[:, :, i] = sum_a A[i, a] v[:, :, a] / max(sum_a A[i, a], eps) with A[i, a] = phi(q_i) . phi(k_a)."""
    phi = F.softplus if feature_map == "softplus" else (lambda x: x)
    weights = torch.einsum("bdi,bda->bia", phi(q), phi(k))  # (B, Lq, Ls)
    numerator = torch.einsum("bia,bea->bei", weights, v)
    return numerator / weights.sum(dim=2).clamp_min(eps)[:, None, :]


SHAPES = [  # (B, D, E, Lq, Ls)
    pytest.param(2, 8, 8, 16, 16, id="self-Lq=Ls"),
    pytest.param(2, 6, 10, 37, 11, id="cross-Lq>Ls-D!=E"),
    pytest.param(1, 12, 5, 7, 53, id="cross-Lq<Ls-prime"),
    pytest.param(3, 36, 36, 48, 12, id="model-width-36"),
    pytest.param(1, 1, 1, 1, 1, id="one-everything"),
]


@pytest.mark.parametrize("batch, d, e, lq, ls", SHAPES)
@pytest.mark.parametrize("feature_map", ["softplus", "identity"])
def test_matches_explicit_weights(batch, d, e, lq, ls, feature_map):
    q = torch.randn(batch, d, lq, dtype=torch.float64)
    k = torch.randn(batch, d, ls, dtype=torch.float64)
    if feature_map == "identity":  # keep phi(q) . phi(k) > 0 so the weights are a proper average
        q, k = q.abs() + 0.1, k.abs() + 0.1
    v = torch.randn(batch, e, ls, dtype=torch.float64)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    ref_leaves = [t.clone().requires_grad_() for t in (q, k, v)]

    out = linear_cross_attention_ref(*leaves, feature_map=feature_map)
    expected = explicit_attention(*ref_leaves, feature_map=feature_map)
    assert_close("out", out, expected, **FLOAT64_TOL)

    upstream = torch.randn_like(expected)
    out.backward(upstream)
    expected.backward(upstream)
    for name, got, want in zip("qkv", grads(*leaves), grads(*ref_leaves)):
        assert_close(f"d{name}", got, want, **FLOAT64_TOL)


def test_eps_guards_a_vanishing_denominator():
    q = torch.zeros(1, 4, 3, dtype=torch.float64)  # identity features of zero: denominator 0
    k = torch.randn(1, 4, 5, dtype=torch.float64)
    v = torch.randn(1, 2, 5, dtype=torch.float64)
    out = linear_cross_attention_ref(q, k, v, feature_map="identity", eps=1e-6)
    assert torch.equal(out, torch.zeros_like(out))


def test_extreme_preactivations_stay_finite_and_convex():
    """Softplus of -30 is ~1e-13 (tiny features), of +30 is 30: the output remains a convex combination of v."""
    for level in (-30.0, 30.0):
        q = level + torch.randn(2, 8, 20)
        k = level + torch.randn(2, 8, 30)
        v = torch.randn(2, 4, 30)
        out = linear_cross_attention_ref(q, k, v)
        assert torch.isfinite(out).all()
        assert (out <= v.amax(dim=2, keepdim=True) + 1e-5).all() and (out >= v.amin(dim=2, keepdim=True) - 1e-5).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_accumulate_in_float32(dtype):
    """A long source whose normaliser overflows float16 (sum of softplus(8) over 20,000 tokens is ~1.6e5)."""
    q = (8 + torch.randn(1, 4, 16)).to(dtype)
    k = (8 + torch.randn(1, 4, 20000)).to(dtype)
    v = torch.randn(1, 3, 20000).to(dtype)
    out = linear_cross_attention_ref(q, k, v)
    assert out.dtype == dtype
    expected = explicit_attention(q.double(), k.double(), v.double())
    assert_close("out", out, expected, atol=2e-2, rtol=2e-2)
