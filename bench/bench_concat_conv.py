"""Benchmark of `kernels.concat_conv1x1` (KERNELS.md part C): bilinear upsampling + concatenation + 1x1 convolution
+ bias (+ residual, ReLU), forward, backward and forward+backward.

Providers, side by side in one run:
    eager      F.interpolate + torch.cat + F.conv2d + add + ReLU in NCHW (the reference, cuDNN convolution)
    eager_cl   the same with channels-last inputs, weight and residual (cuDNN's NHWC kernels)
    compile    torch.compile of the eager function (NCHW)
    triton     the Triton op
Cases: the model's calls (bench/shapes.py; NYUD-v2 480 x 640, batch 8): SCA-MTL's CSAM aggregation, 13 segments
[F1, CA, F1, CA, F1, CA, F2, CA, F2, CA, F3, CA, F4] of 36 x 6 @ 120x160, 72 x 4 @ 60x80, 144 x 2 @ 30x40,
288 @ 15x20 (F1 three times, F2 twice: the same tensors), 1080 -> 1080 + bias; and each task's classifier,
1080 @ 120x160 -> n_t + bias. --quick: the aggregation, bf16 only.
Throughput: minimal bytes and FLOPs from bench/costs.py (each unique input read once at its own resolution; the FLOPs
of each segment multiplied at its own resolution), the same counts for every provider. The CPU dry run's cases
(`specs`) are the aggregation, HRNet's resize-concat head and a residual block at divided channels and sizes;
`counts` gives their minimal bytes (e bytes per element, B batch, M output channels, P = H W output pixels, X the
unique inputs at their own resolution, Cin the weight's input channels, repeats included) and materialised FLOPs:
    FLOPs   fwd 2 B M Cin P, bwd twice that (d inputs and d weight), fwdbwd three times.
    bytes   fwd  e (|X| + M Cin + M + B M P [+ B M P residual])          (read inputs, weight, bias; write out)
            bwd  e (B M P [+ B M P ReLU mask from out] + 2 |X| + 2 M Cin + M [+ B M P d residual])
                 (read dY, the mask, X and W; write d X, d W, d bias, d residual)
            fwdbwd the sum of both.
TFLOP/s are against the dense bf16 (or TF32 for fp32) tensor-core peak and GB/s against HBM bandwidth
(bench/_common.py); torch.backends.cudnn.allow_tf32 is recorded with every row. Times: median and p20/p80 of
triton.testing.do_bench, L2 flushed; peak memory of one forward+backward beyond the inputs.

    python bench/bench_concat_conv.py [--quick] [--dry-run]
"""

from __future__ import annotations

import argparse
import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make `kernels` and `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import call_case, cuda_or_exit, measure, plot, print_table, save  # noqa: E402
from bench.shapes import OpCall, make_args, model_op_calls  # noqa: E402
from kernels.reference.concat_conv import concat_conv1x1_ref  # noqa: E402

OP = "concat_conv1x1"
OUT_SIZE = (120, 160)
AGGREGATION_CHANNELS = (36, 72, 144, 288)
AGGREGATION_SIZES = ((120, 160), (60, 80), (30, 40), (15, 20))
DRY_RUN_CHANNELS = 24  # the CPU dry run divides channel counts by this
DRY_RUN_SIDES = 16  # and map sides by this
DRY_RUN_BATCH = 2


@dataclass(frozen=True)
class Spec:
    """One case: the unique inputs (C, H, W), the segment order (indices, repeats = the same tensor), the output."""

    name: str
    inputs: tuple
    order: tuple
    out_channels: int
    residual: bool = False
    relu: bool = False
    bias: bool = True


def aggregation_spec(channels=AGGREGATION_CHANNELS, sizes=AGGREGATION_SIZES) -> Spec:
    """F1..F4 then the six cross-attention outputs CA(k <- l) at F_k's size, in the model's segment order."""
    features = [(c, *hw) for c, hw in zip(channels, sizes)]
    attention, order = [], []
    for target in range(3):
        for _source in range(target + 1, 4):
            attention.append(features[target])
            order += [target, 4 + len(attention) - 1]
    order.append(3)
    inputs = tuple(features + attention)
    return Spec("aggregation", inputs, tuple(order), sum(inputs[i][0] for i in order))


def specs(channel_divisor: int = 1, side_divisor: int = 1) -> list[Spec]:
    """The benchmark cases, channel counts and map sides divided by the divisors (the CPU dry run)."""

    def hw(size):
        return tuple(max(1, s // side_divisor) for s in size)

    def ch(c):
        return max(1, c // channel_divisor)

    aggregation = aggregation_spec([ch(c) for c in AGGREGATION_CHANNELS], [hw(s) for s in AGGREGATION_SIZES])
    classifier_in = aggregation.out_channels
    hrnet = [(ch(18), *hw(OUT_SIZE)), (ch(36), *hw((60, 80))), (ch(72), *hw((30, 40))), (ch(144), *hw((15, 20)))]
    return [
        aggregation,
        Spec("hrnet-head", tuple(hrnet), (0, 1, 2, 3), ch(270), relu=True),
        Spec("classifier", ((classifier_in, *hw(OUT_SIZE)),), (0,), ch(40)),
        Spec("residual", ((ch(128), *hw(OUT_SIZE)), (ch(128), *hw((60, 80)))), (0, 1), ch(256), residual=True,
             relu=True),
    ]


def counts(spec: Spec, dtype: torch.dtype, batch: int) -> tuple[dict, dict]:
    """Minimal bytes and the (materialised) FLOPs of each mode, as in the module docstring."""
    e = torch.tensor([], dtype=dtype).element_size()
    height, width = max((s[1:] for s in spec.inputs), key=lambda s: s[0] * s[1])
    pixels = batch * height * width
    unique = sum(batch * c * h * w for c, h, w in spec.inputs)
    cin = sum(spec.inputs[i][0] for i in spec.order)
    out = spec.out_channels * pixels
    weight = spec.out_channels * cin
    bias = spec.out_channels if spec.bias else 0
    fwd_bytes = e * (unique + weight + bias + out + (out if spec.residual else 0))
    bwd_bytes = e * (out + (out if spec.relu else 0) + 2 * unique + 2 * weight + bias + (out if spec.residual else 0))
    fwd_flops = 2 * spec.out_channels * cin * pixels
    return (dict(fwd=fwd_bytes, bwd=bwd_bytes, fwdbwd=fwd_bytes + bwd_bytes),
            dict(fwd=fwd_flops, bwd=2 * fwd_flops, fwdbwd=3 * fwd_flops))


def make_tensors(spec: Spec, dtype: torch.dtype, device: str, batch: int) -> dict:
    """Fresh tensors of the case: unique inputs, weight (Cout, Cin, 1, 1), bias, residual (None where absent)."""
    torch.manual_seed(0)
    uniques = [torch.randn(batch, c, h, w, dtype=dtype, device=device) for c, h, w in spec.inputs]
    cin = sum(uniques[i].shape[1] for i in spec.order)
    size = max((tuple(x.shape[2:]) for x in uniques), key=lambda s: s[0] * s[1])
    tensors = dict(
        uniques=uniques,
        weight=torch.randn(spec.out_channels, cin, 1, 1, dtype=dtype, device=device) / cin**0.5,
        bias=torch.randn(spec.out_channels, dtype=dtype, device=device) if spec.bias else None,
        residual=torch.randn(batch, spec.out_channels, *size, dtype=dtype, device=device) if spec.residual else None,
    )
    return tensors


def _leaves(tensors: dict) -> list[torch.Tensor]:
    return [t for t in (*tensors["uniques"], tensors["weight"], tensors["bias"], tensors["residual"]) if t is not None]


def _channels_last(tensors: dict) -> dict:
    def convert(t):
        return t.to(memory_format=torch.channels_last) if t is not None and t.dim() == 4 else t

    return dict(uniques=[convert(x) for x in tensors["uniques"]], weight=convert(tensors["weight"]),
                bias=tensors["bias"], residual=convert(tensors["residual"]))


def implementations(compile_backend: str | None) -> dict:
    """Provider -> (the op, whether its tensors are channels-last); torch.compile only with a `compile_backend`."""
    from kernels import get_op  # through the dispatcher: it switches the interpreter on first where there is no GPU

    found = {"eager": (concat_conv1x1_ref, False), "eager_cl": (concat_conv1x1_ref, True)}
    if compile_backend:
        compiled = torch.compile(concat_conv1x1_ref.__wrapped__, backend=compile_backend, dynamic=False)
        found["compile"] = (compiled, False)
    found["triton"] = (get_op(OP, "triton"), False)
    return found


def providers(spec: Spec, dtype: torch.dtype, device: str, batch: int, compile_backend: str | None) -> dict:
    """provider -> (forward callable returning the output, its leaves); each provider has its own leaves."""
    activation = "relu" if spec.relu else None
    found = {}
    for name, (fn, channels_last) in implementations(compile_backend).items():
        tensors = make_tensors(spec, dtype, device, batch)
        tensors = _channels_last(tensors) if channels_last else tensors
        for leaf in _leaves(tensors):
            leaf.requires_grad_()
        inputs = [tensors["uniques"][i] for i in spec.order]
        found[name] = (functools.partial(fn, inputs, tensors["weight"], tensors["bias"], residual=tensors["residual"],
                                         activation=activation), _leaves(tensors))
    return found


def call_providers(call: OpCall, dtype: torch.dtype, device, compile_backend: str | None = None) -> dict:
    """`providers` at one of the model's calls (bench/shapes.py), each provider with its own inputs."""
    found = {}
    for name, (fn, channels_last) in implementations(compile_backend).items():
        args, kwargs = make_args(call, dtype, device)
        distinct = {}  # a repeated input stays one tensor (one leaf) after the conversion

        def leaf(t, channels_last=channels_last, distinct=distinct):
            if id(t) not in distinct:
                converted = t.to(memory_format=torch.channels_last) if channels_last and t.dim() == 4 else t
                distinct[id(t)] = converted.requires_grad_()
            return distinct[id(t)]

        args = [[leaf(t) for t in arg] if isinstance(arg, list) else leaf(arg) if torch.is_tensor(arg) else arg
                for arg in args]
        found[name] = (functools.partial(fn, *args, **kwargs), list(distinct.values()))
    return found


def dry_run() -> None:
    """Every provider but torch.compile on tiny shapes on the CPU (the interpreter for Triton): one forward and one
    backward each through the same construction code, outputs and gradients finite."""
    for spec in specs(DRY_RUN_CHANNELS, DRY_RUN_SIDES):
        for name, (forward, leaves) in providers(spec, torch.float32, "cpu", DRY_RUN_BATCH, None).items():
            out = forward()
            out.backward(torch.randn_like(out))
            finite = torch.isfinite(out).all() and all(torch.isfinite(leaf.grad).all() for leaf in leaves)
            assert finite, f"{spec.name}/{name}: non-finite output or gradient"
        nbytes, flops = counts(spec, torch.float32, DRY_RUN_BATCH)
        assert all(v > 0 for v in (*nbytes.values(), *flops.values())), f"{spec.name}: empty byte or FLOP count"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the aggregation only, bf16 only")
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU, no timing (CI)")
    args = parser.parse_args()
    if args.dry_run:
        dry_run()
        print("dry run: every provider ran forward and backward on the CPU with finite results")
        return
    cuda_or_exit(__file__)
    calls = [call for call in model_op_calls() if call.op == OP]
    cases = calls[:1] if args.quick else calls
    dtypes = (torch.bfloat16,) if args.quick else (torch.bfloat16, torch.float32)
    rows = []
    for dtype in dtypes:
        for call in cases:
            case = call_case(call, dtype)
            case.params["cudnn_tf32"] = torch.backends.cudnn.allow_tf32
            for provider, (forward, leaves) in call_providers(call, dtype, "cuda", "inductor").items():
                rows += measure(case, provider, forward, leaves)
            torch.cuda.empty_cache()
    print_table(rows)
    path = save(rows)
    plot(rows, path.with_name(path.stem + "-concat_conv.png"), OP)
    print(f"results appended to {path}")

if __name__ == "__main__":
    main()
