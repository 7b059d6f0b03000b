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


ALL_NEIGHBOURS = 0xFF  # the code of a pixel with its 8 neighbours set
# a pixel's code loses bit (k + 4) mod 8 when its neighbour in direction k goes: that neighbour sees it opposite
LOSE_OPPOSITE = np.array([~(1 << (k + 4) % 8) & ALL_NEIGHBOURS for k in range(len(NEIGHBOURS))], np.uint8)


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


def thin_first(table: np.ndarray, count: int) -> np.ndarray:
    """The positions, among the first `count` pixels of a `neighbour_table`, that remain when the map of those pixels
    only is thinned: bwmorph(map, 'thin', Inf) at a cost in the number of pixels, not in the map's area."""
    alive = np.ones(count + 1, bool)
    alive[count] = False  # a stand-in for every neighbour that is not one of the first `count`: never set
    # every pixel's neighbourhood code, found once and then kept up to date as pixels are deleted (the stand-in's
    # code takes the updates of all absent neighbours and is never read)
    codes = np.zeros(count + 1, np.uint8)
    codes[:count] = np.packbits(table[:count] < count, axis=1, bitorder="little")[:, 0]
    # A pixel whose 8 neighbours are all set is never deleted (no crossing), and a pixel that a rule kept stays kept
    # by that rule until a neighbour goes: each rule re-examines only the border pixels and the neighbours of the
    # pixels deleted since its last turn. The deletions, and so the result, are MATLAB's; the work is about the
    # number of pixels rather than pixels x passes, which matters for thick blobs (a constant prediction thinned).
    pending = np.zeros((len(SUBITERATIONS), count + 1), bool)  # per rule: the pixels it must (re-)examine
    pending[:, :count] = codes[:count] != ALL_NEIGHBOURS
    while pending.any():
        for rule, table_of_rule in enumerate(SUBITERATIONS):
            candidates = np.flatnonzero(pending[rule] & alive)
            pending[rule] = False
            deleted = candidates[table_of_rule[codes[candidates]]]
            alive[deleted] = False
            neighbours = np.minimum(table[deleted], count)
            # a pixel has one neighbour in each direction, so no index repeats within a column (but the stand-in's)
            for direction, keep in enumerate(LOSE_OPPOSITE):
                codes[neighbours[:, direction]] &= keep
            pending[:, neighbours] = True
    return np.flatnonzero(alive[:count])


def thin(image: np.ndarray) -> np.ndarray:
    """The (H, W) boolean map thinned to lines one pixel wide (bwmorph(image, 'thin', Inf))."""
    image = np.asarray(image, bool)
    pixels = np.flatnonzero(image)
    kept = thin_first(neighbour_table(pixels, image.shape), len(pixels))
    thinned = np.zeros(image.shape, bool)
    thinned.flat[pixels[kept]] = True
    return thinned
