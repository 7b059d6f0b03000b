"""Triton `kernels.concat_conv1x1`: bilinear upsampling + concatenation + 1x1 convolution + bias, residual and ReLU,
forward and backward, without materialising the upsampled maps or the concatenation.

Semantics (kernels/reference/concat_conv.py): with up_i the bilinear resize (align_corners=False, source coordinate
clamped at 0, as F.interpolate) of input i to the output size H x W and W_i the weight columns of segment i,

    out = act(Z),   Z = sum_i W_i . up_i(x_i) + bias + residual,   act in {identity, relu}.

Two rewritings, exact in real arithmetic (only the rounding order differs from the reference), make it cheap:
1. Resolution groups. Bilinear resizing acts on every channel alike and is linear, so it commutes with the channel
   mix: W_g . up_g(X_g) = up_g(W_g . X_g). The segments are grouped by resolution (h_g, w_g); every low-resolution
   group is multiplied at its own resolution into a map Y_g = W_g X_g (B, M, h_g, w_g), and the
   full-resolution GEMM adds up_g(Y_g) in its epilogue. SCA-MTL's aggregation (216 + 288 + 288 + 288 channels at 1,
   1/4, 1/16 and 1/64 of the 120 x 160 pixels) then costs 103 GFLOP instead of the 358 of the materialised
   1080 -> 1080 convolution, and no upsampled channel is ever formed.
2. Repeated inputs, backward only. The same tensor object x in segments a and b has d x = W_a^T D + W_b^T D =
   (W_a + W_b)^T D: the backward works on unique inputs (rows r = (unique input, channel)) with merged columns
   W_u[:, r] = sum over the segments of W[:, column] (summed in fp32, rounded once), and d W_a = d W_b is computed
   once (the same D X^T). The operator receives each unique tensor once, so autograd sees one gradient per tensor.
   (The aggregation has F1 three times and F2 twice.) The forward keeps one row block per segment and re-reads a
   repeated input from L2, so that its products are the reference's: merged columns rounded to bf16 would move Z by
   one bf16 step of the weights and flip the ReLU mask of values that close to 0.

The upsampling epilogue. The full-resolution launch tiles the image in blocks of TILE_H rows x TILE_W columns; such a
tile reads, of Y_g at a factor s, a window of about TILE_H / s + 2 source rows and TILE_W / s + 2 columns. For every
source row r of the window and block of UP_BLOCK source columns c it adds the tensor-core product
Y_g[:, r, c] . (w_y(r) w_x(c)), the (UP_BLOCK, pixels) bilinear weights built in registers from the tap formula: each
window value is read once per tile (no per-output gather of four taps), and the weights cost a few multiplies. The
full-resolution launch holds one CTA per SM, whose warps meet at a barrier every step: each step's block of Y_g is
loaded during the step before (bf16 and TF32 products), so that its latency is not exposed once per step.

VJP, with dY the upstream gradient and U_g the (P x P_g) bilinear interpolation matrix of group g:

    dZ = dY * (out > 0)   (relu; dZ = dY otherwise),    d residual = dZ,    d bias = sum over b and pixels of dZ,
    D_g = U_g^T dZ  (B, M, h_g, w_g);  D_g = dZ for the full-resolution group,
    d x_u = W_u[:, rows of u]^T D_g  (at the input's own resolution),
    d W[:, column of a segment of u] = sum_b D_g X_u^T.

The adjoint D_g = U_g^T dZ is a deterministic gather, separable as U = U_y (x) U_x, and one launch serves up to three
groups from one pass over dZ. A program owns, of every group, the source columns under about the same
ADJOINT_OUT_COLUMNS output columns (and a block of channels), and streams the output rows once, top to bottom: per
group, T_y = dZ[:, y, window] U_x is a small banded matrix product on tensor cores (the band built in registers from
the forward's tap formula), and T_y goes with weights (1 - a_y, a_y) to source rows lo(y) and lo(y) + 1; two register
accumulators per group suffice because lo(y) grows by at most one per output row when upsampling, and a source row is
written once the rows that read it are done. No atomic scatter anywhere. d W and d bias are reduced over pixels
through fp32 per-split partials (SPLIT, M, R + 16) written by every program and summed in a fixed order by a second
kernel: two runs are bitwise identical.

Kernels (1-D grids, output-channel tiles fastest, so that the programs sharing an input tile run back to back and
re-read it from L2; the weight is a few MB at most and stays in L2):
- _concat_conv1x1_merge_kernel: the weight's columns in row order, zero in the padding (forward), or summed over
  repeats (backward).
- _concat_conv1x1_fwd_kernel: output-channel x pixel tiles of one resolution group; the K loop walks the group's rows
  through the plan's row table (kernels/concat_conv_plan.py), so a K block may straddle segments of any channel count
  and any number of segments runs through one compiled kernel; the rows are padded to whole K blocks, whose weight tiles
  load unmasked (asynchronous copies). Low-resolution launches store Y_g (fp32 ones TF32-rounded: ROUND_OUT); the
  full-resolution launch adds the bias, the upsampling epilogue of every group (their number NUM_UP a compile-time
  constant, 0 elsewhere) and the residual, applies the ReLU and stores the output.
- _concat_conv1x1_bwd_dz_kernel: dZ = dY * (out > 0) (or a strided copy of dY into the layout the GEMMs read).
- _concat_conv1x1_bwd_up_kernel: D_g = U_g^T dZ for up to three low-resolution groups, dZ read once.
- _concat_conv1x1_bwd_dx_kernel: d x rows = W_u^T D_g, each row stored into its own input's gradient.
- _concat_conv1x1_bwd_dw_kernel: fp32 partials of d W (and of d bias) per pixel split.
- _concat_conv1x1_bwd_reduce_kernel: fixed-order sum of the partials into d W (every segment's columns) and d bias.
Tiles, stages and warps are chosen per launch by the plan, from the output channels, the precision and whether the
launch's loads vectorise (concat_conv_plan.forward_tiles / backward_tiles / vectorised_launch).

Why a row table and not a fixed maximum of pointer arguments: the op takes any number of segments (13 in the model);
a table of channel offsets keeps one compiled kernel per dtype and layout, lets K blocks straddle ragged segments
(36-channel segments cost no padding) and runs unchanged in the interpreter. The table depends on shapes only and is
uploaded once per call signature; the group's tensors (at most four distinct ones; a call with more at one resolution
is concatenated first) are reached from the first one's pointer through per-call address differences passed as
scalar arguments, so that a call does no host-to-device copy and can be captured in a CUDA graph.

Bytes and FLOPs (B batch, M output channels, P = H W output pixels; group g: C_g segment channels, C'_g unique
channels, P_g pixels; e bytes per element; R rows; S pixel splits):
    forward   reads the unique inputs e B sum C'_g P_g and the weight, writes out e B M P (reads the residual,
              e B M P); writes Y_g, e' B M P_g, and reads each tile's window of it back; 2 B M sum_g C_g P_g FLOPs,
              plus the epilogue's products (2 B M P x UP_BLOCK per source row and column block of a tile's window).
              (Materialised: 2 B M Cin P FLOPs, and e B Cin P bytes of concatenation written and read.)
    backward  dZ: reads out and dY, writes dZ (3 e B M P; relu only); adjoint: reads dZ once per three low-resolution
              groups, writes D_g (e' B M P_g, e' = 2 for bf16, else 4); d x: reads Z_g, writes e B C'_g P_g; d W:
              reads Z_g and the inputs, writes and reads the partials (8 S M R); 4 B M sum_g C'_g P_g FLOPs, plus the
              adjoint's banded products (2 B M P x 64 x 16 per group and output-column window).

Precision of every product (fp32 accumulation everywhere; outputs rounded once to their dtype):
    full resolution, W . X, W_u^T dZ and dZ X^T: operands in the input dtype (bf16/fp16 tensor cores); fp32 inputs on
    TF32 tensor cores when torch.backends.cudnn.allow_tf32 (the reference is a cuDNN convolution), IEEE fp32 otherwise.
    Low resolution: W . X as above into Y_g, and D_g, in e' (`_low_resolution_dtype`): bf16 for bf16 data (fp32's
    range), fp32 otherwise (a sum of hundreds of fp16 products, or of up to s^2 fp16 gradients under loss scaling,
    may leave fp16's range). A bf16 Y_g is one rounding of a sum, where the reference rounds each upsampled input
    channel to bf16 before its sum: errors of one order. The epilogue's products of Y_g with the bilinear weights, and
    the d x and d W products of D_g, take operands in e': bf16 tensor cores for bf16 data; fp32 operands otherwise, as
    TF32 for fp16 data (a 10-bit mantissa, finer than fp16's upsampled inputs in the reference, with the fp32 range)
    and at the full-resolution precision above for fp32 data. Every TF32 operand is rounded to nearest first
    (kernels/_triton.py's `dot`): the tensor core itself would truncate it, a bias that adds up over a sum of
    products. An fp32 Y_g is stored so rounded by its own launch (ROUND_OUT), where registers are free, and the
    epilogue rounds only the weights. The bilinear weights are exact in bf16 at power-of-two factors (products of
    multiples of 1 / 2s), as in the model; at others their bf16 rounding is of the order of the reference's rounding
    of its upsampled inputs. The adjoint's banded product takes dZ as it is and the band in the same dtype. The
    bilinear taps and the partials are fp32; merged columns are summed in fp32 and rounded once.

Anchors: the multi-pointer split-K of Inductor's mm_plus_mm template and the pointer table of Triton's grouped GEMM
tutorial (here a table per K row instead of per GEMM); Liger's and fla's fp32 (programs, C) partial buffers for
parameter gradients; KERNELS.md C.3 (NCHW-native GEMM per image, M-fastest rasterisation, fused bilinear loads).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from ._autocast import autocast_aware
from ._call_memo import CallMemo, memo_key
from ._checks import check_concat_conv1x1
from ._launch import COMPILE_OPTIONS, INT32_MAX, best_split, ceil_div, check_kernel_dtype, sm_count
from ._library import custom_op
from ._triton import cdiv, check_device, dot, round_to_tf32, sum_
from .concat_conv_plan import (
    ADJOINT_BLOCK_J,
    ADJOINT_FIELDS,
    ALIGN_ELEMENTS,
    MAX_ADJOINT_GROUPS,
    NO_SLOTS,
    SLOT_BITS,
    Group,
    Plan,
    Signature,
    Tiles,
    backward_tiles,
    forward_tiles,
    launch_rows,
    make_plan,
    overflowing_resolutions,
    segment_columns,
    vectorised_launch,
)

MAX_SPLITS = 32  # d W's pixel splits: each adds an fp32 partial of d W to write and reduce
PARTIAL_BYTES = 4  # fp32
# CTAs per SM of a d W launch, by which its pixel splits fill whole waves (tests/kernels/test_compile.py checks it):
# one for the vectorised tiles' 16 warps (79-116 registers, 80-160 KB of shared memory) and for the scalar tiles'
# 8 warps on strided pixels or fp32 data (132-220 registers); 16-bit scalar tiles on contiguous pixels hold two, and
# then run half as many waves.
DW_CTAS_PER_SM = 1
# Adjoint of the upsampling (its launches: kernels/concat_conv_plan.py): channels per program, output columns per
# banded product. A program's window of output columns (its columns' ADJOINT_OUT_COLUMNS widened by the taps' reach,
# a source column each side, and the start aligned to UP_ALIGN) fits in one product of UP_SPAN columns unless a width
# factor exceeds about (UP_SPAN - ADJOINT_OUT_COLUMNS) / 3.
UP_BLOCK_C = {"tf32": 64, "ieee": 16}  # IEEE fp32 products hold their operands in registers
UP_SPAN = 64
UP_ALIGN = 8  # window starts are aligned down to this many columns so that row loads can be vectorised
UP_WARPS = 8
UP_MAX_REGISTERS = 128  # two CTAs of UP_WARPS per SM (see _adjoint)
UP_STAGES = 2
# Elementwise kernels (dZ, merge, reduce).
EW_BLOCK = 1024
EW_WARPS = 4
SMALL_BLOCK_M = 32
SMALL_BLOCK_N = 64
# Upsampling epilogue: source columns of Y_g per tensor-core product (the smallest K of a TF32 product; a tile of
# 32 columns reads 18 at a factor 2, 10 at 4, 6 at 8).
UP_BLOCK = 16
_SLOT_BITS: tl.constexpr = tl.constexpr(SLOT_BITS)
_SLOT_MASK: tl.constexpr = tl.constexpr((1 << SLOT_BITS) - 1)
# The element offsets of a group's other tensors from its first: per call, not specialised (the JIT would otherwise
# compile a variant per divisibility of an address difference).
_DELTAS = ["delta1", "delta2", "delta3"]


# ---------------------------------------------------------------------------------------------------------------------
# Device helpers
# ---------------------------------------------------------------------------------------------------------------------


@triton.jit
def _source_index(dst, scale, size_src):
    """Bilinear taps of output index `dst` (align_corners=False), as F.interpolate: src = max((dst + 0.5) scale - 0.5,
    0), lo = floor(src), hi = min(lo + 1, size_src - 1), weights (1 - lam, lam) with lam = src - lo."""
    src = tl.maximum((tl.cast(dst, tl.float32) + 0.5) * scale - 0.5, 0.0)
    lo = tl.minimum(src.to(tl.int32), size_src - 1)  # src >= 0: truncation is floor
    hi = tl.minimum(lo + 1, size_src - 1)
    lam = src - lo.to(tl.float32)
    return lo, hi, lam


@triton.jit
def _tap_weights(lo, hi, lam, index):
    """The weight of source index `index` in the bilinear sum of the output indices whose taps are (lo, hi, lam):
    1 - lam at lo, lam at hi (both at the last source index), 0 elsewhere. Shapes broadcast."""
    return tl.where(lo == index, 1.0 - lam, 0.0) + tl.where(hi == index, lam, 0.0)


@triton.jit
def _row_offsets(rows_ptr, row_unit, delta1, delta2, delta3, batch0, batch1, batch2, batch3, offs_r, mask_r, pid_b):
    """int64 element offsets, from the launch's base pointer (its slot-0 tensor), of rows `offs_r` of image pid_b:
    (delta of the row's tensor + its channel offset + pid_b * the tensor's batch stride) * unit. A row of the plan's
    table packs (channel offset << SLOT_BITS) | slot; the deltas and batch strides of the slots are arguments
    (kernels/concat_conv_plan.py)."""
    packed = tl.load(rows_ptr + offs_r, mask=mask_r, other=0).to(tl.int64)
    slot = packed & _SLOT_MASK
    delta = tl.where(slot == 1, delta1, tl.where(slot == 2, delta2, tl.where(slot == 3, delta3, 0)))
    stride_b = tl.where(slot == 1, batch1, tl.where(slot == 2, batch2, tl.where(slot == 3, batch3, batch0)))
    return (delta + (packed >> _SLOT_BITS) + pid_b.to(tl.int64) * stride_b) * row_unit


@triton.jit
def _load_rows(
    x_ptr, delta1, delta2, delta3, batch0, batch1, batch2, batch3,  # a group's tensors (`_row_offsets`)
    rows_ptr, rows_stride, row_unit,  # the row table (ROW_FIELDS, rows_stride) and its unit
    offs_r, mask_r, pid_b,  # virtual rows (absolute indices into the table) and image
    pix, py, px, mask_p,  # pixels of the tile: flat index, y, x
    PIXEL_CONTIG: tl.constexpr,  # every row has x stride 1 and y stride = width: flat pixel offsets
):
    """The (rows, pixels) tile of the virtual concatenation at the rows' own resolution, zero outside."""
    base = _row_offsets(rows_ptr, row_unit, delta1, delta2, delta3, batch0, batch1, batch2, batch3, offs_r, mask_r,
                        pid_b)
    if PIXEL_CONTIG:
        offs = base[:, None] + pix[None, :]
    else:
        stride_y = tl.load(rows_ptr + rows_stride + offs_r, mask=mask_r, other=0).to(tl.int64)
        stride_x = tl.load(rows_ptr + 2 * rows_stride + offs_r, mask=mask_r, other=0).to(tl.int64)
        offs = base[:, None] + stride_y[:, None] * py[None, :] + stride_x[:, None] * px[None, :]
    return tl.load(x_ptr + offs, mask=mask_r[:, None] & mask_p[None, :], other=0.0)


@triton.jit
def _pixel_tile(pid_n, height, width, hw, BLOCK_N: tl.constexpr, TILE_W: tl.constexpr):
    """(flat index, y, x, mask) of the pixels of tile pid_n: BLOCK_N consecutive pixels (TILE_W = 0) or
    BLOCK_N / TILE_W rows of TILE_W columns from (tile_y, tile_x); and (tile_y, tile_x), which only 2-D tiles (the
    upsampling epilogue's) use."""
    n = tl.arange(0, BLOCK_N)
    if TILE_W == 0:
        pix = pid_n * BLOCK_N + n
        py = pix // width
        px = pix % width
        mask = pix < hw
        tile_y = 0
        tile_x = 0
    else:
        tiles_x = cdiv(width, TILE_W)
        tile_y = (pid_n // tiles_x) * (BLOCK_N // TILE_W)
        tile_x = (pid_n % tiles_x) * TILE_W
        py = tile_y + n // TILE_W
        px = tile_x + n % TILE_W
        mask = (py < height) & (px < width)
        pix = py * width + px
    return pix, py, px, mask, tile_y, tile_x


@triton.jit
def _add_upsampled(
    acc, up_ptr, ups_ptr, g, NUM_UP: tl.constexpr,  # Y buffer, its (3, NUM_UP) table, the group
    planes, mask_m, py, px, tile_y, tile_x, height, width,  # the tile: (b, m) planes, pixels, its first row and column
    DOT_PRECISION: tl.constexpr, TILE_H: tl.constexpr, TILE_W: tl.constexpr, UP_BLOCK: tl.constexpr,
):
    """acc + up_g(Y_g) on the tile's pixels, as tensor-core products with the bilinear weights: for every source row
    r the tile reads and every block of UP_BLOCK source columns c, acc += Y_g[:, r, c] . (w_y(r) w_x(c)), the
    (UP_BLOCK, pixels) weights built in registers from the tap formula. The tile (TILE_H x TILE_W pixels, a window of
    about TILE_H / s + 2 rows and TILE_W / s + 2 columns of Y_g at a factor s) reads each value of the window once,
    with no per-output gather."""
    up_offset = tl.load(ups_ptr + g)
    up_h = tl.load(ups_ptr + NUM_UP + g).to(tl.int32)
    up_w = tl.load(ups_ptr + 2 * NUM_UP + g).to(tl.int32)
    scale_y = up_h / height
    scale_x = up_w / width
    lo_y, hi_y, lam_y = _source_index(py, scale_y, up_h)
    lo_x, hi_x, lam_x = _source_index(px, scale_x, up_w)
    # The window: taps grow with the output index, so the tile's first and last (valid) row and column bound it.
    r_first, _, _ = _source_index(tile_y, scale_y, up_h)
    _, r_last, _ = _source_index(tl.minimum(tile_y + TILE_H, height) - 1, scale_y, up_h)
    c_first, _, _ = _source_index(tile_x, scale_x, up_w)
    _, c_last, _ = _source_index(tl.minimum(tile_x + TILE_W, width) - 1, scale_x, up_w)
    plane = up_ptr + up_offset + planes * (up_h * up_w)
    # The window's (row, column block) steps in one loop, row by row, each step's Y_g block loaded one step ahead:
    # its load is in flight during the previous step's product and barriers, which at one CTA per SM no other warps
    # would hide. Not for IEEE products, whose operands sit in registers: the block loaded ahead spilled there (4 B,
    # triton 3.9), so their next block is loaded after the product, as an unpipelined loop would. The last step is
    # peeled off: it loads nothing.
    ahead: tl.constexpr = DOT_PRECISION != "ieee"
    steps = (r_last + 1 - r_first) * cdiv(c_last + 1 - c_first, UP_BLOCK)
    r = r_first
    c0 = c_first
    y = _window_block(plane, mask_m, r, c0, c_last, up_w, UP_BLOCK)
    for _ in range(steps - 1):
        row_done = c0 + UP_BLOCK > c_last
        next_r = tl.where(row_done, r + 1, r)
        next_c0 = tl.where(row_done, c_first, c0 + UP_BLOCK)
        if ahead:
            y_next = _window_block(plane, mask_m, next_r, next_c0, c_last, up_w, UP_BLOCK)
        acc = _add_window_product(acc, y, r, c0, lo_y, hi_y, lam_y, lo_x, hi_x, lam_x, DOT_PRECISION, UP_BLOCK)
        if not ahead:
            y_next = _window_block(plane, mask_m, next_r, next_c0, c_last, up_w, UP_BLOCK)
        y = y_next
        r = next_r
        c0 = next_c0
    return _add_window_product(acc, y, r, c0, lo_y, hi_y, lam_y, lo_x, hi_x, lam_x, DOT_PRECISION, UP_BLOCK)


@triton.jit
def _window_block(plane, mask_m, r, c0, c_last, up_w, UP_BLOCK: tl.constexpr):
    """Y_g[planes, r, c0:c0 + UP_BLOCK] of the epilogue's window (columns to c_last)."""
    offs_c = c0 + tl.arange(0, UP_BLOCK)
    return tl.load(plane[:, None] + (r * up_w + offs_c)[None, :], mask=mask_m[:, None] & (offs_c <= c_last)[None, :],
                   other=0.0)


@triton.jit
def _add_window_product(acc, y, r, c0, lo_y, hi_y, lam_y, lo_x, hi_x, lam_x, DOT_PRECISION: tl.constexpr,
                        UP_BLOCK: tl.constexpr):
    """acc + y . (w_y(r) w_x(c)) for the window block y = Y_g[:, r, c0:c0 + UP_BLOCK] (see `_add_upsampled`)."""
    offs_c = c0 + tl.arange(0, UP_BLOCK)
    w_y = _tap_weights(lo_y, hi_y, lam_y, r)
    weights = _tap_weights(lo_x[None, :], hi_x[None, :], lam_x[None, :], offs_c[:, None]) * w_y[None, :]
    if y.dtype == tl.bfloat16:
        # bf16 products; the weights are exact in bf16 at power-of-two factors (module docstring)
        acc = dot(y, weights.to(tl.bfloat16), acc, DOT_PRECISION)
    else:
        # `dot` would round both TF32 operands; Y_g is stored rounded already (ROUND_OUT), and rounding it here
        # again costs registers (4 B spilled on triton 3.6): only the weights are rounded
        if DOT_PRECISION == "tf32":
            weights = round_to_tf32(weights)
        acc = tl.dot(y, weights, acc, input_precision=DOT_PRECISION)
    return acc


# ---------------------------------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------------------------------


@triton.jit
def _concat_conv1x1_merge_kernel(
    w_ptr, stride_wm, stride_wk,  # weight (M, Cin), any strides
    cols_ptr, max_repeats,  # int64 (max_repeats, R): the weight columns summed into row r, -1 where none
    out_ptr,  # (rows_out, R), contiguous, in the weight dtype: the weight in row order (merged over repeats)
    M, rows_out, R,  # rows_out >= M: the rows beyond M (padding to the GEMM's tile) are zero
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid = tl.program_id(0)
    num_m = cdiv(rows_out, BLOCK_M)
    offs_m = (pid % num_m) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_r = (pid // num_m) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < M
    mask_r = offs_r < R
    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    for rep in range(max_repeats):  # fixed order: the occurrences in input order
        cols = tl.load(cols_ptr + rep * R + offs_r, mask=mask_r, other=-1)
        ptrs = w_ptr + offs_m[:, None].to(tl.int64) * stride_wm + cols[None, :] * stride_wk
        acc += tl.load(ptrs, mask=mask_m[:, None] & (cols >= 0)[None, :], other=0.0).to(tl.float32)
    out = out_ptr + offs_m[:, None].to(tl.int64) * R + offs_r[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=(offs_m < rows_out)[:, None] & mask_r[None, :])


@triton.jit(do_not_specialize=_DELTAS)
def _concat_conv1x1_fwd_kernel(
    # the launch's tensors (one resolution: the first, the others' deltas from it, every one's batch stride), its row
    # table (ROW_FIELDS, rows_stride) and unit, and its rows [row0, row0 + num_rows), padded to row0 + padded_rows
    x_ptr, delta1, delta2, delta3, batch0, batch1, batch2, batch3, rows_ptr, rows_stride, row_unit,
    row0, num_rows, padded_rows,
    # the weight in row order (rows padded to BLOCK_M, zero columns in the row padding): column row0 + k
    # multiplies row row0 + k; every tile is whole, so its loads need no mask
    w_ptr, stride_wm,
    # epilogue (full-resolution launch): bias (M,), residual (B, M, H, W) any strides, fp32 buffer of the
    # low-resolution products Y_g and its int64 table (3, NUM_UP): offset of (B, M, h_g, w_g), h_g, w_g
    bias_ptr, stride_bias,
    res_ptr, stride_rb, stride_rm, stride_ry, stride_rx,
    up_ptr, ups_ptr,
    # output (B, M, height * width), pixels contiguous: the op's output, or Y_g (fp32) in a low-resolution launch
    out_ptr, stride_ob, stride_om,
    M, height, width, hw,  # output channels, this launch's pixel grid
    has_bias, has_residual, relu,  # runtime epilogue switches (0/1)
    PIXEL_CONTIG: tl.constexpr, DOT_PRECISION: tl.constexpr,
    NUM_UP: tl.constexpr,  # low-resolution groups added in the epilogue: 0 except in the full-resolution launch
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    TILE_W: tl.constexpr,  # 0: flat pixel tiles; else tiles of BLOCK_N / TILE_W rows of TILE_W columns
    UP_BLOCK: tl.constexpr,  # source columns per product of the upsampling epilogue
    ROUND_OUT: tl.constexpr,  # store the output rounded to TF32: a low-resolution launch's Y_g, an epilogue operand
):
    pid = tl.program_id(0)
    num_m = cdiv(M, BLOCK_M)
    if TILE_W == 0:
        num_n = cdiv(hw, BLOCK_N)
    else:
        num_n = cdiv(height, BLOCK_N // TILE_W) * cdiv(width, TILE_W)
    pid_m = pid % num_m  # output-channel tiles fastest: the tiles sharing an input tile run back to back
    pid_n = (pid // num_m) % num_n
    pid_b = pid // (num_m * num_n)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < M
    pix, py, px, mask_p, tile_y, tile_x = _pixel_tile(pid_n, height, width, hw, BLOCK_N, TILE_W)

    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    w_ptrs = w_ptr + offs_m[:, None].to(tl.int64) * stride_wm + row0 + tl.arange(0, BLOCK_K)[None, :]
    for k0 in range(0, padded_rows, BLOCK_K):
        offs_k = row0 + k0 + tl.arange(0, BLOCK_K)
        x = _load_rows(x_ptr, delta1, delta2, delta3, batch0, batch1, batch2, batch3, rows_ptr, rows_stride, row_unit,
                       offs_k, offs_k < row0 + num_rows, pid_b, pix, py, px, mask_p, PIXEL_CONTIG)
        acc = dot(tl.load(w_ptrs + k0), x, acc, DOT_PRECISION)

    if has_bias:
        acc += tl.load(bias_ptr + offs_m * stride_bias, mask=mask_m, other=0.0).to(tl.float32)[:, None]
    planes = (pid_b * M + offs_m).to(tl.int64)  # (b, m) plane of the Y_g blocks (B M < 2^31: checked)
    for g in range(NUM_UP):
        acc = _add_upsampled(acc, up_ptr, ups_ptr, g, NUM_UP, planes, mask_m, py, px, tile_y, tile_x, height, width,
                             DOT_PRECISION, BLOCK_N // max(TILE_W, 1), TILE_W, UP_BLOCK)
    mask = mask_m[:, None] & mask_p[None, :]
    if has_residual:
        res_rows = pid_b.to(tl.int64) * stride_rb + offs_m.to(tl.int64) * stride_rm
        res_cols = py.to(tl.int64) * stride_ry + px.to(tl.int64) * stride_rx
        acc += tl.load(res_ptr + res_rows[:, None] + res_cols[None, :], mask=mask, other=0.0).to(tl.float32)
    if relu:
        acc = tl.where(acc < 0.0, 0.0, acc)  # NaN stays NaN, as in torch.relu
    out_rows = pid_b.to(tl.int64) * stride_ob + offs_m.to(tl.int64) * stride_om
    if ROUND_OUT:
        acc = round_to_tf32(acc)
    tl.store(out_ptr + out_rows[:, None] + pix[None, :], acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _concat_conv1x1_bwd_dz_kernel(
    dy_ptr, stride_gb, stride_gm, stride_gy, stride_gx,  # upstream gradient (B, M, H, W), any strides
    out_ptr,  # forward output (B, M, H * W), contiguous (read only when relu)
    dz_ptr,  # dZ (B, M, H * W), contiguous
    M, width, hw,
    relu,  # 0: strided copy of dY; 1: dY where out > 0, else 0
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0)  # b * M + m
    offs_p = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs_p < hw
    b = row // M
    m = row % M
    dy_offs = (b.to(tl.int64) * stride_gb + m.to(tl.int64) * stride_gm
               + (offs_p // width).to(tl.int64) * stride_gy + (offs_p % width).to(tl.int64) * stride_gx)
    dz = tl.load(dy_ptr + dy_offs, mask=mask, other=0.0)
    flat = row.to(tl.int64) * hw + offs_p
    if relu:
        out = tl.load(out_ptr + flat, mask=mask, other=0.0)
        dz = tl.where(out > 0, dz, 0.0)
    tl.store(dz_ptr + flat, dz.to(dz_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _store_adjoint(ptrs, acc, first, mask):
    """Stores a source row of D_g, adding what an earlier chunk of output columns stored (not `first`)."""
    previous = tl.where(first, 0.0, tl.load(ptrs, mask=mask, other=0.0).to(tl.float32))
    tl.store(ptrs, (acc + previous).to(ptrs.dtype.element_ty), mask=mask)


@triton.jit
def _adjoint_band(offs_x, scale_x, w, offs_j, dtype):
    """(SPAN, BLOCK_J) bilinear weights of source columns offs_j in the output columns offs_x, in `dtype`."""
    lo, hi, lam = _source_index(offs_x, scale_x, w)
    return _tap_weights(lo[:, None], hi[:, None], lam[:, None], offs_j[None, :]).to(dtype)


@triton.jit
def _adjoint_row(t, y, scale_y, h, acc, acc_next, row, d_rows, w, first, mask):
    """Adds output row y's product t = dZ[:, y, window] U_x to source rows lo(y) (acc, weight 1 - a) and
    lo(y) + 1 (acc_next, weight a). lo(y) grows by at most one per output row (upsampling), so two accumulators
    suffice: source row `row` (acc) is stored once the rows that read it are done."""
    lo_y, hi_y, lam_y = _source_index(y, scale_y, h)
    if lo_y != row:
        _store_adjoint(d_rows + row * w, acc, first, mask)
        acc = acc_next
        acc_next = tl.full(acc.shape, 0.0, tl.float32)
        row = lo_y
    same = hi_y == lo_y  # the last source row takes both taps
    acc += tl.where(same, 1.0, 1.0 - lam_y) * t
    acc_next += tl.where(same, 0.0, lam_y) * t
    return acc, acc_next, row


@triton.jit
def _adjoint_group(groups_ptr, index, MAX_GROUPS: tl.constexpr, d_ptr, M, pid_b, pid_p, offs_c, mask_c, width,
                   BLOCK_J: tl.constexpr, ALIGN: tl.constexpr):
    """Group `index` of the launch: its h, w, the pointers to the first source row of this program's columns of its
    D_g block and their store mask, the columns, and the window of output columns that can read them: src in
    [j0 - 1, j0 + cols), widened by one column on each side so that rounding never drops one (every candidate's
    weight is computed exactly; columns of the window that read none get band 0), the start aligned down so that row
    loads can be vectorised."""
    offset = tl.load(groups_ptr + index)
    h = tl.load(groups_ptr + MAX_GROUPS + index).to(tl.int32)
    w = tl.load(groups_ptr + 2 * MAX_GROUPS + index).to(tl.int32)
    cols = tl.load(groups_ptr + 3 * MAX_GROUPS + index).to(tl.int32)
    j0 = pid_p * cols
    offs_j = j0 + tl.arange(0, BLOCK_J)
    mask = mask_c[:, None] & ((offs_j < j0 + cols) & (offs_j < w))[None, :]
    planes = (pid_b * M + offs_c).to(tl.int64) * (h * w)
    rows = d_ptr + offset + planes[:, None] + offs_j[None, :]
    scale_x = w / width
    x_lo = tl.maximum(((j0 - 0.5) / scale_x - 0.5).to(tl.int32) - 1, 0) // ALIGN * ALIGN
    x_hi = ((j0 + cols + 0.5) / scale_x - 0.5).to(tl.int32) + 2
    return h, w, rows, mask, offs_j, x_lo, x_hi


@triton.jit
def _concat_conv1x1_bwd_up_kernel(
    z_ptr, stride_zb, stride_zm,  # dZ (B, M, H * W), pixels contiguous
    d_ptr,  # D_g = U_g^T dZ: (B, M, h_g, w_g) blocks, bf16 for bf16 dZ, else fp32
    groups_ptr,  # int64 (4, MAX_GROUPS): per group of this launch its block's offset in d, h_g, w_g, columns/program
    M, height, width, col_programs,  # output channels and size, programs along the columns
    DOT_PRECISION: tl.constexpr,
    NUM_GROUPS: tl.constexpr, MAX_GROUPS: tl.constexpr,  # this launch's groups (a, b, c): 1 to MAX_GROUPS = 3
    BLOCK_C: tl.constexpr, BLOCK_J: tl.constexpr, SPAN: tl.constexpr, ALIGN: tl.constexpr,
):
    """D_g = U_g^T dZ of up to three groups from one pass over dZ: program p owns source columns [p cols_g,
    (p + 1) cols_g) of every group g (about the same output columns for all), reads the output-column window that
    covers them all once per row, multiplies it by each group's band and adds the products to each group's source
    rows (`_adjoint_row`)."""
    pid = tl.program_id(0)
    num_c = cdiv(M, BLOCK_C)
    pid_p = pid % col_programs  # column blocks fastest: they read the same output rows, back to back (L2)
    pid_c = (pid // col_programs) % num_c
    pid_b = pid // (col_programs * num_c)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < M
    z_rows = z_ptr + (pid_b.to(tl.int64) * stride_zb + offs_c.to(tl.int64) * stride_zm)[:, None]
    zeros = tl.full((BLOCK_C, BLOCK_J), 0.0, tl.float32)

    h_a, w_a, rows_a, mask_a, offs_ja, x_lo, x_hi = _adjoint_group(
        groups_ptr, 0, MAX_GROUPS, d_ptr, M, pid_b, pid_p, offs_c, mask_c, width, BLOCK_J, ALIGN)
    if NUM_GROUPS > 1:
        h_b, w_b, rows_b, mask_b, offs_jb, lo_b, hi_b = _adjoint_group(
            groups_ptr, 1, MAX_GROUPS, d_ptr, M, pid_b, pid_p, offs_c, mask_c, width, BLOCK_J, ALIGN)
        x_lo = tl.minimum(x_lo, lo_b)
        x_hi = tl.maximum(x_hi, hi_b)
    if NUM_GROUPS > 2:
        h_c, w_c, rows_c, mask_gc, offs_jc, lo_c, hi_c = _adjoint_group(
            groups_ptr, 2, MAX_GROUPS, d_ptr, M, pid_b, pid_p, offs_c, mask_c, width, BLOCK_J, ALIGN)
        x_lo = tl.minimum(x_lo, lo_c)
        x_hi = tl.maximum(x_hi, hi_c)
    x_hi = tl.minimum(x_hi, width)

    for xc in range(x_lo, x_hi, SPAN):  # one chunk unless a width factor is large (see UP_SPAN)
        offs_x = xc + tl.arange(0, SPAN)
        mask_z = mask_c[:, None] & (offs_x < width)[None, :]
        first = xc == x_lo
        band_a = _adjoint_band(offs_x, w_a / width, w_a, offs_ja, z_ptr.dtype.element_ty)
        acc_a, next_a, row_a = zeros, zeros, 0
        if NUM_GROUPS > 1:
            band_b = _adjoint_band(offs_x, w_b / width, w_b, offs_jb, z_ptr.dtype.element_ty)
            acc_b, next_b, row_b = zeros, zeros, 0
        if NUM_GROUPS > 2:
            band_c = _adjoint_band(offs_x, w_c / width, w_c, offs_jc, z_ptr.dtype.element_ty)
            acc_c, next_c, row_c = zeros, zeros, 0
        for y in range(0, height):  # the output rows, once
            z = tl.load(z_rows + (y * width + offs_x)[None, :], mask=mask_z, other=0.0)
            acc_a, next_a, row_a = _adjoint_row(dot(z, band_a, None, DOT_PRECISION), y, h_a / height, h_a, acc_a,
                                                next_a, row_a, rows_a, w_a, first, mask_a)
            if NUM_GROUPS > 1:
                acc_b, next_b, row_b = _adjoint_row(dot(z, band_b, None, DOT_PRECISION), y, h_b / height, h_b,
                                                    acc_b, next_b, row_b, rows_b, w_b, first, mask_b)
            if NUM_GROUPS > 2:
                acc_c, next_c, row_c = _adjoint_row(dot(z, band_c, None, DOT_PRECISION), y, h_c / height, h_c,
                                                    acc_c, next_c, row_c, rows_c, w_c, first, mask_gc)
        # the last output row reads the last source row: row = h - 1
        _store_adjoint(rows_a + row_a * w_a, acc_a, first, mask_a)
        if NUM_GROUPS > 1:
            _store_adjoint(rows_b + row_b * w_b, acc_b, first, mask_b)
        if NUM_GROUPS > 2:
            _store_adjoint(rows_c + row_c * w_c, acc_c, first, mask_gc)


@triton.jit(do_not_specialize=_DELTAS)
def _concat_conv1x1_bwd_dx_kernel(
    z_ptr, stride_zb, stride_zm,  # Z = D_g (B, M, hw), pixels contiguous: dZ or the adjoint (input dtype or fp32)
    w_ptr, stride_wm, stride_wk,  # the weight merged over repeated inputs, in row order (M, R)
    # the gradients of the group's tensors (as the forward's tensors), their row table and unit, the rows
    dx_ptr, delta1, delta2, delta3, batch0, batch1, batch2, batch3, dxrows_ptr, rows_stride, row_unit, row0, num_rows,
    M, hw,
    DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid = tl.program_id(0)
    num_m = cdiv(num_rows, BLOCK_M)
    num_n = cdiv(hw, BLOCK_N)
    pid_m = pid % num_m
    pid_n = (pid // num_m) % num_n
    pid_b = pid // (num_m * num_n)
    offs_r = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # rows of this launch
    offs_p = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_r = offs_r < num_rows
    mask_p = offs_p < hw

    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    w_ptrs = w_ptr + (row0 + offs_r)[:, None].to(tl.int64) * stride_wk
    z_ptrs = z_ptr + pid_b.to(tl.int64) * stride_zb + offs_p[None, :]
    for k0 in range(0, M, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < M
        wt = tl.load(w_ptrs + offs_k[None, :].to(tl.int64) * stride_wm, mask=mask_r[:, None] & mask_k[None, :],
                     other=0.0)
        z = tl.load(z_ptrs + offs_k[:, None].to(tl.int64) * stride_zm, mask=mask_k[:, None] & mask_p[None, :],
                    other=0.0)
        acc = dot(wt.to(z.dtype), z, acc, DOT_PRECISION)

    base = _row_offsets(dxrows_ptr, row_unit, delta1, delta2, delta3, batch0, batch1, batch2, batch3, row0 + offs_r,
                        mask_r, pid_b)
    tl.store(dx_ptr + base[:, None] + offs_p[None, :], acc.to(dx_ptr.dtype.element_ty),
             mask=mask_r[:, None] & mask_p[None, :])


@triton.jit(do_not_specialize=_DELTAS)
def _concat_conv1x1_bwd_dw_kernel(
    z_ptr, stride_zb, stride_zm,  # Z = D_g (B, M, hw), pixels contiguous: dZ or the adjoint (input dtype or fp32)
    # the group's tensors and rows (as in the forward)
    x_ptr, delta1, delta2, delta3, batch0, batch1, batch2, batch3, rows_ptr, rows_stride, row_unit, row0, num_rows,
    part_ptr, stride_ps, stride_pm, bias_col,  # fp32 partials (SPLIT, M, R + 16); column bias_col (R) = d bias
    M, batch, width, hw, blocks_per_split,  # pixel blocks (an image's BLOCK_K pixels) per split
    has_dbias,  # this launch also writes the d bias partials (the row sums of Z)
    PIXEL_CONTIG: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid = tl.program_id(0)
    num_m = cdiv(M, BLOCK_M)
    num_n = tl.maximum(cdiv(num_rows, BLOCK_N), 1)
    pid_m = pid % num_m
    pid_n = (pid // num_m) % num_n
    pid_s = pid // (num_m * num_n)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_r = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < M
    mask_r = offs_r < num_rows
    blocks_per_image = cdiv(hw, BLOCK_K)
    t_start = pid_s * blocks_per_split
    t_end = tl.minimum(t_start + blocks_per_split, batch * blocks_per_image)

    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    bias_acc = tl.full((BLOCK_M,), 0.0, tl.float32)
    z_rows = z_ptr + offs_m[:, None].to(tl.int64) * stride_zm
    for t in range(t_start, t_end):  # fixed order within the split
        pid_b = t // blocks_per_image
        offs_p = (t % blocks_per_image) * BLOCK_K + tl.arange(0, BLOCK_K)
        mask_p = offs_p < hw
        z = tl.load(z_rows + pid_b.to(tl.int64) * stride_zb + offs_p[None, :], mask=mask_m[:, None] & mask_p[None, :],
                    other=0.0)
        x = _load_rows(x_ptr, delta1, delta2, delta3, batch0, batch1, batch2, batch3, rows_ptr, rows_stride, row_unit,
                       row0 + offs_r, mask_r, pid_b, offs_p, offs_p // width, offs_p % width, mask_p, PIXEL_CONTIG)
        acc = dot(z, tl.trans(x).to(z.dtype), acc, DOT_PRECISION)
        if has_dbias:  # a uniform branch: the launches without d bias skip the row sums
            bias_acc += sum_(z.to(tl.float32), 1)

    part_rows = part_ptr + pid_s.to(tl.int64) * stride_ps + offs_m.to(tl.int64) * stride_pm
    tl.store(part_rows[:, None] + (row0 + offs_r)[None, :], acc, mask=mask_m[:, None] & mask_r[None, :])
    if has_dbias:
        if pid_n == 0:  # one row tile writes the row sums
            tl.store(part_rows + bias_col, bias_acc, mask=mask_m)


# d bias is an (M, 1) view with stride 1 along M: a stride_om specialised to 1 made triton 3.9 spill (8-52 bytes).
@triton.jit(do_not_specialize=["stride_om"])
def _concat_conv1x1_bwd_reduce_kernel(
    part_ptr, splits, stride_ps, stride_pm,  # fp32 partials (splits, M, R + 16)
    map_ptr,  # int64 (N,): the partials column of output column n
    out_ptr, stride_om, stride_on,  # d W (M, N) or d bias (M, 1), in the parameter's dtype
    M, N,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid = tl.program_id(0)
    num_m = cdiv(M, BLOCK_M)
    offs_m = (pid % num_m) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = (pid // num_m) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (offs_m < M)[:, None] & (offs_n < N)[None, :]
    cols = tl.load(map_ptr + offs_n, mask=offs_n < N, other=0)
    ptrs = part_ptr + offs_m[:, None].to(tl.int64) * stride_pm + cols[None, :]
    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    for _ in range(splits):  # fixed order: bitwise reproducible
        acc += tl.load(ptrs, mask=mask, other=0.0)
        ptrs += stride_ps
    out = out_ptr + offs_m[:, None].to(tl.int64) * stride_om + offs_n[None, :].to(tl.int64) * stride_on
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------------------------------------
# Launchers
# ---------------------------------------------------------------------------------------------------------------------


def _check_triton_inputs(inputs, weight, bias, residual, out_size) -> None:
    """What the kernels cannot take, after the shared validator: float64, empty maps to upsample from, pixel grids
    or (batch, output channel) plane counts that overflow int32 (every other offset is computed in int64)."""
    check_device("inputs[0]", inputs[0])  # the shared validator checked that every tensor shares its device
    for i, x in enumerate(inputs):
        check_kernel_dtype(f"inputs[{i}]", x)
        if x.shape[0] and x.shape[1] and (x.shape[2] == 0 or x.shape[3] == 0):
            raise ValueError(f"inputs[{i}] of shape {tuple(x.shape)} has an empty map: nothing to upsample from")
        if x.shape[2] * x.shape[3] > INT32_MAX:
            raise ValueError(f"inputs[{i}] of shape {tuple(x.shape)}: H_i * W_i must fit in int32")
    check_kernel_dtype("weight", weight)
    if bias is not None:
        check_kernel_dtype("bias", bias)
    if residual is not None:
        check_kernel_dtype("residual", residual)
    if out_size[0] * out_size[1] > INT32_MAX:
        raise ValueError(f"out_size {out_size}: H * W must fit in int32")
    if inputs[0].shape[0] * weight.shape[0] > INT32_MAX:
        raise ValueError(f"batch {inputs[0].shape[0]} x Cout {weight.shape[0]} output planes must fit in int32")


def _dot_precision(dtype: torch.dtype) -> str:
    """fp32 inputs multiply on TF32 tensor cores when cuDNN would (the reference is a cuDNN convolution); fp32 operands
    formed from fp16/bf16 data (Y_g in the upsampling epilogue, the fp32 D_g products) always do."""
    if dtype == torch.float32 and not torch.backends.cudnn.allow_tf32:
        return "ieee"
    return "tf32"


def _low_resolution_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the low-resolution products Y_g (forward) and adjoints D_g (backward) for data of `dtype`: bf16
    for bf16 (fp32's range; the products that read them run on bf16 tensor cores and half the bytes move), fp32
    otherwise (a sum of hundreds of fp16 products, or of up to s^2 fp16 gradients under loss scaling, may leave fp16's
    range)."""
    return torch.bfloat16 if dtype == torch.bfloat16 else torch.float32


def _gather_columns(weight: torch.Tensor, cols: torch.Tensor, max_repeats: int, rows_out: int,
                    columns: int) -> torch.Tensor:
    """(rows_out, columns) in the weight's dtype: column r = the sum (fp32, rounded once) of the weight columns
    cols[:, r] (zero where none), rows beyond the weight's zero."""
    weight2d = weight.flatten(1)  # a view: the 1x1 dims of a 4-D weight have size 1
    out = torch.empty((rows_out, columns), dtype=weight.dtype, device=weight.device)
    if out.numel():
        grid = (ceil_div(rows_out, SMALL_BLOCK_M) * ceil_div(columns, SMALL_BLOCK_N),)
        _concat_conv1x1_merge_kernel[grid](
            weight2d, weight2d.stride(0), weight2d.stride(1), cols, max_repeats, out, weight2d.shape[0], rows_out,
            columns, BLOCK_M=SMALL_BLOCK_M, BLOCK_N=SMALL_BLOCK_N, num_warps=EW_WARPS, **COMPILE_OPTIONS,
        )
    return out


def concat_conv1x1_fwd(
    plan: Plan,
    uniques: Sequence[torch.Tensor],
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    residual: torch.Tensor | None,
    relu: bool,
) -> torch.Tensor:
    """out (B, M, H, W), contiguous: one launch per low-resolution group (Y_g, fp32), then the full-resolution launch
    with the epilogue. Nothing launches for an empty output."""
    device, dtype = weight.device, weight.dtype
    m, batch, layout = plan.out_channels, plan.batch, plan.segments
    height, width = plan.out_size
    out = torch.empty((batch, m, height, width), dtype=dtype, device=device)
    if out.numel() == 0:
        return out
    tables = plan.tables
    w_rows = _gather_columns(weight, tables["fwd_cols"], 1, plan.weight_rows, layout.rows)
    up = torch.empty(max(layout.up_elements, 1), dtype=_low_resolution_dtype(dtype), device=device)
    precision = plan.signature.precision
    round_up = up.dtype == torch.float32 and precision == "tf32"  # Y_g is a TF32 operand of the epilogue

    def launch(group, out_view, stride_ob, stride_om, num_up):
        epilogue = out_view is out
        base, slots, unit, rows = launch_rows(plan, "fwd_rows", group, uniques) if group.num_rows else (
            out, NO_SLOTS, 1, tables["rowless"])
        tiles = forward_tiles(m, precision, num_up > 0, vectorised_launch(group, base, unit, num_up > 0))
        grid = (ceil_div(m, tiles.block_m) * tiles.pixel_tiles(group.height, group.width) * batch,)
        _concat_conv1x1_fwd_kernel[grid](
            base, *slots, rows, layout.rows, unit, group.row0, group.num_rows, group.padded_rows,
            w_rows, w_rows.stride(0),
            bias if bias is not None else out, bias.stride(0) if bias is not None else 0,
            residual if residual is not None else out, *(residual.stride() if residual is not None else (0,) * 4),
            up, tables["ups"],
            out_view, stride_ob, stride_om,
            m, group.height, group.width, group.pixels,
            int(epilogue and bias is not None), int(epilogue and residual is not None), int(epilogue and relu),
            PIXEL_CONTIG=group.pixel_contig, DOT_PRECISION=precision, NUM_UP=num_up, **tiles.constexprs(),
            UP_BLOCK=UP_BLOCK, ROUND_OUT=not epilogue and round_up, num_warps=tiles.warps,
            num_stages=tiles.stages, **COMPILE_OPTIONS,
        )

    for group in layout.low_groups:  # Y_g = W_g X_g at each low resolution (fp32), before the epilogue
        y = up[group.up_offset:group.up_offset + batch * m * group.pixels]
        launch(group, y, m * group.pixels, group.pixels, 0)
    launch(layout.full_group or plan.rowless(), out, out.stride(0), out.stride(1), len(layout.low_groups))
    return out


def _grad_dz(grad_out: torch.Tensor, out: torch.Tensor | None, relu: bool) -> torch.Tensor:
    """dZ (B, M, H, W) with pixels contiguous: dY through the ReLU mask (out > 0), or dY itself when it already has
    that layout (else a strided Triton copy of it)."""
    batch, m, height, width = grad_out.shape
    if not relu and (width <= 1 or grad_out.stride(3) == 1) and (height <= 1 or grad_out.stride(2) == width):
        return grad_out
    dz = torch.empty((batch, m, height, width), dtype=grad_out.dtype, device=grad_out.device)
    grid = (batch * m, ceil_div(height * width, EW_BLOCK))
    _concat_conv1x1_bwd_dz_kernel[grid](
        grad_out, *grad_out.stride(), out if relu else dz, dz, m, width, height * width, int(relu),
        BLOCK=EW_BLOCK, num_warps=EW_WARPS, **COMPILE_OPTIONS,
    )
    return dz


def _adjoint_options(dtype: torch.dtype, precision: str, vectorised: bool) -> dict:
    """The adjoint's launch options for dZ of `dtype`. Where its rows vectorise, the registers are capped for two CTAs
    per SM (the kernel is bound by instruction issue and needs the warps); elsewhere the compiler may need more, and
    gets them, as do fp32 TF32 products, whose operands are rounded first (kernels/_triton.py's `dot`): capped, they
    would spill at three groups."""
    rounded_operands = dtype == torch.float32 and precision == "tf32"
    return dict(maxnreg=UP_MAX_REGISTERS) if vectorised and not rounded_operands else {}


def _adjoint(plan: Plan, dz: torch.Tensor, precision: str) -> torch.Tensor:
    """D_g = U_g^T dZ of every low-resolution group, in one buffer of (B, M, h_g, w_g) blocks
    (`_low_resolution_dtype`)."""
    batch, m, height, width = dz.shape
    d = torch.empty(max(plan.uniques.up_elements, 1), dtype=_low_resolution_dtype(dz.dtype), device=dz.device)
    table = plan.tables["adjoint"]
    vectorised = (dz.data_ptr() % 16 == 0 and dz.stride(0) % ALIGN_ELEMENTS == 0 and dz.stride(1) % ALIGN_ELEMENTS == 0
                  and width % ALIGN_ELEMENTS == 0)
    options = _adjoint_options(dz.dtype, precision, vectorised)
    for index, (num_groups, programs) in enumerate(plan.adjoint_launches):
        _concat_conv1x1_bwd_up_kernel[(programs * ceil_div(m, UP_BLOCK_C[precision]) * batch,)](
            dz, dz.stride(0), dz.stride(1), d, table[index * ADJOINT_FIELDS * MAX_ADJOINT_GROUPS:],
            m, height, width, programs,
            DOT_PRECISION=precision, NUM_GROUPS=num_groups, MAX_GROUPS=MAX_ADJOINT_GROUPS,
            BLOCK_C=UP_BLOCK_C[precision], BLOCK_J=ADJOINT_BLOCK_J, SPAN=UP_SPAN, ALIGN=UP_ALIGN,
            num_warps=UP_WARPS, num_stages=UP_STAGES, **options, **COMPILE_OPTIONS,
        )
    return d


def _group_z(plan: Plan, group: Group, dz: torch.Tensor, d: torch.Tensor | None) -> tuple:
    """Z of a group (dZ, or its block of D) with its batch and channel strides."""
    if group.full:
        return dz, dz.stride(0), dz.stride(1)
    view = d[group.up_offset:group.up_offset + plan.batch * plan.out_channels * group.pixels]
    return view, plan.out_channels * group.pixels, group.pixels


def _grad_inputs(plan: Plan, grads, w_merged, dz, d, precision) -> None:
    """d x of every unique input into `grads` = (its merged weight columns)^T Z_g: one launch per group."""
    for group in plan.uniques.groups:
        z, stride_zb, stride_zm = _group_z(plan, group, dz, d)
        base, slots, unit, rows = launch_rows(plan, "dx_rows", group, grads, gradients=True)
        tiles = backward_tiles("dx", base.element_size(), precision, vectorised_launch(group, base, unit))
        grid = (ceil_div(group.num_rows, tiles.block_m) * ceil_div(group.pixels, tiles.block_n) * plan.batch,)
        _concat_conv1x1_bwd_dx_kernel[grid](
            z, stride_zb, stride_zm, w_merged, w_merged.stride(0), w_merged.stride(1),
            base, *slots, rows, plan.uniques.rows, unit, group.row0, group.num_rows, plan.out_channels, group.pixels,
            DOT_PRECISION=precision, **tiles.gemm_constexprs(), num_warps=tiles.warps, num_stages=tiles.stages,
            **COMPILE_OPTIONS,
        )


def _dw_tiles(m: int, group: Group, tiles: Tiles) -> int:
    """Output-channel x row tiles of a d W launch (a rowless launch still has one column of tiles, for d bias)."""
    return ceil_div(m, tiles.block_m) * max(ceil_div(group.num_rows, tiles.block_n), 1)


def _splits(plan: Plan, launches: Sequence[tuple[Group, Tiles]], element_size: int, device: torch.device) -> int:
    """Pixel splits of the d W reduction, the same for every group's launch (one partials buffer): at most
    MAX_SPLITS, the number that fills their waves best at DW_CTAS_PER_SM (`best_split`), counting that each split
    adds an fp32 partial of d W, M x (R + 16), which the reduce reads: per SM, in blocks of the launches' loads."""
    sms = sm_count(device)
    shapes = tuple((plan.batch * ceil_div(group.pixels, tiles.block_k), _dw_tiles(plan.out_channels, group, tiles),
                    sms * DW_CTAS_PER_SM) for group, tiles in launches)
    block_bytes = max((tiles.block_m + tiles.block_n) * tiles.block_k for _, tiles in launches) * element_size
    partial_bytes = plan.out_channels * (plan.uniques.rows + ALIGN_ELEMENTS) * PARTIAL_BYTES
    return best_split(shapes, min(MAX_SPLITS, max(blocks for blocks, _, _ in shapes)),
                      partial_bytes / (sms * block_bytes))


def _reduce(partials: torch.Tensor, column_map: torch.Tensor, out: torch.Tensor, stride_om: int, stride_on: int,
            n: int) -> None:
    """out[m, n] = sum over splits (in order) of partials[:, m, column_map[n]], in out's dtype."""
    splits, m = partials.shape[:2]
    grid = (ceil_div(m, SMALL_BLOCK_M) * ceil_div(n, SMALL_BLOCK_N),)
    _concat_conv1x1_bwd_reduce_kernel[grid](
        partials, splits, partials.stride(0), partials.stride(1), column_map, out, stride_om, stride_on, m, n,
        BLOCK_M=SMALL_BLOCK_M, BLOCK_N=SMALL_BLOCK_N, num_warps=EW_WARPS, **COMPILE_OPTIONS,
    )


def _grad_params(plan: Plan, uniques, weight, bias, dz, d, precision) -> tuple:
    """d W (the weight's shape) and d bias through fp32 per-split partials (SPLIT, M, R + ALIGN_ELEMENTS; column R
    holds d bias) and a fixed-order reduce; every segment of a unique input gets its row's d W."""
    m, device, layout = plan.out_channels, dz.device, plan.uniques
    groups = layout.groups or (plan.rowless(),)  # without input channels a rowless launch still sums dZ for d bias
    rows_of = [launch_rows(plan, "bwd_rows", group, uniques) if group.num_rows else (
        dz, NO_SLOTS, 1, plan.tables["rowless"]) for group in groups]
    tiles_of = [backward_tiles("dw", max(base.element_size(), (dz if group.full else d).element_size()), precision,
                               vectorised_launch(group, base, unit))
                for group, (base, _, unit, _) in zip(groups, rows_of)]
    splits = _splits(plan, list(zip(groups, tiles_of)), dz.element_size(), device)
    partials = torch.empty((splits, m, layout.rows + ALIGN_ELEMENTS), dtype=torch.float32, device=device)
    for index, (group, (base, slots, unit, rows), tiles) in enumerate(zip(groups, rows_of, tiles_of)):
        z, stride_zb, stride_zm = _group_z(plan, group, dz, d)
        blocks = plan.batch * ceil_div(group.pixels, tiles.block_k)
        _concat_conv1x1_bwd_dw_kernel[(_dw_tiles(m, group, tiles) * splits,)](
            z, stride_zb, stride_zm,
            base, *slots, rows, layout.rows, unit, group.row0, group.num_rows,
            partials, partials.stride(0), partials.stride(1), layout.rows,
            m, plan.batch, group.width, group.pixels, ceil_div(blocks, splits),
            int(index == 0 and bias is not None),
            PIXEL_CONTIG=group.pixel_contig, DOT_PRECISION=precision, **tiles.gemm_constexprs(),
            num_warps=tiles.warps, num_stages=tiles.stages, **COMPILE_OPTIONS,
        )
    column_map = plan.tables["column_map"]
    grad_weight = torch.empty(weight.shape, dtype=weight.dtype, device=device)
    grad2d = grad_weight.flatten(1)
    if grad2d.numel():
        _reduce(partials, column_map[:-1], grad2d, grad2d.stride(0), grad2d.stride(1), grad2d.shape[1])
    grad_bias = None
    if bias is not None:
        grad_bias = torch.empty(bias.shape, dtype=bias.dtype, device=device)
        _reduce(partials, column_map[-1:], grad_bias, grad_bias.stride(0), 0, 1)
    return grad_weight, grad_bias


def concat_conv1x1_bwd(
    plan: Plan,
    uniques: Sequence[torch.Tensor],
    grad_out: torch.Tensor,
    out: torch.Tensor | None,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    relu: bool,
    needs: tuple,
) -> tuple:
    """(d unique inputs (list), d weight, d bias, d residual), None where `needs` (per unique input, weight, bias,
    residual) asks for no gradient."""
    need_x, need_w, need_b, need_r = needs
    if grad_out.numel() == 0:  # empty output: every gradient is zero, nothing launches
        def zeros(t, need):
            return torch.zeros_like(t, memory_format=torch.contiguous_format) if need else None

        grads_x = [zeros(u, need) for u, need in zip(uniques, need_x)]
        return grads_x, zeros(weight, need_w), zeros(bias, need_b), grad_out if need_r else None
    device = grad_out.device
    dz = _grad_dz(grad_out, out, relu)
    precision = plan.signature.precision
    need_params = need_w or need_b
    grads = [torch.empty(u.shape, dtype=u.dtype, device=device) for u in uniques] if any(need_x) else None
    d = None
    if plan.uniques.low_groups and (grads is not None or need_params):
        d = _adjoint(plan, dz, precision)
    grads_x = [None] * len(uniques)
    if grads is not None:
        w_merged = _gather_columns(weight, plan.tables["bwd_cols"], plan.max_repeats, plan.out_channels,
                                   plan.uniques.rows)
        _grad_inputs(plan, grads, w_merged, dz, d, precision)
        grads_x = [g if need else None for g, need in zip(grads, need_x)]
    grad_w = grad_b = None
    if need_params:
        grad_w, grad_b = _grad_params(plan, uniques, weight, bias, dz, d, precision)
    return grads_x, grad_w if need_w else None, grad_b if need_b else None, dz if need_r else None


# ---------------------------------------------------------------------------------------------------------------------
# Custom operators (kernels/_library.py), their autograd, and the public op
# ---------------------------------------------------------------------------------------------------------------------


def _plan(uniques, occurrence, weight, out_size) -> Plan:
    """The cached plan of this call's signature (kernels/concat_conv_plan.py)."""
    return make_plan(Signature.of(uniques, occurrence, weight.shape[0], out_size, _dot_precision(weight.dtype)))


def _unique_inputs(inputs: Sequence[torch.Tensor]) -> tuple[list, list]:
    """(unique tensors, index of each input's unique tensor): a tensor object repeated in `inputs` is one unique
    input."""
    uniques, occurrence = [], []
    for x in inputs:  # by identity, without id(): torch.compile (torch 2.11) cannot trace id() of a traced tensor
        index = next((i for i, u in enumerate(uniques) if u is x), None)
        if index is None:
            index = len(uniques)
            uniques.append(x)
        occurrence.append(index)
    return uniques, occurrence


def _call_key(inputs, weight, bias, residual, activation, out_size) -> tuple:
    """(the call's memo key, its unique inputs) (kernels/_call_memo.py). The key: which inputs are one tensor, the
    tensors' metadata, the other arguments and the product precision; None for a call only the checks may see
    (inputs not a list or tuple, a weight that is not a tensor, an unhashable argument) and under torch.compile."""
    if torch.compiler.is_compiling() or not isinstance(inputs, (list, tuple)) or not isinstance(weight, torch.Tensor):
        return None, None
    uniques, occurrence = _unique_inputs(inputs)
    key = memo_key((*uniques, weight, bias, residual), occurrence, activation, out_size,
                   _dot_precision(weight.dtype))
    return key, uniques


def _concatenate_crowded_resolutions(inputs: Sequence[torch.Tensor], weight: torch.Tensor, crowded: list) -> tuple:
    """(inputs, weight) with the segments of the `crowded` resolutions (more distinct tensors than one launch takes,
    MAX_GROUP_TENSORS) concatenated into one tensor each, first, and the weight's columns permuted to match: the same
    op, through autograd's cat and index_select (a copy, for calls unlike the model's)."""
    starts = segment_columns([x.shape[1] for x in inputs])
    columns = [range(start, start + x.shape[1]) for start, x in zip(starts, inputs)]
    merged, order = [], []
    for hw in crowded:
        members = [i for i, x in enumerate(inputs) if tuple(x.shape[2:]) == hw]
        merged.append(torch.cat([inputs[i] for i in members], dim=1))
        order += [c for i in members for c in columns[i]]
    rest_members = [i for i, x in enumerate(inputs) if tuple(x.shape[2:]) not in crowded]
    order += [c for i in rest_members for c in columns[i]]
    index = torch.tensor(order, device=weight.device)
    return merged + [inputs[i] for i in rest_members], weight.flatten(1).index_select(1, index)


@custom_op("concat_conv1x1_fwd")
def _forward_op(
    uniques: list[torch.Tensor], occurrence: list[int], weight: torch.Tensor, bias: torch.Tensor | None,
    residual: torch.Tensor | None, relu: bool, out_size: list[int],
) -> torch.Tensor:
    """The op on the unique inputs; segment i reads uniques[occurrence[i]]."""
    return concat_conv1x1_fwd(_plan(uniques, occurrence, weight, out_size), uniques, weight, bias, residual, relu)


@_forward_op.register_fake
def _(uniques, occurrence, weight, bias, residual, relu, out_size):
    return weight.new_empty(uniques[0].shape[0], weight.shape[0], *out_size)


@custom_op("concat_conv1x1_bwd")
def _backward_op(
    grad_out: torch.Tensor, uniques: list[torch.Tensor], occurrence: list[int], out: torch.Tensor | None,
    weight: torch.Tensor, bias: torch.Tensor | None, relu: bool, needs: list[bool],
) -> list[torch.Tensor]:
    """The gradients that `needs` asks for (per unique input, then weight, bias, residual), in that order: an
    operator cannot return None."""
    plan = _plan(uniques, occurrence, weight, grad_out.shape[2:])
    grads_x, grad_w, grad_b, grad_r = concat_conv1x1_bwd(plan, uniques, grad_out, out, weight, bias, relu,
                                                         (needs[:-3], *needs[-3:]))
    if grad_r is grad_out:  # d residual = dY when there is no ReLU; an operator's outputs are new tensors
        grad_r = grad_r.clone(memory_format=torch.contiguous_format)
    return [g for g in (*grads_x, grad_w, grad_b, grad_r) if g is not None]


@_backward_op.register_fake
def _(grad_out, uniques, occurrence, out, weight, bias, relu, needs):
    like = [*uniques, weight, bias, grad_out]
    return [torch.empty_like(t, memory_format=torch.contiguous_format) for t, need in zip(like, needs) if need]


def _setup_context(ctx, inputs, output):
    """Saves every unique input once, the weight, the bias and, with ReLU, the output (its sign is the mask)."""
    uniques, occurrence, weight, bias, residual, relu, out_size = inputs
    ctx.save_for_backward(weight, bias, output if relu else None, *uniques)
    ctx.occurrence, ctx.relu = occurrence, relu


def _backward(ctx, grad_out):
    weight, bias, out, *uniques = ctx.saved_tensors
    need_x, _, need_w, need_b, need_r, _, _ = ctx.needs_input_grad
    grads = iter(_backward_op(grad_out, uniques, ctx.occurrence, out, weight, bias, ctx.relu,
                              [*need_x, need_w, need_b, need_r]))
    grads_x = [next(grads) if need else None for need in need_x]
    grad_w, grad_b, grad_r = (next(grads) if need else None for need in (need_w, need_b, need_r))
    return grads_x, None, grad_w, grad_b, grad_r, None, None


_forward_op.register_autograd(_backward, setup_context=_setup_context)


class _Eager(torch.autograd.Function):
    """The op outside torch.compile: the launchers and the autograd formula of the custom operators above, without
    the operators' dispatch (about 140 us of host time per call at the aggregation's 13 inputs, more than the
    launchers' own). torch.compile traces the operators instead (`concat_conv1x1`)."""

    @staticmethod
    def forward(ctx, plan, relu, weight, bias, residual, *uniques):
        out = concat_conv1x1_fwd(plan, uniques, weight, bias, residual, relu)
        ctx.save_for_backward(weight, bias, out if relu else None, *uniques)
        ctx.plan, ctx.relu = plan, relu
        return out

    @staticmethod
    def backward(ctx, grad_out):
        weight, bias, out, *uniques = ctx.saved_tensors
        _, _, need_w, need_b, need_r, *need_x = ctx.needs_input_grad
        grads_x, grad_w, grad_b, grad_r = concat_conv1x1_bwd(ctx.plan, uniques, grad_out, out, weight, bias, ctx.relu,
                                                             (need_x, need_w, need_b, need_r))
        return None, None, grad_w, grad_b, grad_r, *grads_x


# Per call key (kernels/_call_memo.py): the plan of a validated call. Calls that concatenate crowded resolutions
# first are not kept (their plan is that of the concatenation, made per call).
_CALLS = CallMemo()


@autocast_aware
def concat_conv1x1(
    inputs: Sequence[torch.Tensor],
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    residual: torch.Tensor | None = None,
    activation: str | None = None,
    out_size: Sequence[int] | None = None,
) -> torch.Tensor:
    """inputs: NCHW tensors (B, C_i, H_i, W_i), weight: (Cout, sum C_i[, 1, 1]) -> (B, Cout, H, W).

    Semantics of kernels/reference/concat_conv.py. The backward treats a tensor object repeated in `inputs` as one
    input (its d x comes from its merged weight columns); under autocast every occurrence is cast separately, so
    repeats are only merged when the inputs already have the autocast dtype."""
    relu = activation == "relu"
    key, uniques = _call_key(inputs, weight, bias, residual, activation, out_size)
    plan = _CALLS.get(key)
    if plan is not None:  # a call like one validated before
        return _Eager.apply(plan, relu, weight, bias, residual, *uniques)
    out_size = check_concat_conv1x1(inputs, weight, bias, residual, activation, out_size)
    _check_triton_inputs(inputs, weight, bias, residual, out_size)
    uniques, occurrence = _unique_inputs(inputs)
    crowded = overflowing_resolutions(uniques)
    if crowded:
        inputs, weight = _concatenate_crowded_resolutions(inputs, weight, crowded)
        uniques, occurrence = _unique_inputs(inputs)
    if torch.compiler.is_compiling():
        return _forward_op(uniques, occurrence, weight, bias, residual, relu, list(out_size))
    plan = _plan(uniques, occurrence, weight, out_size)
    if not crowded:
        _CALLS.put(key, plan)
    return _Eager.apply(plan, relu, weight, bias, residual, *uniques)


# ---------------------------------------------------------------------------------------------------------------------
# Ahead-of-time configurations
# ---------------------------------------------------------------------------------------------------------------------


def aot_configs() -> list:
    """Every configuration the launchers can pick (listed in kernels/concat_conv_aot.py)."""
    from .concat_conv_aot import aot_configs as configs  # imports this module: not at the top

    return configs()
