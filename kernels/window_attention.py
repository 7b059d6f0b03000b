"""Triton `kernels.window_attention`: Swin (shifted-)window attention with zero-copy padding, cyclic shift, window
partition and merge, the relative-position bias and the 9-region shift mask, forward and backward.

Semantics (kernels/reference/window_attention.py, the released SCA-MTL code): the H x W map is padded bottom/right
to Hp x Wp (multiples of the window w) with tokens whose q, k, v are `qkv_pad`, rolled by (-s, -s), cut into w x w
windows of N = w^2 tokens; in every window and head

    S = scale * Q K^T + bias + M,    P = softmax_rows(S),    O = P V,

with M = -100 between tokens of different regions of the rolled padded map (rows [0, Hp-w), [Hp-w, Hp-s),
[Hp-s, Hp) times the same column bands; M = 0 when s = 0); the windows are merged, rolled back and cropped.

Index arithmetic instead of data movement. The w^2 tokens of a window sit in an 8 x 8 grid of slots (slot
n = 8 r + c holds window row r < w, column c < w: the slot coordinates are shifts and masks, not divisions). Slot
(r, c) of window (b, wy, wx) is at (ry, rx) = (wy w + r, wx w + c) of the rolled padded map, i.e. at
(y, x) = ((ry + s) mod Hp, (rx + s) mod Wp) of the padded map: the kernels read q, k, v of that token from qkv
(B, H, W, 3C; last dim ordered (3, heads, head_dim)) when y < H and x < W, and from `qkv_pad` otherwise (a per-row
choice of pointer, one load), and write O there (never for padded tokens, which are cropped). The shift mask: only
windows of the last window row (column) are crossed by the row (column) band boundaries, at r = w - s (c = w - s),
so two slots are in different regions iff a boundary crossing their window separates them; with
code = 2 (r >= w - s) + (c >= w - s) per slot and crossing = 2 [last row] + [last column] per window (0 if s = 0),
M_ij = -100 [(code_i ^ code_j) & crossing != 0]. No padded, rolled or partitioned copy and no dense mask exists in
either pass.

VJP (per window and head; dO = 0 on padded tokens since they are cropped):

    dV = P^T dO,    dP = dO V^T,    delta_i = sum_j P_ij dP_ij  (= dO_i . O_i),    dS = P * (dP - delta),
    dQ = scale dS K,    dK = scale dS^T Q,    d bias = sum over batch and windows of dS,
    d qkv_pad = sum over padded token slots of (dQ, dK, dV)   (dQ of a padded slot is 0: its dO is 0),

and every in-map token's dQ, dK, dV is written to dqkv (B, H, W, 3C) exactly once: the windows partition the
padded map. delta comes from P and dP in registers, so the backward needs neither O nor a log-sum-exp: it saves
only qkv, rel_bias and qkv_pad and recomputes P.

Kernels and work split (grid (programs per head, heads), persistent, about PROGRAMS_PER_SM programs per SM in
all): a program owns one head and walks the windows pid, pid + programs, ... (batch-major, row-major), so the
head's bias is loaded once per program and the bias gradient is accumulated across its windows in registers. The
window's whole 64 x 64 score tile lives in registers (8 warps: two warpgroups share it). The head dim is walked in
chunks of BLOCK_D (16, or 32 in the forward; masked loads pad a chunk to what `tl.dot` needs, so head dims 3 to 216
and beyond work, 216 in 7 or 14 chunks): wider chunks would need more registers, since every operand element of
an unaligned head slice needs its own 64-bit address. The loop prefetches the next window's first chunk of q, k, v
(and dO) before it computes the current window, so that loads are in flight during the softmax: for the head dims
up to 16 (32) that is the whole head, and the ATT blocks' many small windows are latency-bound otherwise. The fp32
backward does not prefetch: its fp32 tiles leave no registers for the held chunk (it spilled 56-268 bytes on
triton 3.6-3.8), so it loads every chunk where it is used, again from L2 for the gradient products. The exact
fp32 softmax uses exp2 with scale * log2(e) and log2(e) folded into the logits.
Deterministic reductions without atomics: every program writes its fp32 partial of the bias gradient
(programs, heads, N, N), accumulated across its windows in registers, and of the qkv_pad gradient per window
(windows, 3C; each (window, head) writes its head's slices once, so no element is read back or written twice), and
fixed-order torch sums over the first dimension finish them: two runs are bitwise identical.

Precision of every product: the two forward and five backward products are `tl.dot` with fp32 accumulation.
fp16/bf16 inputs: operands in the input dtype (q, k, v, dO as loaded; P and dS rounded to it for the P V,
P^T dO, dS K and dS^T Q products), exact products. fp32 inputs: TF32 tensor cores (operands rounded to 10-bit
mantissas, as torch's allow_tf32 and Triton's default do; KERNEL_TOL's float32 row is set for it). A float64
simulation of these roundings on 3000 windows with head dims 3 to 216 gives relative RMSE 4e-4 to 6e-4 on every
output and gradient and at most 2/3 of KERNEL_TOL's elementwise bound; 3xTF32 would be about exact but needs
registers the backward does not have (spills). Softmax, delta, dS, the partials and every statistic are fp32;
outputs are rounded once to the input dtype.

Bytes and FLOPs (B batch, Hp x Wp padded map, C = heads * head_dim, e bytes per element, T = B H W map tokens,
Tp = B Hp Wp padded tokens, P programs):
    forward  reads qkv 3 C e T and writes out C e T (minimal: 4 C e T), plus the bias once per program;
             4 N C Tp useful FLOPs in the two products, N heads Tp exponentials (64 heads Tp executed: the tile);
    backward reads qkv 3 C e T and dO C e T, writes dqkv 3 C e T (minimal: 7 C e T), plus the partials
             P heads N^2 4 + windows 3 C 4 bytes written and read once by the reduces; 10 N C Tp useful FLOPs (the
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
from ._checks import check_window_attention
from ._launch import INT32_MAX, TRITON_DTYPE_NAMES, check_kernel_dtype, sm_count
from ._library import custom_op
from ._triton import aot_signature, check_device, dot, max_, sum_
from .reference.window_attention import SHIFT_MASK_VALUE

SLOT_W = 8  # a window's tokens sit in an 8 x 8 grid of slots (slot n = 8 * row + column): windows up to 8 x 8
BLOCK_N = SLOT_W * SLOT_W  # token slots per window, the side of the in-register score tile
MAX_WINDOW = SLOT_W
MIN_DOT = 16  # tl.dot needs every dimension >= 16
# The widest head-dim chunk of each pass (every operand element needs its own 64-bit address: head slices of a
# token row are not 16-byte aligned); the backward also holds dP/dS and the bias-gradient accumulator.
FWD_MAX_BLOCK_D = 32
BWD_MAX_BLOCK_D = 16
NUM_WARPS = 8  # two warpgroups share each 64 x 64 tile: half the registers per thread of four warps
PROGRAMS_PER_SM = 2  # persistent programs (all heads together) per SM: 1-2 fit at 8 warps and 150-255 registers
NUM_STAGES = 1
# The backward prefetches the next window's first head-dim chunk for 16-bit inputs, not for fp32 (see the docstring).
BWD_PREFETCH = {torch.float32: False, torch.float16: True, torch.bfloat16: True}
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
def _window_slots(window, shift, BLOCK_N: tl.constexpr):
    """The same for every window: which slots hold a token, the token's index in the (N, N) bias, and its side of
    the shift-mask band boundaries inside a window of the last window row / column:
    2 * (row >= w - s) + (column >= w - s)."""
    offs_n = tl.arange(0, BLOCK_N)
    slot_y = offs_n // _SLOT_W
    slot_x = offs_n % _SLOT_W
    is_token = (slot_y < window) & (slot_x < window)
    split = window - shift
    split_code = 2 * (slot_y >= split).to(tl.int32) + (slot_x >= split).to(tl.int32)
    return is_token, slot_y * window + slot_x, split_code


@triton.jit
def _window_tokens(
    win, window, windows_w, windows_per_image,  # window index (batch-major, row-major); window size; window grid
    height, width, padded_h, padded_w, shift,  # map, padded map, roll amount
    pad_limit,  # slots n < pad_limit outside the map take qkv_pad: BLOCK_N when it is given, else 0
    BLOCK_N: tl.constexpr,
):
    """Where the token slots of window `win` come from: its batch, the slots' source rows/columns in the padded map,
    which slots are tokens inside the map and which take qkv_pad; and which band boundaries of the 9-region shift
    mask cross the window (bit 1: rows, it is in the last window row; bit 0: columns)."""
    offs_n = tl.arange(0, BLOCK_N)
    slot_y = offs_n // _SLOT_W
    slot_x = offs_n % _SLOT_W
    batch = win // windows_per_image
    local = win % windows_per_image
    window_y = local // windows_w
    window_x = local % windows_w
    src_y = (window_y * window + slot_y + shift) % padded_h
    src_x = (window_x * window + slot_x + shift) % padded_w
    is_token = (slot_y < window) & (slot_x < window)
    in_map = is_token & (src_y < height) & (src_x < width)
    pad_slots = is_token & ~in_map & (offs_n < pad_limit)
    last_row = (window_y + 1) * window == padded_h
    last_col = (window_x + 1) * window == padded_w
    crossing = (2 * last_row.to(tl.int32) + last_col.to(tl.int32)) * (shift > 0).to(tl.int32)
    return batch, src_y, src_x, in_map, pad_slots, crossing


@triton.jit
def _token_rows(batch, src_y, src_x, stride_b, stride_h, stride_w):
    """int64 element offsets of the tokens' rows in a (B, H, W, channels) tensor (no int32 overflow)."""
    return batch.to(tl.int64) * stride_b + src_y.to(tl.int64) * stride_h + src_x.to(tl.int64) * stride_w


@triton.jit
def _load_slice(
    qkv_ptr, pad_ptr, rows, in_map, pad_slots, channel0, d0, head_dim, stride_qc, stride_pc,
    BLOCK_D: tl.constexpr,
):
    """(BLOCK_N, BLOCK_D) chunk [d0, d0 + BLOCK_D) of one head's q, k or v (channels from channel0): in-map tokens
    from qkv, `pad_slots` from qkv_pad (a per-row choice of pointer: one load), others and columns past head_dim 0."""
    offs_d = d0 + tl.arange(0, BLOCK_D)
    channel = (channel0 + offs_d).to(tl.int64)  # times any stride: int64
    base = tl.where(in_map, qkv_ptr + rows, pad_ptr)
    stride = tl.where(in_map, stride_qc, stride_pc)
    mask = (in_map | pad_slots)[:, None] & (offs_d < head_dim)[None, :]
    return tl.load(base[:, None] + channel[None, :] * stride[:, None], mask=mask, other=0.0)


@triton.jit
def _load_rows(ptr, rows, in_map, channel0, d0, head_dim, stride_c, BLOCK_D: tl.constexpr):
    """Read a (BLOCK_N, BLOCK_D) chunk of one head's channels of the in-map tokens (0 elsewhere)."""
    offs_d = d0 + tl.arange(0, BLOCK_D)
    ptrs = ptr + rows[:, None] + (channel0 + offs_d).to(tl.int64)[None, :] * stride_c
    return tl.load(ptrs, mask=in_map[:, None] & (offs_d < head_dim)[None, :], other=0.0)


@triton.jit
def _store_rows(ptr, rows, in_map, channel0, d0, head_dim, stride_c, value, BLOCK_D: tl.constexpr):
    """Write a (BLOCK_N, BLOCK_D) chunk of one head's channels for the in-map tokens (padded ones are cropped)."""
    offs_d = d0 + tl.arange(0, BLOCK_D)
    ptrs = ptr + rows[:, None] + (channel0 + offs_d).to(tl.int64)[None, :] * stride_c
    tl.store(ptrs, value.to(ptr.dtype.element_ty), mask=in_map[:, None] & (offs_d < head_dim)[None, :])


@triton.jit
def _bias_tile(bias_ptr, head, is_token, token, stride_bh, stride_bi, stride_bj):
    """The head's relative-position bias over the slots, in its own dtype: 0 where a slot holds no token."""
    ptrs = bias_ptr + head * stride_bh + token[:, None] * stride_bi + token[None, :] * stride_bj
    return tl.load(ptrs, mask=is_token[:, None] & is_token[None, :], other=0.0)


@triton.jit
def _window_chunk0(
    qkv_ptr, pad_ptr, grad_out_ptr, win,
    stride_qb, stride_qh, stride_qw, stride_qc, stride_pc, stride_gob, stride_goh, stride_gow, stride_goc,
    height, width, padded_h, padded_w, window, windows_w, windows_per_image, shift, pad_limit,
    channels, q_channel0, head_dim,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, WITH_GRAD_OUT: tl.constexpr,
):
    """The first head-dim chunk of q, k, v (and dO when WITH_GRAD_OUT) of window `win`: the loop prefetches the next
    window's with it, so that its loads are in flight while the current window computes."""
    batch, src_y, src_x, in_map, pad_slots, crossing = _window_tokens(
        win, window, windows_w, windows_per_image, height, width, padded_h, padded_w, shift, pad_limit, BLOCK_N)
    rows = _token_rows(batch, src_y, src_x, stride_qb, stride_qh, stride_qw)
    q = _load_slice(qkv_ptr, pad_ptr, rows, in_map, pad_slots, q_channel0, 0, head_dim, stride_qc, stride_pc, BLOCK_D)
    k = _load_slice(qkv_ptr, pad_ptr, rows, in_map, pad_slots, channels + q_channel0, 0, head_dim, stride_qc,
                    stride_pc, BLOCK_D)
    v = _load_slice(qkv_ptr, pad_ptr, rows, in_map, pad_slots, 2 * channels + q_channel0, 0, head_dim, stride_qc,
                    stride_pc, BLOCK_D)
    if WITH_GRAD_OUT:
        grad_out_rows = _token_rows(batch, src_y, src_x, stride_gob, stride_goh, stride_gow)
        grad_o = _load_rows(grad_out_ptr, grad_out_rows, in_map, q_channel0, 0, head_dim, stride_goc, BLOCK_D)
    else:
        grad_o = v
    return q, k, v, grad_o


@triton.jit
def _window_probabilities(
    q, k, qkv_ptr, pad_ptr, rows, in_map, pad_slots, crossing, is_token, split_code, bias,
    q_channel0, k_channel0, head_dim, stride_qc, stride_pc, qk_scale_log2,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PRECISION: tl.constexpr, PREFETCHED: tl.constexpr,
):
    """P = softmax(scale q k^T + bias + mask) of one window and head, fp32 (BLOCK_N, BLOCK_N), 0 in the columns of
    slots without a token, from the first chunk's q and k (given, when PREFETCHED) and the others' (loaded). The
    logits are kept in base 2, log2(e) (scale q k^T + bias + mask), for exp2."""
    if PREFETCHED:
        logits = dot(q, tl.trans(k), None, DOT_PRECISION)
    else:
        logits = tl.full((BLOCK_N, BLOCK_N), 0.0, tl.float32)
    for d0 in tl.range(PREFETCHED * BLOCK_D, head_dim, BLOCK_D):
        q = _load_slice(qkv_ptr, pad_ptr, rows, in_map, pad_slots, q_channel0, d0, head_dim, stride_qc, stride_pc,
                        BLOCK_D)
        k = _load_slice(qkv_ptr, pad_ptr, rows, in_map, pad_slots, k_channel0, d0, head_dim, stride_qc, stride_pc,
                        BLOCK_D)
        logits = dot(q, tl.trans(k), logits, DOT_PRECISION)
    logits = logits * qk_scale_log2 + bias.to(tl.float32) * _LOG2E
    # Two slots are in different regions iff a band boundary crossing this window separates them.
    crossed = ((split_code[:, None] ^ split_code[None, :]) & crossing) != 0
    logits = tl.where(crossed, logits + _SHIFT_MASK_LOG2, logits)
    logits = tl.where(is_token[None, :], logits, float("-inf"))
    p = tl.exp2(logits - max_(logits, 1)[:, None])
    return p * (1.0 / sum_(p, 1))[:, None]


# ---------------------------------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------------------------------


@triton.jit
def _window_attention_fwd_kernel(
    # inputs: qkv (B, H, W, 3C), rel_bias (heads, N, N), qkv_pad (3C,) (any pointer of qkv's dtype if pad_limit == 0)
    qkv_ptr, bias_ptr, pad_ptr,
    # output (B, H, W, C)
    out_ptr,
    # strides, in elements
    stride_qb, stride_qh, stride_qw, stride_qc,
    stride_bh, stride_bi, stride_bj,
    stride_pc,
    stride_ob, stride_oh, stride_ow, stride_oc,
    # map geometry: map and padded map sizes, window size, windows per row / per image / in all
    height, width, padded_h, padded_w, window, windows_w, windows_per_image, num_windows,
    # cyclic shift (0: no mask); BLOCK_N if qkv_pad is given else 0; C, head dim, scale * log2(e)
    shift, pad_limit, channels, head_dim, qk_scale_log2,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    pid = tl.program_id(0)
    head = tl.program_id(1)
    programs = tl.num_programs(0)
    q_channel0 = head * head_dim
    v_channel0 = 2 * channels + q_channel0
    is_token, token, split_code = _window_slots(window, shift, BLOCK_N)
    bias = _bias_tile(bias_ptr, head, is_token, token, stride_bh, stride_bi, stride_bj)
    q, k, v, _ = _window_chunk0(
        qkv_ptr, pad_ptr, out_ptr, pid, stride_qb, stride_qh, stride_qw, stride_qc, stride_pc, 0, 0, 0, 0,
        height, width, padded_h, padded_w, window, windows_w, windows_per_image, shift, pad_limit,
        channels, q_channel0, head_dim, BLOCK_N, BLOCK_D, False)
    for win in tl.range(pid, num_windows, programs):
        # The next window's first chunk (the last window's again at the end: a harmless, unmasked reload).
        q_next, k_next, v_next, _ = _window_chunk0(
            qkv_ptr, pad_ptr, out_ptr, tl.minimum(win + programs, num_windows - 1),
            stride_qb, stride_qh, stride_qw, stride_qc, stride_pc, 0, 0, 0, 0,
            height, width, padded_h, padded_w, window, windows_w, windows_per_image, shift, pad_limit,
            channels, q_channel0, head_dim, BLOCK_N, BLOCK_D, False)
        batch, src_y, src_x, in_map, pad_slots, crossing = _window_tokens(
            win, window, windows_w, windows_per_image, height, width, padded_h, padded_w, shift, pad_limit, BLOCK_N)
        rows = _token_rows(batch, src_y, src_x, stride_qb, stride_qh, stride_qw)
        p = _window_probabilities(q, k, qkv_ptr, pad_ptr, rows, in_map, pad_slots, crossing, is_token, split_code,
                                  bias, q_channel0, channels + q_channel0, head_dim, stride_qc, stride_pc,
                                  qk_scale_log2, BLOCK_N, BLOCK_D, DOT_PRECISION, True)
        out_rows = _token_rows(batch, src_y, src_x, stride_ob, stride_oh, stride_ow)
        o = dot(p.to(v.dtype), v, None, DOT_PRECISION)
        _store_rows(out_ptr, out_rows, in_map, q_channel0, 0, head_dim, stride_oc, o, BLOCK_D)
        for d0 in tl.range(BLOCK_D, head_dim, BLOCK_D):
            v = _load_slice(qkv_ptr, pad_ptr, rows, in_map, pad_slots, v_channel0, d0, head_dim, stride_qc,
                            stride_pc, BLOCK_D)
            o = dot(p.to(v.dtype), v, None, DOT_PRECISION)
            _store_rows(out_ptr, out_rows, in_map, q_channel0, d0, head_dim, stride_oc, o, BLOCK_D)
        q, k, v = q_next, k_next, v_next


@triton.jit
def _store_pad_grad(part_ptr, pad_slots, channel0, d0, head_dim, grad, BLOCK_D: tl.constexpr):
    """Store the sum of the padded slots' gradient rows of a chunk into this window's fp32 qkv_pad partial row (zero
    for a window without padded slots): every element of the partials is written once, by one program."""
    offs_d = d0 + tl.arange(0, BLOCK_D)
    tl.store(part_ptr + channel0 + offs_d, sum_(tl.where(pad_slots[:, None], grad, 0.0), 0), mask=offs_d < head_dim)


@triton.jit
def _window_grads_chunk(
    q, k, grad_o, p_in, grad_s_in, grad_qkv_ptr, pad_part_ptr, grad_rows, in_map, pad_slots,
    q_channel0, k_channel0, v_channel0, d0, head_dim, stride_gqc, scale,
    BLOCK_D: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """dQ = scale dS K, dK = scale dS^T Q, dV = P^T dO of one head-dim chunk: written for the in-map tokens, the
    padded slots' rows summed into this window's qkv_pad partial."""
    grad_q = dot(grad_s_in, k, None, DOT_PRECISION) * scale
    _store_rows(grad_qkv_ptr, grad_rows, in_map, q_channel0, d0, head_dim, stride_gqc, grad_q, BLOCK_D)
    _store_pad_grad(pad_part_ptr, pad_slots, q_channel0, d0, head_dim, grad_q, BLOCK_D)
    grad_k = dot(tl.trans(grad_s_in), q, None, DOT_PRECISION) * scale
    _store_rows(grad_qkv_ptr, grad_rows, in_map, k_channel0, d0, head_dim, stride_gqc, grad_k, BLOCK_D)
    _store_pad_grad(pad_part_ptr, pad_slots, k_channel0, d0, head_dim, grad_k, BLOCK_D)
    grad_v = dot(tl.trans(p_in), grad_o, None, DOT_PRECISION)
    _store_rows(grad_qkv_ptr, grad_rows, in_map, v_channel0, d0, head_dim, stride_gqc, grad_v, BLOCK_D)
    _store_pad_grad(pad_part_ptr, pad_slots, v_channel0, d0, head_dim, grad_v, BLOCK_D)


@triton.jit
def _window_attention_bwd_kernel(
    # inputs: qkv (B, H, W, 3C), rel_bias (heads, N, N), qkv_pad (3C,) as in the forward; dO (B, H, W, C)
    qkv_ptr, bias_ptr, pad_ptr, grad_out_ptr,
    # outputs: dqkv (B, H, W, 3C); fp32 partials of d rel_bias (programs, heads, N, N) and d qkv_pad (windows, 3C)
    grad_qkv_ptr, grad_bias_part_ptr, grad_pad_part_ptr,
    # strides, in elements
    stride_qb, stride_qh, stride_qw, stride_qc,
    stride_bh, stride_bi, stride_bj,
    stride_pc,
    stride_gob, stride_goh, stride_gow, stride_goc,
    stride_gqb, stride_gqh, stride_gqw, stride_gqc,
    stride_gbp, stride_gbh, stride_gbi,
    stride_gpp,
    # map geometry and heads as in the forward; scale (for dQ and dK)
    height, width, padded_h, padded_w, window, windows_w, windows_per_image, num_windows,
    shift, pad_limit, channels, head_dim, scale, qk_scale_log2,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PRECISION: tl.constexpr, PREFETCH: tl.constexpr,
):
    pid = tl.program_id(0)
    head = tl.program_id(1)
    programs = tl.num_programs(0)
    q_channel0 = head * head_dim
    k_channel0 = channels + q_channel0
    v_channel0 = 2 * channels + q_channel0
    is_token, token, split_code = _window_slots(window, shift, BLOCK_N)
    bias = _bias_tile(bias_ptr, head, is_token, token, stride_bh, stride_bi, stride_bj)
    grad_bias = tl.full((BLOCK_N, BLOCK_N), 0.0, tl.float32)

    # With PREFETCH, q, k, v, dO of the first head-dim chunk come from the previous iteration's prefetch and the
    # loops below load the chunks after it; without, the loops load every chunk where it is used (fp32: holding the
    # prefetched tiles through the window would spill registers).
    first_d = PREFETCH * BLOCK_D
    if PREFETCH:
        q, k, v, grad_o = _window_chunk0(
            qkv_ptr, pad_ptr, grad_out_ptr, pid, stride_qb, stride_qh, stride_qw, stride_qc, stride_pc,
            stride_gob, stride_goh, stride_gow, stride_goc,
            height, width, padded_h, padded_w, window, windows_w, windows_per_image, shift, pad_limit,
            channels, q_channel0, head_dim, BLOCK_N, BLOCK_D, True)
    else:  # placeholders, never read
        q = tl.full((BLOCK_N, BLOCK_D), 0.0, qkv_ptr.dtype.element_ty)
        k, v, grad_o = q, q, q
    for win in tl.range(pid, num_windows, programs):
        if PREFETCH:  # the next window's first chunk (the last window's again at the end: a harmless reload)
            q_next, k_next, v_next, grad_o_next = _window_chunk0(
                qkv_ptr, pad_ptr, grad_out_ptr, tl.minimum(win + programs, num_windows - 1),
                stride_qb, stride_qh, stride_qw, stride_qc, stride_pc, stride_gob, stride_goh, stride_gow, stride_goc,
                height, width, padded_h, padded_w, window, windows_w, windows_per_image, shift, pad_limit,
                channels, q_channel0, head_dim, BLOCK_N, BLOCK_D, True)
        batch, src_y, src_x, in_map, pad_slots, crossing = _window_tokens(
            win, window, windows_w, windows_per_image, height, width, padded_h, padded_w, shift, pad_limit, BLOCK_N)
        rows = _token_rows(batch, src_y, src_x, stride_qb, stride_qh, stride_qw)
        grad_out_rows = _token_rows(batch, src_y, src_x, stride_gob, stride_goh, stride_gow)
        p = _window_probabilities(q, k, qkv_ptr, pad_ptr, rows, in_map, pad_slots, crossing, is_token, split_code,
                                  bias, q_channel0, k_channel0, head_dim, stride_qc, stride_pc, qk_scale_log2,
                                  BLOCK_N, BLOCK_D, DOT_PRECISION, PREFETCH)
        # dP = dO V^T (dO of padded slots is 0: they are cropped)
        if PREFETCH:
            grad_p = dot(grad_o, tl.trans(v), None, DOT_PRECISION)
        else:
            grad_p = tl.full((BLOCK_N, BLOCK_N), 0.0, tl.float32)
        for d0 in tl.range(first_d, head_dim, BLOCK_D):
            grad_o_d = _load_rows(grad_out_ptr, grad_out_rows, in_map, q_channel0, d0, head_dim, stride_goc, BLOCK_D)
            v_d = _load_slice(qkv_ptr, pad_ptr, rows, in_map, pad_slots, v_channel0, d0, head_dim, stride_qc,
                              stride_pc, BLOCK_D)
            grad_p = dot(grad_o_d, tl.trans(v_d), grad_p, DOT_PRECISION)
        # dS = P (dP - delta), delta_i = sum_j P_ij dP_ij
        grad_s = p * (grad_p - sum_(p * grad_p, 1)[:, None])
        grad_bias += grad_s
        p_in = p.to(qkv_ptr.dtype.element_ty)
        grad_s_in = grad_s.to(qkv_ptr.dtype.element_ty)

        grad_rows = _token_rows(batch, src_y, src_x, stride_gqb, stride_gqh, stride_gqw)
        pad_part_ptr = grad_pad_part_ptr + win * stride_gpp  # windows 3C < qkv.numel() / N: int32
        if PREFETCH:
            _window_grads_chunk(q, k, grad_o, p_in, grad_s_in, grad_qkv_ptr, pad_part_ptr, grad_rows, in_map,
                                pad_slots, q_channel0, k_channel0, v_channel0, 0, head_dim, stride_gqc, scale,
                                BLOCK_D, DOT_PRECISION)
        for d0 in tl.range(first_d, head_dim, BLOCK_D):
            q_d = _load_slice(qkv_ptr, pad_ptr, rows, in_map, pad_slots, q_channel0, d0, head_dim, stride_qc,
                              stride_pc, BLOCK_D)
            k_d = _load_slice(qkv_ptr, pad_ptr, rows, in_map, pad_slots, k_channel0, d0, head_dim, stride_qc,
                              stride_pc, BLOCK_D)
            grad_o_d = _load_rows(grad_out_ptr, grad_out_rows, in_map, q_channel0, d0, head_dim, stride_goc, BLOCK_D)
            _window_grads_chunk(q_d, k_d, grad_o_d, p_in, grad_s_in, grad_qkv_ptr, pad_part_ptr, grad_rows, in_map,
                                pad_slots, q_channel0, k_channel0, v_channel0, d0, head_dim, stride_gqc, scale,
                                BLOCK_D, DOT_PRECISION)
        if PREFETCH:
            q, k, v, grad_o = q_next, k_next, v_next, grad_o_next

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
    if 2 * windows > INT32_MAX:  # window indices (and the prefetch's index + programs) are int32
        raise ValueError(f"qkv of shape {tuple(qkv.shape)} has {windows} windows of {window_size} x {window_size}, "
                         f"more than the kernels' int32 window index allows ({INT32_MAX // 2})")


def _window_grid(qkv: torch.Tensor, window_size: int) -> tuple[int, int]:
    """Windows per column and per row of the padded map."""
    return -(-qkv.shape[1] // window_size), -(-qkv.shape[2] // window_size)


def _block_d(head_dim: int, widest: int) -> int:
    """Head-dim chunk: the next power of two, at least what tl.dot needs, at most `widest`."""
    return min(widest, max(MIN_DOT, triton.next_power_of_2(head_dim)))


def _programs_per_head(num_windows: int, num_heads: int, device: torch.device) -> int:
    """Persistent programs per head: about PROGRAMS_PER_SM per SM over all heads, never more than the windows."""
    return max(1, min(num_windows, triton.cdiv(sm_count(device) * PROGRAMS_PER_SM, num_heads)))


def _scalar_args(qkv: torch.Tensor, qkv_pad: torch.Tensor | None, num_heads: int, window_size: int,
                 shift_size: int) -> tuple:
    """The integer kernel arguments shared by both passes, in the kernels' order: map and padded map sizes, window
    size, windows per row / per image / in all, shift, pad limit, C and head dim."""
    batch, height, width, three_c = qkv.shape
    windows_h, windows_w = _window_grid(qkv, window_size)
    pad_limit = BLOCK_N if qkv_pad is not None else 0
    return (height, width, windows_h * window_size, windows_w * window_size, window_size, windows_w,
            windows_h * windows_w, batch * windows_h * windows_w, shift_size, pad_limit, three_c // 3,
            three_c // (3 * num_heads))


def _scale(qkv: torch.Tensor, num_heads: int, scale: float | None) -> float:
    return (qkv.shape[-1] // (3 * num_heads)) ** -0.5 if scale is None else scale


def _launch_shape(qkv: torch.Tensor, num_heads: int, window_size: int, widest_block_d: int) -> tuple[int, int]:
    """(programs per head, BLOCK_D) of a launch."""
    num_windows = qkv.shape[0] * math.prod(_window_grid(qkv, window_size))
    programs = _programs_per_head(num_windows, num_heads, qkv.device)
    return programs, _block_d(qkv.shape[-1] // (3 * num_heads), widest_block_d)


def window_attention_fwd(
    qkv: torch.Tensor, rel_bias: torch.Tensor, qkv_pad: torch.Tensor | None, num_heads: int, window_size: int,
    shift_size: int, scale: float | None,
) -> torch.Tensor:
    """out (B, H, W, C) in qkv's dtype; one launch."""
    _check_triton_inputs(qkv, window_size)
    batch, height, width, three_c = qkv.shape
    out = qkv.new_empty(batch, height, width, three_c // 3)
    if out.numel() == 0:
        return out
    programs, block_d = _launch_shape(qkv, num_heads, window_size, FWD_MAX_BLOCK_D)
    pad = qkv_pad if qkv_pad is not None else qkv  # never read without qkv_pad (pad_limit = 0)
    _window_attention_fwd_kernel[(programs, num_heads)](
        qkv, rel_bias, pad, out,
        *qkv.stride(), *rel_bias.stride(), pad.stride(-1), *out.stride(),
        *_scalar_args(qkv, qkv_pad, num_heads, window_size, shift_size),
        _scale(qkv, num_heads, scale) * LOG2E,
        BLOCK_N=BLOCK_N, BLOCK_D=block_d, DOT_PRECISION=DOT_PRECISION, num_warps=NUM_WARPS, num_stages=NUM_STAGES,
    )
    return out


def window_attention_bwd(
    grad_out: torch.Tensor, qkv: torch.Tensor, rel_bias: torch.Tensor, qkv_pad: torch.Tensor | None, num_heads: int,
    window_size: int, shift_size: int, scale: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(dqkv (B, H, W, 3C), d rel_bias (heads, N, N), d qkv_pad (3C,) or None without qkv_pad), each in its
    input's dtype. One kernel launch, then the fixed-order sums of the fp32 partials (over the programs for d rel_bias,
    over the windows for d qkv_pad)."""
    three_c = qkv.shape[-1]
    tokens = window_size * window_size
    grad_qkv = torch.empty_like(qkv, memory_format=torch.contiguous_format)
    if qkv.numel() == 0:
        zeros = [None if t is None else torch.zeros_like(t, memory_format=torch.contiguous_format)
                 for t in (rel_bias, qkv_pad)]
        return grad_qkv, *zeros
    programs, block_d = _launch_shape(qkv, num_heads, window_size, BWD_MAX_BLOCK_D)
    grad_bias_part = torch.empty(programs, num_heads, tokens, tokens, device=qkv.device, dtype=torch.float32)
    num_windows = qkv.shape[0] * math.prod(_window_grid(qkv, window_size))
    grad_pad_part = torch.empty(num_windows, three_c, device=qkv.device, dtype=torch.float32)
    pad = qkv_pad if qkv_pad is not None else qkv
    scale = _scale(qkv, num_heads, scale)
    _window_attention_bwd_kernel[(programs, num_heads)](
        qkv, rel_bias, pad, grad_out, grad_qkv, grad_bias_part, grad_pad_part,
        *qkv.stride(), *rel_bias.stride(), pad.stride(-1), *grad_out.stride(),
        *grad_qkv.stride(), *grad_bias_part.stride()[:3], grad_pad_part.stride(0),
        *_scalar_args(qkv, qkv_pad, num_heads, window_size, shift_size), scale, scale * LOG2E,
        BLOCK_N=BLOCK_N, BLOCK_D=block_d, DOT_PRECISION=DOT_PRECISION, PREFETCH=BWD_PREFETCH[qkv.dtype],
        num_warps=NUM_WARPS, num_stages=NUM_STAGES,
    )
    # Fixed-order reduces over the programs and the windows (no atomics: bitwise reproducible).
    grad_bias = grad_bias_part.sum(dim=0).to(rel_bias.dtype)
    grad_pad = None if qkv_pad is None else grad_pad_part.sum(dim=0).to(qkv_pad.dtype)
    return grad_qkv, grad_bias, grad_pad


# ---------------------------------------------------------------------------------------------------------------------
# Custom operators (kernels/_library.py), their autograd, and the public op
# ---------------------------------------------------------------------------------------------------------------------


@custom_op("window_attention_fwd")
def _forward_op(
    qkv: torch.Tensor, rel_bias: torch.Tensor, qkv_pad: torch.Tensor | None, num_heads: int, window_size: int,
    shift_size: int, scale: float | None,
) -> torch.Tensor:
    return window_attention_fwd(qkv, rel_bias, qkv_pad, num_heads, window_size, shift_size, scale)


@_forward_op.register_fake
def _(qkv, rel_bias, qkv_pad, num_heads, window_size, shift_size, scale):
    return qkv.new_empty(*qkv.shape[:-1], qkv.shape[-1] // 3)


@custom_op("window_attention_bwd")
def _backward_op(
    grad_out: torch.Tensor, qkv: torch.Tensor, rel_bias: torch.Tensor, qkv_pad: torch.Tensor | None, num_heads: int,
    window_size: int, shift_size: int, scale: float | None,
) -> list[torch.Tensor]:
    """[d qkv, d rel_bias] and, with qkv_pad, d qkv_pad (an operator cannot return None)."""
    grads = window_attention_bwd(grad_out, qkv, rel_bias, qkv_pad, num_heads, window_size, shift_size, scale)
    return [g for g in grads if g is not None]


@_backward_op.register_fake
def _(grad_out, qkv, rel_bias, qkv_pad, num_heads, window_size, shift_size, scale):
    return [torch.empty_like(t, memory_format=torch.contiguous_format) for t in (qkv, rel_bias, qkv_pad)
            if t is not None]


def _setup_context(ctx, inputs, output):
    """Saves qkv, rel_bias and qkv_pad only: the backward recomputes P."""
    qkv, rel_bias, qkv_pad, *config = inputs
    ctx.save_for_backward(qkv, rel_bias, qkv_pad)
    ctx.config = config


def _backward(ctx, grad_out):
    qkv, rel_bias, qkv_pad = ctx.saved_tensors
    grad_qkv, grad_bias, *grad_pad = _backward_op(grad_out, qkv, rel_bias, qkv_pad, *ctx.config)
    return grad_qkv, grad_bias, (grad_pad[0] if grad_pad else None), None, None, None, None


_forward_op.register_autograd(_backward, setup_context=_setup_context)


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
    check_window_attention(qkv, rel_bias, qkv_pad, num_heads, window_size, shift_size, scale)
    _check_triton_inputs(qkv, window_size)
    return _forward_op(qkv, rel_bias, qkv_pad, num_heads, window_size, shift_size, scale)


# ---------------------------------------------------------------------------------------------------------------------
# Ahead-of-time configurations
# ---------------------------------------------------------------------------------------------------------------------

_UNIT_STRIDES = ("stride_qc", "stride_bj", "stride_pc", "stride_oc", "stride_goc", "stride_gqc")  # contiguous: JIT == 1
_FLOAT_ARGS = ("qk_scale_log2", "scale")
_FP32_BUFFERS = {"grad_bias_part_ptr": "fp32", "grad_pad_part_ptr": "fp32"}


def aot_configs() -> list[AotConfig]:
    """Every (kernel, dtype, head-dim chunk) the launchers can pick: the chunk width is the only shape choice."""
    configs = []
    for dtype, element in TRITON_DTYPE_NAMES.items():
        for kernel, widest in ((_window_attention_fwd_kernel, FWD_MAX_BLOCK_D),
                               (_window_attention_bwd_kernel, BWD_MAX_BLOCK_D)):
            for block_d in sorted({_block_d(head_dim, widest) for head_dim in range(1, 2 * widest)}):
                constexprs = dict(BLOCK_N=BLOCK_N, BLOCK_D=block_d, DOT_PRECISION=DOT_PRECISION)
                if kernel is _window_attention_bwd_kernel:
                    constexprs.update(PREFETCH=BWD_PREFETCH[dtype])
                signature, constexprs = aot_signature(kernel, element, pointers=_FP32_BUFFERS, floats=_FLOAT_ARGS,
                                                      unit_strides=_UNIT_STRIDES, constexprs=constexprs)
                configs.append(AotConfig(
                    name=f"{kernel.__name__}[{element}, BLOCK_D={block_d}]", kernel=kernel, signature=signature,
                    constexprs=constexprs, num_warps=NUM_WARPS, num_stages=NUM_STAGES, tensor_cores=True,
                ))
    return configs
