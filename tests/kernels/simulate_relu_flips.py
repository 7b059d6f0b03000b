"""Float64 simulation of the concat conv's half-precision GPU path at test_gpu_hrnet_head's shapes (HRNet-W18's head,
18 + 36 + 72 + 144 -> 270 channels with bias, residual and ReLU): how many ReLU decisions its roundings flip, and
what the parity check makes of them with the reference's own mask or with the kernel's. No GPU needed.

    PYTHONPATH=. python tests/kernels/simulate_relu_flips.py [--dtype bf16|fp16] [--batch 4] [--seed 0]

Simulated roundings: inputs, weight, bias, residual and upstream gradient in the dtype; the low-resolution products
Y_g rounded once, to bf16 for bf16 data, else to the TF32 operands of the epilogue's products, to nearest
(kernels/_triton.py's `dot`; "truncated": as the tensor core would read them unrounded); outputs, D_g and every
gradient rounded once to the dtype; everything else exact (the bilinear weights of these power-of-two factors are
exact in bf16). `eager` instead rounds the upsampled inputs to the dtype and mixes them exactly, as torch's
interpolate + cuDNN convolution do.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from tests._utils import kernel_tol_ratios, tf32

SPECS = [(18, 120, 160), (36, 60, 80), (72, 30, 40), (144, 15, 20)]  # (channels, height, width) per input
OUT_CHANNELS = 270
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=DTYPES, default="bf16")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    dtype = DTYPES[args.dtype]
    torch.manual_seed(args.seed)

    def rounded(t):
        return t.to(dtype).double()

    xs = [rounded(torch.randn(args.batch, c, h, w)) for c, h, w in SPECS]
    size = SPECS[0][1:]
    cin = sum(c for c, _, _ in SPECS)
    weight = rounded(torch.randn(OUT_CHANNELS, cin) / cin**0.5)
    bias = rounded(torch.randn(OUT_CHANNELS))[:, None, None]
    residual, upstream = (rounded(torch.randn(args.batch, OUT_CHANNELS, *size)) for _ in range(2))
    starts = torch.tensor([0] + [c for c, _, _ in SPECS]).cumsum(0).tolist()
    weights = [weight[:, a:b] for a, b in zip(starts, starts[1:])]

    def up(t):
        return F.interpolate(t, size=size, mode="bilinear", align_corners=False)

    def mix(w, x):
        return torch.einsum("mc,bchw->bmhw", w, x)

    # The float64 reference: its pre-activation Z and the gradients of the linear part for an upstream gradient.
    leaves = [t.clone().requires_grad_() for t in (*xs, weight, bias, residual)]
    z = mix(leaves[4], torch.cat([leaves[0], *map(up, leaves[1:4])], 1)) + leaves[5] + leaves[6]

    def kernel(nearest):
        def low_product(w, x):  # Y_g as the epilogue reads it (kernels/concat_conv.py's _low_resolution_dtype)
            y = mix(w, x)
            return rounded(y) if dtype == torch.bfloat16 else tf32(y.float(), nearest).double()

        return mix(weights[0], xs[0]) + sum(up(low_product(w, x)) for w, x in zip(weights[1:], xs[1:]))

    products = {"eager": mix(weight, torch.cat([xs[0], *(rounded(up(x)) for x in xs[1:])], 1)), "kernel": kernel(True)}
    if dtype != torch.bfloat16:
        products["kernel, TF32 operands truncated"] = kernel(False)
    outs = {path: rounded(torch.relu(product + bias + residual)) for path, product in products.items()}
    for path, out in outs.items():
        flips = ((out > 0) != (z > 0)).sum().item()
        print(f"{path} ({args.dtype}, batch {args.batch}): {flips} of {out.numel()} ReLU decisions flipped")

    # The kernel's backward: dZ from its own output's sign, D_g and every gradient rounded once.
    grad_z = upstream * (outs["kernel"] > 0)
    adjoints = [grad_z] + [rounded(torch.autograd.functional.vjp(up, grad_z.new_zeros(*grad_z.shape[:2], h, w),
                                                                 grad_z)[1]) for _, h, w in SPECS[1:]]
    got = [rounded(torch.einsum("mc,bmhw->bchw", w, d)) for w, d in zip(weights, adjoints)]
    got += [rounded(torch.cat([torch.einsum("bmhw,bchw->mc", d, x) for d, x in zip(adjoints, xs)], 1)),
            rounded(grad_z.sum((0, 2, 3)))[:, None, None], grad_z]
    print(f"kernel's output against the reference's: worst elementwise error "
          f"{kernel_tol_ratios(outs['kernel'], z.detach().relu(), dtype)[0]:.2f} x KERNEL_TOL's")
    for mask, reference_grad_z in (("reference's", upstream * (z > 0)), ("kernel's", grad_z)):
        expected = torch.autograd.grad(z, leaves, reference_grad_z, retain_graph=True)
        worst = max(kernel_tol_ratios(a, e, dtype)[0] for a, e in zip(got, expected))
        print(f"kernel's gradients against the reference's with the {mask} ReLU mask: worst elementwise error "
              f"{worst:.2f} x KERNEL_TOL's")


if __name__ == "__main__":
    main()
