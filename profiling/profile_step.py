"""torch.profiler over a few SCA-MTL training steps: a Chrome trace and a table of the top kernels by GPU time.

    python profiling/profile_step.py --kernels triton --out profiling/out        # on a GPU
    python profiling/profile_step.py --kernels torch --batch 2 --size 64 96      # CPU works too (CPU times)

Open the trace in https://ui.perfetto.dev or chrome://tracing; the table is printed and saved as top_kernels.txt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sca_mtl.engine.step import TrainingStep, random_batch  # noqa: E402
from sca_mtl.losses import MultiTaskLoss  # noqa: E402
from sca_mtl.models import build_model  # noqa: E402

TASKS = {"semseg": 40, "depth": 1, "normals": 3}
TOP_ROWS = 30


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", choices=["torch", "triton"], default="triton")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=[480, 640])
    parser.add_argument("--amp", choices=["bf16", "none"], default="bf16")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default="profiling/out")
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    amp = torch.bfloat16 if args.amp == "bf16" else None
    model = build_model("sca_mtl", TASKS, kernels=args.kernels).to(device).train()
    network = torch.compile(model) if args.compile else model
    step = TrainingStep(network, MultiTaskLoss(TASKS), torch.optim.Adam(model.parameters(), lr=1e-4), amp, device)
    images, targets = random_batch(TASKS, args.batch, tuple(args.size), device, torch.Generator().manual_seed(0))

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for _ in range(args.warmup):  # compilation, autotuning and allocator warm-up stay out of the profile
        step(images, targets)
    with profile(activities=activities, record_shapes=True) as prof:
        for _ in range(args.steps):
            step(images, targets)
        if cuda:
            torch.cuda.synchronize()
    trace = out / f"trace_{args.kernels}{'_compiled' if args.compile else ''}.json"
    prof.export_chrome_trace(str(trace))
    sort_by = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort_by, row_limit=TOP_ROWS)
    (out / "top_kernels.txt").write_text(table)
    print(table)
    print(f"trace: {trace}\ntable: {out / 'top_kernels.txt'}")


if __name__ == "__main__":
    main()
