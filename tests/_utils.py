"""Comparison helpers with failure messages that say how far off a result is."""

from __future__ import annotations

import torch

# (atol, rtol) when both sides are computed in float64: only summation order differs.
FLOAT64_TOL = dict(atol=1e-10, rtol=1e-8)


def assert_close(name: str, actual: torch.Tensor, expected: torch.Tensor, *, atol: float, rtol: float) -> None:
    """torch.testing.assert_close (NaN fails) with the max abs error and the relative RMSE in the message."""
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    err = (a - e).abs()
    max_abs = err.max().item() if err.numel() else 0.0
    rel_rmse = (err.pow(2).mean().sqrt() / e.pow(2).mean().sqrt().clamp_min(1e-30)).item() if err.numel() else 0.0
    torch.testing.assert_close(
        a, e, atol=atol, rtol=rtol, msg=lambda m: f"{name}: max abs err {max_abs:.3e}, rel RMSE {rel_rmse:.3e}\n{m}"
    )


def grads(*tensors: torch.Tensor):
    """The .grad of each leaf (zeros where autograd left None: the output does not depend on it), cloned, then
    cleared so that the next backward starts from zero."""
    out = []
    for t in tensors:
        out.append(torch.zeros_like(t) if t.grad is None else t.grad.clone())
        t.grad = None
    return out
