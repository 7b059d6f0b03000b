"""The task table: its values against MODEL_SPEC.md 6-7, its links to the losses and evaluators, and that no other
module of ours branches on task names."""

from __future__ import annotations

import ast
import inspect

import pytest
import torch

from sca_mtl import losses, metrics
from sca_mtl.tasks import TASKS, Task, check_tasks, get_task, resolve_tasks

# MODEL_SPEC.md 6.2 (MTI-Net defaults) and 7.2 (the metric that enters Δm and its direction).
EXPECTED = {
    # name: (channels, default weight, headline metric, higher is better)
    "semseg": (None, 1.0, "mIoU", True),
    "human_parts": (7, 2.0, "mIoU", True),
    "depth": (1, 1.0, "rmse", False),
    "normals": (3, 10.0, "mean", False),
    "sal": (1, 5.0, "mIoU", True),
    "edge": (1, 50.0, "odsF", True),
}


def test_table_matches_the_spec():
    assert list(TASKS) == list(EXPECTED)
    for name, (channels, weight, metric, higher) in EXPECTED.items():
        task = TASKS[name]
        assert task.name == name
        assert (task.channels, task.weight, task.metric, task.higher_is_better) == (channels, weight, metric, higher)


def test_every_loss_and_evaluator_exists():
    for task in TASKS.values():
        assert task.loss in losses.LOSSES, task
        assert set(task.loss_kwargs) <= set(inspect.signature(losses.LOSSES[task.loss]).parameters), task
        for dataset_kwargs in task.dataset_loss_kwargs.values():
            assert set(dataset_kwargs) <= set(inspect.signature(losses.LOSSES[task.loss]).parameters), task
        assert task.evaluator in metrics.EVALUATORS, task
    # MTI-Net's edge_w everywhere; ATRC's 0.8 on NYUD-v2
    assert TASKS["edge"].loss_options() == TASKS["edge"].loss_options("pascal_context") == {"pos_weight": 0.95}
    assert TASKS["edge"].loss_options("nyud") == {"pos_weight": 0.8}
    assert TASKS["sal"].loss_kwargs == {}  # HED-style weight from the batch


def _example_batch(task: Task, channels: int):
    shape = (2, channels, 4, 4)
    if task.kind == "segmentation":
        return torch.randn(shape), torch.randint(0, channels, (2, 4, 4))
    if task.kind == "normals":
        return torch.randn(shape), torch.nn.functional.normalize(torch.randn(shape), dim=1)
    return torch.randn(shape), (torch.rand(shape) > 0.5).float() + 1.0 * (task.kind == "depth")


@pytest.mark.parametrize("name", list(TASKS))
def test_headline_metric_is_a_result_of_the_evaluator(name):
    task = TASKS[name]
    channels = task.channels or 5
    meter = metrics.EVALUATORS[task.evaluator].for_task(channels, dataset="nyud", workers=1)
    meter.update(*_example_batch(task, channels))
    assert task.metric in meter.compute()


@pytest.mark.parametrize("name", list(TASKS))
def test_loss_runs_on_the_task_targets(name):
    task = TASKS[name]
    channels = task.channels or 5
    pred, target = _example_batch(task, channels)
    loss = losses.LOSSES[task.loss](pred, target, **task.loss_kwargs)
    assert loss.dim() == 0 and torch.isfinite(loss)


def _task_name_comparisons(source: str) -> list:
    """String constants naming a task that take part in a comparison (==, !=, in) in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                items = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
                found += [item.value for item in items if isinstance(item, ast.Constant) and item.value in TASKS]
    return found


@pytest.mark.parametrize("module", [losses, metrics], ids=["losses", "metrics"])
def test_no_if_elif_on_task_names(module):
    assert _task_name_comparisons(inspect.getsource(module)) == []


def test_the_no_branching_check_can_fail():
    bad = "if task == 'depth' or task in ('sal', 'edge'):\n    pass\n"
    assert _task_name_comparisons(bad) == ["depth", "sal", "edge"]


def test_task_stays_constructible_from_three_fields():
    task = Task("foo", "depth", 1)
    assert (task.loss, task.evaluator, task.metric, task.weight, task.higher_is_better) == (None, None, None, 1.0, True)
    assert hash(task) == hash(Task("foo", "depth", 1))


def test_check_tasks_unchanged():
    assert check_tasks({"semseg": 40, "depth": 1, "normals": 3}) == {"semseg": 40, "depth": 1, "normals": 3}
    assert check_tasks({"semseg": 21}) == {"semseg": 21}
    with pytest.raises(ValueError, match="unknown task 'foo'"):
        check_tasks({"foo": 1})
    with pytest.raises(ValueError, match="must be 3 output channels"):
        check_tasks({"normals": 1})
    with pytest.raises(ValueError, match="positive int"):
        check_tasks({"depth": True})
    with pytest.raises(ValueError, match="non-empty mapping"):
        check_tasks({})


def test_resolve_tasks():
    assert [t.name for t in resolve_tasks(["depth", "semseg"])] == ["depth", "semseg"]
    assert [t.name for t in resolve_tasks({"semseg": 40, "normals": 3})] == ["semseg", "normals"]
    assert get_task("sal") is TASKS["sal"]
    for bad, message in [("semseg", "single string"), ([], "at least one"), (["depth", "depth"], "repeat"),
                         (["depth", "height"], "unknown task 'height'")]:
        with pytest.raises(ValueError, match=message):
            resolve_tasks(bad)
