"""The trivial predictor a trained model must beat: the training set's majority class, mean depth and mean normal,
predicted at every pixel of every image. Its metrics put a model's numbers in context (and stand in for the
single-task baseline of Δm when there is none)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..tasks import IGNORE_LABEL, TASKS
from .distributed import Context
from .evaluate import evaluate
from .loaders import eval_loader, to_device

MAJORITY_LOGIT = 1.0  # any positive logit on the majority class (and 0 elsewhere) makes argmax pick it


class TrivialPredictor(nn.Module):
    """forward(image) -> {task: constant map}: one-hot logits of the majority class for segmentation, the mean for
    depth and binary tasks, the normalised mean vector for normals. Fit with `fit_trivial_predictor`."""

    def __init__(self, constants: Mapping[str, torch.Tensor]):
        super().__init__()
        self.constants = dict(constants)  # task -> (channels,) value of every pixel

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        batch, _, height, width = image.shape
        return {
            task: value.to(image.device).view(1, -1, 1, 1).expand(batch, -1, height, width)
            for task, value in self.constants.items()
        }


@torch.no_grad()
def fit_trivial_predictor(batches: Iterable[dict], tasks: Mapping[str, int], context: Context) -> TrivialPredictor:
    """Per-task statistics of the targets of `batches` (summed over processes), turned into constant predictions."""
    sums = {task: torch.zeros(channels, dtype=torch.float64, device=context.device) for task, channels in tasks.items()}
    counts = {task: torch.zeros((), dtype=torch.float64, device=context.device) for task in tasks}
    for batch in batches:
        _, targets = to_device(batch, context.device)
        for task, channels in tasks.items():
            target = targets[task]
            if TASKS[task].kind == "segmentation":
                labels = target[target != IGNORE_LABEL]
                sums[task] += torch.bincount(labels, minlength=channels)[:channels].double()
            else:
                valid = (target != IGNORE_LABEL).all(dim=1, keepdim=True)
                if TASKS[task].kind == "depth":
                    valid &= target > 0
                sums[task] += (target * valid).sum(dim=(0, 2, 3)).double()
                counts[task] += valid.sum()
    if context.distributed:
        for tensor in [*sums.values(), *counts.values()]:
            dist.all_reduce(tensor)
    constants = {}
    for task in tasks:
        kind = TASKS[task].kind
        if kind == "segmentation":
            constants[task] = F.one_hot(sums[task].argmax(), len(sums[task])).float() * MAJORITY_LOGIT
        elif kind == "normals":
            constants[task] = F.normalize(sums[task], dim=0).float()
        elif kind == "binary":  # the mean probability, as a logit
            constants[task] = torch.logit(sums[task] / counts[task].clamp(min=1), eps=1e-6).float()
        else:
            constants[task] = (sums[task] / counts[task].clamp(min=1)).float()
    return TrivialPredictor(constants)


def trivial_metrics(
    train_split, val_split, tasks: Mapping[str, int], context: Context, batch_size: int, num_workers: int,
    meter_options: Mapping[str, object],
) -> dict[str, dict[str, float]]:
    """The trivial predictor fitted on `train_split` (un-augmented) and evaluated on `val_split`."""
    trivial = fit_trivial_predictor(eval_loader(train_split, batch_size, context, num_workers), tasks, context)
    return evaluate(trivial, eval_loader(val_split, batch_size, context, num_workers), tasks, context, None,
                    **meter_options)
