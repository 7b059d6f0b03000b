"""The whole runs behind the command line: train, the single-task runs of Δm, evaluate a checkpoint, compare runs,
and the demos."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import torch

from ..config import apply_overrides, from_mapping, load_config
from ..data.synthetic import CLASSES, write_synthetic_nyud
from ..metrics import headline_metrics, load_single_task_results
from ..tasks import check_tasks
from . import distributed
from .checkpoint import atomic_write_text, load_checkpoint, load_weights
from .compare import COMPARE_PLOT, COMPARE_TABLE, compare, markdown, write_comparison
from .evaluate import evaluate, meter_options
from .loaders import eval_loader
from .precision import amp_dtype
from .report import METRICS_TABLE, PREDICTIONS, metrics_table, write_predictions, write_report
from .trainer import (
    CURVES,
    LAST,
    METRICS_LOG,
    RUN_INFO,
    Trainer,
    build_configured_model,
    build_datasets,
    read_log,
)
from .trivial import trivial_metrics

DEMO_CONFIG = "synthetic_sca_mtl"
DEMO_IMAGES, DEMO_IMAGE_SIZE = 160, (240, 320)
DEMO_COMPARE_MODELS = ("mtl_baseline", "mti_net", "sca_mtl")
SINGLE_TASK_RESULTS = "single_task.json"
SINGLE_TASK_MODEL = "single_task"


def train(config: dict, out_dir: str | Path, *, resume: bool = False, progress: bool = True):
    """Train per `config` into `out_dir` (resuming from its last.pt when asked); returns the trained model."""
    if not resume and (Path(out_dir) / LAST).exists():
        raise ValueError(
            f"{out_dir} already holds a run ({LAST}): --resume continues it, another --out starts a new one"
        )
    context = distributed.setup()
    try:
        trainer = Trainer(config, out_dir, context, progress=progress)
        if resume:
            trainer.resume(Path(out_dir) / LAST)
        trainer.fit()
        return trainer.model
    finally:
        distributed.teardown(context)


def single_task_config(config: dict, task: str) -> dict:
    """`config` for a single_task model of one of its tasks: the same recipe, data and seed; the model's own
    options dropped, the loss unweighted (as MTI-Net's single-task runs), no Δm baseline of its own."""
    single = copy.deepcopy(config)
    single["model"].update(name=SINGLE_TASK_MODEL, options={})
    single["tasks"] = {task: config["tasks"][task]}
    single["auxiliary_tasks"] = {}
    single["loss_weights"] = {task: 1.0}
    single["loss_options"] = {name: kwargs for name, kwargs in config["loss_options"].items() if name == task}
    single["eval"]["single_task_results"] = None
    return single


def _finished_evaluation(run_dir: Path, config: dict) -> dict | None:
    """The final eval record of a run in `run_dir` that reached its configured end, None if there is none."""
    if not (run_dir / LAST).is_file():
        return None
    evaluations = [r for r in read_log(run_dir) if r.get("kind") == "eval"]
    if not evaluations:
        return None
    last, max_steps = evaluations[-1], config["train"]["max_steps"]
    done = last["epoch"] >= config["optim"]["epochs"] or (max_steps is not None and last["step"] >= max_steps)
    return last if done else None


def train_single_tasks(config: dict, out_dir: str | Path, *, progress: bool = True) -> Path:
    """Train one single_task model per task of `config` into out_dir/<task> and write their final metrics to
    out_dir/single_task.json ({task: {metric: value}}, the format `train` and `eval` read for Δm, plus "parameters"
    and "runs"). A task whose run reached its end is not trained again; one that stopped is resumed."""
    tasks = check_tasks(config["tasks"])
    out_dir = Path(out_dir)
    configs = {task: single_task_config(config, task) for task in tasks}
    for task_config in configs.values():  # every data check before the first step
        build_datasets(task_config, train=False)
    results: dict = {"parameters": {}, "runs": {}}
    for task, task_config in configs.items():
        run_dir = out_dir / task
        if _finished_evaluation(run_dir, task_config) is None:
            if progress:
                print(f"single-task run {task}: {run_dir}")
            train(task_config, run_dir, resume=(run_dir / LAST).is_file(), progress=progress)
        results[task] = _finished_evaluation(run_dir, task_config)["metrics"][task]
        results["parameters"][task] = json.loads((run_dir / RUN_INFO).read_text())["parameters"]
        results["runs"][task] = str(run_dir)
    path = out_dir / SINGLE_TASK_RESULTS
    atomic_write_text(path, json.dumps(results, indent=2) + "\n")
    return path


def compare_runs(run_dirs, out_dir: str | Path, *, single_task=None, paper=None) -> tuple[str, list[Path]]:
    """`compare`'s table (markdown) and the files written to `out_dir`; nothing is written when an input is bad."""
    comparison = compare(run_dirs, single_task=single_task, paper=paper)
    return markdown(comparison), write_comparison(comparison, out_dir)


def evaluate_checkpoint(
    checkpoint_path: str | Path,
    out_dir: str | Path,
    *,
    overrides: list[str] = (),
    single_task_path: str | None = None,
) -> tuple[dict, str]:
    """Evaluate a checkpoint on its config's val split (after `overrides`), next to the trivial predictor; writes
    metrics.json, metrics.md and predictions.png to `out_dir`. Returns (results, markdown table)."""
    context = distributed.setup()
    try:
        checkpoint = load_checkpoint(checkpoint_path)
        config = apply_overrides(from_mapping(checkpoint["config"]), overrides)
        tasks = check_tasks(config["tasks"])
        model = build_configured_model(config, context.device)
        load_weights(model, checkpoint, checkpoint_path)
        train_split, val_set = build_datasets(config, train=False)
        batch_size, workers = config["eval"]["batch_size"], config["data"]["num_workers"]
        amp = amp_dtype(config["train"]["amp"])
        options = meter_options(config, context)
        metrics = evaluate(model, eval_loader(val_set, batch_size, context, workers), tasks, context, amp, **options)
        trivial = trivial_metrics(train_split, val_set, tasks, context, batch_size, workers, options)
        single_task = load_single_task_results(single_task_path) if single_task_path else None
        table = metrics_table(metrics, trivial, single_task)
        results = {"checkpoint": str(checkpoint_path), "step": checkpoint["step"], "metrics": metrics,
                   "trivial_predictor": trivial, "headline": headline_metrics(metrics)}
        if context.is_main:
            out_dir = Path(out_dir)
            write_report(out_dir, results, table)
            first = next(iter(torch.utils.data.DataLoader(val_set, batch_size=config["eval"]["num_images"])))
            model.eval()
            write_predictions(model, first, tasks, context.device, out_dir / PREDICTIONS)
        return results, table
    finally:
        distributed.teardown(context)


def _demo_config(out_dir: Path, progress: bool) -> dict:
    """The demo's config, on synthetic scenes written to out_dir/synthetic the first time."""
    data_root = out_dir / "synthetic"
    if not (data_root / "gt_sets" / "val.txt").exists():
        write_synthetic_nyud(data_root, DEMO_IMAGES, size=DEMO_IMAGE_SIZE, seed=0, progress=progress)
    return load_config(DEMO_CONFIG, [f"data.root={data_root}", f"tasks.semseg={len(CLASSES)}"])


def demo(out_dir: str | Path, *, progress: bool = True) -> str:
    """Synthetic scenes -> train SCA-MTL -> evaluate; returns the printed summary."""
    out_dir = Path(out_dir)
    config = _demo_config(out_dir, progress)
    train_dir = out_dir / "train"
    shutil.rmtree(train_dir, ignore_errors=True)  # the demo's own folder: every demo trains afresh
    train(config, train_dir, progress=progress)
    _, table = evaluate_checkpoint(train_dir / LAST, out_dir / "eval")
    return (
        f"{table}\n"
        f"metrics:      {out_dir / 'eval' / 'metrics.json'} and {out_dir / 'eval' / METRICS_TABLE}\n"
        f"predictions:  {out_dir / 'eval' / PREDICTIONS}\n"
        f"training:     {train_dir / METRICS_LOG} and {train_dir / CURVES}\n"
    )


def demo_compare(out_dir: str | Path, *, progress: bool = True) -> str:
    """The Δm workflow on synthetic scenes: single-task runs, then each of DEMO_COMPARE_MODELS with the demo's recipe,
    compared against them. Finished runs are kept (run it again to continue one that stopped); returns the summary."""
    out_dir = Path(out_dir)
    config = _demo_config(out_dir, progress)
    single_task = train_single_tasks(config, out_dir / "single_task", progress=progress)
    run_dirs = []
    for name in DEMO_COMPARE_MODELS:
        model_config = apply_overrides(config, [f"model.name={name}", f"eval.single_task_results={single_task}"])
        run_dir = out_dir / name
        if _finished_evaluation(run_dir, model_config) is None:
            train(model_config, run_dir, resume=(run_dir / LAST).is_file(), progress=progress)
        run_dirs.append(run_dir)
    table, _ = compare_runs(run_dirs, out_dir / "compare", single_task=single_task)
    return (
        f"{table}\n"
        f"table:  {out_dir / 'compare' / COMPARE_TABLE} (and .csv)\n"
        f"plot:   {out_dir / 'compare' / COMPARE_PLOT}\n"
    )
