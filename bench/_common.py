"""Shared benchmark machinery (KERNELS.md "Cross-cutting measurement method").

Every provider of a case (the eager reference, torch.compile of it, the Triton op, ...) is timed side by side in one
run, in three modes: forward, backward alone (from a retained graph) and forward+backward. Inputs and upstream
gradients are built outside the timed calls; gradients are reset between repetitions (`grad_to_none`). Times are
the median and the 20th/80th percentiles of `triton.testing.do_bench` (which flushes L2 between runs). Throughput is
the case's minimal bytes (or FLOPs) over the median time, also as a share of the device's datasheet limit. Results are
appended to bench/results/<device>.jsonl with the device, versions, commit and date.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).parent / "results"
QUANTILES = [0.5, 0.2, 0.8]
MODES = ("fwd", "bwd", "fwdbwd")
WARMUP_CALLS = 3

# Datasheet limits (KERNELS.md section 0): HBM bytes/s and dense tensor-core FLOP/s; and the copy bandwidth measured
# on these machines (bytes read plus written).
DEVICE_LIMITS = {
    "H100": dict(bandwidth=3.35e12, measured_bandwidth=3.0e12, bf16_flops=989e12, tf32_flops=495e12),
    "H200": dict(bandwidth=4.8e12, measured_bandwidth=4.3e12, bf16_flops=989e12, tf32_flops=495e12),
}


def cuda_or_exit(script: str) -> None:
    """Benchmarks time GPU kernels: without CUDA, say so and exit with status 0."""
    if not torch.cuda.is_available():
        print(f"{script}: no CUDA device here; the benchmark measures GPU kernels and has nothing to do.")
        sys.exit(0)


def device_name() -> str:
    """The CUDA device's name, or "cpu" (a dry run's rows: no device limits apply)."""
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def device_limits() -> dict | None:
    name = device_name()
    return next((limits for key, limits in DEVICE_LIMITS.items() if key in name), None)


def device_slug(name: str | None = None) -> str:
    """File-name form of a device name (default: this machine's), e.g. nvidia-h100-80gb-hbm3."""
    return "".join(c if c.isalnum() else "-" for c in (name or device_name()).lower()).strip("-")


def git_commit() -> str | None:
    """This checkout's short commit, or None (a copy of the working tree without its git folder)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except OSError:
        return None


def metadata() -> dict:
    import triton

    return {
        "device": device_name(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cudnn": torch.backends.cudnn.version(),
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def timing(fn: Callable[[], object], grad_to_none: Sequence[torch.Tensor] | None = None, *, warmup: int = 25,
           rep: int = 100) -> dict:
    """Median and p20/p80 ms of `fn` by triton.testing.do_bench (L2 flushed between runs), over about `rep` ms of
    repetitions after about `warmup` ms (do_bench's defaults; a time-boxed run passes less)."""
    import triton.testing

    median, p20, p80 = triton.testing.do_bench(fn, warmup=warmup, rep=rep, quantiles=QUANTILES,
                                               grad_to_none=grad_to_none)
    return {"ms": median, "ms_p20": p20, "ms_p80": p80}


def graph_timing(fn: Callable[[], object], grad_to_none: Sequence[torch.Tensor] | None = None, *,
                 rep: int = 20) -> dict:
    """As `timing`, with `fn` captured once in a CUDA graph and replayed: no Python launch overhead."""
    import triton.testing

    median, p20, p80 = triton.testing.do_bench_cudagraph(fn, rep=rep, quantiles=QUANTILES, grad_to_none=grad_to_none)
    return {"ms": median, "ms_p20": p20, "ms_p80": p80}


def peak_memory_bytes(fn: Callable[[], object]) -> int | None:
    """Peak memory allocated by one call beyond what was allocated before it (None without CUDA)."""
    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


@dataclass
class Case:
    """One shape of one op: the minimal bytes and FLOPs of each mode, and where the inputs come from."""

    op: str
    name: str
    dtype: torch.dtype
    bytes: dict  # mode -> minimal bytes moved
    flops: dict = field(default_factory=dict)  # mode -> FLOPs (for compute-bound ops)
    params: dict = field(default_factory=dict)  # shape parameters, recorded with the results


def call_case(call, dtype: torch.dtype) -> Case:
    """The Case of one of the model's op calls (bench/shapes.py's `OpCall`): its minimal bytes and FLOPs per mode from
    bench/costs.py (forward+backward: their sum), and how often one forward pass makes it."""
    from bench.costs import call_costs  # bench/costs.py imports the op benchmarks, which import this module

    costs = call_costs(call, dtype)
    nbytes = {direction: cost[0] for direction, cost in costs.items()}
    flops = {direction: cost[1] for direction, cost in costs.items()}
    return Case(op=call.op, name=call.case, dtype=dtype, bytes={**nbytes, "fwdbwd": sum(nbytes.values())},
                flops={**flops, "fwdbwd": sum(flops.values())}, params=dict(calls_per_step=call.count))


def mode_calls(forward: Callable[[], torch.Tensor], leaves: Sequence[torch.Tensor]) -> dict:
    """mode -> (call, tensors whose gradients to reset between repetitions) for forward, backward alone (from a
    retained graph) and forward+backward. `forward` returns one tensor; `leaves` get the gradients."""
    out = forward()
    upstream = torch.randn_like(out)
    return {
        "fwd": (forward, None),
        "bwd": (lambda: out.backward(upstream, retain_graph=True), leaves),
        "fwdbwd": (lambda: forward().backward(upstream), leaves),
    }


def measure(
    case: Case, provider: str, forward: Callable[[], torch.Tensor], leaves: Sequence[torch.Tensor], **options
) -> list[dict]:
    """Rows for `provider` on `case` in the three modes of `mode_calls` (`options`: those of `measure_calls`)."""
    rows = measure_calls(case, provider, mode_calls(forward, leaves), **options)
    for leaf in leaves:
        leaf.grad = None
    return rows


def measure_calls(case: Case, provider: str, calls: dict, timer: Callable[..., dict] = timing,
                  warmup_calls: int = WARMUP_CALLS) -> list[dict]:
    """One row per mode of `calls` (mode -> (call, gradients to reset)): the `timer`'s times and, where the case
    counts them, bytes and FLOPs over the median time, also as shares of the device's limits."""
    limits = device_limits()
    rows = []
    for mode, (fn, grads) in calls.items():
        for _ in range(warmup_calls):  # torch.compile compiles (and autotunes) on the first calls: keep them out
            fn()
        row = {"op": case.op, "case": case.name, "provider": provider, "mode": mode,
               "dtype": str(case.dtype).replace("torch.", ""), **case.params, **timer(fn, grads)}
        seconds = row["ms"] * 1e-3
        if mode in case.bytes:
            row["bytes"] = case.bytes[mode]
            row["gb_per_s"] = case.bytes[mode] / seconds / 1e9
            if limits:
                row["bandwidth_share"] = case.bytes[mode] / seconds / limits["bandwidth"]
                row["measured_bandwidth_share"] = case.bytes[mode] / seconds / limits["measured_bandwidth"]
        if mode in case.flops:
            row["flops"] = case.flops[mode]
            row["tflop_per_s"] = case.flops[mode] / seconds / 1e12
            if limits:
                peak = limits["tf32_flops"] if case.dtype == torch.float32 else limits["bf16_flops"]
                row["flops_share"] = case.flops[mode] / seconds / peak
        if mode == "fwdbwd":
            row["peak_memory_bytes"] = peak_memory_bytes(fn)
        rows.append(row)
    return rows


def save(rows: list[dict], results_dir: Path = RESULTS_DIR, meta: dict | None = None) -> Path:
    """Append the rows, each with the run's metadata (default: this process's, `metadata()`), to
    results/<device>.jsonl; returns the file."""
    results_dir.mkdir(parents=True, exist_ok=True)
    meta = meta or metadata()
    path = results_dir / f"{device_slug(meta['device'])}.jsonl"
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps({**meta, **row}) + "\n")
    return path


def print_table(rows: list[dict]) -> None:
    """Median ms per provider side by side, with the speed-up of the last provider over each other."""
    keys = sorted({(r["case"], r["dtype"], r["mode"]) for r in rows}, key=str)
    providers = list(dict.fromkeys(r["provider"] for r in rows))
    print(" | ".join(["case", "dtype", "mode", *[f"{p} ms" for p in providers]]))
    for key in keys:
        ms = {r["provider"]: r["ms"] for r in rows if (r["case"], r["dtype"], r["mode"]) == key}
        print(" | ".join([*key, *[f"{ms[p]:.4f}" if p in ms else "-" for p in providers]]))


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Grouped bars of median ms (with p20-p80 whiskers): one panel per mode, a group per case and dtype."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    providers = list(dict.fromkeys(r["provider"] for r in rows))
    groups = list(dict.fromkeys((r["case"], r["dtype"]) for r in rows))
    fig, axes = plt.subplots(1, len(MODES), figsize=(6 * len(MODES), 0.5 * len(groups) + 3), squeeze=False)
    width = 0.8 / len(providers)
    for ax, mode in zip(axes[0], MODES):
        for i, provider in enumerate(providers):
            found = {(r["case"], r["dtype"]): r for r in rows if r["provider"] == provider and r["mode"] == mode}
            ms = [found[g]["ms"] if g in found else np.nan for g in groups]
            low = [found[g]["ms"] - found[g]["ms_p20"] if g in found else 0 for g in groups]
            high = [found[g]["ms_p80"] - found[g]["ms"] if g in found else 0 for g in groups]
            ax.barh(np.arange(len(groups)) + i * width, ms, width, xerr=[low, high], label=provider)
        ax.set_yticks(np.arange(len(groups)) + 0.4 - width / 2, [f"{c} {d}" for c, d in groups], fontsize=7)
        ax.set(title=f"{title}: {mode}", xlabel="ms (median, p20-p80)", xscale="log")
        ax.invert_yaxis()
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
