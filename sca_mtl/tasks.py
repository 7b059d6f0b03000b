"""The task table: what the code knows about each dense-prediction task, in one place.

Every per-task decision (output channels, loss and its options, loss weight, evaluator, the headline metric that
enters Δm and its direction) is a field of `Task` in `TASKS`. Losses (`sca_mtl.losses.LOSSES`) and evaluators
(`sca_mtl.metrics.EVALUATORS`) are looked up by the *method* names stored here, so no other module branches on task
names, and this module imports neither (they import it).

Target conventions shared by the data pipeline, the losses and the metrics:
    semseg, human_parts  int64  (B, H, W)     class index, IGNORE_LABEL = ignore
    depth                float  (B, 1, H, W)  metres, IGNORE_LABEL = invalid
    normals              float  (B, 3, H, W)  unit vectors, IGNORE_LABEL in all 3 channels = invalid
    sal, edge            float  (B, 1, H, W)  {0, 1}, IGNORE_LABEL = ignore
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

IGNORE_LABEL = 255  # the MTI-Net / ASTMT packaging's "ignore / invalid" value in every target map

# balanced BCE weight of edge pixels: MTI-Net's `edge_w` (every dataset), ATRC's `edge_pos_weight` (0.8 on NYUD-v2)
EDGE_POS_WEIGHT = 0.95
EDGE_POS_WEIGHT_NYUD = 0.8


@dataclass(frozen=True)
class Task:
    """One task. The fields after `channels` default to "not trainable / not evaluated here".

    loss: key of `sca_mtl.losses.LOSSES`; loss_kwargs: extra keyword arguments of that loss, and
        dataset_loss_kwargs: {dataset: kwargs} replacing some of them on that dataset (`loss_options`).
    weight: default loss weight w_t (MTI-Net's defaults), used when a run gives none.
    evaluator: key of `sca_mtl.metrics.EVALUATORS`, None where the metric needs an external benchmark.
    metric: the headline metric key (one of the evaluator's result keys) that enters Δm.
    higher_is_better: the metric's direction, i.e. the sign (-1)^l_i of its term in Δm.
    """

    name: str
    kind: str  # "segmentation" (per-pixel classes), "depth", "normals" or "binary" (one logit per pixel)
    channels: int | None  # output channels; None where the dataset decides (semseg: 40 on NYUD, 21 on PASCAL)
    loss: str | None = None
    loss_kwargs: Mapping[str, float] = field(default_factory=dict, hash=False)
    dataset_loss_kwargs: Mapping[str, Mapping[str, float]] = field(default_factory=dict, hash=False)
    weight: float = 1.0
    evaluator: str | None = None
    metric: str | None = None
    higher_is_better: bool = True

    def loss_options(self, dataset: str | None = None) -> dict[str, float]:
        """The loss's keyword arguments on `dataset` (None: the dataset-independent defaults)."""
        return {**self.loss_kwargs, **self.dataset_loss_kwargs.get(dataset, {})}


TASKS = {
    task.name: task
    for task in (
        Task("semseg", "segmentation", None, loss="cross_entropy", weight=1.0,
             evaluator="segmentation", metric="mIoU", higher_is_better=True),
        Task("human_parts", "segmentation", 7, loss="cross_entropy", weight=2.0,
             evaluator="segmentation", metric="mIoU", higher_is_better=True),
        Task("depth", "depth", 1, loss="l1", weight=1.0,
             evaluator="depth", metric="rmse", higher_is_better=False),
        Task("normals", "normals", 3, loss="normals_l1", weight=10.0,
             evaluator="normals", metric="mean", higher_is_better=False),
        # MTI-Net ranks saliency by the max-over-thresholds mean IoU (not maxF) in Δm.
        Task("sal", "binary", 1, loss="balanced_bce", weight=5.0,
             evaluator="saliency", metric="mIoU", higher_is_better=True),
        # odsF: SEISM's boundary benchmark, in Python (sca_mtl.boundary), with the dataset's matching tolerance
        Task("edge", "binary", 1, loss="balanced_bce", loss_kwargs={"pos_weight": EDGE_POS_WEIGHT}, weight=50.0,
             dataset_loss_kwargs={"nyud": {"pos_weight": EDGE_POS_WEIGHT_NYUD}},
             evaluator="boundary", metric="odsF", higher_is_better=True),
    )
}


def get_task(name: str) -> Task:
    """The table's entry for `name`; ValueError naming the known tasks if there is none."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r} in tasks; known tasks: {', '.join(TASKS)}")
    return TASKS[name]


def resolve_tasks(tasks: Mapping[str, int] | Iterable[str]) -> tuple[Task, ...]:
    """The table entries of `tasks` (task names, or a {task name: channels} mapping), in the given order."""
    if isinstance(tasks, str):
        raise ValueError(f"tasks must be a collection of task names, not the single string {tasks!r}")
    names = list(tasks)
    if not names:
        raise ValueError("tasks must name at least one task")
    if len(set(names)) != len(names):
        raise ValueError(f"tasks must not repeat a task, got {names}")
    return tuple(get_task(name) for name in names)


def check_tasks(tasks: Mapping[str, int]) -> dict:
    """Validate a {task name: output channels} mapping against the table; returns it as a plain dict."""
    if not isinstance(tasks, Mapping) or not tasks:
        raise ValueError(f"tasks must be a non-empty mapping of task name -> output channels, got {tasks!r}")
    for name, channels in tasks.items():
        expected = get_task(name).channels
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"tasks[{name!r}] must be a positive int (output channels), got {channels!r}")
        if expected is not None and channels != expected:
            raise ValueError(f"tasks[{name!r}] must be {expected} output channels, got {channels}")
    return dict(tasks)
