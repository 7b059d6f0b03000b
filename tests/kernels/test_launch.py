"""The launchers' shared helpers (kernels/_launch.py): how many splits share a reduction's blocks."""

from __future__ import annotations

import math

import pytest

from kernels._launch import best_split


def busiest_sm_blocks(splits: int, launches: tuple) -> int:
    """Blocks the busiest SM sweeps, summed over the launches: its waves times the longest split (split sizes differ
    by at most one)."""
    return sum(math.ceil(splits * programs / slots) * math.ceil(blocks / splits)
               for blocks, programs, slots in launches)


def waves(splits: int, launches: tuple) -> int:
    return sum(math.ceil(splits * programs / slots) for _, programs, slots in launches)


@pytest.mark.parametrize("launches", [  # (blocks, programs per split, slots) per launch
    ((600, 48, 264),), ((1200, 48, 264),), ((600, 24, 264),), ((150, 192, 264),), ((40, 8, 132),), ((5, 200, 396),),
    ((1, 1, 132),), ((17, 3, 264),),
    ((2400, 18, 132), (600, 18, 132), (150, 27, 132)), ((5, 200, 396), (17, 3, 264)), ((2400, 9, 132),) * 2,
])
def test_split_fills_whole_waves(launches):
    """The split count leaves the busiest SMs no more work than any other count would, up to one block per program
    of overhead: no partial last wave where another count fills it, over all the launches that share it."""
    max_splits = max(blocks for blocks, _, _ in launches)
    splits = best_split(launches, max_splits)
    assert 1 <= splits <= max_splits
    best = min(busiest_sm_blocks(n, launches) + waves(n, launches) for n in range(1, max_splits + 1))
    assert busiest_sm_blocks(splits, launches) <= best


def test_split_stays_within_its_bound():
    assert best_split(((600, 48, 264),), 4) == 4  # 11 fills the waves best, but at most 4 are allowed
    assert best_split(((600, 1, 264),), 1) == 1


def test_split_counts_what_each_split_adds():
    """A cost per split (partials to reduce) trades fuller waves against fewer splits: 2,400 blocks, 18 programs per
    split on 132 slots fill three waves best at 22 splits, but at about a block per split one wave of 7 wins."""
    assert best_split(((2400, 18, 132),), 32) == 22
    assert best_split(((2400, 18, 132),), 32, 1.0) == 7
