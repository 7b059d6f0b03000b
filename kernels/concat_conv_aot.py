"""Every launch configuration of kernels/concat_conv.py, for the ahead-of-time compile checks (kernels/_aot.py,
tests/kernels/test_compile.py) and the static report: per dtype, the pixel layout (PIXEL_CONTIG), the product
precision (fp32: TF32 or IEEE per torch.backends.cudnn.allow_tf32), the operand types (Y_g, D_g) and the tiles
the plan picks (kernels/concat_conv_plan.py)."""

from __future__ import annotations

import torch

from . import concat_conv as op
from ._aot import AotConfig
from ._launch import TRITON_DTYPE_NAMES
from ._triton import aot_signature
from .concat_conv_plan import FWD_BLOCK_M, MIN_BLOCK_M, backward_tiles, forward_tiles

_TYPED_POINTERS = {**dict.fromkeys(("rows_ptr", "dxrows_ptr"), "i32"),  # row tables (int64 past 2^31: same code)
                   **dict.fromkeys(("ups_ptr", "cols_ptr", "map_ptr"), "i64"),
                   "part_ptr": "fp32"}  # int64 tables, fp32 buffers
_UNIT_STRIDES = ("stride_wk",)  # the merge kernel's weight, when contiguous
# The numbers of low-resolution groups (NUM_UP, a compile-time constant) of the full-resolution launch covered: 1 and
# the aggregation's 3 (every count compiles alike).
AOT_NUM_UPS = (1, 3)
# What every forward launch guarantees (the weight and buffers allocated, the tables' views 16-byte aligned, rows
# padded to BLOCK_K) and, for a vectorised one (concat_conv_plan.vectorised_launch), what the launcher checks per
# call: its base pointer 16-byte aligned, its rows' unit 16, its pixel count (the output's channel stride) and, for 2-D
# tiles, its width multiples of 16.
_FORWARD_DIVISIBLE = ("w_ptr", "stride_wm", "rows_ptr", "rows_stride", "ups_ptr", "up_ptr", "row0", "padded_rows")
_VECTORISED = (*_FORWARD_DIVISIBLE, "x_ptr", "row_unit", "out_ptr", "stride_ob", "stride_om", "hw", "width")
# The same for the backward: the merged weight and the partials allocated, the tables aligned, the rows' strides
# multiples of 16; vectorised: the base, the unit 16 and the pixel count (the channel stride of dZ and D_g) checked.
_BACKWARD_DIVISIBLE = ("w_ptr", "dxrows_ptr", "rows_ptr", "rows_stride", "part_ptr", "stride_pm", "bias_col", "row0")
_DX_VECTORISED = (*_BACKWARD_DIVISIBLE, "dx_ptr", "row_unit", "z_ptr", "stride_zb", "stride_zm", "hw")
_DW_VECTORISED = (*_BACKWARD_DIVISIBLE, "x_ptr", "row_unit", "z_ptr", "stride_zb", "stride_zm", "hw")
# The adjoint: D_g and its table allocated; vectorised (and capped at UP_MAX_REGISTERS but for fp32 TF32 products:
# concat_conv._adjoint_options): dZ's base, strides and the image width checked (concat_conv._adjoint).
_UP_DIVISIBLE = ("d_ptr", "groups_ptr")
_UP_VECTORISED = (*_UP_DIVISIBLE, "z_ptr", "stride_zb", "stride_zm", "width")
# Output-channel counts of a launch without upsampling: the aggregation's, and each small BLOCK_M the plan can pick.
AOT_OUT_CHANNELS = (FWD_BLOCK_M[True], *(MIN_BLOCK_M << i for i in range(3)))


def _config(kernel, dtype: torch.dtype, constexprs: dict, warps: int, stages: int, tensor_cores: bool,
            typed: dict | None = None, label: str = "", divisible: tuple = (),
            options: dict | None = None, ctas_per_sm: int = 0) -> AotConfig:
    """A launch of `kernel` on `dtype` data: tables int64, fp32 buffers fp32, the pointers in `typed` of their type,
    every other pointer in `dtype`, integers i32, stride-1 arguments constant, `divisible` divisible by 16;
    `ctas_per_sm`: the residency its launcher sizes the grid by."""
    element = TRITON_DTYPE_NAMES[dtype]
    signature, values = aot_signature(kernel, element, pointers={**_TYPED_POINTERS, **(typed or {})},
                                      unit_strides=_UNIT_STRIDES, constexprs=constexprs)
    shown = ", ".join(f"{k}={v}" for k, v in constexprs.items()
                      if k in ("PIXEL_CONTIG", "DOT_PRECISION", "NUM_UP", "NUM_GROUPS", "BLOCK_M", "TILE_W"))
    return AotConfig(
        name=f"{kernel.__name__}[{element}{label}{', ' + shown if shown else ''}]", kernel=kernel,
        signature=signature, constexprs=values, num_warps=warps, num_stages=stages, tensor_cores=tensor_cores,
        divisible=divisible, extra=options or {}, ctas_per_sm=ctas_per_sm,
    )


def _forward(dtype: torch.dtype, precision: str, contig: bool) -> list[AotConfig]:
    """The forward launches: low-resolution (Y_g out, op._low_resolution_dtype), full-resolution with the upsampling
    epilogue (Y_g in), and without (every output-channel tile size); vectorised where the rows can be (contiguous
    pixels), with the divisibility the launcher checks before it picks those tiles
    (concat_conv_plan.vectorised_launch)."""
    mma = precision != "ieee"
    y = TRITON_DTYPE_NAMES[op._low_resolution_dtype(dtype)]
    flags = dict(PIXEL_CONTIG=contig, DOT_PRECISION=precision, UP_BLOCK=op.UP_BLOCK)
    configs, seen = [], set()
    y_buffer = {"up_ptr": y}  # every launch takes the Y_g buffer; the low-resolution ones store into it
    for vectorised in (True, False) if contig else (False,):
        launches = [(forward_tiles(FWD_BLOCK_M[True], precision, False, vectorised), 0, {**y_buffer, "out_ptr": y},
                     ", Y")]
        launches += [(forward_tiles(FWD_BLOCK_M[True], precision, True, vectorised), n, y_buffer, "")
                     for n in AOT_NUM_UPS]
        launches += [(forward_tiles(m, precision, False, vectorised), 0, y_buffer, "") for m in AOT_OUT_CHANNELS]
        for tiles, num_up, typed, label in launches:
            key = (tiles, num_up, label, vectorised)
            if key not in seen:
                seen.add(key)
                round_out = label == ", Y" and y == "fp32" and precision == "tf32"  # the epilogue's TF32 operand
                configs.append(_config(
                    op._concat_conv1x1_fwd_kernel, dtype,
                    dict(flags, NUM_UP=num_up, ROUND_OUT=round_out, **tiles.constexprs()),
                    tiles.warps, tiles.stages, mma, typed, label + (", vectorised" if vectorised else ""),
                    _VECTORISED if vectorised else _FORWARD_DIVISIBLE,
                ))
    return configs


def _backward(dtype: torch.dtype, precision: str, contig: bool) -> list[AotConfig]:
    """The adjoint, d x and d W launches, on dZ (the input dtype) and on D_g (op._low_resolution_dtype); vectorised as
    in the forward."""
    mma = precision != "ieee"
    adjoint = TRITON_DTYPE_NAMES[op._low_resolution_dtype(dtype)]
    z_types = [({}, "")] + ([({"z_ptr": adjoint}, f", {adjoint} Z")] if adjoint != TRITON_DTYPE_NAMES[dtype] else [])
    configs = []
    if contig:  # the adjoint and d x read dZ and D_g, whose pixels are always contiguous
        for num_groups in range(1, op.MAX_ADJOINT_GROUPS + 1):
            for vectorised in (True, False):
                configs.append(_config(
                    op._concat_conv1x1_bwd_up_kernel, dtype,
                    dict(DOT_PRECISION=precision, NUM_GROUPS=num_groups, MAX_GROUPS=op.MAX_ADJOINT_GROUPS,
                         BLOCK_C=op.UP_BLOCK_C[precision], BLOCK_J=op.ADJOINT_BLOCK_J, SPAN=op.UP_SPAN,
                         ALIGN=op.UP_ALIGN),
                    op.UP_WARPS, op.UP_STAGES, mma, {"d_ptr": adjoint, "groups_ptr": "i64"},
                    ", vectorised" if vectorised else "", _UP_VECTORISED if vectorised else _UP_DIVISIBLE,
                    op._adjoint_options(dtype, precision, vectorised),
                ))
    for vectorised in (True, False) if contig else (False,):
        label = ", vectorised" if vectorised else ""
        dx = backward_tiles("dx", dtype.itemsize, precision, vectorised)
        for typed, z_label in z_types:
            z_size = op._low_resolution_dtype(dtype).itemsize if typed else dtype.itemsize
            dw = backward_tiles("dw", max(dtype.itemsize, z_size), precision, vectorised)
            if contig:
                configs.append(_config(
                    op._concat_conv1x1_bwd_dx_kernel, dtype, dict(DOT_PRECISION=precision, **dx.gemm_constexprs()),
                    dx.warps, dx.stages, mma, typed, z_label + label,
                    _DX_VECTORISED if vectorised else _BACKWARD_DIVISIBLE,
                ))
            configs.append(_config(
                op._concat_conv1x1_bwd_dw_kernel, dtype,
                dict(PIXEL_CONTIG=contig, DOT_PRECISION=precision, **dw.gemm_constexprs()), dw.warps, dw.stages, mma,
                typed, z_label + label, _DW_VECTORISED if vectorised else _BACKWARD_DIVISIBLE,
                ctas_per_sm=op.DW_CTAS_PER_SM,
            ))
    return configs


def aot_configs() -> list[AotConfig]:
    configs = []
    small = dict(BLOCK_M=op.SMALL_BLOCK_M, BLOCK_N=op.SMALL_BLOCK_N)
    for dtype in TRITON_DTYPE_NAMES:
        configs.append(_config(op._concat_conv1x1_merge_kernel, dtype, small, op.EW_WARPS, 1, False))
        configs.append(_config(op._concat_conv1x1_bwd_dz_kernel, dtype, dict(BLOCK=op.EW_BLOCK), op.EW_WARPS, 1,
                               False))
        for reduced in ({}, {"N": 1}):  # d W, and d bias (one column: the JIT specialises N = 1)
            configs.append(_config(op._concat_conv1x1_bwd_reduce_kernel, dtype, {**small, **reduced}, op.EW_WARPS,
                                   1, False, label=", d bias" if reduced else ""))
        for precision in ("tf32", "ieee") if dtype == torch.float32 else ("tf32",):
            for contig in (True, False):
                configs += _forward(dtype, precision, contig) + _backward(dtype, precision, contig)
    return configs
