"""MATLAB's bwmorph(image, 'thin', Inf): Guo and Hall's parallel thinning (two subiterations per pass, Lam, Lee and
Suen 1992, p. 879), repeated until nothing changes.

A pixel is deleted in a subiteration when its 8-neighbourhood x1..x8 (counter-clockwise from the east) satisfies
    G1  X_H = Σ_{i=1..4} [¬x_{2i-1} ∧ (x_{2i} ∨ x_{2i+1})] = 1                     (one crossing: a simple point)
    G2  2 ≤ min(n1, n2) ≤ 3,  n1 = Σ_k x_{2k-1} ∨ x_{2k},  n2 = Σ_k x_{2k} ∨ x_{2k+1}  (not an end point)
    G3  (x2 ∨ x3 ∨ ¬x8) ∧ x1 = 0  in the first subiteration,  (x6 ∨ x7 ∨ ¬x4) ∧ x5 = 0  in the second,
all pixels of a subiteration decided on the same image (in parallel). Each rule depends on the 8 neighbours only, so
it is a 256-entry table indexed by the neighbourhood's bits.
"""

from __future__ import annotations

import numpy as np

# neighbours x1..x8 of a pixel, counter-clockwise from the east (Guo and Hall's numbering), as (row, column) offsets
NEIGHBOURS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


def _thinning_tables() -> tuple[np.ndarray, np.ndarray]:
    """For every 8-neighbourhood code (bit k - 1 set when x_k is set), whether the first / second subiteration
    deletes the pixel."""
    first, second = np.zeros(256, bool), np.zeros(256, bool)
    for code in range(256):
        x = [bool(code >> k & 1) for k in range(8)]
        x = [None, *x, x[0]]  # x[1]..x[8], and x[9] = x[1]
        crossings = sum(not x[2 * i - 1] and (x[2 * i] or x[2 * i + 1]) for i in range(1, 5))
        n1 = sum(x[2 * k - 1] or x[2 * k] for k in range(1, 5))
        n2 = sum(x[2 * k] or x[2 * k + 1] for k in range(1, 5))
        removable = crossings == 1 and 2 <= min(n1, n2) <= 3
        first[code] = removable and not ((x[2] or x[3] or not x[8]) and x[1])
        second[code] = removable and not ((x[6] or x[7] or not x[4]) and x[5])
    return first, second


SUBITERATIONS = _thinning_tables()


WORD_BITS = 64  # maps per bit-sliced word


def _at_least_two(t: list[np.ndarray]) -> np.ndarray:
    """Of four bit vectors, where two or more are set."""
    return (t[0] & t[1]) | (t[2] & t[3]) | ((t[0] | t[1]) & (t[2] | t[3]))


def deletable(x: list[np.ndarray], rule: int) -> np.ndarray:
    """SUBITERATIONS[rule] bit-sliced: x[k - 1] holds neighbour x_k of a pixel in many maps at once (one bit per map,
    uint64 words, or numpy booleans), and the result where the rule deletes the pixel, G1-G3 as bitwise logic."""
    x = [*x, x[0]]  # x[8] is x_9 = x_1
    crossing = [~x[2 * i - 2] & (x[2 * i - 1] | x[2 * i]) for i in range(1, 5)]
    one_crossing = (crossing[0] | crossing[1] | crossing[2] | crossing[3]) & ~_at_least_two(crossing)
    pairs_1 = [x[2 * k - 2] | x[2 * k - 1] for k in range(1, 5)]  # n1's terms x_{2k-1} ∨ x_{2k}
    pairs_2 = [x[2 * k - 1] | x[2 * k] for k in range(1, 5)]  # n2's terms x_{2k} ∨ x_{2k+1}
    all_1, all_2 = (p[0] & p[1] & p[2] & p[3] for p in (pairs_1, pairs_2))
    # 2 <= min(n1, n2) <= 3: both at least 2, not both 4
    not_an_end = _at_least_two(pairs_1) & _at_least_two(pairs_2) & ~(all_1 & all_2)
    if rule == 0:
        side = ~((x[1] | x[2] | ~x[7]) & x[0])
    else:
        side = ~((x[5] | x[6] | ~x[3]) & x[4])
    return one_crossing & not_an_end & side


def neighbour_table(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(N, 8) int32: for N distinct flat indices `pixels` of an (H, W) map, each pixel's neighbours x1..x8 as
    positions in `pixels`, or N where that neighbour is not one of them (or lies outside the map)."""
    height, width = shape
    # a dense lookup over the map framed by one pixel, so that every neighbour's index is inside it
    position = np.full((height + 2) * (width + 2), len(pixels), np.int32)
    rows, cols = np.divmod(pixels, width)
    framed = (rows + 1) * (width + 2) + cols + 1
    position[framed] = np.arange(len(pixels))
    offsets = np.array([dy * (width + 2) + dx for dy, dx in NEIGHBOURS])
    return position[framed[:, None] + offsets]


def thin_nested(table: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
    """For each count in `sizes`, the positions among the first `count` pixels of a `neighbour_table` that remain when
    the map of those pixels only is thinned (bwmorph(map, 'thin', Inf)).

    All the maps are thinned at once, bit-sliced: a pixel holds one bit per map in uint64 words, and each
    subiteration decides every map's pixels with the same bitwise logic (`deletable`). A map that has converged
    deletes nothing more, so running the subiterations until no map changes gives each map its own result. A pixel
    that a rule kept stays kept by that rule until a neighbour goes, so each rule re-examines only the pixels next to
    the ones deleted since its last turn: the work follows the pixels that change, not pixels x passes (which matters
    for thick blobs: a constant prediction thinned)."""
    count = len(table)
    words = -(-len(sizes) // WORD_BITS)
    # bit m of word w: the pixel is in map w * WORD_BITS + m (the first sizes[map] pixels); the stand-in pixel
    # `count`, every neighbour that is not tabled, is in none
    maps = np.arange(len(sizes))
    ends = np.zeros((words, count + 2), np.uint64)  # each map's bit where its pixels end
    np.bitwise_or.at(ends, (maps // WORD_BITS, np.asarray(sizes)), np.uint64(1) << (maps % WORD_BITS).astype(np.uint64))
    alive = np.bitwise_or.accumulate(ends[:, ::-1], axis=1)[:, -2::-1].copy()  # (words, count + 1): maps ending after
    pending = np.ones((len(SUBITERATIONS), count + 1), bool)  # per rule: the pixels it must (re-)examine
    pending[:, count] = False
    while pending.any():
        for rule in range(len(SUBITERATIONS)):
            examined = np.flatnonzero(pending[rule])
            pending[rule] = False
            neighbours = table[examined]
            around = np.take(alive, neighbours.T, axis=1)  # (words, 8, examined): x_k in every map
            # every rule decides on the maps as they were before it (the subiteration is parallel)
            deleted = alive[:, examined] & deletable([around[:, k] for k in range(8)], rule)
            changed = deleted.any(axis=0)
            alive[:, examined[changed]] &= ~deleted[:, changed]
            pending[:, neighbours[changed]] = True
            pending[:, count] = False
    return [np.flatnonzero(alive[m // WORD_BITS, :size] >> np.uint64(m % WORD_BITS) & np.uint64(1))
            for m, size in enumerate(sizes)]


def thin(image: np.ndarray) -> np.ndarray:
    """The (H, W) boolean map thinned to lines one pixel wide (bwmorph(image, 'thin', Inf))."""
    image = np.asarray(image, bool)
    pixels = np.flatnonzero(image)
    (kept,) = thin_nested(neighbour_table(pixels, image.shape), [len(pixels)])
    thinned = np.zeros(image.shape, bool)
    thinned.flat[pixels[kept]] = True
    return thinned
