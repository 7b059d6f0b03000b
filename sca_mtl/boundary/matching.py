"""How many boundary pixels of a prediction and of the ground truth correspond: BSDS's correspondPixels.

correspondPixels pairs the two maps' pixels one-to-one by a minimum-cost assignment: a pair within the radius costs
its distance, a pixel left unmatched costs 100 x the radius. Leaving a pair unmatched thus costs 200 x radius, more
than any rearrangement of fewer than 200 pairs can save in distance, so the assignment has the most pairs there can
be, and the counts the benchmark keeps (matched prediction pixels = matched ground-truth pixels = the pairs) are those
of a maximum-cardinality matching of the graph "within the radius". The test suite checks the counts against SciPy's
minimum-weight assignment with the outlier costs on random maps.

A maximum matching is grown from any matching M (empty, or the previous threshold's restricted to this one's pixels):
    1. pairs of a free prediction pixel and a free ground-truth pixel join M, in vectorised rounds;
    2. when every prediction pixel with a pair, or every ground-truth pixel with one, is matched, M is maximum;
    3. otherwise the augmenting paths free row -> col -(M)-> row -> ... -> free col left are found as SciPy's Dinic
       maximum flow through M's residual network, all capacities 1 (O(E √V)); its value is what M gains. The flow
       only ever uses what its source reaches (pushing flow adds only edges back between reached nodes), so a
       breadth-first search from the side with fewer free pixels first finds that part: nothing to gain when it
       meets no free pixel of the other side, else the network is built over the reached pixels' pairs only. The
       search stops at REACH_BUDGET pixels, beyond which the whole network is cheaper than the search.
(SciPy's Hopcroft-Karp matcher gives the same counts but took minutes on some 480 x 640 maps where Dinic takes 0.1 s.)
The thresholds' maps are nested up to their thinning, so from the highest threshold down each matching starts from the
one before: on NYUD-sized proxies (bench/bench_boundary.py) about 53-58 of the 99 maps need step 1 only; of the others
the search proves a few maximum and confines the flow of some 15-20 to the part it reached, and 21-26 reach past
its budget and take the flow over every pair (a few hundred augmenting paths at most).

The pairs within the radius are found once per image, between the ground truth and every pixel of any threshold's
map; each threshold then matches a subset of the rows.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import maximum_flow
from scipy.spatial import cKDTree


def pairs_within(candidates: np.ndarray, truth: np.ndarray, radius: float) -> sparse.csr_matrix:
    """(len(candidates), len(truth)) 0/1 matrix of the pixel pairs at most `radius` apart; pixels as (N, 2) rows."""
    shape = (len(candidates), len(truth))
    if not len(candidates) or not len(truth):
        return sparse.csr_matrix(shape, dtype=np.int8)
    # the "ndarray" output keeps the pairs at distance 0, which a sparse matrix output would drop
    pairs = cKDTree(candidates).sparse_distance_matrix(cKDTree(truth), radius, output_type="ndarray")
    return sparse.csr_matrix((np.ones(len(pairs), np.int8), (pairs["i"], pairs["j"])), shape=shape)


# rounds of step 1 before the flow finds the rest: each round matches every free column's first free row, so
# a few rounds catch nearly all single-pair augmentations
GREEDY_ROUNDS = 8
UNMATCHED = -1
# pixels a search for the flow's reach may visit: on NYUD-sized proxies (bench/bench_boundary.py) about half the flows
# reach fewer, and building their networks over all pairs was most of their time
REACH_BUDGET = 2000


def _match_free_pairs(rows: np.ndarray, cols: np.ndarray, match: np.ndarray, owner: np.ndarray) -> None:
    """Step 1 in place: `match` (column per row) and `owner` (row per column) gain pairs (rows[i], cols[i]) whose
    two pixels are both free."""
    for _ in range(GREEDY_ROUNDS):
        free = (match[rows] == UNMATCHED) & (owner[cols] == UNMATCHED)
        rows, cols = rows[free], cols[free]
        if not len(rows):
            return
        _, first = np.unique(cols, return_index=True)  # each free column takes one free row
        new_rows, new_cols = rows[first], cols[first]
        _, first = np.unique(new_rows, return_index=True)  # a row two columns took keeps one
        new_rows, new_cols = new_rows[first], new_cols[first]
        match[new_rows], owner[new_cols] = new_cols, new_rows


def _augment(left: np.ndarray, right: np.ndarray, left_match: np.ndarray, right_owner: np.ndarray,
             free_left: np.ndarray, free_right: np.ndarray) -> None:
    """Step 3 in place, searching from one side (rows or columns, then called `left`): the maximum flow through the
    residual network of the matching. `left`, `right`: its pairs, grouped by left pixel in increasing order;
    `left_match`, `right_owner`: the matching seen from each side. Nodes: the left pixels 1..n, the right pixels
    n+1..n+m, the source 0 and the sink n+m+1; edges source -> free left pixel, left -> right for each pair not
    matched, right -> left for each matched pair, free right pixel -> sink. Dinic's breadth-first search visits what
    its source reaches, which is why the caller picks the side with fewer free pixels as the left one."""
    n, m = len(left_match), len(right_owner)
    sink = n + m + 1
    unmatched = left_match[left] != right
    # each right pixel's one edge: to its partner, to the sink when free and in the network, else none
    right_head = np.where(right_owner != UNMATCHED, 1 + right_owner, -1)
    right_head[free_right] = sink
    has_head = right_head >= 0
    # built as the CSR arrays themselves: the edges are already in the order of their tails
    out_degree = np.concatenate([[len(free_left)], np.bincount(left[unmatched], minlength=n), has_head, [0]])
    heads = np.concatenate([1 + free_left, 1 + n + right[unmatched], right_head[has_head]])
    indptr = np.concatenate([[0], np.cumsum(out_degree)])
    network = sparse.csr_matrix((np.ones(len(heads), np.int32), heads, indptr), shape=(sink + 1,) * 2)
    flow = maximum_flow(network, 0, sink, method="dinic")
    if not flow.flow_value:
        return
    # a left pixel an augmenting path passes through trades its partner for the next one: the edges left -> right
    # carrying flow are the new matching's changes (right -> left flow only undoes pairs those replace)
    used = flow.flow
    carrying = np.flatnonzero(used.data > 0)
    tails, heads = np.searchsorted(used.indptr, carrying, side="right") - 1, used.indices[carrying]
    changed = (tails >= 1) & (tails <= n) & (heads > n) & (heads < sink)
    new_left, new_right = tails[changed] - 1, heads[changed] - 1 - n
    left_match[new_left], right_owner[new_right] = new_right, new_left


def _neighbours(indptr: np.ndarray, indices: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """The concatenated adjacency lists (indices[indptr[v]:indptr[v + 1]]) of `nodes`."""
    starts, lengths = indptr[nodes], indptr[nodes + 1] - indptr[nodes]
    first = np.cumsum(lengths) - lengths  # each list's place in the result
    return indices[np.repeat(starts - first, lengths) + np.arange(lengths.sum())]


def _reach(starts: np.ndarray, adjacency: tuple[np.ndarray, np.ndarray], present: np.ndarray | None,
           partner: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The alternating breadth-first search from the free pixels `starts` of one side: a pixel goes to its neighbours
    on the other side (`adjacency`; only those in `present` when given), each of those, when matched, to its partner
    (`partner`: the other side's matching). The pixels reached on the start side and on the other, or None past
    `budget` pixels."""
    visited = np.zeros(len(adjacency[0]) - 1, bool)
    visited[starts] = True
    frontier, reached, across_reached = starts, [starts], []
    total = len(starts)
    while len(frontier):
        across = np.unique(_neighbours(*adjacency, frontier))
        if present is not None:
            across = across[present[across]]
        partners = partner[across]
        # a matched pixel's partner is reached through that pixel alone; a visited one's partner was its way in
        frontier = partners[partners != UNMATCHED]
        frontier = frontier[~visited[frontier]]
        visited[frontier] = True
        reached.append(frontier)
        across_reached.append(across)
        total += len(across) + len(frontier)
        if total > budget:
            return None
    return np.concatenate(reached), np.unique(np.concatenate(across_reached))


class Matcher:
    """Maximum matchings of the graph `pairs` (rows x columns, 0/1) restricted to successive sets of its rows, each
    grown from the one before restricted to the new set: as fast as consecutive sets are alike."""

    def __init__(self, pairs: sparse.csr_matrix):
        by_row, by_col = sparse.csr_matrix(pairs), sparse.csc_matrix(pairs)
        self.row_pairs = by_row.indptr.astype(np.int64), by_row.indices.astype(np.int64)
        self.col_pairs = by_col.indptr.astype(np.int64), by_col.indices.astype(np.int64)
        self.degree = np.diff(self.row_pairs[0])  # each row's pairs
        self.match = np.full(pairs.shape[0], UNMATCHED, np.int64)  # each row's column
        self.owner = np.full(pairs.shape[1], UNMATCHED, np.int64)  # each column's row
        # the rows of the last set, and each column's pairs with them: updated by the rows that enter and leave
        self.present = np.zeros(pairs.shape[0], bool)
        self.col_cover = np.zeros(pairs.shape[1], np.int64)

    def _pairs_of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pairs (row, column) of `rows`, as two arrays grouped by row in the order of `rows`."""
        return np.repeat(rows, self.degree[rows]), _neighbours(*self.row_pairs, rows)

    def _pairs_of_cols(self, cols: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pairs (column, row) of `cols` with a row in `present`, grouped by column in the order of `cols`."""
        indptr, indices = self.col_pairs
        rows = _neighbours(indptr, indices, cols)
        kept = present[rows]
        return np.repeat(cols, np.diff(indptr)[cols])[kept], rows[kept]

    def maximum(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """A maximum matching of the graph restricted to `rows`: each row's column, or -1 (rows outside: -1)."""
        match, owner = self.match, self.owner
        present = np.zeros(len(match), bool)
        present[rows] = True
        entered, left = np.flatnonzero(present & ~self.present), np.flatnonzero(self.present & ~present)
        self.present = present
        self.col_cover += np.bincount(_neighbours(*self.row_pairs, entered), minlength=len(owner))
        self.col_cover -= np.bincount(_neighbours(*self.row_pairs, left), minlength=len(owner))
        gone = left[match[left] != UNMATCHED]
        owner[match[gone]] = UNMATCHED
        match[gone] = UNMATCHED
        # step 1 needs the pairs of the free rows only: the rows that entered and those the last set left free
        free_rows = np.flatnonzero(present & (self.degree > 0) & (match == UNMATCHED))
        _match_free_pairs(*self._pairs_of(free_rows), match, owner)
        free_rows = free_rows[match[free_rows] == UNMATCHED]
        free_cols = np.flatnonzero((self.col_cover > 0) & (owner == UNMATCHED))
        if len(free_rows) and len(free_cols):  # else |M| = min(paired rows, paired columns): no more can be
            self._augment_reached(free_rows, free_cols)
        return match.copy()

    def _augment_reached(self, free_rows: np.ndarray, free_cols: np.ndarray) -> None:
        """Step 3 over the part of the residual network that its source reaches, searched from the side with fewer
        free pixels (over every pair of the present rows when the search runs past its budget)."""
        present = self.present
        if len(free_rows) <= len(free_cols):  # from the rows: (sources, sinks, their matchings, the sources' pairs)
            sources, sinks, source_match, sink_owner = free_rows, free_cols, self.match, self.owner
            adjacency, across_present, pairs_of = self.row_pairs, None, self._pairs_of
            every_source_side = np.flatnonzero(present)
        else:  # from the columns
            sources, sinks, source_match, sink_owner = free_cols, free_rows, self.owner, self.match
            adjacency, across_present = self.col_pairs, present
            pairs_of = functools.partial(self._pairs_of_cols, present=present)
            every_source_side = np.flatnonzero(self.col_cover > 0)
        found = _reach(sources, adjacency, across_present, sink_owner, REACH_BUDGET)
        if found is None:
            _augment(*pairs_of(every_source_side), source_match, sink_owner, sources, sinks)
            return
        reached, across = found
        sinks = np.intersect1d(sinks, across, assume_unique=True)
        if len(sinks):  # else no augmenting path: M is maximum
            # the reached pixels' pairs: every edge of the network that the sources reach
            _augment(*pairs_of(np.sort(reached)), source_match, sink_owner, sources, sinks)


def count_matched(pairs: sparse.csr_matrix, rows: np.ndarray | slice = slice(None)) -> int:
    """Pairs in a maximum matching of the graph restricted to the prediction pixels `rows`."""
    return int(np.count_nonzero(Matcher(pairs).maximum(rows) != UNMATCHED))


def count_matched_each(pairs: sparse.csr_matrix, row_sets: Iterable[np.ndarray]) -> list[int]:
    """count_matched for each of the row sets, fastest when consecutive sets are alike."""
    matcher = Matcher(pairs)
    return [int(np.count_nonzero(matcher.maximum(rows) != UNMATCHED)) for rows in row_sets]


def matched_rows(pairs: sparse.csr_matrix) -> np.ndarray:
    """The rows (prediction pixels) that one maximum matching of the graph pairs, sorted. Which pixels a maximum
    matching covers is not unique (their number is): BSDS's union over several annotators depends on it."""
    return np.flatnonzero(Matcher(pairs).maximum() != UNMATCHED)


def match_pixels(prediction: np.ndarray, truth: np.ndarray, radius: float) -> int:
    """Corresponding pixels of two (H, W) boolean maps within `radius` (each map's matched pixels: the same number)."""
    return count_matched(pairs_within(np.argwhere(prediction), np.argwhere(truth), radius))
