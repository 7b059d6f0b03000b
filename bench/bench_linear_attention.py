"""Benchmark of `kernels.linear_cross_attention` (KERNELS.md part A) at the model's calls (bench/shapes.py, NYUD-v2
480 x 640, batch 8): a CTAM scale's 6 ordered task pairs stacked along the batch (48), the 3 tasks' CSAM attentions of
one scale pair likewise (24).

Providers side by side in one run:
    torch          the reference (kernels/reference/linear_attention.py), eager
    torch_compile  torch.compile of the reference
    triton         the Triton op through autograd (kernels/linear_attention.py)
    triton_graph   the Triton launchers alone, replayed from a CUDA graph (no Python launch overhead: the
                   bandwidth the kernels reach, KERNELS.md's 60% goal)
Modes: forward, backward (from a retained graph; for triton_graph the backward launcher alone) and
forward+backward. Times are the median and p20/p80 of triton.testing.do_bench (L2 flushed) or
do_bench_cudagraph. Throughput is against the minimal bytes (bench/costs.py), which count each input read once and
each output written once (bf16 I/O: b = 2; fp32: b = 4; features and the fp32 state never leave the chip):
    forward   b B (Lq (D + E) + Ls (D + E))       read q, k, v; write out
    backward  b B (Lq (2D + E) + Ls (2D + 2E))    read q, dO, k, v; write dq, dk, dv
FLOPs (the state products; D = E here): forward 2 B D E (Lq + Ls), backward 2 B D E (3 Lq + 2 Ls).

    python bench/bench_linear_attention.py [--quick] [--dtypes bf16,fp32]
    python bench/bench_linear_attention.py --dry-run     # CPU, tiny shapes, no timing: checks the script
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    RESULTS_DIR,
    Case,
    call_case,
    cuda_or_exit,
    device_slug,
    graph_timing,
    measure,
    measure_calls,
    plot,
    print_table,
    save,
)
from bench.shapes import OpCall, make_args, model_op_calls  # noqa: E402

OP = "linear_cross_attention"
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


@dataclass(frozen=True)
class Shape:
    name: str
    width: int  # D = E (cross attention runs at the target's width)
    lq: int
    ls: int
    stacked: int  # the model's attentions stacked along the batch in this call


DRY_RUN_SHAPES = [Shape("dry-self-40x8", 8, 40, 40, 1), Shape("dry-cross-40<-17x20", 20, 40, 17, 1)]


def minimal_bytes(shape: Shape, batch: int, dtype: torch.dtype) -> dict:
    b = torch.finfo(dtype).bits // 8
    d = e = shape.width
    fwd = b * batch * (shape.lq * (d + e) + shape.ls * (d + e))
    bwd = b * batch * (shape.lq * (2 * d + e) + shape.ls * (2 * d + 2 * e))
    return {"fwd": fwd, "bwd": bwd, "fwdbwd": fwd + bwd}


def flops(shape: Shape, batch: int) -> dict:
    d = e = shape.width
    fwd = 2 * batch * d * e * (shape.lq + shape.ls)
    bwd = 2 * batch * d * e * (3 * shape.lq + 2 * shape.ls)
    return {"fwd": fwd, "bwd": bwd, "fwdbwd": fwd + bwd}


def make_case(shape: Shape, batch: int, dtype: torch.dtype, device: torch.device):
    """The Case and its leaves: q, k pre-activations and relu values v, as (B, C, L) maps (L contiguous)."""
    torch.manual_seed(0)
    q = torch.randn(batch, shape.width, shape.lq, device=device, dtype=dtype, requires_grad=True)
    k = torch.randn(batch, shape.width, shape.ls, device=device, dtype=dtype, requires_grad=True)
    v = torch.randn(batch, shape.width, shape.ls, device=device).relu().to(dtype).requires_grad_()
    case = Case(op=OP, name=shape.name, dtype=dtype, bytes=minimal_bytes(shape, batch, dtype),
                flops=flops(shape, batch),
                params=dict(batch=batch, d=shape.width, e=shape.width, lq=shape.lq, ls=shape.ls))
    return case, (q, k, v)


def providers(compile_backend: str | None) -> dict[str, Callable]:
    """Provider name -> op(q, k, v) returning the output (differentiable); torch.compile of the reference with
    `compile_backend` unless that is None."""
    from kernels.linear_attention import linear_cross_attention
    from kernels.reference import linear_cross_attention_ref

    ops = {"torch": linear_cross_attention_ref}
    if compile_backend:
        ops["torch_compile"] = torch.compile(linear_cross_attention_ref, backend=compile_backend, dynamic=False)
    ops["triton"] = linear_cross_attention
    return ops


def call_providers(call: OpCall, dtype: torch.dtype, device, compile_backend: str | None = None) -> dict:
    """Provider name -> (forward, leaves) at the model call's shapes, the inputs shared by all providers: q, k and v
    as the model passes them, each a list of parts (one per stacked attention)."""
    args, kwargs = make_args(call, dtype, device, requires_grad=True)
    leaves = [t for parts in launcher_inputs(args) for t in parts]
    return {name: (functools.partial(op, *args, **kwargs), leaves) for name, op in providers(compile_backend).items()}


def launcher_inputs(args: tuple) -> tuple[list, list, list]:
    """q, k, v of an op call as the launchers take them: lists of parts (a tensor is one part)."""
    return tuple(list(arg) if isinstance(arg, (list, tuple)) else [arg] for arg in args[:3])


def graph_rows(case: Case, call: OpCall) -> list[dict]:
    """The Triton launchers alone, replayed from a CUDA graph: forward, backward and both."""
    from kernels.linear_attention import linear_cross_attention_bwd, linear_cross_attention_fwd

    q, k, v = launcher_inputs(make_args(call, case.dtype, "cuda")[0])
    out, *saved = linear_cross_attention_fwd(q, k, v, "softplus", 1e-12)
    upstream = torch.randn_like(out)
    calls = {
        "fwd": (lambda: linear_cross_attention_fwd(q, k, v, "softplus", 1e-12), None),
        "bwd": (lambda: linear_cross_attention_bwd(upstream, q, k, v, *saved, "softplus", 1e-12), None),
        "fwdbwd": (lambda: linear_cross_attention_bwd(upstream, q, k, v,
                                                      *linear_cross_attention_fwd(q, k, v, "softplus", 1e-12)[1:],
                                                      "softplus", 1e-12), None),
    }
    return measure_calls(case, "triton_graph", calls, timer=graph_timing)


def run(calls: list[OpCall], dtypes: list[torch.dtype]) -> list[dict]:
    rows = []
    for dtype in dtypes:
        for call in calls:
            case = call_case(call, dtype)
            for name, (forward, leaves) in call_providers(call, dtype, torch.device("cuda"), "inductor").items():
                rows += measure(case, name, forward, leaves)
            rows += graph_rows(case, call)
            print(f"done: {call.case} {dtype}", flush=True)
    return rows


def dry_run() -> list[dict]:
    """Every provider except torch.compile on tiny CPU shapes (the Triton one through the interpreter): forward
    and backward once, outputs and gradients finite. Returns one row per provider and shape."""
    rows = []
    for shape in DRY_RUN_SHAPES:
        for dtype in DTYPES.values():
            case, leaves = make_case(shape, batch=2, dtype=dtype, device=torch.device("cpu"))
            for name, op in providers(compile_backend=None).items():
                out = op(*leaves)
                out.backward(torch.randn_like(out))
                finite = torch.isfinite(out).all() and all(torch.isfinite(t.grad).all() for t in leaves)
                if not finite:
                    raise RuntimeError(f"{name} gave non-finite results on {shape.name} {dtype}")
                for leaf in leaves:
                    leaf.grad = None
                rows.append({"case": case.name, "provider": name, "dtype": str(dtype), "bytes": case.bytes})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the model's two largest calls only")
    parser.add_argument("--dtypes", default="bf16,fp32", help="comma-separated subset of " + ",".join(DTYPES))
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, no timing")
    args = parser.parse_args()
    if args.dry_run:
        rows = dry_run()
        print(f"dry run: {len(rows)} provider runs, all finite")
        return
    cuda_or_exit(__file__)
    dtypes = [DTYPES[name] for name in args.dtypes.split(",")]
    calls = [call for call in model_op_calls() if call.op == OP]
    largest_first = sorted(calls, key=lambda call: -sum(math.prod(shape) for shape in call.tensors))
    rows = run(largest_first[:2] if args.quick else calls, dtypes)
    path = save(rows)
    plot(rows, RESULTS_DIR / f"{device_slug()}-{OP}.png", OP)
    print_table(rows)
    graphs = [r for r in rows if r["provider"] == "triton_graph" and "measured_bandwidth_share" in r]
    for r in graphs:
        print(f"triton_graph {r['case']} {r['dtype']} {r['mode']}: {r['gb_per_s']:.0f} GB/s, "
              f"{100 * r['measured_bandwidth_share']:.0f}% of the measured copy bandwidth")
    print(f"results appended to {path}")


if __name__ == "__main__":
    main()
