"""Evaluation metrics and Δm (MODEL_SPEC.md 7.1-7.2; [C] = [M] definitions, online on the predictions' device).

Every meter keeps a few sum/count tensors on the predictions' device. `update` adds one batch to them without a
host sync (no `.item()`, no boolean indexing, no `bincount`, whose CUDA version reads its max back); `all_reduce`
sums them over the ranks of an initialised torch.distributed group, so DDP evaluation is exact; `compute` copies
them to the host once and returns python floats. A meter that saw no valid pixel returns NaN for every metric.

    segmentation  confusion matrix M[gt, pred] over pixels with gt != 255 (argmax of the logits),
                  IoU_c = TP_c / max(TP_c + FP_c + FN_c, 1e-8), mIoU = 100 · mean_c IoU_c over *all* classes
                  ([M]: a class never in the ground truth nor predicted counts as IoU 0), pixel_acc = 100 · ΣTP / ΣM.
                  Images whose target is all 255 (human_parts without a person) add nothing.
    depth         valid: gt != 255 and gt > 0; pred clamped to >= 1e-9; pooled over every valid pixel of the split:
                  rmse = sqrt(Σ (pred - gt)² / N), log_rmse = sqrt(Σ (ln gt - ln pred)² / N), in metres.
    normals       valid: gt != 255 and gt != 0; θ = degrees(arccos(clip(<p̂, ĝ>, -1, 1))) with p̂, ĝ L2-normalised,
                  pooled: mean, rmse = sqrt(mean θ²), "11.25" / "22.5" / "30" = 100 · fraction of θ < threshold,
                  median from a histogram of NORMALS_BINS_PER_DEGREE bins per degree over [0, 180], each angle
                  taken at its bin's centre (0.01° bins: within 0.005° of np.median).
    saliency      p = sigmoid(logit); per image and threshold τ ∈ linspace(0.2, 0.9, 15): mask = p > τ over the
                  valid pixels, Jaccard (1 when mask and gt are both empty), precision TP / (TP + FP + 1e-12) and
                  recall TP / (TP + FN + 1e-12); averaged over images per τ; F = (1 + β²)PR / (β²P + R + 1e-12),
                  β = 1; maxF = 100 · max_τ F, mIoU = 100 · max_τ mean Jaccard. Images without a valid pixel are
                  skipped.
    boundary      (edge) p = sigmoid(logit) per image, SEISM's benchmark in Python (sca_mtl.boundary: NMS, 99
                  thresholds, thinning, one-to-one matching within max_dist x the diagonal, 0.011 NYUD-v2, 0.0075
                  PASCAL-Context): odsF, oisF, AP in %. The only meter that works on the host: each image's counts
                  are computed by worker processes while the evaluation goes on, and collected at all_reduce /
                  compute. Its state (counts per threshold, and at each image's best threshold) sums over ranks.

Δm = (100 / M) · Σ_t (-1)^{l_t} · (M_m,t - M_b,t) / M_b,t, with l_t = 0 where the task's headline metric is higher
is better (task table), one headline metric per task, b the single-task baseline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .boundary import COUNTS, DEFAULT_THRESHOLDS, MAX_DIST, BoundaryCounts, ImageCounter, threshold_levels
from .tasks import IGNORE_LABEL, TASKS, check_tasks, get_task, resolve_tasks

PERCENT = 100.0
IOU_EPS = 1e-8  # [M]: IoU_c = TP / max(TP + FP + FN, 1e-8), so a class absent from gt and prediction scores 0
DEPTH_MIN_PRED = 1e-9  # [M] clamps predictions to this before the log
NORMALS_EPS = 1e-12  # L2 normalisation floor; a zero prediction then sits at 90° from every gt
NORMALS_MAX_DEGREES = 180
NORMALS_BINS_PER_DEGREE = 100  # median resolution 0.01°: 18,000 int64 bins, 144 kB per meter
NORMALS_THRESHOLDS_DEGREES = (11.25, 22.5, 30.0)
SAL_THRESHOLDS = (0.2, 0.9, 15)  # torch.linspace arguments, as [M]'s np.linspace(0.2, 0.9, 15)
SAL_BETA_SQUARED = 1.0  # [M]'s F-measure is F1 (ATRC uses 0.3)
SAL_EPS = 1e-12


class Meter:
    """Base of the per-task meters: named state tensors, summed over batches (and ranks), on one device.

    Subclasses register their state (summed) and constants (not summed) in __init__ with `_add_state` and
    `_add_constant`, and implement `update` and `compute`.
    """

    def __init__(self, device: None | str | torch.device = None):
        self.device = torch.device(device if device is not None else "cpu")
        self._state: dict[str, torch.Tensor] = {}
        self._constants: dict[str, torch.Tensor] = {}

    @classmethod
    def for_task(cls, channels: int, device: None | str | torch.device = None, dataset: str | None = None,
                 workers: int | None = None) -> Meter:
        """The meter for a task with `channels` output channels on `dataset` (segmentation needs the channels, the
        boundary meter the dataset and its worker processes)."""
        return cls(device=device)

    def _add_state(self, name: str, shape: tuple, dtype: torch.dtype) -> None:
        self._state[name] = torch.zeros(shape, dtype=dtype, device=self.device)

    def _add_constant(self, name: str, value: torch.Tensor) -> None:
        self._constants[name] = value.to(self.device)  # kept on the device: no host-to-device copy per update

    def to(self, device: str | torch.device) -> Meter:
        self.device = torch.device(device)
        self._state = {name: value.to(self.device) for name, value in self._state.items()}
        self._constants = {name: value.to(self.device) for name, value in self._constants.items()}
        return self

    def reset(self) -> None:
        for value in self._state.values():
            value.zero_()

    def all_reduce(self) -> None:
        """Sum the state over all ranks (call once, before `compute`); a no-op without an initialised group."""
        if dist.is_available() and dist.is_initialized():
            for value in self._state.values():
                dist.all_reduce(value, op=dist.ReduceOp.SUM)

    def _prepare(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Follow the predictions' device (a one-off copy of the state) and bring the target there."""
        if pred.device != self.device:
            self.to(pred.device)
        return target.to(pred.device, non_blocking=True)

    def _host_state(self) -> dict[str, torch.Tensor]:
        """The state on the host in float64 (counts stay exact below 2^53): the evaluation's only readback."""
        return {name: value.cpu().double() for name, value in self._state.items()}

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError


def _check_same_shape(meter: str, pred: torch.Tensor, target: torch.Tensor, channels: int) -> None:
    if pred.dim() != 4 or pred.shape[1] != channels or pred.shape != target.shape:
        raise ValueError(
            f"{meter}.update: pred and target must both be (B, {channels}, H, W), "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


def _masked_sum(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return torch.where(valid, values, torch.zeros_like(values)).sum(dtype=torch.float64)


class SegmentationMeter(Meter):
    """mIoU and pixel accuracy (in %) from a confusion matrix. update(pred, target):
    pred (B, C, H, W) logits or (B, H, W) integer labels; target (B, H, W) int64 with 255 = ignore."""

    def __init__(self, num_classes: int, device: None | str | torch.device = None):
        super().__init__(device)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = num_classes
        self._add_state("confusion", (num_classes, num_classes), torch.int64)  # [gt class, predicted class]
        self._add_state("out_of_range", (), torch.int64)  # non-ignored pixels with a label outside [0, C)

    @classmethod
    def for_task(cls, channels: int, device: None | str | torch.device = None, dataset: str | None = None,
                 workers: int | None = None) -> SegmentationMeter:
        return cls(channels, device=device)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        target = self._prepare(pred, target)
        if pred.dim() == 4 and pred.shape[1] == self.num_classes and pred.is_floating_point():
            pred = pred.argmax(dim=1)
        if pred.dim() != 3 or pred.is_floating_point() or pred.shape != target.shape:
            raise ValueError(
                f"SegmentationMeter.update: pred must be (B, {self.num_classes}, H, W) logits or (B, H, W) labels "
                f"matching target (B, H, W), got {tuple(pred.shape)} ({pred.dtype}) and {tuple(target.shape)}"
            )
        c = self.num_classes
        target, pred = target.long(), pred.long()  # target * c must not overflow a narrow integer type
        valid = target != IGNORE_LABEL
        in_range = (target >= 0) & (target < c) & (pred >= 0) & (pred < c)
        counted = valid & in_range
        # A scatter-add is bincount without its host sync; uncounted pixels add 0 to cell 0.
        cells = torch.where(counted, target * c + pred, torch.zeros_like(target))
        self._state["confusion"].view(-1).scatter_add_(0, cells.flatten(), counted.flatten().long())
        self._state["out_of_range"] += (valid & ~in_range).sum()

    def compute(self) -> dict[str, float]:
        state = self._host_state()
        if state["out_of_range"] > 0:
            raise ValueError(
                f"SegmentationMeter: {int(state['out_of_range'])} pixels had a label outside [0, {self.num_classes})"
                f" that is not the ignore value {IGNORE_LABEL} (wrong number of classes?)"
            )
        confusion = state["confusion"]
        total = confusion.sum()
        if total == 0:
            return {"mIoU": math.nan, "pixel_acc": math.nan}
        tp = confusion.diagonal()
        union = confusion.sum(dim=0) + confusion.sum(dim=1) - tp  # TP + FP + FN
        iou = tp / union.clamp(min=IOU_EPS)
        return {"mIoU": PERCENT * iou.mean().item(), "pixel_acc": PERCENT * (tp.sum() / total).item()}


class DepthMeter(Meter):
    """Pooled RMSE and log-RMSE in metres. update(pred, target): both (B, 1, H, W), target 255 or 0 = invalid."""

    def __init__(self, device: None | str | torch.device = None):
        super().__init__(device)
        self._add_state("squared_error", (), torch.float64)
        self._add_state("squared_log_error", (), torch.float64)
        self._add_state("count", (), torch.int64)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        target = self._prepare(pred, target)
        _check_same_shape("DepthMeter", pred, target, 1)
        target = target.float()
        valid = (target != IGNORE_LABEL) & (target > 0)
        pred = pred.float().clamp(min=DEPTH_MIN_PRED)
        safe_target = torch.where(valid, target, torch.ones_like(target))  # keeps log() finite off the mask
        self._state["squared_error"] += _masked_sum((pred - target).square(), valid)
        self._state["squared_log_error"] += _masked_sum((safe_target.log() - pred.log()).square(), valid)
        self._state["count"] += valid.sum()

    def compute(self) -> dict[str, float]:
        state = self._host_state()
        count = state["count"].item()
        if count == 0:
            return {"rmse": math.nan, "log_rmse": math.nan}
        return {
            "rmse": math.sqrt(state["squared_error"].item() / count),
            "log_rmse": math.sqrt(state["squared_log_error"].item() / count),
        }


def _threshold_key(threshold: float) -> str:
    return f"{threshold:g}"  # [M]'s keys: "11.25", "22.5", "30"


def _histogram_median(histogram: torch.Tensor, bin_width: float) -> float:
    """np.median of the binned values, each taken at its bin's centre (so within half a bin of the exact one).

    The median is the mean of the values of ranks floor((n + 1) / 2) and floor(n / 2) + 1 (1-based; equal for odd n).
    """
    cumulative = histogram.cumsum(0)
    count = int(cumulative[-1].item())
    ranks = torch.tensor([(count + 1) // 2, count // 2 + 1], dtype=cumulative.dtype)
    bins = torch.searchsorted(cumulative, ranks)  # first bin whose cumulative count reaches each rank
    return ((bins.double() + 0.5) * bin_width).mean().item()


class NormalsMeter(Meter):
    """Angular error statistics in degrees (and % of pixels under 11.25/22.5/30°). update(pred, target):
    pred (B, 3, H, W) raw vectors, target (B, 3, H, W) unit vectors, 255 or all-zero = invalid."""

    def __init__(self, device: None | str | torch.device = None):
        super().__init__(device)
        self._add_state("histogram", (NORMALS_MAX_DEGREES * NORMALS_BINS_PER_DEGREE,), torch.int64)
        self._add_state("below", (len(NORMALS_THRESHOLDS_DEGREES),), torch.int64)
        self._add_state("sum", (), torch.float64)
        self._add_state("sum_squared", (), torch.float64)
        self._add_state("count", (), torch.int64)
        self._add_constant("thresholds", torch.tensor(NORMALS_THRESHOLDS_DEGREES, dtype=torch.float64))

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        target = self._prepare(pred, target)
        _check_same_shape("NormalsMeter", pred, target, 3)
        valid = (target != IGNORE_LABEL).all(dim=1) & (target != 0).any(dim=1)
        # float64: in float32 arccos near ±1 is off by up to ~0.02°, so 0° and 180° would not come out exact.
        gt = torch.where(valid.unsqueeze(1), target.double(), torch.zeros_like(target, dtype=torch.float64))
        cosine = (F.normalize(pred.double(), dim=1, eps=NORMALS_EPS) * F.normalize(gt, dim=1, eps=NORMALS_EPS)).sum(1)
        angle = torch.rad2deg(torch.arccos(cosine.clamp(-1.0, 1.0)))
        angle = torch.where(valid, angle, torch.zeros_like(angle))
        self._state["sum"] += angle.sum()
        self._state["sum_squared"] += angle.square().sum()
        self._state["count"] += valid.sum()
        below = (angle.flatten().unsqueeze(1) < self._constants["thresholds"]) & valid.flatten().unsqueeze(1)
        self._state["below"] += below.sum(dim=0)
        histogram = self._state["histogram"]
        bins = (angle * NORMALS_BINS_PER_DEGREE).long().clamp(max=histogram.numel() - 1)  # 180° joins the last bin
        histogram.scatter_add_(0, bins.flatten(), valid.flatten().long())

    def compute(self) -> dict[str, float]:
        state = self._host_state()
        count = state["count"].item()
        keys = ["mean", "median", "rmse", *map(_threshold_key, NORMALS_THRESHOLDS_DEGREES)]
        if count == 0:
            return dict.fromkeys(keys, math.nan)
        result = {
            "mean": state["sum"].item() / count,
            "median": _histogram_median(state["histogram"], 1.0 / NORMALS_BINS_PER_DEGREE),
            "rmse": math.sqrt(state["sum_squared"].item() / count),
        }
        for threshold, below in zip(NORMALS_THRESHOLDS_DEGREES, state["below"].tolist()):
            result[_threshold_key(threshold)] = PERCENT * below / count
        return result


class SaliencyMeter(Meter):
    """[M]'s saliency maxF and mIoU (in %), per-image statistics averaged over images. update(pred, target):
    pred (B, 1, H, W) logits, target (B, 1, H, W) in {0, 1}, 255 = ignore."""

    def __init__(self, device: None | str | torch.device = None):
        super().__init__(device)
        self._add_constant("thresholds", torch.linspace(*SAL_THRESHOLDS, dtype=torch.float64))
        num_thresholds = self._constants["thresholds"].numel()
        self._add_state("jaccard", (num_thresholds,), torch.float64)
        self._add_state("precision", (num_thresholds,), torch.float64)
        self._add_state("recall", (num_thresholds,), torch.float64)
        self._add_state("images", (), torch.int64)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        target = self._prepare(pred, target)
        _check_same_shape("SaliencyMeter", pred, target, 1)
        valid = (target != IGNORE_LABEL).flatten(1)  # (B, N)
        gt = valid & (target >= 0.5).flatten(1)
        thresholds = self._constants["thresholds"]
        # (B, T, N): every threshold at once; B·T·N bytes (31 MB for 8 images of 512 x 512).
        probability = torch.sigmoid(pred.float()).flatten(1).unsqueeze(1)
        positive = (probability > thresholds.view(1, -1, 1)) & valid.unsqueeze(1)
        tp = (positive & gt.unsqueeze(1)).sum(-1, dtype=torch.float64)
        fp = positive.sum(-1, dtype=torch.float64) - tp
        fn = gt.sum(-1, keepdim=True, dtype=torch.float64) - tp
        union = tp + fp + fn
        jaccard = torch.where(union > 0, tp / union.clamp(min=1), torch.ones_like(tp))  # [M]: both empty -> 1
        image = valid.any(dim=1)
        weight = image.double().unsqueeze(1)  # images without a valid pixel are skipped
        self._state["jaccard"] += (weight * jaccard).sum(0)
        self._state["precision"] += (weight * tp / (tp + fp + SAL_EPS)).sum(0)
        self._state["recall"] += (weight * tp / (tp + fn + SAL_EPS)).sum(0)
        self._state["images"] += image.sum()

    def compute(self) -> dict[str, float]:
        state = self._host_state()
        images = state["images"].item()
        if images == 0:
            return {"maxF": math.nan, "mIoU": math.nan}
        precision, recall = state["precision"] / images, state["recall"] / images
        f_measure = (1 + SAL_BETA_SQUARED) * precision * recall / (SAL_BETA_SQUARED * precision + recall + SAL_EPS)
        return {"maxF": PERCENT * f_measure.max().item(), "mIoU": PERCENT * (state["jaccard"] / images).max().item()}


class BoundaryMeter(Meter):
    """SEISM's boundary scores odsF, oisF and AP (in %). update(pred, target): pred (B, 1, H, W) logits, target
    (B, 1, H, W) in {0, 1}; `workers` processes count the images (default: the CPUs this process may use)."""

    def __init__(self, max_dist: float, device: None | str | torch.device = None, workers: int | None = None,
                 thresholds: int = DEFAULT_THRESHOLDS):
        super().__init__(device)
        self.levels = threshold_levels(thresholds)
        self._counter = ImageCounter(max_dist=max_dist, levels=self.levels, workers=workers)
        self._add_state("totals", (len(self.levels), len(COUNTS)), torch.int64)
        self._add_state("best", (len(COUNTS),), torch.int64)
        self._add_state("images", (), torch.int64)
        self._images = 0  # submitted, for the error messages

    @classmethod
    def for_task(cls, channels: int, device: None | str | torch.device = None, dataset: str | None = None,
                 workers: int | None = None) -> BoundaryMeter:
        if dataset not in MAX_DIST:
            raise ValueError(f"boundary scores take their matching tolerance from the dataset, one of "
                             f"{', '.join(MAX_DIST)}; got {dataset!r}")
        return cls(MAX_DIST[dataset], device=device, workers=workers)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        _check_same_shape("BoundaryMeter", pred, target, 1)
        if pred.device != self.device:  # the state on the predictions' device, where all_reduce (NCCL) needs it
            self.to(pred.device)
        probabilities = torch.sigmoid(pred.float())[:, 0].cpu().numpy()
        for probability, truth in zip(probabilities, target[:, 0].cpu().numpy()):
            self._counter.submit(probability, truth, f"edge: evaluated image {self._images}")
            self._images += 1

    def _collect(self) -> None:
        """Add the counted images to the state."""
        total = BoundaryCounts(self._state["totals"].cpu().numpy(), self._state["best"].cpu().numpy())
        for counts in self._counter.collect():
            total.add(counts)
        self._state["totals"] = torch.from_numpy(total.totals).to(self.device)
        self._state["best"] = torch.from_numpy(total.best).to(self.device)
        self._state["images"] += total.images  # the images added here

    def reset(self) -> None:
        self._counter.cancel()
        self._images = 0
        super().reset()

    def all_reduce(self) -> None:
        self._collect()
        super().all_reduce()

    def compute(self) -> dict[str, float]:
        self._collect()
        if self._state["images"].item() == 0:
            return {"odsF": math.nan, "oisF": math.nan, "AP": math.nan}
        state = {name: value.cpu().numpy() for name, value in self._state.items()}
        scores = BoundaryCounts(state["totals"], state["best"]).scores(self.levels)
        return {"odsF": PERCENT * scores["odsF"], "oisF": PERCENT * scores["oisF"], "AP": PERCENT * scores["AP"]}


EVALUATORS: dict[str, type[Meter]] = {
    "segmentation": SegmentationMeter,
    "depth": DepthMeter,
    "normals": NormalsMeter,
    "saliency": SaliencyMeter,
    "boundary": BoundaryMeter,
}


class MultiTaskMeter:
    """One meter per task, built from the task table.

    Args:
        tasks: {task name: output channels} (as `build_model` takes), or task names when the table fixes every
            task's channels (semseg's depend on the dataset, so it needs the mapping).
        device: where the state starts; it follows the predictions' device at the first update anyway.
        dataset: "nyud" or "pascal_context", for the metrics that depend on it (the boundary tolerance).
        workers: processes of the host-side metrics (boundary); default: the CPUs this process may use.
    """

    def __init__(
        self, tasks: Mapping[str, int] | Iterable[str], *, device: None | str | torch.device = None,
        dataset: str | None = None, workers: int | None = None,
    ):
        table = resolve_tasks(tasks)
        channels = check_tasks(tasks) if isinstance(tasks, Mapping) else {t.name: t.channels for t in table}
        self.meters: dict[str, Meter] = {}
        for task in table:
            if task.evaluator is None:
                raise ValueError(f"task {task.name!r} has no evaluator for its metric {task.metric!r}")
            if channels[task.name] is None:
                raise ValueError(
                    f"the number of output channels of {task.name!r} depends on the dataset: "
                    "pass tasks as {task name: channels}"
                )
            self.meters[task.name] = EVALUATORS[task.evaluator].for_task(channels[task.name], device=device,
                                                                         dataset=dataset, workers=workers)

    def update(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> None:
        """outputs: the model's output dict (extra keys such as "deep_supervision" are ignored); targets: the batch."""
        for task, meter in self.meters.items():
            if task not in outputs or task not in targets:
                raise ValueError(f"outputs and targets must both hold {task!r}")
            meter.update(outputs[task], targets[task])

    def reset(self) -> None:
        for meter in self.meters.values():
            meter.reset()

    def all_reduce(self) -> None:
        for meter in self.meters.values():
            meter.all_reduce()

    def to(self, device: str | torch.device) -> MultiTaskMeter:
        for meter in self.meters.values():
            meter.to(device)
        return self

    def compute(self) -> dict[str, dict[str, float]]:
        return {task: meter.compute() for task, meter in self.meters.items()}


def _check_number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number, got {value!r}")
    return float(value)


def headline_metrics(results: Mapping[str, float | Mapping[str, float]]) -> dict[str, float]:
    """{task: headline metric} from {task: value} or {task: {metric: value}} (the table's `metric` is picked)."""
    headline = {}
    for name, value in results.items():
        task = get_task(name)
        if isinstance(value, Mapping):
            if task.metric not in value:
                raise ValueError(f"results for {name!r} lack its headline metric {task.metric!r}: {sorted(value)}")
            value = value[task.metric]
        headline[name] = _check_number(value, f"the {task.metric!r} of {name!r}")
    return headline


def delta_m(model: Mapping[str, object], single_task: Mapping[str, object]) -> float:
    """Δm in percent of `model` over the `single_task` baseline; both {task: headline metric} (or {task: {metric: v}}).

    delta_m({"semseg": 41.33, "depth": 0.604}, {"semseg": 35.04, "depth": 0.644}) == 12.08...
    """
    ours, base = headline_metrics(model), headline_metrics(single_task)
    if set(ours) != set(base):
        raise ValueError(
            f"delta_m needs the same tasks on both sides: only in model {sorted(set(ours) - set(base))}, "
            f"only in single_task {sorted(set(base) - set(ours))}"
        )
    if not ours:
        raise ValueError("delta_m needs at least one task")
    total = 0.0
    for name, value in ours.items():
        baseline = base[name]
        if not (math.isfinite(value) and math.isfinite(baseline)):
            raise ValueError(f"delta_m: {name!r} has a non-finite metric (model {value}, single task {baseline})")
        if baseline == 0:
            raise ValueError(f"delta_m: the single-task baseline of {name!r} is 0, so its relative change is undefined")
        sign = 1.0 if TASKS[name].higher_is_better else -1.0
        total += sign * (value - baseline) / baseline
    return PERCENT * total / len(ours)


def delta_m_over_trivial(model: Mapping[str, object], trivial: Mapping[str, object]) -> tuple[float, list[str]]:
    """(Δm, tasks left out): Δm against the trivial predictor over the tasks whose relative change is defined. A
    constant prediction scores 0 on some headline metrics (edge's odsF: no boundary survives the lowest threshold), and
    a change relative to 0 has no meaning, so those tasks are left out; NaN when none is left."""
    ours, base = headline_metrics(model), headline_metrics(trivial)
    left_out = [task for task in ours if base.get(task) == 0]
    kept = [task for task in ours if task not in left_out]
    if not kept:
        return math.nan, left_out
    return delta_m({task: ours[task] for task in kept}, {task: base[task] for task in kept}), left_out


def load_single_task_results(path: str | Path) -> dict[str, float]:
    """{task: headline metric} from a JSON file holding {task: value} or {task: {metric: value}}.

    Values must be in this package's units (mIoU in %, RMSE in metres, angles in degrees); note that [M]'s own
    result files store mIoU and maxF as fractions. Top-level keys that are not tasks (e.g. a stored Δm) are skipped.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise FileNotFoundError(f"single-task results file {path} does not exist") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"single-task results file {path} is not readable JSON: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"single-task results file {path} must hold a JSON object {{task: metric}}, got {data!r}")
    entries = {name: value for name, value in data.items() if name in TASKS}
    if not entries:
        raise ValueError(f"single-task results file {path} names no known task ({', '.join(TASKS)}): {sorted(data)}")
    try:
        return headline_metrics(entries)
    except ValueError as err:
        raise ValueError(f"single-task results file {path}: {err}") from err
