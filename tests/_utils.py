"""Comparison helpers with failure messages that say how far off a result is."""

from __future__ import annotations

import torch

# (atol, rtol) when both sides are computed in float64: only summation order differs.
FLOAT64_TOL = dict(atol=1e-10, rtol=1e-8)

# A Triton kernel run in `dtype` against the reference in float64 on the same (rounded) inputs. Set from the
# precision of the path, not from results: float32 inputs multiply on TF32 tensor cores on a GPU (10-bit mantissa,
# ~5e-4 per product); float16 rounds outputs to 2^-11; bfloat16 to 2^-8 (and operands to 8 bits). atol is relative
# to the largest |expected| of the tensor, so one table serves outputs and gradients of any magnitude.
KERNEL_TOL = {
    torch.float32: dict(atol=1e-3, rtol=1e-3, rel_rmse=1e-3),
    torch.float16: dict(atol=5e-3, rtol=5e-3, rel_rmse=2e-3),
    torch.bfloat16: dict(atol=2e-2, rtol=2e-2, rel_rmse=1e-2),
}


TF32_DROPPED_BITS = 13  # fp32 keeps 23 mantissa bits, TF32 10


def tf32(x: torch.Tensor, nearest: bool = True) -> torch.Tensor:
    """fp32 x as a TF32 tensor-core operand (in fp32): its low 13 mantissa bits cleared, rounded to nearest, ties to
    even (what kernels/_triton.py's `dot` feeds the tensor core), or truncated (what the tensor core reads of an
    operand fed unrounded)."""
    bits = x.float().view(torch.int32)
    if nearest:
        bits = bits + (1 << (TF32_DROPPED_BITS - 1)) - 1 + ((bits >> TF32_DROPPED_BITS) & 1)
    return bits.bitwise_and(~((1 << TF32_DROPPED_BITS) - 1)).view(torch.float32)


def kernel_tol_ratios(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> tuple[float, float]:
    """(the worst elementwise |a - e| / (atol max|e| + rtol |e|), the relative RMSE) with KERNEL_TOL[dtype]:
    `assert_kernel_close` fails where the first exceeds 1 or the second KERNEL_TOL[dtype]["rel_rmse"]."""
    tol = KERNEL_TOL[dtype]
    a, e = actual.double(), expected.double()
    allowed = tol["atol"] * e.abs().max() + tol["rtol"] * e.abs()
    rel_rmse = (a - e).pow(2).mean().sqrt() / e.pow(2).mean().sqrt()
    return ((a - e).abs() / allowed).max().item(), rel_rmse.item()


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


def record_calls(monkeypatch, module, names, calls: list | None = None) -> list:
    """Wraps the functions `names` of `module` (looked up at call time by their callers) so that each call appends
    its name to `calls` (a new list by default), which is returned."""
    calls = [] if calls is None else calls
    for name in names:
        function = getattr(module, name)

        def recorded(*args, name=name, function=function, **kwargs):
            calls.append(name)
            return function(*args, **kwargs)

        monkeypatch.setattr(module, name, recorded)
    return calls


def record_implementations(monkeypatch) -> list[tuple[str, str]]:
    """Wraps both implementations of every op (the reference and the Triton function, looked up by `get_op` when a
    layer is built) so that each call appends (backend, op) to the returned list. Build the layers after this."""
    import importlib

    from kernels import dispatch

    calls: list[tuple[str, str]] = []
    for op, module in dispatch.OP_MODULES.items():
        for backend, path, name in (("torch", f"kernels.reference.{module}", f"{op}_ref"),
                                    ("triton", f"kernels.{module}", op)):
            target = importlib.import_module(path)
            function = getattr(target, name)

            def recorded(*args, function=function, key=(backend, op), **kwargs):
                calls.append(key)
                return function(*args, **kwargs)

            monkeypatch.setattr(target, name, recorded)
    return calls


def grads(*tensors: torch.Tensor):
    """The .grad of each leaf (zeros where autograd left None: the output does not depend on it), cloned, then
    cleared so that the next backward starts from zero."""
    out = []
    for t in tensors:
        out.append(torch.zeros_like(t) if t.grad is None else t.grad.clone())
        t.grad = None
    return out


def assert_kernel_close(name: str, actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    """`actual` (a kernel's result in `dtype`) against `expected` (the float64 reference), with KERNEL_TOL[dtype]:
    elementwise |a - e| <= atol * max|e| + rtol * |e|, and the relative RMSE below its bound. NaN fails."""
    tol = KERNEL_TOL[dtype]
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    scale = e.abs().max().clamp_min(1e-30) if e.numel() else torch.tensor(1.0, dtype=torch.float64)
    assert_close(name, a / scale, e / scale, atol=tol["atol"], rtol=tol["rtol"])
    if e.numel():
        rel_rmse = ((a - e).pow(2).mean().sqrt() / e.pow(2).mean().sqrt().clamp_min(1e-30)).item()
        assert rel_rmse <= tol["rel_rmse"], f"{name}: relative RMSE {rel_rmse:.3e} > {tol['rel_rmse']:.0e}"


def same_outputs(first: torch.nn.Module, second: torch.nn.Module, image: torch.Tensor) -> bool:
    """Whether two models in eval mode compute bitwise the same outputs for `image`, deep supervision included."""
    with torch.no_grad():
        a, b = first.eval()(image), second.eval()(image)
    flat = torch.utils._pytree.tree_flatten
    (leaves_a, spec_a), (leaves_b, spec_b) = flat(a), flat(b)
    return spec_a == spec_b and all(torch.equal(x, y) for x, y in zip(leaves_a, leaves_b))
