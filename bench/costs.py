"""Minimal bytes and FLOPs of one model op call (bench/shapes.py's `OpCall`), forward and backward: the benchmark
scripts' byte formulas (and the linear attention's FLOPs) applied to the call's shapes, plus the two FLOP counts the
benchmarks do not have in minimal form:
- window attention: the padded windows' matrix products, 4 N^2 d per window and head forward (q k^T, p v) and
  8 N^2 d backward (dV, dP, dQ, dK; the recomputed logits not counted), N = window_size^2, d the head dim;
- concat conv: each segment multiplied at its own resolution (upsampling commutes with the channel mix,
  kernels/concat_conv.py), 2 B M sum_i C_i P_i forward and 4 B M sum_u C_u P_u backward over the unique inputs
  (d x and d W); bench_concat_conv.py counts the materialised convolution instead (2 B M Cin P), the work every
  provider it times is credited with.
The kernels of the reference's eager run, which the static report sets beside our predictions, are traced:
bench/eager_trace.py.
"""

from __future__ import annotations

import math

import torch

from bench import bench_concat_conv, bench_linear_attention, bench_window_attention
from bench.shapes import OpCall, TensorRef


def call_costs(call: OpCall, dtype: torch.dtype = torch.bfloat16) -> dict[str, tuple[int, int]]:
    """direction ("fwd", "bwd") -> (minimal bytes, FLOPs) of `call` on `dtype` data."""
    return _COSTS[call.op](call, dtype)


def _linear_cross_attention(call: OpCall, dtype: torch.dtype) -> dict:
    (batch, width, lq), (_, _, ls), (_, values, _) = (call.stacked_shape(i) for i in range(3))
    if values != width:
        raise ValueError(f"{call.case}: the benchmark's formulas assume D = E, got D={width}, E={values}")
    shape = bench_linear_attention.Shape(call.case, width, lq, ls, stacked=1)
    nbytes = bench_linear_attention.minimal_bytes(shape, batch, dtype)
    flops = bench_linear_attention.flops(shape, batch)
    return {direction: (nbytes[direction], flops[direction]) for direction in ("fwd", "bwd")}


def _window_attention(call: OpCall, dtype: torch.dtype) -> dict:
    shape = bench_window_attention.shape_of(call)
    batch, window = call.tensors[0][0], dict(call.kwargs)["window_size"]
    nbytes = bench_window_attention.op_bytes(shape, batch, torch.empty((), dtype=dtype).element_size())
    window_heads = batch * math.ceil(shape.height / window) * math.ceil(shape.width / window) * shape.num_heads
    products = window_heads * (window * window) ** 2 * shape.head_dim
    return {"fwd": (nbytes["fwd"], 4 * products), "bwd": (nbytes["bwd"], 8 * products)}


def _concat_conv1x1(call: OpCall, dtype: torch.dtype) -> dict:
    inputs, weight, bias = (call.args + (None,))[:3]
    kwargs = dict(call.kwargs)
    uniques = list(dict.fromkeys(ref.index for ref in inputs))
    out_channels = call.tensors[weight.index][0]
    spec = bench_concat_conv.Spec(
        call.case, tuple(call.tensors[i][1:] for i in uniques), tuple(uniques.index(ref.index) for ref in inputs),
        out_channels, residual=isinstance(kwargs.get("residual"), TensorRef),
        relu=kwargs.get("activation") == "relu", bias=isinstance(bias, TensorRef),
    )
    batch = call.tensors[inputs[0].index][0]
    nbytes, _ = bench_concat_conv.counts(spec, dtype, batch)

    def products(indices) -> int:
        return sum(math.prod(call.tensors[i][1:]) for i in indices)  # channels x own pixels

    forward = 2 * batch * out_channels * products(ref.index for ref in inputs)
    backward = 4 * batch * out_channels * products(uniques)
    return {"fwd": (nbytes["fwd"], forward), "bwd": (nbytes["bwd"], backward)}


_COSTS = {
    "linear_cross_attention": _linear_cross_attention,
    "window_attention": _window_attention,
    "concat_conv1x1": _concat_conv1x1,
}
