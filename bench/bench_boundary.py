"""The boundary benchmark's speed (CPU) on NYUD-v2-sized proxy pairs, since the real test set is not here.

A proxy pair at 480 x 640: the ground truth is the one-pixel boundaries of a random Voronoi partition into `--cells`
cells (120 cells: about 4 % of the pixels, denser than NYUD-v2's object outlines; fewer cells, sparser); the
prediction is what a trained network's boundary output looks like, the truth blurred (sigma 1.5), moved a row, plus
smooth noise, through a sigmoid, so that every threshold keeps a different map. Timed: `sca_mtl.boundary.evaluate`
over the pairs with 99 thresholds and SEISM's NMS, the pairs already in memory.

    python bench/bench_boundary.py [--images 654] [--workers 2] [--cells 120]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sca_mtl.boundary import MAX_DIST, evaluate  # noqa: E402

NYUD_SIZE = (480, 640)
NYUD_TEST_IMAGES = 654
BLUR_SIGMA, NOISE_SIGMA = 1.5, 2.0  # pixels
RIDGE_GAIN, NOISE_GAIN, BIAS = 5.0, 6.0, 2.0  # logit = gain x blurred truth + gain x noise - bias


def proxy_pair(rng: np.random.Generator, cells: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    seeds = np.ones(size, bool)
    seeds[tuple(rng.integers(0, size, (cells, 2)).T)] = False
    nearest = ndimage.distance_transform_edt(seeds, return_distances=False, return_indices=True)
    labels = np.ravel_multi_index(tuple(nearest), size)
    truth = np.zeros(size, bool)
    truth[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    truth[1:] |= labels[1:] != labels[:-1]
    blurred = ndimage.gaussian_filter(truth.astype(np.float32), BLUR_SIGMA)
    noise = ndimage.gaussian_filter(rng.standard_normal(size).astype(np.float32), NOISE_SIGMA)
    logits = RIDGE_GAIN * np.roll(blurred, 1, axis=0) + NOISE_GAIN * noise - BIAS
    return (1 / (1 + np.exp(-logits))).astype(np.float32), truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=NYUD_TEST_IMAGES)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cells", type=int, default=120)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    pairs = [proxy_pair(rng, args.cells, NYUD_SIZE) for _ in range(args.images)]
    density = np.mean([truth.mean() for _, truth in pairs])
    start = time.perf_counter()
    scores = evaluate([p for p, _ in pairs], [t for _, t in pairs], max_dist=MAX_DIST["nyud"],
                      workers=args.workers, progress=True)
    seconds = time.perf_counter() - start
    print(f"{args.images} images of {NYUD_SIZE[0]}x{NYUD_SIZE[1]}, boundary density {100 * density:.2f} %, "
          f"{args.workers} workers: {seconds:.1f} s ({seconds / args.images:.3f} s per image); odsF "
          f"{scores['odsF']:.4f}, oisF {scores['oisF']:.4f}, AP {scores['AP']:.4f}")


if __name__ == "__main__":
    main()
