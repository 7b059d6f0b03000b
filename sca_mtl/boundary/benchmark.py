"""The boundary benchmark: SEISM's ODS / OIS F-measure and AP over a set of images (the BSDS protocol of Martin,
Fowlkes and Malik as SEISM applies it to the contour maps of MTI-Net and its successors), without MATLAB.

Per image, with E the predicted boundary probability map and G the binary ground truth:
    E' = suppress_non_maxima(E)                                (SEISM's read_one_cont_png; `nms=False` skips it)
    G' = thin(G)
    for each threshold τ_k (99 by default: 0.01, 0.02, .., 0.99):
        B_k  = thin(E' > τ_k)
        m_k  = matched pixels of B_k and G' within max_dist x the image diagonal (correspondPixels; matching.py)
        counts_k = (cntP, sumP, cntR, sumR) = (m_k, |B_k|, m_k, |G'|)
Over the set:
    ODS    the counts summed over the images, P_k = ΣcntP / ΣsumP, R_k = ΣcntR / ΣsumR, F_k = 2 P_k R_k / (P_k + R_k);
           odsF = max_k F_k
    OIS    each image's counts at its own best threshold (first of equal Fs), summed, and F of those sums
    AP     the mean precision over recalls 0, 0.01, .., 1 that the curve (R_k, P_k) reaches, interpolated linearly
           between the curve's points at its distinct recalls (SEISM's general_ap)
with SEISM's conventions for empty maps: no ground truth gives R = 1 and P = 0, no prediction R = 0 and P = 1.

Not reproduced: SEISM reads a prediction from an 8-bit PNG, so its thresholds cut a map quantised to 1/255 steps;
here they cut the float map.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence, Sized
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

import numpy as np
from tqdm import tqdm

from .matching import count_matched_each, pairs_within
from .nms import suppress_non_maxima
from .thinning import neighbour_table, thin, thin_nested

DEFAULT_THRESHOLDS = 99
# tolerances of the released evaluations, as a fraction of the image diagonal
MAX_DIST = {"nyud": 0.011, "pascal_context": 0.0075}
COUNTS = ("cntP", "sumP", "cntR", "sumR")
AP_RECALLS = np.linspace(0, 1, 101)
# worker processes start by importing the package (and so torch); below this many images one process is faster
MIN_IMAGES_PER_WORKER = 4
# images handed to the workers and not yet counted, per worker: enough to keep them busy, few enough that a large
# set is not held in memory twice (a 480 x 640 float map is 1.2 MB)
IN_FLIGHT_PER_WORKER = 4


def threshold_levels(thresholds: int | Sequence[float]) -> np.ndarray:
    """SEISM's levels: `count` values evenly spaced strictly inside (0, 1), 1/(count+1) .. count/(count+1); or the
    given increasing levels."""
    if isinstance(thresholds, (int, np.integer)) and not isinstance(thresholds, bool):
        if thresholds < 1:
            raise ValueError(f"thresholds must be at least 1, got {thresholds}")
        return np.arange(1, thresholds + 1) / (thresholds + 1)
    levels = np.asarray(thresholds, np.float64)
    if levels.ndim != 1 or not len(levels) or np.any(np.diff(levels) <= 0) or levels[0] < 0 or levels[-1] >= 1:
        raise ValueError(f"thresholds must be a count or increasing levels in [0, 1), got {thresholds!r}")
    return levels


def image_counts(prediction: np.ndarray, target: np.ndarray, *, max_dist: float, levels: np.ndarray,
                 nms: bool = True) -> np.ndarray:
    """(len(levels), 4) int64: cntP, sumP, cntR, sumR of one image at each threshold (inputs as `check_image`)."""
    # compared in single precision, as MATLAB compares a single map with a double level
    levels = levels.astype(np.float32)
    edges = suppress_non_maxima(prediction, above=levels[0]) if nms else np.asarray(prediction, np.float32)
    truth = np.argwhere(thin(target))
    # before thinning the maps are nested: with the lowest map's pixels strongest first, each map is a prefix
    pixels = np.flatnonzero(edges > levels[0])
    strength = edges.reshape(-1)[pixels]
    order = np.argsort(-strength, kind="stable")
    pixels = pixels[order]
    sizes = np.searchsorted(-strength[order], -levels, side="left")  # how many are above each level
    table = neighbour_table(pixels, edges.shape)
    maps = thin_nested(table, sizes)  # positions in `pixels`
    # the pairs within the radius are found once, for every pixel of any threshold's map (the graph's rows)
    in_any = np.zeros(len(pixels), bool)
    for binary in maps:
        in_any[binary] = True
    used = np.flatnonzero(in_any)
    row_of = np.zeros(len(pixels), np.int64)
    row_of[used] = np.arange(len(used))
    pairs = pairs_within(np.stack(np.divmod(pixels[used], edges.shape[1]), axis=1), truth,
                         max_dist * math.hypot(*edges.shape))
    # from the highest threshold down: each map mostly holds the one before, whose matching is a start for its own
    matched = count_matched_each(pairs, [row_of[binary] for binary in maps[::-1]])[::-1]
    return np.stack([matched, [len(binary) for binary in maps], matched, np.full(len(maps), len(truth))], axis=1)


def _precision_recall(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cnt_p, sum_p, cnt_r, sum_r = (counts[..., i].astype(np.float64) for i in range(len(COUNTS)))
    recall = np.where(sum_r > 0, cnt_r / np.maximum(sum_r, 1), 1.0)
    precision = np.where(sum_p > 0, cnt_p / np.maximum(sum_p, 1), np.where(sum_r > 0, 1.0, 0.0))
    recall = np.where((sum_p == 0) & (sum_r > 0), 0.0, recall)
    return precision, recall


def _f_measure(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    total = precision + recall
    return np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)


@dataclass
class BoundaryCounts:
    """What the scores need of a set of images, summable over images and processes: the counts per threshold summed
    over the images, and each image's counts at its own best threshold, summed."""

    totals: np.ndarray
    best: np.ndarray = field(default_factory=lambda: np.zeros(len(COUNTS), np.int64))
    images: int = 0

    @classmethod
    def empty(cls, levels: int) -> BoundaryCounts:
        return cls(np.zeros((levels, len(COUNTS)), np.int64))

    def add(self, counts: np.ndarray) -> None:
        """Add one image's (levels, 4) counts."""
        self.totals += counts
        self.best += counts[int(np.argmax(_f_measure(*_precision_recall(counts))))]
        self.images += 1

    def scores(self, levels: np.ndarray) -> dict[str, float]:
        """odsF, oisF, AP in [0, 1], and the ODS point: its precision, recall and threshold."""
        precision, recall = _precision_recall(self.totals)
        f = _f_measure(precision, recall)
        best = int(np.argmax(f))
        unique_recall, first = np.unique(recall, return_index=True)
        reached = (AP_RECALLS >= unique_recall[0]) & (AP_RECALLS <= unique_recall[-1])
        curve = np.interp(AP_RECALLS[reached], unique_recall, precision[first])
        ap = float(curve.sum() / (len(AP_RECALLS) - 1)) if len(unique_recall) > 1 else 0.0
        return {"odsF": float(f[best]), "oisF": float(_f_measure(*_precision_recall(self.best))), "AP": ap,
                "ods_precision": float(precision[best]), "ods_recall": float(recall[best]),
                "ods_threshold": float(levels[best])}


def check_image(prediction: np.ndarray, target: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The pair as float32 probabilities and a boolean boundary map, or a ValueError naming the image."""
    prediction, target = np.asarray(prediction), np.asarray(target)
    if prediction.ndim != 2 or prediction.shape != target.shape:
        raise ValueError(f"{name}: the prediction and the ground truth must be (H, W) maps of one shape, got "
                         f"{prediction.shape} and {target.shape}")
    if min(prediction.shape) < 2:
        raise ValueError(f"{name}: a boundary map must be at least 2 x 2 pixels, got {prediction.shape}")
    prediction = prediction.astype(np.float32)
    if not np.isfinite(prediction).all():
        raise ValueError(f"{name}: the prediction has {np.count_nonzero(~np.isfinite(prediction))} non-finite values")
    low, high = float(prediction.min()), float(prediction.max())
    if low < 0 or high > 1:
        raise ValueError(f"{name}: the prediction must be probabilities in [0, 1], got values in [{low:g}, {high:g}] "
                         "(logits? apply a sigmoid first)")
    values = np.unique(target)
    if not np.isin(values, (0, 1)).all():
        raise ValueError(f"{name}: the ground truth must be binary (0 / 1), got the values "
                         f"{values[~np.isin(values, (0, 1))][:5].tolist()}")
    return prediction, target.astype(bool)


def _counts_of(job: tuple) -> np.ndarray:
    prediction, target, max_dist, levels, nms = job
    return image_counts(prediction, target, max_dist=max_dist, levels=levels, nms=nms)


def default_workers() -> int:
    """The CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_POOLS: dict[int, ProcessPoolExecutor] = {}


def _pool(workers: int) -> ProcessPoolExecutor:
    """One pool per size for the process's lifetime: a worker starts by importing the package (and torch), seconds
    that every evaluation of a training run would otherwise pay again."""
    if workers not in _POOLS:
        # spawn, not fork: a caller with CUDA or OpenMP threads cannot be forked safely
        _POOLS[workers] = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
    return _POOLS[workers]


class ImageCounter:
    """The counts of images given one at a time, computed by `workers` processes (in this one for 1) while the
    caller goes on (the model predicting the next batch); `collect` returns them in the order given."""

    def __init__(self, *, max_dist: float, levels: np.ndarray, nms: bool = True, workers: int | None = None):
        if not 0 < max_dist < 1:
            raise ValueError(f"max_dist is a fraction of the image diagonal in (0, 1), got {max_dist}")
        self.max_dist, self.levels, self.nms = max_dist, levels, nms
        self.workers = default_workers() if workers is None else workers
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        self._pending: list = []  # counts, or futures of counts, in the order given
        self._counted = 0  # the first `_counted` entries of `_pending` are counts

    def submit(self, prediction: np.ndarray, target: np.ndarray, name: str) -> None:
        job = (*check_image(prediction, target, name), self.max_dist, self.levels, self.nms)
        if self.workers == 1:
            self._pending.append(_counts_of(job))
            self._counted += 1
            return
        if len(self._pending) - self._counted >= IN_FLIGHT_PER_WORKER * self.workers:
            self._pending[self._counted] = self._pending[self._counted].result()  # wait for the oldest
            self._counted += 1
        self._pending.append(_pool(self.workers).submit(_counts_of, job))

    @property
    def counted(self) -> int:
        """Images given since the last `collect` whose counts are known to be ready."""
        return self._counted

    def collect(self) -> Iterator[np.ndarray]:
        pending, self._pending, self._counted = self._pending, [], 0
        for result in pending:
            yield result if isinstance(result, np.ndarray) else result.result()

    def cancel(self) -> None:
        for result in self._pending:
            if not isinstance(result, np.ndarray):
                result.cancel()
        self._pending, self._counted = [], 0


def evaluate(predictions: Iterable[np.ndarray], targets: Iterable[np.ndarray], *, max_dist: float,
             thresholds: int | Sequence[float] = DEFAULT_THRESHOLDS, nms: bool = True, workers: int | None = None,
             names: Sequence[str] | None = None, progress: bool = False) -> dict[str, float]:
    """odsF, oisF and AP (in [0, 1]) of float (H, W) probability maps against binary (H, W) ground truths.

    max_dist: the matching tolerance as a fraction of the image diagonal (MAX_DIST: 0.011 NYUD-v2, 0.0075
    PASCAL-Context). workers: processes (default: the CPUs this process may use; fewer for a few images). The inputs
    may be generators: images are read as the workers take them. names: what an error calls each image.
    """
    levels = threshold_levels(thresholds)
    size = len(predictions) if isinstance(predictions, Sized) else None
    workers = workers or default_workers()
    if size is not None:
        workers = min(workers, math.ceil(size / MIN_IMAGES_PER_WORKER) or 1)
    counter = ImageCounter(max_dist=max_dist, levels=levels, nms=nms, workers=workers)
    total = BoundaryCounts.empty(len(levels))
    with tqdm(total=size, unit="image", disable=not progress) as bar:
        try:
            for i, (prediction, target) in enumerate(zip(predictions, targets, strict=True)):
                counter.submit(prediction, target, names[i] if names is not None else f"image {i}")
                bar.update(counter.counted - bar.n)
            for counts in counter.collect():
                total.add(counts)
                bar.update(max(0, total.images - bar.n))
        finally:
            counter.cancel()
    if not total.images:
        raise ValueError("no images to evaluate")
    return total.scores(levels)
