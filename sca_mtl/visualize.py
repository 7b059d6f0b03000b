"""Pictures a person would rather look at than read: predictions next to ground truth, and training curves.

Colours: semantic classes from a fixed palette, depth with a perceptual colormap on the ground truth's range (the
same range for the prediction, so that errors show), normals as RGB = (n + 1) / 2, ignored pixels black.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .boundary import suppress_non_maxima  # noqa: E402
from .tasks import TASKS  # noqa: E402

IGNORE = 255
DEPTH_COLORMAP = "magma_r"  # near = bright
CLASS_COLORMAPS = ("tab20", "tab20b", "tab20c")  # 60 distinct colours
BOUNDARY_MIN_STRETCH = 1e-3  # the stretch divides by at least this: a map of faint noise only stays dark


def class_palette(num_classes: int) -> np.ndarray:
    """(num_classes, 3) uint8 colours, the same for a class in every picture."""
    colours = np.concatenate([plt.get_cmap(name).colors for name in CLASS_COLORMAPS])
    return (np.resize(colours, (num_classes, 3)) * 255).astype(np.uint8)


def colorize(
    task: str, values: np.ndarray, *, num_classes: int = 0, value_range=None, prediction: bool = False
) -> np.ndarray:
    """(H, W, 3) uint8 picture of one task's map: labels (H, W) for segmentation, (H, W) depth in metres, (H, W, 3)
    normals, (H, W) probabilities for binary tasks. A boundary prediction is drawn as the benchmark sees it: SEISM's
    non-maximum suppression of the probabilities, stretched to the image's strongest response (a short run's
    responses are faint). Ignored pixels (255) of a target are black; a prediction has none."""
    kind = TASKS[task].kind
    if prediction and TASKS[task].evaluator == "boundary":
        ridges = suppress_non_maxima(values)
        values = ridges / max(float(ridges.max()), BOUNDARY_MIN_STRETCH)
    if kind == "segmentation":
        valid = values != IGNORE
        out = class_palette(max(num_classes, int(values[valid].max(initial=0)) + 1))[np.where(valid, values, 0)]
    elif kind == "depth":
        valid = (values != IGNORE) & (values > 0)
        low, high = value_range or (values[valid].min(initial=0.0), values[valid].max(initial=1.0))
        scaled = np.clip((values - low) / max(high - low, 1e-6), 0, 1)
        out = (plt.get_cmap(DEPTH_COLORMAP)(scaled)[..., :3] * 255).astype(np.uint8)
    elif kind == "normals":
        valid = np.all(values != IGNORE, axis=-1) & (np.abs(values).sum(axis=-1) > 0)
        out = (np.clip((values + 1) / 2, 0, 1) * 255).astype(np.uint8)
    else:
        valid = values != IGNORE
        out = np.repeat((np.clip(values, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=-1)
    if prediction:
        return out.astype(np.uint8)
    return np.where(valid[..., None], out, 0).astype(np.uint8)


def save_prediction_grid(
    images: Sequence[np.ndarray],
    targets: Sequence[Mapping[str, np.ndarray]],
    predictions: Sequence[Mapping[str, np.ndarray]],
    tasks: Mapping[str, int],
    path: str | Path,
) -> None:
    """One row per image: the image, then ground truth and prediction for every task."""
    columns = 1 + 2 * len(tasks)
    fig, axes = plt.subplots(len(images), columns, figsize=(2.2 * columns, 1.8 * len(images)), squeeze=False)
    for row, (image, target, prediction) in enumerate(zip(images, targets, predictions)):
        panels = [("image", image)]
        for task, channels in tasks.items():
            value_range = None
            if TASKS[task].kind == "depth":
                valid = (target[task] != IGNORE) & (target[task] > 0)
                value_range = (target[task][valid].min(initial=0.0), target[task][valid].max(initial=1.0))
            for name, values in (("truth", target[task]), ("prediction", prediction[task])):
                picture = colorize(task, values, num_classes=channels, value_range=value_range,
                                   prediction=name == "prediction")
                panels.append((f"{task} {name}", picture))
        for ax, (title, picture) in zip(axes[row], panels):
            ax.imshow(picture)
            ax.set_axis_off()
            if row == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_training_curves(records: Sequence[Mapping], path: str | Path) -> None:
    """Two kinds of panels: the total and the per-task final-output losses against steps (from the `train` records
    of metrics.jsonl; the deep-supervision terms, "deep_supervision/...", are left out), and each task's headline
    metric (the one Δm uses) against steps (from the `eval` records), with the baseline Δm compares against (the
    records' "baseline": single-task or trivial predictor) as a dashed line."""
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    tasks = sorted({task for r in evals for task in r["metrics"]})
    fig, axes = plt.subplots(1, 1 + len(tasks), figsize=(3.6 * (1 + len(tasks)), 3.0), squeeze=False)
    losses, metric_axes = axes[0, 0], axes[0, 1:]
    for key in sorted({key for r in train for key in r["losses"] if "/" not in key}):
        losses.plot([r["step"] for r in train], [r["losses"][key] for r in train], label=key)
    losses.set(title="training losses", xlabel="step", yscale="log")
    if train:
        losses.legend(fontsize=7)
    for ax, task in zip(metric_axes, tasks):
        metric = TASKS[task].metric
        points = [(r["step"], r["metrics"][task][metric]) for r in evals if task in r["metrics"]]
        ax.plot(*zip(*points), marker="o", label="model")
        baseline = evals[-1].get("baseline", {}).get(task)
        if baseline is not None:
            ax.axhline(baseline, linestyle="--", color="gray", label=evals[-1]["delta_m_baseline"].replace("_", " "))
            ax.legend(fontsize=7)
        better = "higher" if TASKS[task].higher_is_better else "lower"
        ax.set(title=f"{task} {metric} (val, {better} is better)", xlabel="step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_delta_m_bars(bars: Sequence[tuple[str, float, bool]], title: str, path: str | Path) -> None:
    """Horizontal bars of Δm, one per (label, Δm %, printed in the paper) in the given order, top to bottom; the
    paper's rows hatched grey, ours coloured by sign, the value written at each bar's end."""
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.38 * len(bars)))
    labels, values, paper = zip(*bars)
    positions = np.arange(len(bars))[::-1]
    colours = ["lightgray" if p else ("tab:green" if v >= 0 else "tab:red") for v, p in zip(values, paper)]
    drawn = ax.barh(positions, values, color=colours, edgecolor="black", linewidth=0.5)
    for bar, printed in zip(drawn, paper):
        if printed:
            bar.set_hatch("//")
    ax.bar_label(drawn, labels=[f"{v:+.2f}" for v in values], padding=3, fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(positions, labels, fontsize=8)
    ax.set(xlabel="Δm (%), higher is better", title=title)
    ax.margins(x=0.2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
