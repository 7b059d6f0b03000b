"""Per-task losses and the MTI-Net / SCA-MTL deep-supervision loss scheme (MODEL_SPEC.md 6.1, [C] = [M]).

Per-task losses, each a float32 scalar; V is the set of valid pixels (target != IGNORE_LABEL), N the number of
pixels of the batch (B·H·W):
    cross_entropy  (semseg, human_parts)  Σ_{i∈V} -log softmax(p_i)[y_i] / |V|
    l1             (depth)                Σ_{i∈V} |p_i - y_i| / |V|
    normals_l1     (normals)              Σ_{i,c valid} |p̂_ic - y_ic| / #valid elements,  p̂ = p / max(‖p‖₂, eps)
                                          (masked per element, so a valid pixel counts 3 times: [M], not ATRC)
    balanced_bce   (sal, edge)            (w·L₊ + (1 - w)·L₋) / N,  L± = Σ BCE(p_i, y_i) over valid positives /
                                          negatives; w = #valid negatives / |V| (HED style, sal) or a fixed
                                          pos_weight (edge: 0.95; 0.8 on NYUD-v2, as ATRC). Ignored pixels add
                                          no loss but stay in N, as in [M]'s void-pixel branch.
Every loss divides by max(count, 1), so a batch without a valid pixel gives 0 (with a zero gradient), not NaN.
Predictions are cast to float32 first: the losses are exact under torch.autocast.

Loss scheme (`MultiTaskLoss`), with deep-supervision maps p_t^k at scales k (4 for SCA-MTL and MTI-Net):
    total = Σ_k Σ_t w_t · L_t(up(p_t^k → target size), y_t) + Σ_t w_t · L_t(p_t, y_t)
    (up = bilinear, align_corners=False; 3 tasks -> 15 terms, 2 tasks -> 10.) Models without deep supervision
    give just the second sum. Auxiliary tasks (MTI-Net's and PAD-Net's) enter the first sum only.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .tasks import IGNORE_LABEL, resolve_tasks

NORMALS_EPS = 1e-12  # [M] adds 1e-12 to the norm; F.normalize clamps it instead (same for any non-zero vector)
DEEP_SUPERVISION = "deep_supervision"  # model-output key holding {scale: {task: low-resolution prediction}}
TOTAL = "total"  # loss-dict key of the weighted sum that is backpropagated


def _check_shapes(name: str, pred: torch.Tensor, target: torch.Tensor, target_shape: tuple) -> None:
    if tuple(target.shape) != target_shape:
        raise ValueError(
            f"{name}: target of shape {target_shape} expected for a prediction of shape {tuple(pred.shape)}, "
            f"got {tuple(target.shape)}"
        )


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Σ values[valid] / max(|valid|, 1): 0 with a zero gradient when nothing is valid, and no host sync."""
    return torch.where(valid, values, torch.zeros_like(values)).sum() / valid.sum().clamp(min=1)


def cross_entropy_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred (B, C, H, W) logits, target (B, H, W) int64 classes: mean CE over pixels with target != ignore."""
    if pred.dim() != 4:
        raise ValueError(f"cross_entropy_loss: pred must be (B, C, H, W) logits, got shape {tuple(pred.shape)}")
    _check_shapes("cross_entropy_loss", pred, target, (pred.shape[0], *pred.shape[2:]))
    # reduction="mean" would give 0/0 = NaN for an all-ignored batch; divide by the clamped count instead.
    total = F.cross_entropy(pred.float(), target.long(), ignore_index=IGNORE_LABEL, reduction="sum")
    return total / (target != IGNORE_LABEL).sum().clamp(min=1)


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred, target (B, 1, H, W): mean |pred - target| over pixels with target != ignore (depth, metres)."""
    _check_shapes("l1_loss", pred, target, tuple(pred.shape))
    return _masked_mean((pred.float() - target).abs(), target != IGNORE_LABEL)


def normals_l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred (B, 3, H, W) raw vectors, target (B, 3, H, W) unit vectors: L1 of the normalised pred per valid element."""
    if pred.dim() != 4 or pred.shape[1] != 3:
        raise ValueError(f"normals_l1_loss: pred must be (B, 3, H, W), got shape {tuple(pred.shape)}")
    _check_shapes("normals_l1_loss", pred, target, tuple(pred.shape))
    unit = F.normalize(pred.float(), p=2.0, dim=1, eps=NORMALS_EPS)
    return _masked_mean((unit - target).abs(), target != IGNORE_LABEL)


def balanced_bce_loss(pred: torch.Tensor, target: torch.Tensor, pos_weight: float | None = None) -> torch.Tensor:
    """pred (B, 1, H, W) logits, target (B, 1, H, W) in {0, 1}: class-balanced BCE, summed and divided by B·H·W.

    pos_weight None: w = fraction of negatives among the valid pixels (HED); otherwise w = pos_weight.
    """
    _check_shapes("balanced_bce_loss", pred, target, tuple(pred.shape))
    valid = target != IGNORE_LABEL
    positive = valid & (target >= 0.5)
    negative = valid & (target < 0.5)
    # BCE-with-logits is the stable form of [M]'s x·(y - [x≥0]) - log(1 + exp(x - 2x·[x≥0])) (with the sign flipped).
    bce = F.binary_cross_entropy_with_logits(pred.float(), positive.float(), reduction="none")
    zero = torch.zeros_like(bce)
    loss_pos = torch.where(positive, bce, zero).sum()
    loss_neg = torch.where(negative, bce, zero).sum()
    w = negative.sum() / valid.sum().clamp(min=1) if pos_weight is None else pos_weight
    return (w * loss_pos + (1 - w) * loss_neg) / target.numel()


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "cross_entropy": cross_entropy_loss,
    "l1": l1_loss,
    "normals_l1": normals_l1_loss,
    "balanced_bce": balanced_bce_loss,
}


def _upsample(pred: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(pred.float(), size=tuple(size), mode="bilinear", align_corners=False)


class MultiTaskLoss(nn.Module):
    """The MTI-Net / SCA-MTL loss scheme: every task's final output plus every deep-supervision scale.

    Args:
        tasks: task names, or a {task name: channels} mapping (its keys are used).
        weights: {task: w_t}; tasks left out take the table's default weight (MTI-Net's: semseg 1, depth 1,
            normals 10, human_parts 2, sal 5, edge 50).
        auxiliary: tasks (names or a {name: channels} mapping) trained through the deep supervision only.
        dataset: picks the task table's per-dataset loss options (edge's positive weight: 0.8 on "nyud").
        options: {task: {keyword: value}} for the task's loss, over the table's (e.g. {"edge": {"pos_weight": 0.95}}).

    forward(outputs, targets) -> {
        task: L_t(p_t, y_t),                                         (unweighted, as [M] logs them)
        "deep_supervision": {scale: {task: L_t(up(p_t^k), y_t)}},    (unweighted; only if outputs have it)
        "total": Σ w_t · (every term above),                         (what is backpropagated)
    }
    `loss_terms` flattens that dict for logging and counting.
    """

    def __init__(
        self,
        tasks: Mapping[str, int] | Iterable[str],
        weights: Mapping[str, float] | None = None,
        auxiliary: Mapping[str, int] | Iterable[str] = (),
        dataset: str | None = None,
        options: Mapping[str, Mapping[str, float]] | None = None,
    ):
        super().__init__()
        main = resolve_tasks(tasks)
        table = resolve_tasks([task.name for task in main] + list(auxiliary)) if auxiliary else main
        names = [task.name for task in table]
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ValueError(f"weights name tasks {unknown} that are not among the loss's tasks {names}")
        untrainable = [task.name for task in table if task.loss is None]
        if untrainable:
            raise ValueError(f"tasks {untrainable} have no loss in the task table")
        self.tasks = tuple(task.name for task in main)
        self.scale_tasks = tuple(names)  # the deep supervision's: the tasks, then the auxiliary ones
        self.weights = {task.name: float(weights.get(task.name, task.weight)) for task in table}
        options = dict(options or {})
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ValueError(f"loss options name tasks {unknown} that are not among the loss's tasks {names}")
        self._losses = {}
        for task in table:
            kwargs = {**task.loss_options(dataset), **options.get(task.name, {})}
            accepted = set(inspect.signature(LOSSES[task.loss]).parameters) - {"pred", "target"}
            if set(kwargs) - accepted:
                raise ValueError(f"loss options of {task.name!r}: {task.loss} takes {sorted(accepted) or 'none'}, got "
                                 f"{sorted(set(kwargs) - accepted)}")
            self._losses[task.name] = functools.partial(LOSSES[task.loss], **kwargs)

    def _require_tasks(self, where: str, mapping: Mapping[str, object], tasks: Iterable[str]) -> None:
        missing = [task for task in tasks if task not in mapping]
        if missing:
            raise ValueError(f"{where} lacks the tasks {missing} (loss tasks: {list(tasks)})")

    def _task_losses(
        self, predictions: Mapping[str, torch.Tensor], targets, tasks: Iterable[str], upsample: bool
    ) -> dict[str, torch.Tensor]:
        losses = {}
        for task in tasks:
            pred = predictions[task]
            if upsample:
                pred = _upsample(pred, targets[task].shape[-2:])
            losses[task] = self._losses[task](pred, targets[task])
        return losses

    def _weighted_sum(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.weights[task] * loss for task, loss in losses.items())

    def forward(self, outputs: Mapping[str, object], targets: Mapping[str, torch.Tensor]) -> dict[str, object]:
        self._require_tasks("outputs", outputs, self.tasks)
        self._require_tasks("targets", targets, self.scale_tasks if DEEP_SUPERVISION in outputs else self.tasks)
        result: dict[str, object] = self._task_losses(outputs, targets, self.tasks, upsample=False)
        total = self._weighted_sum(result)
        if DEEP_SUPERVISION in outputs:
            per_scale = {}
            for scale, predictions in outputs[DEEP_SUPERVISION].items():
                self._require_tasks(f"outputs[{DEEP_SUPERVISION!r}][{scale!r}]", predictions, self.scale_tasks)
                per_scale[scale] = self._task_losses(predictions, targets, self.scale_tasks, upsample=True)
                total = total + self._weighted_sum(per_scale[scale])
            result[DEEP_SUPERVISION] = per_scale
        result[TOTAL] = total
        return result


def loss_terms(losses: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """The unweighted terms of a `MultiTaskLoss` result, flat: {"semseg": ..., "deep_supervision/scale_0/semseg": ...}.

    "total" is left out; len() of the result is the number of loss terms (15 for 3 tasks with 4 scales).
    """
    terms = {}
    for key, value in losses.items():
        if key == DEEP_SUPERVISION:
            for scale, per_task in value.items():
                terms.update({f"{DEEP_SUPERVISION}/{scale}/{task}": loss for task, loss in per_task.items()})
        elif key != TOTAL:
            terms[key] = value
    return terms
