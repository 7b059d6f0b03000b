"""The launchers' shared helpers (kernels/_launch.py): how many splits share a reduction's blocks, and the compile
options every launch passes."""

from __future__ import annotations

import importlib
import math

import pytest
import torch

import kernels
from kernels._launch import COMPILE_OPTIONS, best_split

window_attention, linear_attention, concat_conv = (importlib.import_module(f"kernels.{name}") for name in
                                                   ("window_attention", "linear_attention", "concat_conv"))


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


def _small_calls(generator: torch.Generator) -> list:
    """Calls that launch every kernel of the three ops, forward and backward: a shifted, padded window attention;
    linear attentions with the state one channel tile (the fused kernels) and wider (the others); a concat conv of two
    resolutions with bias and ReLU."""
    def randn(*shape):
        return torch.randn(shape, generator=generator, requires_grad=True)

    wide = linear_attention.BLOCK_C + 8
    return [
        ("window_attention", (randn(1, 9, 9, 36), randn(2, 49, 49), randn(36)),
         dict(num_heads=2, window_size=7, shift_size=3)),
        ("linear_cross_attention", (randn(2, 8, 20), randn(2, 8, 12), randn(2, 8, 12)), {}),
        ("linear_cross_attention", (randn(2, wide, 20), randn(2, wide, 12), randn(2, wide, 12)), {}),
        ("concat_conv1x1", ([randn(1, 4, 8, 8), randn(1, 4, 4, 4)], randn(6, 8), randn(6)), dict(activation="relu")),
    ]


@pytest.mark.skipif(torch.cuda.is_available(), reason="records the launches as the interpreter runs them")
def test_every_launch_passes_the_compile_options(monkeypatch):
    """Every kernel launch of the three ops, forward and backward, asks for fused multiply-adds itself rather than
    leave them to the installed Triton's default (off from Triton 3.10): the launches of calls that reach every kernel
    of the op modules are recorded as the interpreter runs them."""
    from triton.runtime.interpreter import InterpretedFunction

    launches = []
    run = InterpretedFunction.run

    def recording_run(self, *args, **kwargs):
        launches.append((self.fn.__name__, kwargs))
        return run(self, *args, **kwargs)

    monkeypatch.setattr(InterpretedFunction, "run", recording_run)
    generator = torch.Generator().manual_seed(0)
    for op, args, kwargs in _small_calls(generator):
        out = kernels.get_op(op, "triton")(*args, **kwargs)
        out.backward(torch.randn(out.shape, generator=generator))
    defined = {name for module in (window_attention, linear_attention, concat_conv)
               for name, value in vars(module).items()
               if isinstance(value, InterpretedFunction) and name.endswith("_kernel")}  # not the @jit helpers
    assert defined and {name for name, _ in launches} == defined
    missing = sorted({name for name, options in launches if not COMPILE_OPTIONS.items() <= options.items()})
    assert COMPILE_OPTIONS["enable_fp_fusion"] is True and not missing, missing
