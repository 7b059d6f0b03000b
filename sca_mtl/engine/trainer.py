"""Training SCA-MTL (or any model of the zoo) as the released code does: Adam (or SGD with momentum, for the recipes
that use it), a poly learning rate stepped per epoch, the MTI-Net deep-supervision loss, evaluation in the last
epochs; with progress, metrics.jsonl, checksummed atomic checkpoints, exact resume, mixed precision and DDP.

Exact resume: a checkpoint holds the model, optimiser, scheduler, grad scaler, every process's random state, the
epoch and the position inside it. Batches are fixed by (seed, epoch, position) (engine/loaders.py), so a run
stopped after n steps and resumed produces bitwise the parameters of the run that never stopped (on the CPU and on
deterministic GPU kernels).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..data import build_dataset
from ..losses import TOTAL, MultiTaskLoss, loss_terms
from ..metrics import delta_m, delta_m_over_trivial, headline_metrics, load_single_task_results
from ..models import build_model
from ..tasks import check_tasks
from ..visualize import save_training_curves
from .checkpoint import (
    atomic_save,
    atomic_write_text,
    load_checkpoint,
    load_weights,
    remove_temporaries,
    rng_state,
    set_rng_state,
)
from .distributed import Context, all_reduce_mean, broadcast_buffers
from .evaluate import evaluate, meter_options
from .loaders import SeededAugmentation, eval_loader, steps_per_epoch, to_device, train_loader
from .precision import amp_dtype
from .step import TrainingStep
from .trivial import trivial_metrics

METRICS_LOG = "metrics.jsonl"
RESUME_KEYS = ("model", "optimizer", "scheduler", "scaler", "rng", "step", "epoch", "step_in_epoch", "best_delta_m",
               "evaluated_step", "config")
RUN_INFO = "run.json"  # the run's config and parameter count, for `sca-mtl compare` without loading a checkpoint
LAST, BEST = "last.pt", "best.pt"
CURVES = "training_curves.png"


def resolve_kernels(name: str, device: torch.device) -> str:
    """`auto` means the Triton kernels on a GPU and the PyTorch references elsewhere."""
    if name == "auto":
        return "triton" if device.type == "cuda" else "torch"
    return name


def build_datasets(config: dict, *, train: bool) -> tuple:
    """(train split, val split) readers; the train split gets the training augmentation and the auxiliary tasks'
    targets when `train`."""
    data, tasks = config["data"], check_tasks(config["tasks"])
    if data["root"] is None:
        raise ValueError("data.root is not set: give --data-root DIR or data.root=DIR")
    train_tasks = [*tasks, *config["auxiliary_tasks"]] if train else list(tasks)
    common = dict(size=data["size"], num_classes=tasks.get("semseg"))
    return (
        build_dataset(data["dataset"], data["root"], data["train_split"], tasks=train_tasks, train=train,
                      augmentation=data["augmentation"], **common),
        build_dataset(data["dataset"], data["root"], data["val_split"], tasks=list(tasks), train=False, **common),
    )


def build_configured_model(config: dict, device: torch.device) -> torch.nn.Module:
    model = config["model"]
    return build_model(
        model["name"],
        check_tasks(config["tasks"]),
        backbone=model["backbone"],
        pretrained=model["pretrained"],
        backbone_bn_momentum=model["backbone_bn_momentum"],
        kernels=resolve_kernels(config["train"]["kernels"], device),
        auxiliary_tasks=config["auxiliary_tasks"],
        **model["options"],
    ).to(device)


def build_optimizer(model: torch.nn.Module, optim: dict) -> torch.optim.Optimizer:
    """Adam, or SGD with momentum, over every parameter, with the config's learning rate and weight decay."""
    common = dict(lr=optim["lr"], weight_decay=optim["weight_decay"])
    if optim["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), **common)
    if optim["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), momentum=optim["momentum"], **common)
    raise ValueError(f"optim.optimizer must be adam or sgd, got {optim['optimizer']!r}")


class Trainer:
    """Owns one training run in `out_dir`. `fit()` trains to the configured end and returns the last metrics."""

    def __init__(self, config: dict, out_dir: str | Path, context: Context, *, progress: bool = True):
        self.config, self.context, self.progress = config, context, progress
        self.out_dir = Path(out_dir)
        train, optim = config["train"], config["optim"]
        self.tasks = check_tasks(config["tasks"])
        self.amp = amp_dtype(train["amp"])
        self.seed = train["seed"]

        train_split, self.val_set = build_datasets(config, train=True)
        self.train_set = SeededAugmentation(train_split, self.seed)
        self.steps_per_epoch = steps_per_epoch(len(self.train_set), train["batch_size"], context)
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the training split has {len(self.train_set)} images: fewer than one batch of "
                f"{train['batch_size']} per process ({context.world_size} processes)"
            )

        torch.manual_seed(self.seed)  # the same initial weights on every process
        self.model = build_configured_model(config, context.device)
        self.network = self.model
        if context.distributed:
            device_ids = [context.device.index] if context.device.type == "cuda" else None
            self.network = DistributedDataParallel(self.model, device_ids=device_ids)
        if train["compile"]:  # the Triton ops are custom operators: opaque calls in the compiled graph
            self.network = torch.compile(self.network)
        torch.manual_seed(self.seed + context.rank)  # each process its own stochastic-depth stream
        self.criterion = MultiTaskLoss(self.tasks, config["loss_weights"], auxiliary=config["auxiliary_tasks"],
                                       dataset=config["data"]["dataset"], options=config["loss_options"])
        self.optimizer = build_optimizer(self.model, optim)
        epochs, power = optim["epochs"], optim["poly_power"]
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda e: (1 - e / epochs) ** power)
        self.train_step = TrainingStep(self.network, self.criterion, self.optimizer, self.amp, context.device)

        self.step = self.epoch = self.step_in_epoch = 0
        self.evaluated_step = None  # the step of the last evaluation
        self.best_delta_m = -math.inf
        self.last_metrics: dict = {}
        self._baseline: dict | None = None
        self._single_task = self._read_single_task(config["eval"]["single_task_results"])
        self._interval = self._new_interval()
        if context.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            remove_temporaries(self.out_dir, (LAST, BEST, RUN_INFO, METRICS_LOG))
            parameters = sum(p.numel() for p in self.model.parameters())
            atomic_write_text(self.out_dir / RUN_INFO, json.dumps({"config": config, "parameters": parameters}))

    # ----------------------------------------------------------------------------------------------- checkpoints
    def state_dict(self, rng_states: list) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.train_step.scaler.state_dict(),
            "rng": rng_states,
            "step": self.step,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "best_delta_m": self.best_delta_m,
            "evaluated_step": self.evaluated_step,
            "config": self.config,
        }

    def save(self, name: str) -> None:
        """Every process contributes its random state; the main process writes atomically."""
        self._check_finite()
        broadcast_buffers(self.model, self.context)  # the checkpoint is the model every process evaluates
        states = [None] * self.context.world_size
        if self.context.distributed:
            dist.all_gather_object(states, rng_state())
        else:
            states = [rng_state()]
        if self.context.is_main:
            atomic_save(self.state_dict(states), self.out_dir / name)

    def resume(self, path: str | Path) -> None:
        """Continue from the checkpoint at `path`: its state restored, the log's records after its step dropped (a
        killed run redoes those steps)."""
        checkpoint = load_checkpoint(path, required=RESUME_KEYS)
        if len(checkpoint["rng"]) != self.context.world_size:
            raise ValueError(
                f"{path} was written by {len(checkpoint['rng'])} processes; resume it with as many, "
                f"not {self.context.world_size}"
            )
        load_weights(self.model, checkpoint, path)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.train_step.scaler.load_state_dict(checkpoint["scaler"])
        set_rng_state(checkpoint["rng"][self.context.rank])
        self.step, self.epoch, self.step_in_epoch = checkpoint["step"], checkpoint["epoch"], checkpoint["step_in_epoch"]
        self.best_delta_m, self.evaluated_step = checkpoint["best_delta_m"], checkpoint["evaluated_step"]
        if self.context.is_main:
            kept = [record for record in self._records() if record["step"] <= self.step]
            atomic_write_text(self.out_dir / METRICS_LOG, "".join(_json_line(record) for record in kept))

    # ----------------------------------------------------------------------------------------------- the loop
    def fit(self) -> dict:
        epochs, max_steps = self.config["optim"]["epochs"], self.config["train"]["max_steps"]
        total = epochs * self.steps_per_epoch if max_steps is None else min(max_steps, epochs * self.steps_per_epoch)
        show = self.progress and self.context.is_main
        bar = tqdm(total=total, initial=min(self.step, total), unit="step", disable=not show)
        while self.epoch < epochs and not self._reached(max_steps):
            batches = train_loader(
                self.train_set,
                self.config["train"]["batch_size"],
                self.epoch,
                self.step_in_epoch,
                self.context,
                self.config["data"]["num_workers"],
            )
            for batch in batches:
                self._train_step(batch, bar)
                if self._reached(max_steps):
                    break
            if self.step_in_epoch == self.steps_per_epoch:
                self.scheduler.step()
                self.epoch, self.step_in_epoch = self.epoch + 1, 0
                if self.epoch > epochs - self.config["train"]["eval_last_epochs"]:
                    self._evaluate()
                self.save(LAST)
        bar.close()
        if self.evaluated_step != self.step:  # a run stopped by max_steps gets its numbers too
            self._evaluate()
        self.save(LAST)
        if self.context.is_main:
            save_training_curves(self._records(), self.out_dir / CURVES)
        return self.last_metrics

    def _reached(self, max_steps: int | None) -> bool:
        return max_steps is not None and self.step >= max_steps

    @staticmethod
    def _new_interval() -> dict:
        """The logging interval's running sums, and per step its loss's finiteness (a device flag, read at the
        interval's end) and its images' ids."""
        return {"sum": None, "steps": 0, "images": 0, "finite": [], "ids": [], "start": time.perf_counter()}

    def _train_step(self, batch: dict, bar: tqdm) -> None:
        images, targets = to_device(batch, self.context.device)
        losses = self.train_step(images, targets)
        self.step += 1
        self.step_in_epoch += 1
        bar.update(1)

        terms = {TOTAL: losses[TOTAL], **loss_terms(losses)}
        values = torch.stack([value.detach().float() for value in terms.values()])
        interval = self._interval
        interval["sum"] = values if interval["sum"] is None else interval["sum"] + values
        interval["steps"] += 1
        interval["images"] += images.shape[0]
        interval["finite"].append(torch.isfinite(losses[TOTAL].detach()))
        interval["ids"].append(list(batch["meta"]["id"]))
        if self.step % self.config["train"]["log_every"] == 0:
            self._log_interval(list(terms), bar)

    def _check_finite(self) -> None:
        """Stop the run at the first step of the interval whose loss was NaN or infinite (on any process), naming the
        step and its images, before that state is logged or saved."""
        interval = self._interval
        if not interval["finite"]:
            return
        finite = torch.stack(interval["finite"]).to(torch.int32)
        if self.context.distributed:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        flags = finite.tolist()
        if all(flags):
            interval["finite"], interval["ids"] = [], []
            return
        first = flags.index(0)
        step = self.step - len(flags) + first + 1
        raise ValueError(f"the training loss became non-finite at step {step} (epoch {self.epoch}); the batch of "
                         f"this process held the images {', '.join(interval['ids'][first])}; the last checkpoint "
                         "before it is kept")

    def _log_interval(self, names: list, bar: tqdm) -> None:
        self._check_finite()
        interval = self._interval
        means = all_reduce_mean(interval["sum"] / interval["steps"], self.context).tolist()  # one sync per interval
        elapsed = time.perf_counter() - interval["start"]
        images_per_s = interval["images"] * self.context.world_size / elapsed
        losses = dict(zip(names, means))
        self._write({
            "kind": "train",
            "step": self.step,
            "epoch": self.epoch,
            "lr": self.optimizer.param_groups[0]["lr"],
            "losses": losses,
            "images_per_s": images_per_s,
        })
        bar.set_postfix(loss=f"{losses[TOTAL]:.3f}", img_s=f"{images_per_s:.1f}")
        self._interval = self._new_interval()

    # ----------------------------------------------------------------------------------------------- evaluation
    def baseline(self) -> tuple[str, dict]:
        """The metrics Δm compares against: the single-task results file when configured, otherwise the trivial
        predictor (training-set majority class / mean depth / mean normal) evaluated on the val split."""
        if self._single_task is not None:
            return "single_task", self._single_task
        if self._baseline is None:
            train_split, _ = build_datasets(self.config, train=False)
            self._baseline = trivial_metrics(train_split, self.val_set, self.tasks, self.context,
                                             self.config["eval"]["batch_size"], self.config["data"]["num_workers"],
                                             meter_options(self.config, self.context))
        return "trivial", headline_metrics(self._baseline)

    def _read_single_task(self, path: str | None) -> dict[str, float] | None:
        """The run's tasks' headline metrics from the single-task results file, read before the first step."""
        if path is None:
            return None
        results = load_single_task_results(path)
        missing = [task for task in self.tasks if task not in results]
        if missing:
            raise ValueError(f"single-task results file {path} lacks the tasks {missing} of this run")
        return {task: results[task] for task in self.tasks}

    def _evaluate(self) -> None:
        broadcast_buffers(self.model, self.context)  # every process evaluates the model the checkpoint holds
        batches = eval_loader(self.val_set, self.config["eval"]["batch_size"], self.context,
                              self.config["data"]["num_workers"])
        self.last_metrics = evaluate(self.model, batches, self.tasks, self.context, self.amp,
                                     **meter_options(self.config, self.context))
        self.evaluated_step = self.step
        baseline_name, baseline = self.baseline()
        headline = headline_metrics(self.last_metrics)
        score, left_out = math.nan, []
        # a metric without a valid pixel is NaN: that evaluation has no Δm and cannot be the best
        if all(map(math.isfinite, headline.values())):
            if baseline_name == "trivial":
                score, left_out = delta_m_over_trivial(headline, baseline)
            else:
                score = delta_m(headline, baseline)
        self._write({
            "kind": "eval",
            "step": self.step,
            "epoch": self.epoch,
            "metrics": self.last_metrics,
            "delta_m": score,
            "delta_m_baseline": baseline_name,
            "delta_m_left_out": left_out,
            "baseline": baseline,
        })
        if score > self.best_delta_m:
            self.best_delta_m = score
            self.save(BEST)

    # ----------------------------------------------------------------------------------------------- metrics.jsonl
    def _write(self, record: dict) -> None:
        if self.context.is_main:
            with open(self.out_dir / METRICS_LOG, "a") as f:
                f.write(_json_line(record))

    def _records(self) -> list:
        return read_log(self.out_dir)


def read_log(run_dir: str | Path) -> list[dict]:
    """The records of a run folder's metrics.jsonl ([] when it has none); ValueError naming a file that is not one."""
    path = Path(run_dir) / METRICS_LOG
    if not path.is_file():
        return []
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a metrics log (one JSON record per line): {error}") from None


def _json_line(record: dict) -> str:
    """One strict-JSON line: NaN and infinities (which json.dumps would write as bare NaN/Infinity) become null."""

    def finite(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {key: finite(v) for key, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value

    return json.dumps(finite(record), allow_nan=False) + "\n"
