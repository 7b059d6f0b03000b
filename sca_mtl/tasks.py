"""The task table: what the code knows about each dense-prediction task, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "segmentation" (per-pixel classes), "depth", "normals" or "binary" (one logit per pixel)
    channels: Optional[int]  # output channels; None where the dataset decides (semseg: 40 on NYUD, 21 on PASCAL)


TASKS = {
    task.name: task
    for task in (
        Task("semseg", "segmentation", None),
        Task("human_parts", "segmentation", 7),
        Task("depth", "depth", 1),
        Task("normals", "normals", 3),
        Task("sal", "binary", 1),
        Task("edge", "binary", 1),
    )
}


def check_tasks(tasks: Mapping[str, int]) -> dict:
    """Validate a {task name: output channels} mapping against the table; returns it as a plain dict."""
    if not isinstance(tasks, Mapping) or not tasks:
        raise ValueError(f"tasks must be a non-empty mapping of task name -> output channels, got {tasks!r}")
    for name, channels in tasks.items():
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r} in tasks; known tasks: {', '.join(TASKS)}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"tasks[{name!r}] must be a positive int (output channels), got {channels!r}")
        expected = TASKS[name].channels
        if expected is not None and channels != expected:
            raise ValueError(f"tasks[{name!r}] must be {expected} output channels, got {channels}")
    return dict(tasks)
