"""What `sca-mtl eval` leaves behind: metrics.json, a markdown table (with Δm), and a picture of predictions."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..metrics import delta_m, delta_m_over_trivial, headline_metrics
from ..tasks import TASKS
from ..visualize import save_prediction_grid
from .evaluate import predict

METRICS_JSON, METRICS_TABLE, PREDICTIONS = "metrics.json", "metrics.md", "predictions.png"


def metrics_table(metrics: Mapping, trivial: Mapping, single_task: Mapping | None) -> str:
    """Markdown: every metric of every task next to the trivial predictor's, the headline ones marked, and Δm."""
    lines = ["| task | metric | model | trivial predictor | better |", "|---|---|---|---|---|"]
    for task, values in metrics.items():
        for name, value in values.items():
            base = trivial[task][name]
            headline = name == TASKS[task].metric
            better = _better(value, base, TASKS[task].higher_is_better, name) if headline else ""
            label = f"**{name}**" if headline else name
            lines.append(f"| {task} | {label} | {value:.4g} | {base:.4g} | {better} |")
    model_headline = headline_metrics(metrics)
    lines.append("")
    over_trivial, left_out = delta_m_over_trivial(model_headline, trivial)
    note = f" ({', '.join(left_out)} left out: the trivial predictor scores 0 there)" if left_out else ""
    lines.append(f"Δm against the trivial predictor: {over_trivial:+.2f}%{note}")
    if single_task is not None:
        lines.append(f"Δm against the single-task results: {delta_m(model_headline, single_task):+.2f}%")
    return "\n".join(lines) + "\n"


def _better(value: float, base: float, higher_is_better: bool, name: str) -> str:
    if math.isnan(value) or math.isnan(base):
        return "n/a"
    return "yes" if (value > base if higher_is_better else value < base) else "no"


def denormalize(images: torch.Tensor) -> list[np.ndarray]:
    """ImageNet-normalised (B, 3, H, W) -> uint8 (H, W, 3) pictures."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    pixels = ((images.float() * std + mean).clamp(0, 1) * 255).round().byte()
    return list(pixels.permute(0, 2, 3, 1).cpu().numpy())


def target_maps(targets: Mapping[str, torch.Tensor], tasks: Mapping[str, int]) -> list[dict]:
    """Per image {task: (H, W[, 3]) numpy map} of the targets, in the layout `predict` gives predictions."""
    maps = {}
    for task in tasks:
        target = targets[task]
        if TASKS[task].kind == "normals":
            maps[task] = target.permute(0, 2, 3, 1)
        else:  # (B, H, W) labels stay integers; (B, 1, H, W) maps lose the channel
            maps[task] = target[:, 0] if target.dim() == 4 else target
    batch = len(next(iter(maps.values())))
    return [{task: maps[task][i].cpu().numpy() for task in tasks} for i in range(batch)]


def write_report(out_dir: Path, results: dict, table: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / METRICS_JSON).write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / METRICS_TABLE).write_text(table)


def write_predictions(model, batch: dict, tasks: Mapping[str, int], device: torch.device, path: Path) -> None:
    images = batch["image"].to(device)
    targets = {task: batch[task] for task in tasks}
    predictions = predict(model, images, tasks)
    per_image = [{task: predictions[task][i].cpu().numpy() for task in tasks} for i in range(images.shape[0])]
    save_prediction_grid(denormalize(images), target_maps(targets, tasks), per_image, tasks, path)
