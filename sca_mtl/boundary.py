"""Boundary detection scores in Python: the BSDS protocol (Martin, Fowlkes, Malik) as SEISM's `edgesEvalImg` applies
it to a binary boundary map, without MATLAB.

Per image and threshold:
    B        = thin(prediction >= τ)                  (MATLAB's bwmorph(·, 'thin', Inf): Guo-Hall, two subiterations)
    matching = a one-to-one assignment of B's pixels to the (thinned) ground-truth boundary pixels within
               max_dist x the image diagonal, of the most pairs and then the least total distance
               (correspondPixels; solved here by SciPy's sparse minimum-weight full bipartite matching, one
               connected group of pixels at a time)
    cntP     = matched pixels of B,  sumP = pixels of B,  cntR = matched ground-truth pixels,  sumR = ground truth
Counts are pooled over the images: ODS F is the best F = 2PR / (P + R) over the thresholds with P = ΣcntP / ΣsumP and
R = ΣcntR / ΣsumR; OIS pools each image's counts at its own best threshold; AP is the mean precision over recalls
0, 0.01, ..., 1, interpolated linearly along the precision-recall curve (SEISM's general_ap).

Where this stands: the thinning, the matching and the scores, tested on cases with known answers. Not yet here: the
non-maximum suppression SEISM applies to a prediction before thresholding it (its read_one_cont_png: a triangle-
filtered map, orientations from second derivatives, Piotr Dollar's edgesNms), the ground truth's conversion
(SEISM thins seg2bmap of it), the `edge` evaluator of `sca-mtl eval`, and speed: about 1 s per image and threshold
for 24,000 boundary pixels at 480x640 (measured here, one core), far from the 654 x 99 NYUD-v2 evaluation's budget.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching
from scipy.spatial import cKDTree

# neighbours x1..x8 of a pixel, counter-clockwise from the east (Guo and Hall's numbering), as (row, column) offsets
NEIGHBOURS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


def _thinning_tables() -> tuple[np.ndarray, np.ndarray]:
    """For every 8-neighbourhood code (bit k - 1 set when x_k is set), whether the first / second subiteration of
    Guo and Hall's algorithm (Lam, Lee, Suen 1992, p. 879; MATLAB's bwmorph 'thin') deletes the pixel."""
    first, second = np.zeros(256, bool), np.zeros(256, bool)
    for code in range(256):
        x = [bool(code >> k & 1) for k in range(8)]
        x = [None, *x, x[0]]  # x[1]..x[8], and x[9] = x[1]
        crossings = sum(not x[2 * i - 1] and (x[2 * i] or x[2 * i + 1]) for i in range(1, 5))  # G1: X_H = 1
        n1 = sum(x[2 * k - 1] or x[2 * k] for k in range(1, 5))
        n2 = sum(x[2 * k] or x[2 * k + 1] for k in range(1, 5))
        removable = crossings == 1 and 2 <= min(n1, n2) <= 3  # G2
        first[code] = removable and not ((x[2] or x[3] or not x[8]) and x[1])  # G3
        second[code] = removable and not ((x[6] or x[7] or not x[4]) and x[5])  # G3'
    return first, second


FIRST_SUBITERATION, SECOND_SUBITERATION = _thinning_tables()


def _neighbourhood_codes(image: np.ndarray) -> np.ndarray:
    padded = np.pad(image, 1)
    height, width = image.shape
    codes = np.zeros(image.shape, np.uint8)
    for bit, (dy, dx) in enumerate(NEIGHBOURS):
        codes |= padded[1 + dy:1 + dy + height, 1 + dx:1 + dx + width].astype(np.uint8) << bit
    return codes


def thin(image: np.ndarray) -> np.ndarray:
    """bwmorph(image, 'thin', Inf): the (H, W) boolean map thinned to lines one pixel wide, until nothing changes."""
    image = np.asarray(image, bool).copy()
    while True:
        changed = False
        for table in (FIRST_SUBITERATION, SECOND_SUBITERATION):
            delete = image & table[_neighbourhood_codes(image)]
            if delete.any():
                image[delete] = False
                changed = True
        if not changed:
            return image


def match_pixels(prediction: np.ndarray, target: np.ndarray, radius: float) -> int:
    """Pairs of the one-to-one matching of two boolean maps' pixels within `radius` with the most pairs and, among
    those, the least total distance: both the matched prediction pixels and the matched target pixels."""
    ours, theirs = np.argwhere(prediction), np.argwhere(target)
    if not len(ours) or not len(theirs):
        return 0
    pairs = cKDTree(ours).sparse_distance_matrix(cKDTree(theirs), radius, output_type="coo_matrix")
    # a pair at distance 0 is left out of the sparse matrix: add the coinciding pixels explicitly
    same = np.flatnonzero(prediction[tuple(theirs.T)])
    rows = np.concatenate([pairs.row, np.searchsorted(_linear(ours, prediction.shape),
                                                      _linear(theirs[same], prediction.shape))])
    cols = np.concatenate([pairs.col, same])
    dist = np.concatenate([pairs.data, np.zeros(len(same))])
    if not len(rows):
        return 0
    _, first = np.unique(rows * len(theirs) + cols, return_index=True)  # a coinciding pair may be listed twice
    rows, cols, dist = rows[first], cols[first], dist[first]
    return _maximum_matching_size(rows, cols, dist, len(ours), len(theirs), radius)


def _linear(coords: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return coords[:, 0] * shape[1] + coords[:, 1]


def _maximum_matching_size(rows, cols, dist, n_ours, n_theirs, radius) -> int:
    """Pairs of the most-pairs, least-distance matching: per connected group, a full matching of the group's pixels
    and one outlier per pixel (unmatched pixels pay 2 x radius + 1, more than any pair saves), by SciPy."""
    graph = sparse.coo_matrix((np.ones(len(rows)), (rows, cols + n_ours)), shape=(n_ours + n_theirs,) * 2)
    _, labels = connected_components(graph, directed=False)
    outlier = 2 * radius + 1
    total = 0
    for group in np.unique(labels[rows]):
        in_group = labels[rows] == group
        r, c, d = rows[in_group], cols[in_group], dist[in_group]
        ours_ids, r = np.unique(r, return_inverse=True)
        theirs_ids, c = np.unique(c, return_inverse=True)
        n, m = len(ours_ids), len(theirs_ids)
        # left: n prediction pixels, then m outlier slots of the targets; right: m target pixels, then n outlier
        # slots of the predictions. Costs are shifted by 1 so that no edge has weight 0 (a sparse matrix drops it);
        # every full matching has n + m edges, so the shift does not change which one is the cheapest.
        left = np.concatenate([r, np.arange(n), n + c, n + np.arange(m)])
        right = np.concatenate([c, m + np.arange(n), m + r, np.arange(m)])
        weight = np.concatenate([d, np.full(n, outlier), np.zeros(len(r)), np.full(m, outlier)]) + 1
        # outlier-outlier edges mirror the pairs (if i-j is matched, their outlier slots are matched to each other)
        matrix = sparse.csr_matrix((weight, (left, right)), shape=(n + m, n + m))
        row_of, col_of = min_weight_full_bipartite_matching(matrix)
        total += int(np.count_nonzero((row_of < n) & (col_of < m)))
    return total


def thresholds(count: int) -> np.ndarray:
    """SEISM's thresholds: `count` values evenly spaced strictly inside (0, 1), 1/(count+1) .. count/(count+1)."""
    return np.linspace(1 / (count + 1), 1 - 1 / (count + 1), count)


def image_counts(prediction: np.ndarray, target: np.ndarray, levels: np.ndarray, max_dist: float) -> np.ndarray:
    """(len(levels), 4) counts cntP, sumP, cntR, sumR of one image at each threshold."""
    radius = max_dist * float(np.hypot(*prediction.shape))
    truth = thin(target)
    counts = np.zeros((len(levels), 4), np.int64)
    for i, level in enumerate(levels):
        binary = thin(prediction >= level)
        matched = match_pixels(binary, truth, radius)
        counts[i] = matched, binary.sum(), matched, truth.sum()
    return counts


def _precision_recall(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SEISM's conventions (gather_measure): no ground truth gives R = 1, P = 0; no prediction gives R = 0, P = 1."""
    cnt_p, sum_p, cnt_r, sum_r = (counts[..., i].astype(np.float64) for i in range(4))
    recall = np.where(sum_r > 0, cnt_r / np.maximum(sum_r, 1), 1.0)
    precision = np.where(sum_p > 0, cnt_p / np.maximum(sum_p, 1), np.where(sum_r > 0, 1.0, 0.0))
    recall = np.where((sum_p == 0) & (sum_r > 0), 0.0, recall)
    return precision, recall


def _f_measure(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    total = precision + recall
    return np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)


def scores(counts: np.ndarray) -> dict[str, float]:
    """odsF, oisF and AP (and ODS's precision and recall) from per-image counts (images, thresholds, 4)."""
    precision, recall = _precision_recall(counts.sum(axis=0))
    f = _f_measure(precision, recall)
    best = int(np.argmax(f))
    per_image_f = _f_measure(*_precision_recall(counts))
    ois_counts = counts[np.arange(len(counts)), np.argmax(per_image_f, axis=1)].sum(axis=0)
    ois = float(_f_measure(*_precision_recall(ois_counts)))
    # general_ap: the curve at its unique recalls, interpolated at 0, 0.01, .., 1 where it reaches
    unique_recall, index = np.unique(recall, return_index=True)
    grid = np.linspace(0, 1, 101)
    inside = (grid >= unique_recall[0]) & (grid <= unique_recall[-1])
    ap = float(np.interp(grid[inside], unique_recall, precision[index]).sum() / 100) if len(unique_recall) > 1 else 0.0
    return {"odsF": float(f[best]), "oisF": ois, "AP": ap, "ods_precision": float(precision[best]),
            "ods_recall": float(recall[best]), "ods_threshold_index": best}
