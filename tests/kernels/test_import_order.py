"""All three Triton ops run in the interpreter when triton was imported before `kernels` (timm and torch._dynamo
import it): Triton's own @jit library functions are then compiled-only, so the kernels must not call them
(kernels/_triton.py). Each op runs forward and backward in a fresh process and is compared with its reference."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import timm  # imports triton (through torch._dynamo) before anything has set TRITON_INTERPRET
import torch
import kernels
from tests._utils import assert_kernel_close


def leaves_and_call(op):
    \"\"\"Fresh leaf tensors (the same values at every call) and the op's arguments built from them.\"\"\"
    torch.manual_seed(0)
    if op == "linear_cross_attention":
        leaves = [torch.randn(1, 4, 9), torch.randn(1, 4, 7), torch.randn(1, 5, 7)]
        return leaves, lambda q, k, v: (q, k, v), {}
    if op == "window_attention":
        leaves = [torch.randn(1, 5, 6, 3 * 8), 0.1 * torch.randn(2, 9, 9), torch.randn(3 * 8)]
        return leaves, lambda *t: t, dict(num_heads=2, window_size=3, shift_size=1)
    leaves = [torch.randn(1, 4, 6, 8), torch.randn(1, 3, 3, 4), torch.randn(5, 7), torch.randn(5)]
    return leaves, lambda a, b, w, bias: ([a, b], w, bias), dict(activation="relu")


for op in ("linear_cross_attention", "window_attention", "concat_conv1x1"):
    results = {}
    for backend in ("triton", "torch"):
        leaves, arguments, kwargs = leaves_and_call(op)
        leaves = [t.requires_grad_() for t in leaves]
        out = kernels.get_op(op, backend)(*arguments(*leaves), **kwargs)
        out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(1)))
        results[backend] = [out] + [t.grad for t in leaves]
    for i, (actual, expected) in enumerate(zip(results["triton"], results["torch"])):
        assert_kernel_close(f"{op} result {i}", actual, expected.double(), torch.float32)
    print(op, "ok")
"""


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter runs only without CUDA")
def test_every_op_runs_in_the_interpreter_when_triton_was_imported_first():
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.split() == ["linear_cross_attention", "ok", "window_attention", "ok", "concat_conv1x1", "ok"]
