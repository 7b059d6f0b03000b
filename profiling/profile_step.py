"""torch.profiler over a few SCA-MTL training steps: a Chrome trace and a table of the top kernels by GPU time.

    python profiling/profile_step.py --kernels triton --out profiling/out        # on a GPU
    python profiling/profile_step.py --kernels torch --batch 2 --size 64 96      # CPU works too (CPU times)

Open the trace in https://ui.perfetto.dev or chrome://tracing; the table is printed and saved as top_kernels.txt.
The step is bench/bench_model_step.py's (bench/gpu_session.py profiles it the same way).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_model_step import DEFAULT_MODEL, PROVIDERS, TASKS, build_step  # noqa: E402
from bench.shapes import MODEL_BATCH, MODEL_SIZE  # noqa: E402
from sca_mtl.engine.step import TrainingStep, random_batch  # noqa: E402
from sca_mtl.models import MODELS  # noqa: E402

TOP_ROWS = 30


def profile_steps(step: TrainingStep, images: torch.Tensor, targets: dict, warmup: int, steps: int,
                  activities: list | None = None) -> profile:
    """torch.profiler over `steps` steps, after `warmup` ones that keep compilation, autotuning and the allocator's
    warm-up out of the profile; `activities` default: the CPU, and the GPU where the images are on it."""
    cuda = images.is_cuda
    for _ in range(warmup):
        step(images, targets)
    activities = activities or [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, record_shapes=True) as prof:
        for _ in range(steps):
            step(images, targets)
        if cuda:
            torch.cuda.synchronize()
    return prof


def top_table(averages, rows: int, cuda: bool) -> str:
    """A profile's key_averages() sorted by self GPU time (self CPU time without a GPU), the first `rows` rows."""
    return averages.table(sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total", row_limit=rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default=DEFAULT_MODEL, help="a model of the registry")
    parser.add_argument("--kernels", choices=["torch", "triton"], default="triton")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--batch", type=int, default=MODEL_BATCH)
    parser.add_argument("--size", type=int, nargs=2, default=list(MODEL_SIZE))
    parser.add_argument("--amp", choices=["bf16", "none"], default="bf16")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default="profiling/out")
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    provider = next(name for name, how in PROVIDERS.items() if how == (args.kernels, args.compile))
    step = build_step(provider, device, torch.bfloat16 if args.amp == "bf16" else None, model_name=args.model)
    images, targets = random_batch(TASKS, args.batch, tuple(args.size), device, torch.Generator().manual_seed(0))
    prof = profile_steps(step, images, targets, args.warmup, args.steps)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    trace = out / f"trace_{args.model}_{args.kernels}{'_compiled' if args.compile else ''}.json"
    prof.export_chrome_trace(str(trace))
    table = top_table(prof.key_averages(), TOP_ROWS, cuda)
    (out / "top_kernels.txt").write_text(table)
    print(table)
    print(f"trace: {trace}\ntable: {out / 'top_kernels.txt'}")


if __name__ == "__main__":
    main()
