"""Float64 simulation of the window attention's fp32 path on TF32 tensor cores, with the operands as the tensor core
reads them (truncated: the low 13 mantissa bits dropped) and as kernels/_triton.py's `dot` feeds them (rounded to
nearest), against the float64 reference with KERNEL_TOL. No GPU needed: the interpreter's dot is exact in fp32.

    PYTHONPATH=. python tests/kernels/simulate_tf32.py [--windows 2000] [--seed 0]

Per window and head (49 tokens, random q, k, v, bias and dO of unit variance, scale head_dim^-1/2), the kernels'
sequence: S = Q K^T, log2-domain logits with the bias, P = exp2(logits - max), O = (P V) / rowsum; backward from the
normalised P: dP = dO V^T, dV = P^T dO, dS = P (dP - rowsum(P dP)), dQ = scale dS K, dK = scale dS^T Q, d bias = the
sum of dS over windows. Every product's operands pass through the operand rounding; every other value is fp32.
"""

from __future__ import annotations

import argparse
import math

import torch

from tests._utils import KERNEL_TOL, kernel_tol_ratios, tf32

TOKENS = 49  # a 7 x 7 window
HEAD_DIMS = (3, 12, 54, 216)  # the model's smallest and largest of the ATT and FPMA blocks
NAMES = ("out", "dq", "dk", "dv", "dbias")


def truncated(t: torch.Tensor) -> torch.Tensor:
    return tf32(t, nearest=False).double()


def rounded(t: torch.Tensor) -> torch.Tensor:
    return tf32(t).double()


def fp32(t: torch.Tensor) -> torch.Tensor:
    return t.float().double()


def reference(q, k, v, bias, grad_out, scale) -> list[torch.Tensor]:
    leaves = [t.clone().requires_grad_() for t in (q, k, v, bias)]
    out = (leaves[0] @ leaves[1].transpose(1, 2) * scale + leaves[3]).softmax(-1) @ leaves[2]
    out.backward(grad_out)
    return [out.detach()] + [t.grad for t in leaves]


def kernel(q, k, v, bias, grad_out, scale, operand) -> list[torch.Tensor]:
    """The kernels' sequence with `operand` applied to every product's operands."""
    def mm(a, b):
        return fp32(operand(a) @ operand(b))

    logits = fp32(fp32(mm(q, k.transpose(1, 2)) * scale * math.log2(math.e)) + fp32(bias * math.log2(math.e)))
    p = fp32(torch.exp2(logits - logits.amax(-1, keepdim=True)))
    inv_sum = fp32(1 / p.sum(-1, keepdim=True))
    out = fp32(mm(p, v) * inv_sum)
    p = fp32(p * inv_sum)
    grad_p = mm(grad_out, v.transpose(1, 2))
    grad_s = fp32(p * (grad_p - (p * grad_p).sum(-1, keepdim=True)))
    return [out, fp32(mm(grad_s, k) * scale), fp32(mm(grad_s.transpose(1, 2), q) * scale),
            mm(p.transpose(1, 2), grad_out), fp32(grad_s.sum(0))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    print(f"KERNEL_TOL float32: elementwise ratio <= 1, relative RMSE <= {KERNEL_TOL[torch.float32]['rel_rmse']:.0e}")
    for head_dim in HEAD_DIMS:
        q, k, v, grad_out = (fp32(torch.randn(args.windows, TOKENS, head_dim)) for _ in range(4))
        bias = fp32(torch.randn(TOKENS, TOKENS))
        expected = reference(q, k, v, bias, grad_out, head_dim**-0.5)
        for name, operand in (("truncated", truncated), ("rounded", rounded)):
            results = kernel(q, k, v, bias, grad_out, head_dim**-0.5, operand)
            scores = (kernel_tol_ratios(a, e, torch.float32) for a, e in zip(results, expected))
            print(f"head dim {head_dim:3d}, {name:9s} operands: " + ", ".join(
                f"{n} {worst:.2f}x / {rmse:.1e}" for n, (worst, rmse) in zip(NAMES, scores)))


if __name__ == "__main__":
    main()
