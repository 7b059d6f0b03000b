"""Triton `kernels.window_attention`: Swin (shifted-)window attention with zero-copy padding, cyclic shift, window
partition and merge, the relative-position bias and the 9-region shift mask, forward and backward.

Semantics (kernels/reference/window_attention.py, the released SCA-MTL code): the H x W map is padded bottom/right
to Hp x Wp (multiples of the window w) with tokens whose q, k, v are `qkv_pad`, rolled by (-s, -s), cut into w x w
windows of N = w^2 tokens; in every window and head

    S = scale * Q K^T + bias + M,    P = softmax_rows(S),    O = P V,

with M = -100 between tokens of different regions of the rolled padded map (rows [0, Hp-w), [Hp-w, Hp-s),
[Hp-s, Hp) times the same column bands; M = 0 when s = 0); the windows are merged, rolled back and cropped.

Index arithmetic instead of data movement. The w^2 tokens of a window sit in an 8 x 8 grid of slots (slot
n = 8 r + c holds window row r < w, column c < w: shifts and masks). Window size w, shift s, heads and head dim are
compile-time constants, so a slot's place comes from multiplies and one conditional subtraction, not from a runtime
division: slot (r, c) of window (b, wy, wx) is at (ry, rx) = (wy w + r, wx w + c) of the rolled padded map, i.e. at
(y, x) = (ry + s - Hp [ry + s >= Hp], rx + s - Wp [rx + s >= Wp]) of the padded map. The kernels read q, k, v of
that token from qkv (B, H, W, 3C; last dim ordered (3, heads, head_dim)) when y < H and x < W, and from `qkv_pad`
otherwise (a per-row choice of pointer, one load), and write O there (never for padded tokens, which are cropped).
The bias: a small launch (`_slot_bias_kernel`) lays log2(e) bias out on the slot grid once per call, (heads, 64, 64)
fp32 with -inf in the columns of slots without a token, and the backward reuses the forward's table (saved). The
shift mask: only windows of the last window row (column) are crossed by the row (column) band boundaries, at
r = w - s (c = w - s), so two slots are in different regions iff a boundary crossing their window separates them;
with code = 2 (r >= w - s) + (c >= w - s) per slot and crossing = 2 [last row] + [last column] per window,
M_ij = -100 [(code_i ^ code_j) & crossing != 0], applied under a uniform branch that the uncrossed windows skip. No
padded, rolled or partitioned copy and no dense mask exists in either pass.

VJP (per window and head; dO = 0 on padded tokens since they are cropped):

    dV = P^T dO,    dP = dO V^T,    delta_i = sum_j P_ij dP_ij  (= dO_i . O_i),    dS = P * (dP - delta),
    dQ = scale dS K,    dK = scale dS^T Q,    d bias = sum over batch and windows of dS,
    d qkv_pad = sum over padded token slots of (dQ, dK, dV)   (dQ of a padded slot is 0: its dO is 0),

and every token's dQ, dK, dV is written exactly once (the windows partition the padded map): an in-map token's to
dqkv (B, H, W, 3C), a padded token's to an fp32 (B, Hp Wp - H W, 3C) buffer of the padded tokens (bottom band, then
right band, row-major; rows per image rounded up to JIT_DIVISIBILITY), whose fixed-order sum is d qkv_pad: no
reduction in the kernel. delta comes from P and dP in registers, so the backward needs neither O nor a log-sum-exp:
it saves qkv, rel_bias, qkv_pad and the table and recomputes P. (A saved log-sum-exp, as FlashAttention keeps, would
spare the backward its row max and sum, 8% of its loop's SASS at head dim 3, but costs the forward more: tried,
storing a row statistic from the scores' layout took its loop from 356 to 486-607 SASS instructions per head, triton
3.8.)

Forward (grid (windows per row, window rows, B x head groups)): a program per window and group of heads (all
heads when the head is one chunk and the windows alone give MIN_PROGRAMS_PER_SM programs per SM, else one), so a
window's token rows are built once for its heads; each head's 64 x 64 scores live in registers, P stays
unnormalised (O is scaled by 1 / rowsum instead), and every head-dim chunk (BLOCK_D up to 32) is an unrolled step
whose loads are all issued up front. Backward (grid (programs per head, heads), persistent, about PROGRAMS_PER_SM
programs per SM): a program owns one head and a contiguous range of windows (batch-major, row-major: the first
window's place from two scalar divisions, the next ones' by a step with carries), so the bias gradient is
accumulated across its windows in registers; per window the head dim is walked in chunks of BLOCK_D = 16 three
times (Q K^T; dP with dV; dQ with dK), each chunk loaded where it is used, the loop bound a run-time value so that a
one-chunk head is not unrolled into straight-line code (which hoists every load to the window's start and spilled).
Masked loads pad a chunk to what `tl.dot` needs, so head dims 3 to 216 and beyond work; a compile-time ROW_ALIGN
(the row strides' common divisor) lets head slices at even channel offsets move as vectors. The fp32 softmax uses
exp2 with scale * log2(e) folded into the logits. Warps: see FWD_NUM_WARPS. Deterministic reductions without
atomics: every program writes its fp32 partial of the bias gradient (programs, heads, N, N), and fixed-order torch
sums finish it and d qkv_pad: two runs are bitwise identical.

Precision of every product: the two forward and five backward products are `tl.dot` with fp32 accumulation. fp16/bf16
inputs: operands in the input dtype (q, k, v, dO as loaded; P and dS rounded to it for the P V, P^T dO, dS K and dS^T Q
products; the forward's P unnormalised, max 1), exact products. fp32 inputs: TF32 tensor cores, the operands rounded to
nearest 10-bit mantissas (kernels/_triton.py's `dot`; KERNEL_TOL's float32 row is set for it). A float64 simulation of
these roundings on 2000 windows with head dims 3 to 216 (tests/kernels/simulate_tf32.py) gives relative RMSE 3.4e-4 to
5.9e-4 on every output and gradient and at most 0.80x of KERNEL_TOL's elementwise bound; with the tensor core's own
truncation of the operands (Triton's plain TF32 dot) 9.9e-4 to 1.8e-3 and up to 1.54x: it would fail. 3xTF32 would be
about exact but needs registers the backward does not have (spills). Softmax, delta, dS, the partials and every
statistic are fp32; outputs are rounded once to the input dtype.

Bytes and FLOPs (B batch, Hp x Wp padded map, C = heads * head_dim, e bytes per element, T = B H W map tokens,
Tp = B Hp Wp padded tokens, P programs):
    forward  reads qkv 3 C e T and writes out C e T (minimal: 4 C e T), plus the table (heads 64^2 4 bytes, from L2
             per window and head); 4 N C Tp useful FLOPs in the two products, N heads Tp exponentials (64 heads Tp
             executed: the tile);
    backward reads qkv 3 C e T and dO C e T, writes dqkv 3 C e T (minimal: 7 C e T), plus the partials
             P heads N^2 4 + (Tp - T) 3 C 4 bytes written and read once by the reduces; 10 N C Tp useful FLOPs (the
             recomputed Q K^T, dP, dV, dQ, dK), N heads Tp exponentials.
At the ATT head dims (3 to 24) the products are negligible and the per-element work on the 64 x 64 tiles (about
10 operations per score in the forward, 20 in the backward, and the exponentials) sets the floor above the bytes.

Anchors: zzd1992/FlashWindowAttention (whole window's scores in registers, head dim walked in chunks, backward
recomputes per window with no LSE and no dQ atomics; we replace its atomic bias gradient by per-program partials as
its downstream variant func_flash_swin_v3 does) and its early commit 3b78937 (q, k, v read in image layout with
index math, no partition copy), extended here with the cyclic shift, the 9-region mask and the released code's
padding (padded tokens take qkv_pad instead of being masked); FlashAttention-2's dS = P (dP - delta); Microsoft
Swin's fused window-process kernels (roll + partition as one pass; here as no pass at all).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ._aot import AotConfig
from ._autocast import autocast_aware
from ._call_memo import CallMemo, memo_key
from ._checks import check_window_attention
from ._launch import (
    COMPILE_OPTIONS,
    INT32_MAX,
    JIT_DIVISIBILITY,
    TRITON_DTYPE_NAMES,
    ceil_div,
    check_kernel_dtype,
    next_power_of_2,
    sm_count,
)
from ._library import custom_op
from ._triton import aot_signature, check_device, dot, max_, sum_
from .reference.window_attention import SHIFT_MASK_VALUE

SLOT_W = 8  # a window's tokens sit in an 8 x 8 grid of slots (slot n = 8 * row + column): windows up to 8 x 8
BLOCK_N = SLOT_W * SLOT_W  # token slots per window, the side of the in-register score tile
MAX_WINDOW = SLOT_W
MIN_DOT = 16  # tl.dot needs every dimension >= 16
# The widest head-dim chunk of each pass (every operand element needs its own 64-bit address: head slices of a
# token row are not 16-byte aligned); the backward also holds P, dP/dS and the bias-gradient accumulator.
FWD_MAX_BLOCK_D = 32
BWD_MAX_BLOCK_D = 16
# Warps. Triton gives a dot whose result feeds another dot all the warps along M (as flash attention wants), so at
# 8 warps both warpgroups hold the whole 64 x 64 score tile; the forward still fits 8 warps in <= 128 registers
# (2 CTAs per SM). The backward at 8 warps issues about 1.7x the warp instructions of 4 warps (SASS counts weighted
# by loop trips), but 2 CTAs of 8 warps keep 16 warps per SM to hide latency with, 2 CTAs of 4 warps only 8: at head
# dims >= 12 (<= 128 registers at 8 warps) profiling/cost_model.py predicts 8 warps ~15% faster. At the ATT blocks'
# smallest head dims (<= BWD_MAX_HEAD_DIM_4_WARPS) 16-bit inputs run at 4 warps: at 8 they take more than 128
# registers (head dim 3: 177-190, 1 CTA per SM; head dim 6: 142-150 on triton 3.6), at 4 they fit 255 without
# spilling (2 CTAs). fp32 tiles spill at 4 warps.
FWD_NUM_WARPS = 8
BWD_NUM_WARPS = 8
BWD_NUM_WARPS_SMALL_HEAD = 4
BWD_MAX_HEAD_DIM_4_WARPS = 8
# The 16-bit backward at 8 warps is capped at 128 registers (2 CTAs per SM) where the JIT knows its pointers 16-byte
# aligned and its batch and row strides multiples of 16 (`_bwd_aligned`: always so for the model's contiguous
# tensors; the kernel's own buffers are laid out so): uncapped, triton 3.6 takes 142 registers at FPMA's head dim 54
# (1 CTA per SM); capped without that knowledge, every triton tested spills (the 64-bit address arithmetic).
BWD_MAX_REGISTERS = 128
_BWD_ALIGNED_STRIDES = ("stride_qb", "stride_qh", "stride_gob", "stride_goh", "stride_gqb", "stride_gqh",
                        "stride_gbp", "stride_gbh", "stride_gbi", "stride_gpb")
MIN_PROGRAMS_PER_SM = 4  # the forward takes all heads per program while the windows alone launch this many per SM
MAX_ROW_ALIGN = 16  # elements (32 bytes at 16 bits): no access is wider, so no stronger hint helps
MAX_GRID_YZ = 65535  # CUDA's limit on a grid's second and third dimensions
PROGRAMS_PER_SM = 2  # the backward's persistent programs (all heads together) per SM: 2 CTAs of 4 or 8 warps fit
NUM_STAGES = 1
# fp32 operands on TF32 tensor cores (fp16/bf16 ones are exact products), whatever torch's allow_tf32 says: IEEE fp32
# products run on the FMA units, and their 64 x 64 operand tiles spill registers in both passes.
DOT_PRECISION = "tf32"

LOG2E = math.log2(math.e)

_SLOT_W: tl.constexpr = tl.constexpr(SLOT_W)
_LOG2E: tl.constexpr = tl.constexpr(LOG2E)
_SHIFT_MASK_LOG2: tl.constexpr = tl.constexpr(SHIFT_MASK_VALUE * LOG2E)


# ---------------------------------------------------------------------------------------------------------------------
# Device helpers shared by the forward and backward kernels
# ---------------------------------------------------------------------------------------------------------------------


@triton.jit
def _slots(WINDOW: tl.constexpr, BLOCK_N: tl.constexpr):
    """The same for every window: the slots' rows and columns in the window (shifts and masks of the 8 x 8 slot
    grid), which slots hold a token, and the token's index in the (N, N) bias (0 for the others: any valid row)."""
    offs_n = tl.arange(0, BLOCK_N)
    slot_y = offs_n // _SLOT_W
    slot_x = offs_n % _SLOT_W
    is_token = (slot_y < WINDOW) & (slot_x < WINDOW)
    return slot_y, slot_x, is_token, tl.where(is_token, slot_y * WINDOW + slot_x, 0)


@triton.jit
def _window_sources(
    window_y, window_x, height, width, padded_h, padded_w,
    WINDOW: tl.constexpr, SHIFT: tl.constexpr, HAS_PAD: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Where the token slots of window (window_y, window_x) come from: their row and column in the padded map,
    which slots are tokens inside the map and which take qkv_pad. The roll is one conditional subtraction:
    window_y WINDOW + slot_y + SHIFT < padded_h + SHIFT < 2 padded_h."""
    slot_y, slot_x, is_token, _ = _slots(WINDOW, BLOCK_N)
    src_y = window_y * WINDOW + slot_y + SHIFT
    src_x = window_x * WINDOW + slot_x + SHIFT
    if SHIFT > 0:
        src_y = tl.where(src_y >= padded_h, src_y - padded_h, src_y)
        src_x = tl.where(src_x >= padded_w, src_x - padded_w, src_x)
    in_map = is_token & (src_y < height) & (src_x < width)
    return src_y, src_x, in_map, is_token & ~in_map & HAS_PAD


@triton.jit
def _table_ptrs(table_ptr, head, BLOCK_N: tl.constexpr):
    """The head's (BLOCK_N, BLOCK_N) tile of the contiguous (heads, BLOCK_N, BLOCK_N) slot bias table."""
    offs_n = tl.arange(0, BLOCK_N)
    return table_ptr + head * BLOCK_N * BLOCK_N + offs_n[:, None] * BLOCK_N + offs_n[None, :]


@triton.jit
def _slot_bias_kernel(
    bias_ptr, table_ptr, stride_bh, stride_bi, stride_bj,
    WINDOW: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """table[head] (BLOCK_N, BLOCK_N), contiguous fp32: log2(e) rel_bias[head] over the slots, -inf in the columns
    of slots without a token (so that they get no probability) and, in their rows, the first token's row (any finite
    row: those rows are computed and never written)."""
    head = tl.program_id(0)
    is_token, token = _slots(WINDOW, BLOCK_N)[2:]
    bias = tl.load(bias_ptr + head * stride_bh + token[:, None] * stride_bi + token[None, :] * stride_bj)
    table = tl.where(is_token[None, :], bias.to(tl.float32) * _LOG2E, float("-inf"))
    tl.store(_table_ptrs(table_ptr, head, BLOCK_N), table)


@triton.jit
def _logits(
    scores, table_ptr, head, window_y, window_x, windows_h, windows_w, qk_scale_log2,
    WINDOW: tl.constexpr, SHIFT: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """log2(e) (scale q k^T + bias + mask) of one window and head, fp32 (BLOCK_N, BLOCK_N), from its scores q k^T and
    the head's slot bias table (`_slot_bias_kernel`: -inf already in the columns of slots without a token) plus,
    when SHIFT > 0, the shift mask between slots that a band boundary crossing this window separates. Only windows
    of the last window row (column) are crossed by the row (column) boundaries, at slot row (column)
    WINDOW - SHIFT: with code = 2 (row >= WINDOW - SHIFT) + (column >= WINDOW - SHIFT) per slot and crossing =
    2 [last row] + [last column] per window, slots i, j are separated iff (code_i ^ code_j) & crossing != 0."""
    logits = scores * qk_scale_log2 + tl.load(_table_ptrs(table_ptr, head, BLOCK_N))
    if SHIFT > 0:
        crossing = 2 * (window_y == windows_h - 1).to(tl.int32) + (window_x == windows_w - 1).to(tl.int32)
        if crossing != 0:  # a uniform branch: the other windows skip the mask
            slot_y, slot_x = _slots(WINDOW, BLOCK_N)[:2]
            code = 2 * (slot_y >= WINDOW - SHIFT).to(tl.int32) + (slot_x >= WINDOW - SHIFT).to(tl.int32)
            logits = tl.where(((code[:, None] ^ code[None, :]) & crossing) != 0, logits + _SHIFT_MASK_LOG2, logits)
    return logits


@triton.jit
def _load_slice(qkv_ptr, pad_ptr, rows, in_map, pad_slots, channel0, d0, stride_qc, stride_pc,
                HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    """(BLOCK_N, BLOCK_D) chunk [d0, d0 + BLOCK_D) of one head's q, k or v (channels from channel0) of one image:
    in-map tokens from qkv, `pad_slots` from qkv_pad (a per-row choice of pointer: one load), others and columns past
    HEAD_DIM 0."""
    offs_d = d0 + tl.arange(0, BLOCK_D)
    base = tl.where(in_map, qkv_ptr + rows, pad_ptr)
    stride = tl.where(in_map, stride_qc, stride_pc)
    mask = (in_map | pad_slots)[:, None] & (offs_d < HEAD_DIM)[None, :]
    return tl.load(base[:, None] + (channel0 + offs_d)[None, :] * stride[:, None], mask=mask, other=0.0)


@triton.jit
def _load_rows(ptr, rows, in_map, channel0, d0, stride_c, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    """Read a (BLOCK_N, BLOCK_D) chunk of one head's channels of the in-map tokens of one image (0 elsewhere)."""
    offs_d = d0 + tl.arange(0, BLOCK_D)
    ptrs = ptr + rows[:, None] + (channel0 + offs_d)[None, :] * stride_c
    return tl.load(ptrs, mask=in_map[:, None] & (offs_d < HEAD_DIM)[None, :], other=0.0)


@triton.jit
def _store_rows(ptr, rows, in_map, channel0, d0, stride_c, value, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    """Write a (BLOCK_N, BLOCK_D) chunk of one head's channels for the in-map tokens of one image (padded ones are
    cropped)."""
    offs_d = d0 + tl.arange(0, BLOCK_D)
    ptrs = ptr + rows[:, None] + (channel0 + offs_d)[None, :] * stride_c
    tl.store(ptrs, value.to(ptr.dtype.element_ty), mask=in_map[:, None] & (offs_d < HEAD_DIM)[None, :])


@triton.jit
def _window_attention_fwd_kernel(
    # inputs: qkv (B, H, W, 3C), the slot bias table (heads, BLOCK_N, BLOCK_N) fp32, qkv_pad (3C,) (any pointer of
    # qkv's dtype without HAS_PAD)
    qkv_ptr, table_ptr, pad_ptr,
    # output (B, H, W, C)
    out_ptr,
    # strides, in elements
    stride_qb, stride_qh, stride_qw, stride_qc,
    stride_pc,
    stride_ob, stride_oh, stride_ow, stride_oc,
    # map size, window grid, scale * log2(e)
    height, width, windows_h, windows_w, qk_scale_log2,
    NUM_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, HEADS_PER_PROGRAM: tl.constexpr,
    WINDOW: tl.constexpr, SHIFT: tl.constexpr, HAS_PAD: tl.constexpr, ROW_ALIGN: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    window_x = tl.program_id(0)
    window_y = tl.program_id(1)
    batch = tl.program_id(2) // (NUM_HEADS // HEADS_PER_PROGRAM)
    first_head = tl.program_id(2) % (NUM_HEADS // HEADS_PER_PROGRAM) * HEADS_PER_PROGRAM
    qkv_ptr += batch.to(tl.int64) * stride_qb
    out_ptr += batch.to(tl.int64) * stride_ob
    padded_h = windows_h * WINDOW
    padded_w = windows_w * WINDOW
    src_y, src_x, in_map, pad_slots = _window_sources(window_y, window_x, height, width, padded_h, padded_w, WINDOW,
                                                      SHIFT, HAS_PAD, BLOCK_N)
    rows = tl.multiple_of(src_y * stride_qh + src_x * stride_qw, ROW_ALIGN)  # int32 in one image (launcher checks)
    out_rows = tl.multiple_of(src_y * stride_oh + src_x * stride_ow, ROW_ALIGN)
    for head in tl.range(first_head, first_head + HEADS_PER_PROGRAM):
        q_channel0 = head * HEAD_DIM
        logits = tl.full((BLOCK_N, BLOCK_N), 0.0, tl.float32)
        for chunk in tl.static_range(0, HEAD_DIM, BLOCK_D):  # unrolled: every chunk's loads issued up front
            q = _load_slice(qkv_ptr, pad_ptr, rows, in_map, pad_slots, q_channel0, chunk, stride_qc, stride_pc,
                            HEAD_DIM, BLOCK_D)
            k = _load_slice(qkv_ptr, pad_ptr, rows, in_map, pad_slots, NUM_HEADS * HEAD_DIM + q_channel0, chunk,
                            stride_qc, stride_pc, HEAD_DIM, BLOCK_D)
            logits = dot(q, tl.trans(k), logits, DOT_PRECISION)
        logits = _logits(logits, table_ptr, head, window_y, window_x, windows_h, windows_w, qk_scale_log2, WINDOW,
                         SHIFT, BLOCK_N)
        p = tl.exp2(logits - max_(logits, 1)[:, None])  # unnormalised: O is scaled by 1 / rowsum instead
        inv_sum = 1.0 / sum_(p, 1)
        p_in = p.to(qkv_ptr.dtype.element_ty)
        for chunk in tl.static_range(0, HEAD_DIM, BLOCK_D):
            v = _load_slice(qkv_ptr, pad_ptr, rows, in_map, pad_slots, 2 * NUM_HEADS * HEAD_DIM + q_channel0, chunk,
                            stride_qc, stride_pc, HEAD_DIM, BLOCK_D)
            o = dot(p_in, v, None, DOT_PRECISION) * inv_sum[:, None]
            _store_rows(out_ptr, out_rows, in_map, q_channel0, chunk, stride_oc, o, HEAD_DIM, BLOCK_D)


@triton.jit
def _pad_token_rows(src_y, src_x, height, width, padded_h, padded_w, stride_t):
    """Offsets of the padded tokens' rows in one image of the (B, pad tokens, 3C) d qkv_pad buffer: the padded map's
    tokens outside the map, listed as the bottom band [height, padded_h) x [0, padded_w) row-major, then the right
    band [0, height) x [width, padded_w) row-major (meaningless for in-map slots, which the stores mask off)."""
    bottom = (src_y - height) * padded_w + src_x
    right = (padded_h - height) * padded_w + src_y * (padded_w - width) + src_x - width
    return tl.where(src_y >= height, bottom, right) * stride_t


@triton.jit
def _store_grad_chunk(grad_qkv_ptr, grad_pad_ptr, grad_rows, pad_rows, in_map, pad_slots, channel0, d0, grad,
                      stride_gqc, HEAD_DIM: tl.constexpr, HAS_PAD: tl.constexpr, BLOCK_D: tl.constexpr):
    """Write one head-dim chunk of dQ, dK or dV: the in-map tokens' rows to dqkv and, with HAS_PAD, the padded
    slots' rows (fp32) to the d qkv_pad buffer, each padded token's row once (the windows partition the padded
    map); a fixed-order sum over that buffer gives d qkv_pad, with no reduction in the kernel."""
    _store_rows(grad_qkv_ptr, grad_rows, in_map, channel0, d0, stride_gqc, grad, HEAD_DIM, BLOCK_D)
    if HAS_PAD:
        _store_rows(grad_pad_ptr, pad_rows, pad_slots, channel0, d0, 1, grad, HEAD_DIM, BLOCK_D)


@triton.jit
def _window_attention_bwd_kernel(
    # inputs: qkv (B, H, W, 3C), the slot bias table, qkv_pad (3C,) as in the forward; dO (B, H, W, C)
    qkv_ptr, table_ptr, pad_ptr, grad_out_ptr,
    # outputs: dqkv (B, H, W, 3C); fp32 partials of d rel_bias (programs, heads, N, N, rows padded to JIT_DIVISIBILITY);
    # with HAS_PAD, the padded tokens' fp32 gradient rows (B, pad token rows, 3C), contiguous
    grad_qkv_ptr, grad_bias_part_ptr, grad_pad_ptr,
    # strides, in elements
    stride_qb, stride_qh, stride_qw, stride_qc,
    stride_pc,
    stride_gob, stride_goh, stride_gow, stride_goc,
    stride_gqb, stride_gqh, stride_gqw, stride_gqc,
    stride_gbp, stride_gbh, stride_gbi,
    stride_gpb,
    # map size, window grid, windows in all and per program; the head dim again, as a run-time loop bound; scale
    # (for dQ and dK) and scale * log2(e)
    height, width, windows_h, windows_w, num_windows, windows_per_program, head_dim, scale, qk_scale_log2,
    NUM_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, WINDOW: tl.constexpr, SHIFT: tl.constexpr,
    HAS_PAD: tl.constexpr, ROW_ALIGN: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid = tl.program_id(0)
    head = tl.program_id(1)
    q_channel0 = head * HEAD_DIM
    k_channel0 = NUM_HEADS * HEAD_DIM + q_channel0
    v_channel0 = 2 * NUM_HEADS * HEAD_DIM + q_channel0
    padded_h = windows_h * WINDOW
    padded_w = windows_w * WINDOW
    grad_bias = tl.full((BLOCK_N, BLOCK_N), 0.0, tl.float32)  # the head's, accumulated across the program's windows
    # The program's windows are a contiguous range (batch-major, row-major): its first window's place costs two
    # scalar divisions, and each next window's place is a step with carries.
    first = pid * windows_per_program
    batch = first // (windows_h * windows_w)
    window_y = (first - batch * windows_h * windows_w) // windows_w
    window_x = first - batch * windows_h * windows_w - window_y * windows_w
    for _step in tl.range(first, tl.minimum(first + windows_per_program, num_windows)):
        qkv_img = qkv_ptr + batch.to(tl.int64) * stride_qb
        grad_out_img = grad_out_ptr + batch.to(tl.int64) * stride_gob
        grad_qkv_img = grad_qkv_ptr + batch.to(tl.int64) * stride_gqb
        grad_pad_img = grad_pad_ptr + batch.to(tl.int64) * stride_gpb
        src_y, src_x, in_map, pad_slots = _window_sources(window_y, window_x, height, width, padded_h, padded_w,
                                                          WINDOW, SHIFT, HAS_PAD, BLOCK_N)
        rows = tl.multiple_of(src_y * stride_qh + src_x * stride_qw, ROW_ALIGN)
        grad_out_rows = tl.multiple_of(src_y * stride_goh + src_x * stride_gow, ROW_ALIGN)
        grad_rows = tl.multiple_of(src_y * stride_gqh + src_x * stride_gqw, ROW_ALIGN)
        pad_rows = _pad_token_rows(src_y, src_x, height, width, padded_h, padded_w, 3 * NUM_HEADS * HEAD_DIM)
        # P = softmax(scale Q K^T + bias + mask), recomputed (base 2). The head's bias table is reloaded per window
        # (from L1) rather than held: holding it through the window would cost 32 registers per thread.
        logits = tl.full((BLOCK_N, BLOCK_N), 0.0, tl.float32)
        for d0 in tl.range(0, head_dim, BLOCK_D):
            q = _load_slice(qkv_img, pad_ptr, rows, in_map, pad_slots, q_channel0, d0, stride_qc, stride_pc,
                            HEAD_DIM, BLOCK_D)
            k = _load_slice(qkv_img, pad_ptr, rows, in_map, pad_slots, k_channel0, d0, stride_qc, stride_pc,
                            HEAD_DIM, BLOCK_D)
            logits = dot(q, tl.trans(k), logits, DOT_PRECISION)
        logits = _logits(logits, table_ptr, head, window_y, window_x, windows_h, windows_w, qk_scale_log2, WINDOW,
                         SHIFT, BLOCK_N)
        p = tl.exp2(logits - max_(logits, 1)[:, None])
        p = p * (1.0 / sum_(p, 1))[:, None]
        p_in = p.to(qkv_ptr.dtype.element_ty)
        # dP = dO V^T and dV = P^T dO, chunk by chunk (dO of padded slots is 0: they are cropped)
        grad_p = tl.full((BLOCK_N, BLOCK_N), 0.0, tl.float32)
        for d0 in tl.range(0, head_dim, BLOCK_D):
            grad_o = _load_rows(grad_out_img, grad_out_rows, in_map, q_channel0, d0, stride_goc, HEAD_DIM, BLOCK_D)
            v = _load_slice(qkv_img, pad_ptr, rows, in_map, pad_slots, v_channel0, d0, stride_qc, stride_pc,
                            HEAD_DIM, BLOCK_D)
            grad_p = dot(grad_o, tl.trans(v), grad_p, DOT_PRECISION)
            _store_grad_chunk(grad_qkv_img, grad_pad_img, grad_rows, pad_rows, in_map, pad_slots, v_channel0, d0,
                              dot(tl.trans(p_in), grad_o, None, DOT_PRECISION), stride_gqc, HEAD_DIM, HAS_PAD, BLOCK_D)
        # dS = P (dP - delta), delta_i = sum_j P_ij dP_ij; then dQ = scale dS K and dK = scale dS^T Q
        grad_s = p * (grad_p - sum_(p * grad_p, 1)[:, None])
        grad_bias += grad_s
        grad_s_in = grad_s.to(qkv_ptr.dtype.element_ty)
        for d0 in tl.range(0, head_dim, BLOCK_D):
            k = _load_slice(qkv_img, pad_ptr, rows, in_map, pad_slots, k_channel0, d0, stride_qc, stride_pc,
                            HEAD_DIM, BLOCK_D)
            _store_grad_chunk(grad_qkv_img, grad_pad_img, grad_rows, pad_rows, in_map, pad_slots, q_channel0, d0,
                              dot(grad_s_in, k, None, DOT_PRECISION) * scale, stride_gqc, HEAD_DIM, HAS_PAD, BLOCK_D)
            q = _load_slice(qkv_img, pad_ptr, rows, in_map, pad_slots, q_channel0, d0, stride_qc, stride_pc,
                            HEAD_DIM, BLOCK_D)
            _store_grad_chunk(grad_qkv_img, grad_pad_img, grad_rows, pad_rows, in_map, pad_slots, k_channel0, d0,
                              dot(tl.trans(grad_s_in), q, None, DOT_PRECISION) * scale, stride_gqc, HEAD_DIM,
                              HAS_PAD, BLOCK_D)
        window_x += 1
        row_done = window_x == windows_w
        window_x = tl.where(row_done, 0, window_x)
        window_y += row_done.to(tl.int32)
        image_done = window_y == windows_h
        window_y = tl.where(image_done, 0, window_y)
        batch += image_done.to(tl.int32)

    is_token, token = _slots(WINDOW, BLOCK_N)[2:]
    ptrs = grad_bias_part_ptr + pid * stride_gbp + head * stride_gbh + token[:, None] * stride_gbi + token[None, :]
    tl.store(ptrs, grad_bias, mask=is_token[:, None] & is_token[None, :])


# ---------------------------------------------------------------------------------------------------------------------
# Launchers
# ---------------------------------------------------------------------------------------------------------------------


def _check_triton_inputs(qkv: torch.Tensor, window_size: int) -> None:
    """What the Triton kernels need beyond the shared validator."""
    check_kernel_dtype("qkv", qkv)
    if window_size > MAX_WINDOW:
        raise ValueError(
            f"window_size must be <= {MAX_WINDOW} for the triton backend (a window's {MAX_WINDOW ** 2} tokens are "
            f"held in registers), got {window_size}"
        )
    check_device("qkv", qkv)
    windows = qkv.shape[0] * math.prod(_window_grid(qkv, window_size))
    if 2 * windows > INT32_MAX:  # window indices are int32, and a backward range may end up to twice past them
        raise ValueError(f"qkv of shape {tuple(qkv.shape)} has {windows} windows of {window_size} x {window_size}, "
                         f"more than the kernels' int32 window index allows ({INT32_MAX // 2})")
    # Token rows inside one image are int32 offsets (the image's own offset is int64): its padded extent in every
    # tensor the kernels index (qkv as given; out, dO and dqkv contiguous, at most as large) must fit.
    sizes = (*(size * window_size for size in _window_grid(qkv, window_size)), qkv.shape[3])
    image_span = max(sum((size - 1) * abs(stride) for size, stride in zip(sizes, qkv.stride()[1:])) + 1,
                     math.prod(sizes))
    if image_span > INT32_MAX:
        raise ValueError(f"qkv of shape {tuple(qkv.shape)} and strides {qkv.stride()} spans {image_span} elements per "
                         f"padded image, more than the kernels' int32 row offsets allow ({INT32_MAX})")


def _window_grid(qkv: torch.Tensor, window_size: int) -> tuple[int, int]:
    """Windows per column and per row of the padded map."""
    return ceil_div(qkv.shape[1], window_size), ceil_div(qkv.shape[2], window_size)


def _block_d(head_dim: int, widest: int) -> int:
    """Head-dim chunk: the next power of two, at least what tl.dot needs, at most `widest`."""
    return min(widest, max(MIN_DOT, next_power_of_2(head_dim)))


def _programs_per_head(num_windows: int, num_heads: int, device: torch.device) -> int:
    """Persistent programs per head: about PROGRAMS_PER_SM per SM over all heads, never more than the windows."""
    return max(1, min(num_windows, ceil_div(sm_count(device) * PROGRAMS_PER_SM, num_heads)))


def _scale(qkv: torch.Tensor, num_heads: int, scale: float | None) -> float:
    return (qkv.shape[-1] // (3 * num_heads)) ** -0.5 if scale is None else scale


def _row_align(*tensors: torch.Tensor) -> int:
    """What every token row offset src_y stride_h + src_x stride_w of these (B, H, W, channels) tensors is a
    multiple of (their H and W strides' common divisor, at most MAX_ROW_ALIGN): a compile-time hint that lets head
    slices at even channel offsets load and store as vectors where the JIT sees no stride divisible by 16."""
    strides = [abs(stride) for tensor in tensors for stride in tensor.stride()[1:3]]
    return math.gcd(MAX_ROW_ALIGN, *strides)


def _aligned(count: int) -> int:
    """count rounded up to a multiple of JIT_DIVISIBILITY."""
    return ceil_div(count, JIT_DIVISIBILITY) * JIT_DIVISIBILITY


def _bwd_num_warps(dtype: torch.dtype, head_dim: int) -> int:
    """4 warps for 16-bit inputs at head dims up to BWD_MAX_HEAD_DIM_4_WARPS, else 8 (see BWD_NUM_WARPS)."""
    small_head = dtype != torch.float32 and head_dim <= BWD_MAX_HEAD_DIM_4_WARPS
    return BWD_NUM_WARPS_SMALL_HEAD if small_head else BWD_NUM_WARPS


def _bwd_capped(dtype: torch.dtype, head_dim: int) -> bool:
    """Whether the backward is capped at BWD_MAX_REGISTERS where its launch is aligned: 16-bit inputs at 8 warps."""
    return dtype != torch.float32 and _bwd_num_warps(dtype, head_dim) == BWD_NUM_WARPS


# What the capped backward's compile assumes divisible by JIT_DIVISIBILITY: every pointer and the _BWD_ALIGNED_STRIDES
_BWD_ALIGNED_ARGS = tuple(arg for arg in _window_attention_bwd_kernel.arg_names
                          if arg.endswith("_ptr") or arg in _BWD_ALIGNED_STRIDES)
_BWD_POINTERS, _BWD_STRIDES = ([i for i, arg in enumerate(_window_attention_bwd_kernel.arg_names)
                                if arg in _BWD_ALIGNED_ARGS and arg.endswith("_ptr") == pointer]
                               for pointer in (True, False))


def _bwd_aligned(args: tuple) -> bool:
    """Whether the JIT specialises a backward launch of these arguments at least as the capped compile assumes."""
    return (all(args[i].data_ptr() % JIT_DIVISIBILITY == 0 for i in _BWD_POINTERS)
            and all(args[i] % JIT_DIVISIBILITY == 0 for i in _BWD_STRIDES))


def _bwd_launch(dtype: torch.dtype, head_dim: int, args: tuple) -> dict:
    """The backward's launch options for these arguments: its warps, COMPILE_OPTIONS and, where capped and aligned,
    maxnreg."""
    options = dict(num_warps=_bwd_num_warps(dtype, head_dim), **COMPILE_OPTIONS)
    if _bwd_capped(dtype, head_dim) and _bwd_aligned(args):
        options["maxnreg"] = BWD_MAX_REGISTERS
    return options


def _slot_bias(rel_bias: torch.Tensor, window_size: int) -> torch.Tensor:
    """The (heads, BLOCK_N, BLOCK_N) fp32 slot bias table both passes read (`_slot_bias_kernel`): one small launch."""
    table = torch.empty(rel_bias.shape[0], BLOCK_N, BLOCK_N, device=rel_bias.device, dtype=torch.float32)
    _slot_bias_kernel[(rel_bias.shape[0],)](rel_bias, table, *rel_bias.stride(), WINDOW=window_size, BLOCK_N=BLOCK_N,
                                            **COMPILE_OPTIONS)
    return table


def _heads_per_program(num_windows: int, num_heads: int, head_dim: int, device: torch.device) -> int:
    """All heads per forward program (a window's token geometry and mask built once for all of them) when the head is
    one chunk and the windows alone launch MIN_PROGRAMS_PER_SM programs per SM; else one head per program, for
    parallelism on small maps and registers at wide heads."""
    fills = num_windows >= MIN_PROGRAMS_PER_SM * sm_count(device)
    return num_heads if fills and head_dim <= FWD_MAX_BLOCK_D else 1


def _check_grid(qkv: torch.Tensor, window_size: int, programs_per_window: int) -> None:
    """The grid (windows per row, windows per column, batch x programs per window) within CUDA's limits."""
    windows_h, _ = _window_grid(qkv, window_size)
    if max(windows_h, qkv.shape[0] * programs_per_window) > MAX_GRID_YZ:
        raise ValueError(f"qkv of shape {tuple(qkv.shape)} with window_size={window_size} needs a grid of "
                         f"{windows_h} window rows and {qkv.shape[0] * programs_per_window} images x head groups; "
                         f"the kernels launch at most {MAX_GRID_YZ} of each")


def window_attention_fwd(
    qkv: torch.Tensor, rel_bias: torch.Tensor, qkv_pad: torch.Tensor | None, num_heads: int, window_size: int,
    shift_size: int, scale: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(out (B, H, W, C) in qkv's dtype, the slot bias table): the table's launch, then one launch with a program per
    window and group of heads."""
    batch, height, width, three_c = qkv.shape
    out = qkv.new_empty(batch, height, width, three_c // 3)
    table = _slot_bias(rel_bias, window_size)
    if out.numel() == 0:
        return out, table
    windows_h, windows_w = _window_grid(qkv, window_size)
    head_dim = three_c // (3 * num_heads)
    heads_per_program = _heads_per_program(batch * windows_h * windows_w, num_heads, head_dim, qkv.device)
    _check_grid(qkv, window_size, num_heads // heads_per_program)
    pad = qkv_pad if qkv_pad is not None else qkv  # never read without HAS_PAD
    _window_attention_fwd_kernel[(windows_w, windows_h, batch * (num_heads // heads_per_program))](
        qkv, table, pad, out,
        *qkv.stride(), pad.stride(-1), *out.stride(),
        height, width, windows_h, windows_w, _scale(qkv, num_heads, scale) * LOG2E,
        NUM_HEADS=num_heads, HEAD_DIM=head_dim, HEADS_PER_PROGRAM=heads_per_program, WINDOW=window_size,
        SHIFT=shift_size, HAS_PAD=qkv_pad is not None, ROW_ALIGN=_row_align(qkv, out), BLOCK_N=BLOCK_N,
        BLOCK_D=_block_d(head_dim, FWD_MAX_BLOCK_D),
        DOT_PRECISION=DOT_PRECISION, num_warps=FWD_NUM_WARPS, num_stages=NUM_STAGES, **COMPILE_OPTIONS,
    )
    return out, table


def window_attention_bwd(
    grad_out: torch.Tensor, qkv: torch.Tensor, rel_bias: torch.Tensor, table: torch.Tensor,
    qkv_pad: torch.Tensor | None, num_heads: int, window_size: int, shift_size: int, scale: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(dqkv (B, H, W, 3C), d rel_bias (heads, N, N), d qkv_pad (3C,) or None without qkv_pad), each in its
    input's dtype, from the forward's slot bias table. One kernel launch, then fixed-order sums: of the fp32
    bias-gradient partials over the programs, of the padded tokens' gradient rows for d qkv_pad."""
    batch, height, width, three_c = qkv.shape
    tokens = window_size * window_size
    grad_qkv = torch.empty_like(qkv, memory_format=torch.contiguous_format)
    if qkv.numel() == 0:
        zeros = [None if t is None else torch.zeros_like(t, memory_format=torch.contiguous_format)
                 for t in (rel_bias, qkv_pad)]
        return grad_qkv, *zeros
    windows_h, windows_w = _window_grid(qkv, window_size)
    num_windows = batch * windows_h * windows_w
    programs = _programs_per_head(num_windows, num_heads, qkv.device)
    head_dim = three_c // (3 * num_heads)
    # the partial buffers' rows padded so that their strides are multiples of JIT_DIVISIBILITY (see BWD_MAX_REGISTERS)
    grad_bias_part = torch.empty(programs, num_heads, tokens, _aligned(tokens), device=qkv.device,
                                 dtype=torch.float32)
    pad_tokens = windows_h * windows_w * tokens - height * width if qkv_pad is not None else 0
    grad_pad_rows = torch.empty(batch, _aligned(pad_tokens), three_c, device=qkv.device, dtype=torch.float32)
    pad = qkv_pad if qkv_pad is not None else qkv
    scale = _scale(qkv, num_heads, scale)
    args = (
        qkv, table, pad, grad_out, grad_qkv, grad_bias_part, grad_pad_rows,
        *qkv.stride(), pad.stride(-1), *grad_out.stride(), *grad_qkv.stride(), *grad_bias_part.stride()[:3],
        grad_pad_rows.stride(0), height, width, windows_h, windows_w, num_windows, ceil_div(num_windows, programs),
        head_dim, scale, scale * LOG2E,
    )
    _window_attention_bwd_kernel[(programs, num_heads)](
        *args,
        NUM_HEADS=num_heads, HEAD_DIM=head_dim, WINDOW=window_size, SHIFT=shift_size, HAS_PAD=qkv_pad is not None,
        ROW_ALIGN=_row_align(qkv, grad_out, grad_qkv), BLOCK_N=BLOCK_N, BLOCK_D=_block_d(head_dim, BWD_MAX_BLOCK_D),
        DOT_PRECISION=DOT_PRECISION, num_stages=NUM_STAGES, **_bwd_launch(qkv.dtype, head_dim, args),
    )
    # Fixed-order reduces (no atomics: bitwise reproducible), of the written elements only.
    grad_bias = grad_bias_part[..., :tokens].sum(dim=0).to(rel_bias.dtype)
    grad_pad = None if qkv_pad is None else grad_pad_rows[:, :pad_tokens].sum(dim=(0, 1)).to(qkv_pad.dtype)
    return grad_qkv, grad_bias, grad_pad


# ---------------------------------------------------------------------------------------------------------------------
# Custom operators (kernels/_library.py), their autograd, and the public op
# ---------------------------------------------------------------------------------------------------------------------


@custom_op("window_attention_fwd")
def _forward_op(
    qkv: torch.Tensor, rel_bias: torch.Tensor, qkv_pad: torch.Tensor | None, num_heads: int, window_size: int,
    shift_size: int, scale: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, the slot bias table): the backward reads the same table rather than building it again. The Triton
    checks run again here, on the sizes a compiled graph runs with."""
    _check_triton_inputs(qkv, window_size)
    return window_attention_fwd(qkv, rel_bias, qkv_pad, num_heads, window_size, shift_size, scale)


@_forward_op.register_fake
def _(qkv, rel_bias, qkv_pad, num_heads, window_size, shift_size, scale):
    return (qkv.new_empty(*qkv.shape[:-1], qkv.shape[-1] // 3),
            rel_bias.new_empty(rel_bias.shape[0], BLOCK_N, BLOCK_N, dtype=torch.float32))


@custom_op("window_attention_bwd")
def _backward_op(
    grad_out: torch.Tensor, qkv: torch.Tensor, rel_bias: torch.Tensor, table: torch.Tensor,
    qkv_pad: torch.Tensor | None, num_heads: int, window_size: int, shift_size: int, scale: float | None,
) -> list[torch.Tensor]:
    """[d qkv, d rel_bias] and, with qkv_pad, d qkv_pad (an operator cannot return None)."""
    grads = window_attention_bwd(grad_out, qkv, rel_bias, table, qkv_pad, num_heads, window_size, shift_size, scale)
    return [g for g in grads if g is not None]


@_backward_op.register_fake
def _(grad_out, qkv, rel_bias, table, qkv_pad, num_heads, window_size, shift_size, scale):
    return [torch.empty_like(t, memory_format=torch.contiguous_format) for t in (qkv, rel_bias, qkv_pad)
            if t is not None]


def _setup_context(ctx, inputs, output):
    """Saves qkv, rel_bias, qkv_pad and the slot bias table only: the backward recomputes P."""
    qkv, rel_bias, qkv_pad, *config = inputs
    ctx.save_for_backward(qkv, rel_bias, output[1], qkv_pad)
    ctx.config = config


def _backward(ctx, grad_out, _grad_table):
    qkv, rel_bias, table, qkv_pad = ctx.saved_tensors
    grad_qkv, grad_bias, *grad_pad = _backward_op(grad_out, qkv, rel_bias, table, qkv_pad, *ctx.config)
    return grad_qkv, grad_bias, (grad_pad[0] if grad_pad else None), None, None, None, None


_forward_op.register_autograd(_backward, setup_context=_setup_context)


class _Eager(torch.autograd.Function):
    """The op outside torch.compile: the launchers and the autograd formula of the custom operators above, without
    the operators' dispatch (host time of the order of the launchers' own). torch.compile traces the operators."""

    @staticmethod
    def forward(ctx, config, qkv, rel_bias, qkv_pad):
        out, table = window_attention_fwd(qkv, rel_bias, qkv_pad, *config)
        ctx.save_for_backward(qkv, rel_bias, table, qkv_pad)
        ctx.config = config
        return out

    @staticmethod
    def backward(ctx, grad_out):
        qkv, rel_bias, table, qkv_pad = ctx.saved_tensors
        return None, *window_attention_bwd(grad_out, qkv, rel_bias, table, qkv_pad, *ctx.config)


# Per call key (kernels/_call_memo.py): the calls validated before.
_CALLS = CallMemo()


@autocast_aware
def window_attention(
    qkv: torch.Tensor,
    rel_bias: torch.Tensor,
    qkv_pad: torch.Tensor | None = None,
    *,
    num_heads: int,
    window_size: int,
    shift_size: int = 0,
    scale: float | None = None,
) -> torch.Tensor:
    """qkv: (B, H, W, 3C), rel_bias: (num_heads, w*w, w*w), qkv_pad: (3C,) or None -> (B, H, W, C).
    Semantics of kernels/reference/window_attention.py; windows up to 8 x 8."""
    config = (num_heads, window_size, shift_size, scale)
    key = memo_key((qkv, rel_bias, qkv_pad), *config)
    if _CALLS.get(key) is None:
        check_window_attention(qkv, rel_bias, qkv_pad, *config)
        _check_triton_inputs(qkv, window_size)
        if torch.compiler.is_compiling():
            return _forward_op(qkv, rel_bias, qkv_pad, *config)[0]
        _CALLS.put(key, True)
    return _Eager.apply(config, qkv, rel_bias, qkv_pad)


# ---------------------------------------------------------------------------------------------------------------------
# Ahead-of-time configurations
# ---------------------------------------------------------------------------------------------------------------------

_UNIT_STRIDES = ("stride_qc", "stride_bj", "stride_pc", "stride_oc", "stride_goc", "stride_gqc")  # contiguous: JIT == 1
_FLOAT_ARGS = ("qk_scale_log2", "scale")
_FP32_BUFFERS = {"table_ptr": "fp32", "grad_bias_part_ptr": "fp32", "grad_pad_ptr": "fp32"}
# The SCA-MTL model's window-attention layers, (heads, head dim, window, shift): the ATT blocks at the four scales,
# plain and shifted, and FPMA's; every one with qkv_pad. Window size, shift, heads and head dim are compile-time
# constants, so these (not every possible call) are what the ahead-of-time checks compile.
MODEL_LAYERS = (*((6, head_dim, 7, shift) for head_dim in (3, 6, 12, 24) for shift in (0, 3)),
                *((4, head_dim, 7, 0) for head_dim in (54, 108, 216)))


def _aot_config(kernel, element: str, name: str, constexprs: dict, num_warps: int, divisible: tuple = (),
                max_registers: int | None = None) -> AotConfig:
    signature, constexprs = aot_signature(kernel, element, pointers=_FP32_BUFFERS, floats=_FLOAT_ARGS,
                                          unit_strides=_UNIT_STRIDES, constexprs=constexprs)
    return AotConfig(name=f"{kernel.__name__}[{element}, {name}]", kernel=kernel, signature=signature,
                     constexprs=constexprs, num_warps=num_warps, num_stages=NUM_STAGES,
                     tensor_cores=kernel is not _slot_bias_kernel, divisible=divisible,
                     extra=dict(maxnreg=max_registers) if max_registers else {})


def aot_configs() -> list[AotConfig]:
    """Per dtype: the slot bias table's kernel, and both passes at each of the model's layers; the forward with
    one head per program and, where its launcher can pick it, all of them."""
    configs = []
    for dtype, element in TRITON_DTYPE_NAMES.items():
        configs.append(_aot_config(_slot_bias_kernel, element, "window=7", dict(WINDOW=7, BLOCK_N=BLOCK_N), 4))
        for heads, head_dim, window, shift in MODEL_LAYERS:
            # contiguous tensors' row strides are multiples of C (out, dO) and 3C (qkv, dqkv)
            layer = dict(NUM_HEADS=heads, HEAD_DIM=head_dim, WINDOW=window, SHIFT=shift, HAS_PAD=True,
                         ROW_ALIGN=math.gcd(MAX_ROW_ALIGN, heads * head_dim), BLOCK_N=BLOCK_N,
                         DOT_PRECISION=DOT_PRECISION)
            name = f"heads={heads}, head_dim={head_dim}, shift={shift}"
            for per_program in sorted({1, heads if head_dim <= FWD_MAX_BLOCK_D else 1}):  # what the launcher picks
                configs.append(_aot_config(
                    _window_attention_fwd_kernel, element, f"{name}, heads_per_program={per_program}",
                    dict(layer, HEADS_PER_PROGRAM=per_program, BLOCK_D=_block_d(head_dim, FWD_MAX_BLOCK_D)),
                    FWD_NUM_WARPS))
            bwd = dict(layer, BLOCK_D=_block_d(head_dim, BWD_MAX_BLOCK_D))
            num_warps = _bwd_num_warps(dtype, head_dim)
            configs.append(_aot_config(_window_attention_bwd_kernel, element, name, bwd, num_warps))
            if _bwd_capped(dtype, head_dim):  # and the aligned launches' capped compile (`_bwd_aligned`)
                configs.append(_aot_config(_window_attention_bwd_kernel, element, f"{name}, aligned", bwd, num_warps,
                                           divisible=_BWD_ALIGNED_ARGS, max_registers=BWD_MAX_REGISTERS))
    return configs
