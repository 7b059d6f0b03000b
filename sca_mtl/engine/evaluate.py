"""Evaluation: the task metrics of a model over a split, reduced over processes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..boundary import default_workers
from ..metrics import MultiTaskMeter
from ..tasks import TASKS
from .distributed import Context
from .loaders import to_device
from .precision import autocast


def meter_options(config: dict, context: Context) -> dict:
    """MultiTaskMeter's `dataset` and `workers` for a run: the host-side metrics' processes are
    `eval.boundary_workers`, by default this machine's CPUs shared among the run's processes."""
    workers = config["eval"]["boundary_workers"] or max(1, default_workers() // context.world_size)
    return {"dataset": config["data"]["dataset"], "workers": workers}


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: Iterable[dict], tasks: Mapping[str, int], context: Context, amp: torch.dtype | None,
    *, dataset: str, workers: int | None = None,
) -> dict[str, dict[str, float]]:
    """{task: {metric: value}} over every sample of `batches` on every process; `dataset` and `workers` as
    MultiTaskMeter takes them (`meter_options`)."""
    was_training = model.training
    model.eval()
    meter = MultiTaskMeter(tasks, device=context.device, dataset=dataset, workers=workers)
    for batch in batches:
        images, targets = to_device(batch, context.device)
        with autocast(context.device, amp):
            outputs = model(images)
        meter.update({task: outputs[task].float() for task in tasks}, targets)
    meter.all_reduce()
    model.train(was_training)
    return meter.compute()


def predict(model: nn.Module, images: torch.Tensor, tasks: Mapping[str, int]) -> dict[str, torch.Tensor]:
    """Per-task maps a person can look at: class labels, depth, unit normals, probabilities (B, H, W[, 3])."""
    with torch.no_grad():
        outputs = model(images)
    maps = {}
    for task in tasks:
        out = outputs[task].float()
        kind = TASKS[task].kind
        if kind == "segmentation":
            maps[task] = out.argmax(dim=1)
        elif kind == "normals":
            maps[task] = F.normalize(out, dim=1).permute(0, 2, 3, 1)
        elif kind == "binary":
            maps[task] = torch.sigmoid(out[:, 0])
        else:
            maps[task] = out[:, 0]
    return maps
