"""The boundary benchmark's parts (sca_mtl/boundary.py) on hand-built cases whose answers are known exactly."""

import numpy as np
import pytest

from sca_mtl.boundary import image_counts, match_pixels, scores, thin, thresholds

SHAPE = (40, 60)


def line(row: int, start: int = 5, stop: int = 55) -> np.ndarray:
    image = np.zeros(SHAPE, bool)
    image[row, start:stop] = True
    return image


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


def test_counts_and_scores_of_a_known_case():
    """A prediction exactly on the ground truth with a confidence of 0.8 and a spurious segment at 0.3: above 0.3 the
    map is perfect, at or below it 10 spurious pixels join (P = 50 / 60)."""
    truth = line(20)
    prediction = line(20).astype(float) * 0.8
    prediction[5, 10:20] = 0.3
    levels = thresholds(9)  # 0.1 .. 0.9
    counts = image_counts(prediction, truth, levels, max_dist=0.01)
    expected = [[50, 60, 50, 50]] * 2 + [[50, 50, 50, 50]] * 6 + [[0, 0, 0, 50]]
    assert counts.tolist() == expected
    result = scores(counts[None])
    assert result["odsF"] == 1.0 and result["oisF"] == 1.0 and result["ods_threshold_index"] == 2


def test_ods_pools_counts_over_images_and_ois_picks_per_image():
    """Image A is perfect at the low threshold only, image B at the high one: ODS, one threshold for both, is below 1;
    OIS, each at its own, is 1."""
    a = np.array([[[10, 10, 10, 10], [0, 0, 0, 10]]])
    b = np.array([[[10, 20, 10, 10], [10, 10, 10, 10]]])
    result = scores(np.concatenate([a, b]))
    # pooled: threshold 0 -> P = 20/30, R = 20/20; threshold 1 -> P = 10/10, R = 10/20
    assert result["odsF"] == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))
    assert result["oisF"] == 1.0


def test_empty_ground_truth_and_empty_prediction_follow_seism():
    nothing = np.zeros(SHAPE, bool)
    counts = image_counts(line(20).astype(float), nothing, thresholds(3), max_dist=0.01)
    assert counts[:, 0].sum() == 0 and counts[:, 3].sum() == 0  # no ground truth: every predicted pixel is wrong
    assert scores(counts[None])["odsF"] == 0.0
