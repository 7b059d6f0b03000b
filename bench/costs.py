"""Minimal bytes and FLOPs of one model op call (bench/shapes.py's `OpCall`), forward and backward: the benchmark
scripts' byte formulas (and the linear attention's FLOPs) applied to the call's shapes, plus the two FLOP counts the
benchmarks do not have in minimal form:
- window attention: the padded windows' matrix products, 4 N^2 d per window and head forward (q k^T, p v) and
  8 N^2 d backward (dV, dP, dQ, dK; the recomputed logits not counted), N = window_size^2, d the head dim;
- concat conv: each segment multiplied at its own resolution (upsampling commutes with the channel mix,
  kernels/concat_conv.py), 2 B M sum_i C_i P_i forward and 4 B M sum_u C_u P_u backward over the unique inputs
  (d x and d W); bench_concat_conv.py counts the materialised convolution instead (2 B M Cin P), the work every
  provider it times is credited with.
`eager_kernels` lists the kernels of the reference's eager run (the concat conv's), which profiling/cost_model.py
prices at their rooflines: the bar the static report sets beside our predictions.
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


def eager_kernels(call: OpCall, dtype: torch.dtype = torch.bfloat16) -> dict[str, list] | None:
    """direction -> [(bytes, FLOPs) of each kernel the reference runs in eager mode] for the concat conv, None for the
    other ops (not modelled). Forward: one bilinear interpolation per low-resolution segment (reads it, writes it at
    full size), the concatenation (reads and writes every channel at full size), the convolution with its bias
    (reads the concatenation and the weight, writes the output; 2 B M Cin P FLOPs), the residual add and the ReLU
    (read and write the output). Backward (autograd of the same): the ReLU mask, the convolution's input and weight
    gradients (each 2 B M Cin P FLOPs, reading dZ and the weight or the saved concatenation), the bias gradient, one
    interpolation backward per low-resolution segment (reads its slice of the gradient, writes it at its own size)
    and one accumulation per extra occurrence of a repeated input."""
    if call.op != "concat_conv1x1":
        return None
    e = torch.empty((), dtype=dtype).element_size()
    inputs, weight = call.args[:2]
    kwargs = dict(call.kwargs)
    shapes = [call.tensors[ref.index] for ref in inputs]
    batch, out_channels = shapes[0][0], call.tensors[weight.index][0]
    height, width = max((s[2:] for s in shapes), key=lambda hw: hw[0] * hw[1])
    pixels = batch * height * width
    cin = sum(s[1] for s in shapes)
    out, cat, w = e * out_channels * pixels, e * cin * pixels, e * out_channels * cin
    conv_flops = 2 * out_channels * cin * pixels
    low = [e * math.prod(s) for s in shapes if tuple(s[2:]) != (height, width)]
    low_full = [e * s[1] * pixels for s in shapes if tuple(s[2:]) != (height, width)]
    residual, relu = isinstance(kwargs.get("residual"), TensorRef), kwargs.get("activation") == "relu"
    forward = [(small + full, 0) for small, full in zip(low, low_full)] + [(2 * cat, 0), (cat + w + out, conv_flops)]
    forward += [(3 * out, 0)] * residual + [(2 * out, 0)] * relu
    sizes = {ref.index: e * math.prod(call.tensors[ref.index]) for ref in inputs}
    extra = [sizes[ref.index] for i, ref in enumerate(inputs) if ref.index in {r.index for r in inputs[:i]}]
    backward = [(3 * out, 0)] * relu + [(out + w + cat, conv_flops), (out + cat + w, conv_flops), (out, 0)]
    backward += [(full + small, 0) for small, full in zip(low, low_full)] + [(3 * size, 0) for size in extra]
    return {"fwd": forward, "bwd": backward}


_COSTS = {
    "linear_cross_attention": _linear_cross_attention,
    "window_attention": _window_attention,
    "concat_conv1x1": _concat_conv1x1,
}
