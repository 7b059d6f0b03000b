"""The whole runs behind the command line: train, evaluate a checkpoint, and the demo."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from ..config import apply_overrides, from_mapping, load_config
from ..data.synthetic import CLASSES, write_synthetic_nyud
from ..metrics import headline_metrics, load_single_task_results
from ..tasks import check_tasks
from . import distributed
from .checkpoint import load_checkpoint
from .evaluate import evaluate
from .loaders import eval_loader
from .precision import amp_dtype
from .report import METRICS_TABLE, PREDICTIONS, metrics_table, write_predictions, write_report
from .trainer import CURVES, LAST, METRICS_LOG, Trainer, build_configured_model, build_datasets
from .trivial import trivial_metrics

DEMO_CONFIG = "synthetic_sca_mtl"
DEMO_IMAGES, DEMO_IMAGE_SIZE = 160, (240, 320)


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
        model.load_state_dict(checkpoint["model"])
        train_split, val_set = build_datasets(config, train=False)
        batch_size, workers = config["eval"]["batch_size"], config["data"]["num_workers"]
        amp = amp_dtype(config["train"]["amp"])
        metrics = evaluate(model, eval_loader(val_set, batch_size, context, workers), tasks, context, amp)
        trivial = trivial_metrics(train_split, val_set, tasks, context, batch_size, workers)
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


def demo(out_dir: str | Path, *, progress: bool = True) -> str:
    """Synthetic scenes -> train SCA-MTL -> evaluate; returns the printed summary."""
    out_dir = Path(out_dir)
    data_root = out_dir / "synthetic"
    if not (data_root / "gt_sets" / "val.txt").exists():
        write_synthetic_nyud(data_root, DEMO_IMAGES, size=DEMO_IMAGE_SIZE, seed=0, progress=progress)
    config = load_config(DEMO_CONFIG, [f"data.root={data_root}", f"tasks.semseg={len(CLASSES)}"])
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
