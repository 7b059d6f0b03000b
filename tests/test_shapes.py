"""bench/shapes.py records the model's op calls from the model itself: their number per op is the README's table,
the calls' inputs can be rebuilt (repeated inputs as one tensor), and profiling/repro.py lists them."""

import subprocess
import sys
from collections import Counter
from pathlib import Path

import torch

from bench.shapes import make_args, model_op_calls

ROOT = Path(__file__).resolve().parents[1]


def test_the_model_calls_each_op_as_the_readme_says():
    calls = model_op_calls()  # NYUD-v2, 3 tasks, 480 x 640, batch 8
    per_op = Counter()
    for call in calls:
        per_op[call.op] += call.count
    assert per_op == {"linear_cross_attention": 10, "window_attention": 11, "concat_conv1x1": 6}
    assert len({call.case for call in calls}) == len(calls)  # names tell the calls apart


def test_inputs_are_rebuilt_with_the_recorded_shapes_and_repeats():
    aggregation = next(c for c in model_op_calls() if c.op == "concat_conv1x1" and c.count == 3)
    (inputs, weight, bias), options = make_args(aggregation, torch.float32, "meta")
    assert [tuple(x.shape) for x in inputs] == [aggregation.tensors[ref.index] for ref in aggregation.args[0]]
    assert len(inputs) == 13 and len({id(x) for x in inputs}) == 10  # F1 three times, F2 twice: one tensor each
    assert tuple(weight.shape) == (1080, 1080, 1, 1) and options == {"out_size": None}


def test_a_small_model_size_gives_small_calls():
    calls = model_op_calls({"semseg": 40, "depth": 1}, size=(64, 96), batch=2)
    window = next(c for c in calls if c.op == "window_attention")
    assert window.tensors[0] == (2, 16, 24, 54)  # stride 4, 3 x 18 channels


def test_repro_lists_the_models_calls():
    result = subprocess.run([sys.executable, "profiling/repro.py", "--list"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == len(model_op_calls())
