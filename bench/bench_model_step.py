"""One SCA-MTL training step, four ways, side by side in one run.

The step: NYUD-v2 with 3 tasks (semseg 40, depth, normals) at 480 x 640, batch 8, bf16 autocast, forward, the
MTI-Net deep-supervision loss, backward, Adam. Providers:
    eager            build_model(kernels="torch")            the PyTorch references
    compile          torch.compile of that model
    triton           build_model(kernels="triton")           the Triton kernels, forward and backward
    compile+triton   torch.compile of the Triton model (the ops are opaque custom ops to the compiler)
Reported per provider: ms/step (median and p20/p80 of the steps, each timed with CUDA events after warm-up),
images/s, peak memory of a step, and the GPU time of a step split by kernel family (torch.profiler over a few
steps; kernels are classified by name, so the PyTorch references' share hides in "GEMM" and "elementwise").
The tasks, size and batch default to bench/shapes.py's (the model's op shapes come from the same place).

    python bench/bench_model_step.py [--providers eager,triton] [--steps 20] [--batch 8] [--size 480 640]
    python bench/bench_model_step.py --dry-run      # CPU, tiny shapes: checks the script, times nothing
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import cuda_or_exit, device_slug, metadata, print_table, save  # noqa: E402
from bench.shapes import MODEL_BATCH, MODEL_SIZE, NYUD_TASKS  # noqa: E402
from sca_mtl.engine.step import TrainingStep, random_batch  # noqa: E402
from sca_mtl.losses import MultiTaskLoss  # noqa: E402
from sca_mtl.models import MODELS, build_model  # noqa: E402

TASKS = NYUD_TASKS
DEFAULT_MODEL = "sca_mtl"
PROVIDERS = {"eager": ("torch", False), "compile": ("torch", True), "triton": ("triton", False),
             "compile+triton": ("triton", True)}
PROFILED_STEPS = 3
# Kernel-name patterns, first match wins.
FAMILIES = [
    ("linear attention (ours)", r"linear_cross_attention"),
    ("window attention (ours)", r"window_attention"),
    ("concat conv (ours)", r"concat_conv"),
    ("convolution (cuDNN)", r"conv|cudnn|fprop|dgrad|wgrad|implicit"),
    ("GEMM", r"gemm|xmma|cutlass|_mm_|bmm|matmul"),
    ("normalisation", r"batch_norm|layer_norm|bn_|welford|norm"),
    ("optimiser", r"adam|multi_tensor|foreach"),
    ("elementwise / reduce / copy", r"elementwise|reduce|copy|cat|triton_|upsample|softmax|index|fill"),
]


def family(kernel_name: str) -> str:
    name = kernel_name.lower()
    return next((label for label, pattern in FAMILIES if re.search(pattern, name)), "other")


def build_step(provider: str, device: torch.device, amp: torch.dtype | None, lr: float = 1e-4,
               capturable: bool = False, model_name: str = DEFAULT_MODEL) -> TrainingStep:
    """The provider's training step of model `model_name` (the registry's); `capturable`: an Adam that a CUDA graph
    can capture (its step count on the GPU)."""
    backend, compiled = PROVIDERS[provider]
    torch.manual_seed(0)
    model = build_model(model_name, TASKS, kernels=backend).to(device).train()
    network = torch.compile(model) if compiled else model
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4, capturable=capturable)
    return TrainingStep(network, MultiTaskLoss(TASKS), optimizer, amp, device)


def time_steps(step: TrainingStep, images, targets, warmup: int, steps: int) -> list[float]:
    """ms of each of `steps` steps after `warmup` ones: CUDA events on the GPU (the CPU dry run: wall clock)."""
    for _ in range(warmup):  # compilation and autotuning happen here
        step(images, targets)
    cuda = images.is_cuda
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step(images, targets)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            started = time.perf_counter()
            step(images, targets)
            times.append(1e3 * (time.perf_counter() - started))
    return times


def self_time_us(event, cuda: bool) -> float:
    """A profiler average's own GPU time (its own CPU time in a CPU dry run), in us, across torch versions."""
    if not cuda:
        return event.self_cpu_time_total
    return getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0)


def family_split(step: TrainingStep, images, targets, steps: int = PROFILED_STEPS) -> dict:
    """GPU ms per step by kernel family (in a CPU dry run: CPU ms of the operators, classified alike)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = images.is_cuda
    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step(images, targets)
        if cuda:
            torch.cuda.synchronize()
    split: dict[str, float] = {}
    for event in prof.key_averages():
        us = self_time_us(event, cuda)
        if us > 0:
            label = family(event.key)
            split[label] = split.get(label, 0.0) + us / 1e3 / steps
    return dict(sorted(split.items(), key=lambda kv: -kv[1]))


def peak_memory(step: TrainingStep, images, targets) -> int | None:
    if not images.is_cuda:
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step(images, targets)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def measure_provider(provider: str, images, targets, amp: str | None, warmup: int, steps: int,
                     profiled_steps: int = PROFILED_STEPS, model_name: str = DEFAULT_MODEL) -> dict:
    """The provider's row: its step built, warmed up and timed, its peak memory and GPU time by kernel family."""
    amp_dtype = torch.bfloat16 if amp == "bf16" else None
    step = build_step(provider, images.device, amp_dtype, model_name=model_name)
    times = time_steps(step, images, targets, warmup, steps)
    median = statistics.median(times)
    quantiles = statistics.quantiles(times, n=10, method="inclusive")
    batch, _, height, width = images.shape
    row = {"op": "training_step", "case": f"{model_name}_nyud3_{height}x{width}_b{batch}", "provider": provider,
           "mode": "step", "dtype": amp or "fp32", "ms": median, "ms_p20": quantiles[1], "ms_p80": quantiles[7],
           "images_per_s": batch / median * 1e3, "peak_memory_bytes": peak_memory(step, images, targets),
           "family_ms": family_split(step, images, targets, profiled_steps)}
    print(f"{provider}: {median:.1f} ms/step, {row['images_per_s']:.1f} img/s, "
          f"peak {(row['peak_memory_bytes'] or 0) / 2**30:.2f} GiB, {row['family_ms']}", flush=True)
    return row


def run(args) -> list[dict]:
    device = torch.device("cuda")
    images, targets = random_batch(TASKS, args.batch, tuple(args.size), device, torch.Generator().manual_seed(0))
    rows = []
    for provider in args.providers:
        rows.append(measure_provider(provider, images, targets, args.amp, args.warmup, args.steps,
                                     model_name=args.model))
        torch.cuda.empty_cache()
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """Stacked bars: GPU ms per step by kernel family, one bar per provider, the measured ms/step marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(f for r in rows for f in r["family_ms"]))
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, row in enumerate(rows):
        left = 0.0
        for j, name in enumerate(families):
            width = row["family_ms"].get(name, 0.0)
            ax.barh(i, width, left=left, color=plt.get_cmap("tab10")(j % 10), label=name if i == 0 else None)
            left += width
        ax.plot([row["ms"]], [i], "k|", markersize=18)
    ax.set_yticks(range(len(rows)), [r["provider"] for r in rows])
    ax.set(xlabel="ms per training step (bars: GPU time by kernel family; |: measured step)",
           title=f"training step, {rows[0]['case']}, {rows[0]['dtype']}")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def dry_run(providers: list[str], model_name: str = DEFAULT_MODEL) -> None:
    """On the CPU, tiny shapes: build every requested provider (no torch.compile) and run one step."""
    device = torch.device("cpu")
    images, targets = random_batch(TASKS, 2, (64, 64), device, torch.Generator().manual_seed(0))
    for provider in providers:
        if PROVIDERS[provider][1]:
            continue
        losses = build_step(provider, device, None, model_name=model_name)(images, targets)
        assert torch.isfinite(losses["total"]), provider
        print(f"dry run {provider}: one step, loss {losses['total'].item():.3f}")


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default=DEFAULT_MODEL, help="a model of the registry")
    parser.add_argument("--providers", default=",".join(PROVIDERS), type=lambda s: s.split(","))
    parser.add_argument("--batch", type=int, default=MODEL_BATCH)
    parser.add_argument("--size", type=int, nargs=2, default=list(MODEL_SIZE))
    parser.add_argument("--amp", choices=["bf16", "none"], default="bf16")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    unknown = [p for p in args.providers if p not in PROVIDERS]
    if unknown:
        parser.error(f"unknown providers {unknown}; known: {', '.join(PROVIDERS)}")
    args.amp = None if args.amp == "none" else args.amp
    return args


def main(argv=None) -> None:
    args = parse(argv)
    if args.dry_run:
        dry_run(args.providers, args.model)
        return
    cuda_or_exit(__file__)
    started = time.time()
    rows = run(args)
    path = save(rows)
    plot(rows, path.with_name(f"{device_slug()}_training_step.png"))
    print_table(rows)
    print(f"{metadata()['device']}: results appended to {path} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
