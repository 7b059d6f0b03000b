"""The boundary benchmark (sca_mtl.boundary) on hand-built cases whose answers are known exactly, and its parts
against plain references: MATLAB's thinning applied to the whole image, BSDS's minimum-cost assignment."""

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image
from scipy import ndimage, sparse
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from sca_mtl.boundary import (
    BoundaryCounts,
    evaluate,
    image_counts,
    match_pixels,
    matching,
    suppress_non_maxima,
    thin,
    threshold_levels,
)
from sca_mtl.boundary.matching import UNMATCHED, Matcher, count_matched, count_matched_each, matched_rows, pairs_within
from sca_mtl.boundary.thinning import NEIGHBOURS, SUBITERATIONS, WORD_BITS, deletable, neighbour_table, thin_nested

SHAPE = (40, 60)


def line(row: int, start: int = 5, stop: int = 55, shape=SHAPE) -> np.ndarray:
    image = np.zeros(shape, bool)
    image[row, start:stop] = True
    return image


def random_blobs(rng, shape=(48, 64)) -> np.ndarray:
    return ndimage.gaussian_filter(rng.standard_normal(shape), rng.uniform(0.5, 4)) > rng.uniform(-0.3, 0.3)


# --- thinning ---

def thin_whole_image(image: np.ndarray) -> np.ndarray:
    """bwmorph 'thin' as written: both subiterations over every pixel until a pass changes nothing."""
    image = image.copy()
    height, width = image.shape
    changed = True
    while changed:
        changed = False
        for table in SUBITERATIONS:
            padded = np.pad(image, 1)
            codes = sum(padded[1 + dy:1 + dy + height, 1 + dx:1 + dx + width].astype(int) << bit
                        for bit, (dy, dx) in enumerate(NEIGHBOURS))
            delete = image & table[codes]
            image[delete] = False
            changed |= bool(delete.any())
    return image


def test_thinning_equals_the_whole_image_algorithm():
    rng = np.random.default_rng(0)
    for _ in range(20):
        image = random_blobs(rng)
        assert np.array_equal(thin(image), thin_whole_image(image))
    full = np.ones((30, 50), bool)
    assert np.array_equal(thin(full), thin_whole_image(full))


def test_thinning_nested_maps_at_once_equals_thinning_each():
    """The benchmark tables the lowest threshold's pixels once, strongest first, and thins every threshold's first
    pixels at once (more maps than one bit-sliced word holds here); any subsets of a map are the first pixels of
    some order."""
    rng = np.random.default_rng(2)
    for _ in range(4):
        image = random_blobs(rng)
        pixels = rng.permutation(np.flatnonzero(image))
        sizes = rng.integers(len(pixels) + 1, size=WORD_BITS + 6)
        sizes[:2] = len(pixels), 0
        table = neighbour_table(pixels, image.shape)
        for size, kept in zip(sizes, thin_nested(table, sizes), strict=True):
            first = np.zeros(image.size, bool)
            first[pixels[:size]] = True
            thinned = np.zeros(image.size, bool)
            thinned[pixels[kept]] = True
            assert np.array_equal(thinned.reshape(image.shape), thin_whole_image(first.reshape(image.shape)))


@pytest.mark.parametrize("rule", range(len(SUBITERATIONS)))
def test_bit_sliced_rules_equal_the_tables(rule):
    """Every one of the 256 neighbourhoods, one per bit of four 64-bit words and as booleans."""
    codes = np.arange(256)
    bits = [(codes >> k & 1).astype(bool) for k in range(8)]
    assert np.array_equal(deletable(bits, rule), SUBITERATIONS[rule])
    weights = np.uint64(1) << (codes % WORD_BITS).astype(np.uint64)
    words = [np.bitwise_or.reduce((bit * weights).reshape(4, WORD_BITS), axis=1) for bit in bits]
    sliced = deletable(words, rule)
    unpacked = (sliced[codes // WORD_BITS] >> (codes % WORD_BITS).astype(np.uint64)) & np.uint64(1)
    assert np.array_equal(unpacked.astype(bool), SUBITERATIONS[rule])


def test_thinning_leaves_one_pixel_wide_lines_and_keeps_thin_ones():
    thick = np.zeros(SHAPE, bool)
    thick[18:23, 5:55] = True  # a 5-pixel-wide bar
    thinned = thin(thick)
    assert thinned.any() and set(np.argwhere(thinned)[:, 0]) == {20}  # its middle row only
    assert np.array_equal(thin(line(20)), line(20))
    diagonal = np.eye(30, dtype=bool)
    assert np.array_equal(thin(diagonal), diagonal)
    ring = np.zeros(SHAPE, bool)
    ring[10:30, 10:30] = True
    ring[13:27, 13:27] = False  # a 3-pixel-wide square ring keeps its loop
    loop = thin(ring)
    assert loop[20, 10:14].sum() == 1 and loop[10:14, 20].sum() == 1 and loop[20, 14:26].sum() == 0
    rng = np.random.default_rng(1)
    for _ in range(10):
        thinned = thin(random_blobs(rng))
        assert np.array_equal(thin(thinned), thinned)
        # one pixel wide: a 2 x 2 square is left only where lines cross (each of its pixels continues a line)
        padded = np.pad(thinned, 1)
        squares = thinned[:-1, :-1] & thinned[1:, :-1] & thinned[:-1, 1:] & thinned[1:, 1:]
        for y, x in np.argwhere(squares) + 1:
            for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
                around = padded[y + dy - 1:y + dy + 2, x + dx - 1:x + dx + 2].sum()
                assert around - 4 >= 1, "a pixel of a 2 x 2 square that continues no line"


# --- matching ---

def matched_by_assignment(prediction: np.ndarray, truth: np.ndarray, radius: float) -> int:
    """BSDS's correspondPixels as an assignment: pairs cost their distance, an unmatched pixel 100 x radius; solved
    exactly (SciPy's minimum-weight full matching over pixels plus one outlier slot per pixel)."""
    ours, theirs = np.argwhere(prediction), np.argwhere(truth)
    n, m = len(ours), len(theirs)
    if not n or not m:
        return 0
    distance = np.hypot(*(ours[:, None, :] - theirs[None, :, :]).transpose(2, 0, 1))
    rows, cols = np.nonzero(distance <= radius)
    outlier = 100 * radius
    # left: n prediction pixels, then m outlier slots; right: m truth pixels, then n outlier slots; every weight
    # shifted by 1 so that none is 0 (a sparse matrix would drop it): all full matchings have n + m edges
    left = np.concatenate([rows, np.arange(n), n + cols, n + np.arange(m)])
    right = np.concatenate([cols, m + np.arange(n), m + rows, np.arange(m)])
    weight = np.concatenate([distance[rows, cols], np.full(n, outlier), np.zeros(len(rows)), np.full(m, outlier)])
    matrix = sparse.csr_matrix((weight + 1, (left, right)), shape=(n + m, n + m))
    row_of, col_of = min_weight_full_bipartite_matching(matrix)
    return int(np.count_nonzero((row_of < n) & (col_of < m)))


@pytest.mark.parametrize("shift, matched", [(0, 50), (2, 50), (3, 0)])
def test_a_line_matches_within_the_radius_only(shift, matched):
    assert match_pixels(line(20 + shift), line(20), radius=2.5) == matched


def test_matching_is_one_to_one():
    """Two prediction lines on either side of one ground-truth line: each ground-truth pixel is matched once."""
    prediction = line(19) | line(21)
    assert match_pixels(prediction, line(20), radius=1.5) == 50
    assert match_pixels(line(20), prediction, radius=1.5) == 50


def test_the_most_pairs_are_matched_not_the_nearest_first():
    """Ground truth at columns 10 and 12, predictions at 11 and 13 (radius 1.5): nearest-first could pair 11 with
    12 (distance 1) and leave 10 and 13 unmatched; the assignment pairs 10-11 and 12-13."""
    truth, prediction = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    truth[5, [10, 12]] = True
    prediction[5, [11, 13]] = True
    assert match_pixels(prediction, truth, radius=1.5) == 2


def test_matching_counts_equal_the_minimum_cost_assignment():
    rng = np.random.default_rng(2)
    for _ in range(12):
        prediction, truth = rng.random((24, 32)) < 0.08, rng.random((24, 32)) < 0.08
        radius = rng.uniform(1, 4)
        assert match_pixels(prediction, truth, radius) == matched_by_assignment(prediction, truth, radius)



def assert_is_a_matching(match: np.ndarray, pairs: sparse.csr_matrix, rows: np.ndarray) -> None:
    """Each row at most one column, each column at most one row, every pair a pair of the graph, rows outside none."""
    paired = np.flatnonzero(match != UNMATCHED)
    assert np.isin(paired, rows).all()
    assert len(np.unique(match[paired])) == len(paired)
    assert (pairs[paired, match[paired]] == 1).all()


# the flow over every pair (no search for its reach), and over the part its source reaches (budget never exceeded)
REACH_BUDGETS = pytest.mark.parametrize("reach_budget", [0, 10**9], ids=["whole-network", "reached-part"])


@REACH_BUDGETS
@pytest.mark.parametrize("greedy_rounds", [0, matching.GREEDY_ROUNDS])
def test_maximum_matching_equals_the_assignment(monkeypatch, greedy_rounds, reach_budget):
    """With no greedy rounds the maximum flow finds every pair, searching from the rows (denser truth) or from the
    columns (denser prediction); with them it finds what the rounds left."""
    monkeypatch.setattr(matching, "GREEDY_ROUNDS", greedy_rounds)
    monkeypatch.setattr(matching, "REACH_BUDGET", reach_budget)
    rng = np.random.default_rng(7)
    for density_prediction, density_truth in [(0.05, 0.15), (0.15, 0.05), (0.1, 0.1)]:
        prediction, truth = rng.random((24, 32)) < density_prediction, rng.random((24, 32)) < density_truth
        radius = rng.uniform(1.5, 3)
        pairs = pairs_within(np.argwhere(prediction), np.argwhere(truth), radius)
        match = Matcher(pairs).maximum()
        assert_is_a_matching(match, pairs, np.arange(pairs.shape[0]))
        assert np.count_nonzero(match != UNMATCHED) == matched_by_assignment(prediction, truth, radius)


@REACH_BUDGETS
def test_matchings_grown_from_the_one_before_are_maximum(monkeypatch, reach_budget):
    """Row sets that shrink, grow and change in part, as the thresholds' thinned maps do: each count equals the
    assignment's, and each matching is one (the rows that left released their columns)."""
    monkeypatch.setattr(matching, "REACH_BUDGET", reach_budget)
    rng = np.random.default_rng(8)
    prediction, truth = rng.random((32, 40)) < 0.3, rng.random((32, 40)) < 0.1
    pixels, radius = np.argwhere(prediction), 2.5
    pairs = pairs_within(pixels, np.argwhere(truth), radius)
    keep = rng.random(len(pixels))
    row_sets = [np.flatnonzero((keep < level) ^ (rng.random(len(pixels)) < 0.05)) for level in
                (0.1, 0.3, 0.6, 0.9, 1.0, 0.7, 0.2, 0.0, 0.5)]
    subsets = [np.zeros_like(prediction) for _ in row_sets]
    for subset, rows in zip(subsets, row_sets):
        subset[tuple(pixels[rows].T)] = True
    expected = [matched_by_assignment(subset, truth, radius) for subset in subsets]
    assert count_matched_each(pairs, row_sets) == expected
    assert [count_matched(pairs, rows) for rows in row_sets] == expected
    matcher = Matcher(pairs)
    for rows in row_sets:
        assert_is_a_matching(matcher.maximum(rows), pairs, rows)

# --- non-maximum suppression ---

@pytest.mark.parametrize("flip", [False, True], ids=["diagonal", "anti-diagonal"])
def test_nms_turns_a_blurred_line_into_its_ridge_and_fades_the_border(flip):
    """A blurred diagonal line keeps exactly its centre line away from the border. (An axis-aligned line would not:
    there S_xy = 0 and SEISM's sign(-S_xy) makes the orientation 0, along the line, for that exact symmetry.)"""
    diagonal = np.eye(60, dtype=bool)[:, ::-1] if flip else np.eye(60, dtype=bool)
    soft = ndimage.gaussian_filter(diagonal.astype(np.float32), 2.0)
    soft /= soft.max()
    ridge = suppress_non_maxima(soft)
    inside = (slice(8, 52),) * 2
    assert np.array_equal(ridge[inside] > 0.01, diagonal[inside])
    assert np.array_equal(ridge[inside][diagonal[inside]], soft[inside][diagonal[inside]])  # kept as they were
    corner = 59 if flip else 0
    assert ridge[0, corner] == 0 and ridge[2, abs(corner - 2)] == pytest.approx(soft[2, abs(corner - 2)] * 0.16)


def test_nms_above_a_level_equals_nms_there():
    """The benchmark suppresses only the responses above its lowest threshold: the same values there, 0 elsewhere."""
    rng = np.random.default_rng(5)
    soft = ndimage.gaussian_filter(rng.random((40, 56)).astype(np.float32), 1.5)
    soft = (soft - soft.min()) / (soft.max() - soft.min())
    level = np.float32(np.median(soft))
    full = suppress_non_maxima(soft)
    assert np.array_equal(suppress_non_maxima(soft, above=level), np.where(soft > level, full, 0))


# --- counts and scores ---

def test_counts_and_scores_of_a_known_case():
    """A prediction exactly on the ground truth with a confidence of 0.8 and a spurious segment at 0.3, cut by
    `map > level` as SEISM: at levels 0.3 to 0.7 the map is perfect, below 0.3 10 spurious pixels join (P = 50 / 60),
    from 0.8 on it is empty."""
    truth = line(20)
    prediction = line(20).astype(float) * 0.8
    prediction[5, 10:20] = 0.3
    levels = threshold_levels(9)  # 0.1 .. 0.9
    counts = image_counts(prediction, truth, max_dist=0.01, levels=levels, nms=False)
    expected = [[50, 60, 50, 50]] * 2 + [[50, 50, 50, 50]] * 5 + [[0, 0, 0, 50]] * 2
    assert counts.tolist() == expected
    total = BoundaryCounts.empty(len(levels))
    total.add(counts)
    result = total.scores(levels)
    assert result["odsF"] == 1.0 and result["oisF"] == 1.0 and result["ods_threshold"] == pytest.approx(0.3)


def test_double_width_predictions_are_thinned_before_matching():
    """A 3-pixel-wide band on the ground truth: thinned to its middle line (a pixel shorter at each end), every pixel
    matched: P = 1, R = 48 / 50; unthinned, its 150 pixels would give P = 1 / 3."""
    band = (line(19) | line(20) | line(21)).astype(float)
    counts = image_counts(band, line(20), max_dist=0.01, levels=threshold_levels(1), nms=False)
    assert counts.tolist() == [[48, 48, 48, 50]]


def test_shift_within_and_beyond_the_tolerance():
    """max_dist 0.02 of the 40 x 60 diagonal is 1.44 pixels: a copy one row off matches, two rows off does not."""
    levels = threshold_levels(1)
    near = image_counts(line(21).astype(float), line(20), max_dist=0.02, levels=levels, nms=False)
    far = image_counts(line(22).astype(float), line(20), max_dist=0.02, levels=levels, nms=False)
    assert near.tolist() == [[50, 50, 50, 50]] and far.tolist() == [[0, 50, 0, 50]]


def test_ods_pools_counts_over_images_and_ois_picks_per_image():
    """Image A is perfect at the low threshold only, image B at the high one: ODS, one threshold for both, is below 1;
    OIS, each at its own, is 1."""
    total = BoundaryCounts.empty(2)
    total.add(np.array([[10, 10, 10, 10], [0, 0, 0, 10]]))
    total.add(np.array([[10, 20, 10, 10], [10, 10, 10, 10]]))
    result = total.scores(np.array([0.25, 0.75]))
    # pooled: threshold 0 -> P = 20/30, R = 20/20; threshold 1 -> P = 10/10, R = 10/20
    assert result["odsF"] == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))
    assert result["oisF"] == 1.0


def test_average_precision_of_a_straight_precision_recall_curve():
    """Points (R, P) = (0.2, 1), (0.6, 0.5), (1, 0.25) (thresholds from high to low): SEISM's AP averages the
    linearly interpolated precision at recalls 0.2, 0.21, .., 1."""
    total = BoundaryCounts(np.array([[4, 16, 4, 4], [3, 6, 3, 5], [1, 1, 1, 5]]))
    grid = np.linspace(0.2, 1, 81)
    expected = np.interp(grid, [0.2, 0.6, 1.0], [1.0, 0.5, 0.25]).sum() / 100
    assert total.scores(np.array([0.2, 0.5, 0.8]))["AP"] == pytest.approx(expected)


def test_empty_ground_truth_and_empty_prediction_follow_seism():
    nothing = np.zeros(SHAPE, bool)
    counts = image_counts(line(20).astype(float), nothing, max_dist=0.01, levels=threshold_levels(3), nms=False)
    assert counts[:, 0].sum() == 0 and counts[:, 3].sum() == 0  # no ground truth: every predicted pixel is wrong
    total = BoundaryCounts.empty(3)
    total.add(counts)
    assert total.scores(threshold_levels(3))["odsF"] == 0.0


# --- against MATLAB ---

BSDS_BENCH = os.environ.get("SCA_MTL_BSDS_BENCH")  # BSR/bench/data of BSDS500 (not redistributed here)
BSDS_MAX_DIST = 0.0075
BSDS_THRESHOLDS = 5
F_TOLERANCE = 0.005


@pytest.mark.skipif(not BSDS_BENCH, reason="set SCA_MTL_BSDS_BENCH to BSDS500's BSR/bench/data folder")
def test_agrees_with_the_matlab_bsds_benchmark():
    """BSDS500's own benchmark test (BSR/bench/test_bench.m, part 2: boundaryBench on its 5 sample contour maps,
    5 thresholds): the pooled recall, precision and F per threshold that MATLAB wrote to test_2/eval_bdry_thr.txt,
    within 0.005 F. BSDS's protocol, built here from the same parts: no NMS, `pb >= t` thinned, several annotators per
    image (recall pooled over all of them, precision from the pixels that any annotator's matching covers), the
    annotators' boundaries used as they are."""
    root = Path(BSDS_BENCH)
    levels = threshold_levels(BSDS_THRESHOLDS)
    counts = np.zeros((BSDS_THRESHOLDS, 4))  # cntP, sumP, cntR, sumR
    for png in sorted((root / "png").glob("*.png")):
        pb = np.asarray(Image.open(png), np.float64) / 255
        annotators = scipy.io.loadmat(root / "groundTruth" / f"{png.stem}.mat")["groundTruth"][0]
        truths = [np.argwhere(annotator["Boundaries"][0, 0]) for annotator in annotators]
        radius = BSDS_MAX_DIST * np.hypot(*pb.shape)
        for k, level in enumerate(levels):
            pixels = np.argwhere(thin(pb >= level))
            matched = np.zeros(len(pixels), bool)
            for truth in truths:
                pairs = pairs_within(pixels, truth, radius)
                matched[matched_rows(pairs)] = True
                counts[k, 2:] += count_matched(pairs), len(truth)
            counts[k, :2] += matched.sum(), len(pixels)
    precision, recall = counts[:, 0] / counts[:, 1], counts[:, 2] / counts[:, 3]
    f_measure = 2 * precision * recall / (precision + recall)
    matlab = np.loadtxt(root / "test_2" / "eval_bdry_thr.txt")  # threshold, R, P, F
    assert np.allclose(matlab[:, 0], levels, atol=1e-6)
    assert np.abs(f_measure - matlab[:, 3]).max() < F_TOLERANCE


# --- evaluate ---

def soft_copy(truth: np.ndarray) -> np.ndarray:
    blurred = ndimage.gaussian_filter(truth.astype(np.float32), 1.5)
    return blurred / blurred.max()


def test_evaluate_a_blurred_copy_of_the_truth_scores_one_and_workers_agree():
    rng = np.random.default_rng(3)
    # 12 images: more than 2 workers keep in flight, so submitting waits for the oldest
    truths = [line(int(row), 6, 54) | line(int(row) + 9, 6, 54) for row in rng.integers(8, 24, size=12)]
    predictions = [soft_copy(truth) for truth in truths]
    serial = evaluate(predictions, truths, max_dist=0.0075, thresholds=19, workers=1)
    assert serial["odsF"] == 1.0 and serial["oisF"] == 1.0
    noisy = [np.clip(p + 0.3 * rng.random(p.shape), 0, 1).astype(np.float32) for p in predictions]
    assert evaluate(noisy, truths, max_dist=0.0075, thresholds=19, workers=2) == evaluate(
        noisy, truths, max_dist=0.0075, thresholds=19, workers=1)


@pytest.mark.parametrize("prediction, target, message", [
    (np.zeros((4, 5)), np.zeros((4, 6)), "one shape"),
    (np.full((4, 5), 1.5), np.zeros((4, 5)), "apply a sigmoid"),
    (np.full((4, 5), np.nan), np.zeros((4, 5)), "non-finite"),
    (np.zeros((4, 5)), np.full((4, 5), 255), "binary"),
])
def test_bad_input_names_the_image(prediction, target, message):
    good = (np.zeros((4, 5)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match=rf"image 1: .*{message}"):
        evaluate([good[0], prediction], [good[1], target], max_dist=0.01, workers=1)
    with pytest.raises(ValueError, match="thresholds"):
        evaluate([good[0]], [good[1]], max_dist=0.01, thresholds=0)
