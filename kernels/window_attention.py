"""Triton `kernels.window_attention`: Swin (shifted-)window attention with zero-copy padding, cyclic shift, window
partition and merge, the relative-position bias and the 9-region shift mask, forward and backward.

Semantics (kernels/reference/window_attention.py, the released SCA-MTL code): the H x W map is padded bottom/right
to Hp x Wp (multiples of the window w) with tokens whose q, k, v are `qkv_pad`, rolled by (-s, -s), cut into w x w
windows of N = w^2 tokens; in every window and head

    S = scale * Q K^T + bias + M,    P = softmax_rows(S),    O = P V,

with M = -100 between tokens of different regions of the rolled padded map (rows [0, Hp-w), [Hp-w, Hp-s),
[Hp-s, Hp) times the same column bands; M = 0 when s = 0); the windows are merged, rolled back and cropped.

Index arithmetic instead of data movement. Slot n of window (b, wy, wx) sits at (ry, rx) = (wy w + n // w,
wx w + n % w) of the rolled padded map, i.e. at (y, x) = ((ry + s) mod Hp, (rx + s) mod Wp) of the padded map: the
kernels read q, k, v of that token from qkv (B, H, W, 3C; last dim ordered (3, heads, head_dim)) when y < H and
x < W and take `qkv_pad` otherwise, and write O there (never for padded tokens, which are cropped). The shift mask
comes from the band ids of (ry, rx). No padded, rolled or partitioned copy and no dense mask exists in either pass.

VJP (per window and head; dO = 0 on padded tokens since they are cropped):

    dV = P^T dO,    dP = dO V^T,    delta_i = sum_j P_ij dP_ij  (= dO_i . O_i),    dS = P * (dP - delta),
    dQ = scale dS K,    dK = scale dS^T Q,    d bias = sum over batch and windows of dS,
    d qkv_pad = sum over padded token slots of (dQ, dK, dV)   (dQ of a padded slot is 0: its dO is 0),

and every in-map token's dQ, dK, dV is written to dqkv (B, H, W, 3C) exactly once: the windows partition the
padded map. delta comes from P and dP in registers, so the backward needs neither O nor a log-sum-exp: it saves
only qkv, rel_bias and qkv_pad and recomputes P.

Kernels and work split (grid (programs per head, heads), persistent): a program owns one head and walks the
windows pid, pid + programs, ... (batch-major, row-major), so the head's N x N bias is loaded once per program and
the bias gradient is accumulated across all its windows in registers. The whole window's scores live in registers
(N padded to BLOCK_N = 64: windows up to 8 x 8); the head dim is walked in chunks of BLOCK_D (16, 32 or 64;
head dims 3..216 and beyond, masked loads pad a chunk to what `tl.dot` needs), so 216 -> 4 chunks never holds more
than a 64 x 64 operand. The exact fp32 softmax uses exp2 with scale * log2(e) and log2(e) folded into the logits.
Deterministic reductions without atomics: every program writes its fp32 partial of the bias gradient
(programs, heads, N, N) and of the qkv_pad gradient (programs, 3C) (each program owns its rows), and a fixed-order
torch sum over the programs dimension finishes them: two runs are bitwise identical.

Precision of every product: all three forward and five backward products are `tl.dot` with fp32 accumulation.
fp16/bf16 inputs: operands in the input dtype (q, k, v, dO as loaded; P and dS rounded to it for the P V,
P^T dO, dS K and dS^T Q products). fp32 inputs: operands in fp32 on tensor cores with 3xTF32 ("tf32x3"), about
fp32 accuracy. Softmax, delta, dS, the partials and every statistic are fp32; outputs are rounded once to the
input dtype.

Bytes and FLOPs (B batch, Hp x Wp padded map, C = heads * head_dim, e bytes per element, T = B H W map tokens,
Tp = B Hp Wp padded tokens, P programs):
    forward  reads qkv 3 C e T and writes out C e T (minimal: 4 C e T), plus the bias once per program;
             4 N C Tp FLOPs in the two products, N heads Tp exponentials;
    backward reads qkv 3 C e T and dO C e T, writes dqkv 3 C e T (minimal: 7 C e T), plus the partials
             P heads N^2 4 + P 3 C 4 bytes written and read once by the reduce; 10 N C Tp FLOPs (the recomputed
             Q K^T, dP, dV, dQ, dK), N heads Tp exponentials.

Anchors: zzd1992/FlashWindowAttention (whole window's scores in registers, head dim walked in chunks, backward
recomputes per window with no LSE and no dQ atomics; we replace its atomic bias gradient by per-program partials as
its downstream variant func_flash_swin_v3 does) and its early commit 3b78937 (q, k, v read in image layout with
index math, no partition copy), extended here with the cyclic shift, the 9-region mask and the released code's
padding (padded tokens take qkv_pad instead of being masked); FlashAttention-2's dS = P (dP - delta); Microsoft
Swin's fused window-process kernels (roll + partition as one pass; here as no pass at all).
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

from ._aot import AotConfig
from ._autocast import autocast_aware
from ._checks import check_window_attention
from ._interpret import use_interpreter_without_cuda
from ._launch import INT32_MAX, TRITON_DTYPE_NAMES, check_kernel_dtype, sm_count
from .reference.window_attention import SHIFT_MASK_VALUE

use_interpreter_without_cuda()

BLOCK_N = 64  # token slots per window in registers: windows up to 8 x 8
MAX_WINDOW = math.isqrt(BLOCK_N)
MIN_DOT = 16  # tl.dot needs every dimension >= 16
MAX_BLOCK_D = 64  # the widest head-dim chunk: 64 x 64 operands next to the 64 x 64 fp32 score tiles
PROGRAMS_PER_SM = 4  # persistent programs (all heads together) per SM: what fits at ~128 registers per thread
FWD_WARPS = 4
BWD_WARPS = 8  # the backward holds P, dP/dS, the bias and its gradient accumulator (4 x 64 x 64 fp32)
NUM_STAGES = 1
DOT_PRECISION = {torch.float32: "tf32x3", torch.float16: "tf32", torch.bfloat16: "tf32"}  # ignored for fp16/bf16

_LOG2E: tl.constexpr = tl.constexpr(1.4426950408889634)
_SHIFT_MASK_LOG2: tl.constexpr = tl.constexpr(SHIFT_MASK_VALUE * 1.4426950408889634)


# ---------------------------------------------------------------------------------------------------------------------
# Device helpers shared by the forward and backward kernels
# ---------------------------------------------------------------------------------------------------------------------


@triton.jit
def _window_tokens(
    win, window, windows_w, windows_per_image,  # window index (batch-major, row-major); window size; window grid
    height, width, padded_h, padded_w, shift,  # map, padded map, roll amount
    row_band_1, row_band_2, col_band_1, col_band_2,  # shift-mask band thresholds of the rolled padded map
    BLOCK_N: tl.constexpr,
):
    """Where the BLOCK_N token slots of window `win` come from: batch, source row/column in the padded map, which
    slots are tokens (n < w^2), which of those lie inside the map, and each slot's shift-mask region."""
    offs_n = tl.arange(0, BLOCK_N)
    batch = win // windows_per_image
    local = win % windows_per_image
    rolled_y = (local // windows_w) * window + offs_n // window
    rolled_x = (local % windows_w) * window + offs_n % window
    src_y = (rolled_y + shift) % padded_h
    src_x = (rolled_x + shift) % padded_w
    mask_n = offs_n < window * window
    in_map = mask_n & (src_y < height) & (src_x < width)
    band_y = (rolled_y >= row_band_1).to(tl.int32) + (rolled_y >= row_band_2).to(tl.int32)
    band_x = (rolled_x >= col_band_1).to(tl.int32) + (rolled_x >= col_band_2).to(tl.int32)
    return batch, src_y, src_x, mask_n, in_map, band_y * 3 + band_x


@triton.jit
def _token_rows(batch, src_y, src_x, stride_b, stride_h, stride_w):
    """int64 element offsets of the tokens' rows in a (B, H, W, channels) tensor (no int32 overflow)."""
    return batch.to(tl.int64) * stride_b + src_y.to(tl.int64) * stride_h + src_x.to(tl.int64) * stride_w


@triton.jit
def _load_slice(
    qkv_ptr, pad_ptr, rows, in_map, channel0, d0, head_dim, stride_qc, stride_pc, has_pad,
    BLOCK_D: tl.constexpr,
):
    """(BLOCK_N, BLOCK_D) chunk [d0, d0 + BLOCK_D) of one head's q, k or v (channels from channel0): in-map tokens
    from qkv, the others from qkv_pad (zeros without it); columns past head_dim are 0."""
    offs_d = d0 + tl.arange(0, BLOCK_D)
    mask_d = offs_d < head_dim
    channel = channel0 + offs_d
    x = tl.load(qkv_ptr + rows[:, None] + channel[None, :] * stride_qc, mask=in_map[:, None] & mask_d[None, :],
                other=0.0)
    pad = tl.load(pad_ptr + channel * stride_pc, mask=mask_d & (has_pad != 0), other=0.0)
    return tl.where(in_map[:, None], x, pad[None, :])


@triton.jit
def _store_slice(ptr, rows, in_map, channel0, d0, head_dim, stride_c, value, BLOCK_D: tl.constexpr):
    """Write a (BLOCK_N, BLOCK_D) chunk of one head's channels for the in-map tokens (padded ones are cropped)."""
    offs_d = d0 + tl.arange(0, BLOCK_D)
    mask_d = offs_d < head_dim
    ptrs = ptr + rows[:, None] + (channel0 + offs_d)[None, :] * stride_c
    tl.store(ptrs, value.to(ptr.dtype.element_ty), mask=in_map[:, None] & mask_d[None, :])


@triton.jit
def _bias_tile(bias_ptr, head, tokens, stride_bh, stride_bi, stride_bj, BLOCK_N: tl.constexpr):
    """The head's (N, N) relative-position bias as an fp32 (BLOCK_N, BLOCK_N) tile, 0 outside."""
    offs_n = tl.arange(0, BLOCK_N)
    mask = (offs_n[:, None] < tokens) & (offs_n[None, :] < tokens)
    ptrs = bias_ptr + head * stride_bh + offs_n[:, None] * stride_bi + offs_n[None, :] * stride_bj
    return tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _window_probabilities(
    qkv_ptr, pad_ptr, rows, in_map, mask_n, region, bias_log2,
    q_channel0, k_channel0, head_dim, stride_qc, stride_pc, has_pad, qk_scale_log2,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """P = softmax(scale q k^T + bias + mask) of one window and head, fp32 (BLOCK_N, BLOCK_N), 0 in columns past N.
    The logits are kept in base 2: log2(e) (scale q k^T + bias + mask), so that exp2 gives the exact softmax."""
    logits = tl.zeros((BLOCK_N, BLOCK_N), dtype=tl.float32)
    for d0 in tl.range(0, head_dim, BLOCK_D):
        q = _load_slice(qkv_ptr, pad_ptr, rows, in_map, q_channel0, d0, head_dim, stride_qc, stride_pc, has_pad,
                        BLOCK_D)
        k = _load_slice(qkv_ptr, pad_ptr, rows, in_map, k_channel0, d0, head_dim, stride_qc, stride_pc, has_pad,
                        BLOCK_D)
        logits = tl.dot(q, tl.trans(k), logits, input_precision=DOT_PRECISION)
    logits = logits * qk_scale_log2 + bias_log2
    logits = tl.where(region[:, None] != region[None, :], logits + _SHIFT_MASK_LOG2, logits)
    logits = tl.where(mask_n[None, :], logits, float("-inf"))
    p = tl.exp2(logits - tl.max(logits, axis=1)[:, None])
    return p * (1.0 / tl.sum(p, axis=1))[:, None]


# ---------------------------------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------------------------------


@triton.jit
def _window_attention_fwd_kernel(
    # inputs: qkv (B, H, W, 3C), rel_bias (heads, N, N), qkv_pad (3C,) (any pointer of qkv's dtype if has_pad == 0)
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
    # cyclic shift and the band thresholds of the 9-region mask (rows, columns; no band ever starts when s = 0)
    shift, row_band_1, row_band_2, col_band_1, col_band_2,
    # heads: C, head dim, whether qkv_pad is given, scale * log2(e)
    channels, head_dim, has_pad, qk_scale_log2,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    pid = tl.program_id(0)
    head = tl.program_id(1)
    q_channel0 = head * head_dim
    bias_log2 = _bias_tile(bias_ptr, head, window * window, stride_bh, stride_bi, stride_bj, BLOCK_N) * _LOG2E
    for win in tl.range(pid, num_windows, tl.num_programs(0)):
        batch, src_y, src_x, mask_n, in_map, region = _window_tokens(
            win, window, windows_w, windows_per_image, height, width, padded_h, padded_w, shift,
            row_band_1, row_band_2, col_band_1, col_band_2, BLOCK_N)
        rows = _token_rows(batch, src_y, src_x, stride_qb, stride_qh, stride_qw)
        p = _window_probabilities(qkv_ptr, pad_ptr, rows, in_map, mask_n, region, bias_log2,
                                  q_channel0, channels + q_channel0, head_dim, stride_qc, stride_pc, has_pad,
                                  qk_scale_log2, BLOCK_N, BLOCK_D, DOT_PRECISION)
        out_rows = _token_rows(batch, src_y, src_x, stride_ob, stride_oh, stride_ow)
        for d0 in tl.range(0, head_dim, BLOCK_D):
            v = _load_slice(qkv_ptr, pad_ptr, rows, in_map, 2 * channels + q_channel0, d0, head_dim, stride_qc,
                            stride_pc, has_pad, BLOCK_D)
            o = tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
            _store_slice(out_ptr, out_rows, in_map, q_channel0, d0, head_dim, stride_oc, o, BLOCK_D)


@triton.jit
def _accumulate_pad_grad(part_ptr, pad_slots, channel0, d0, head_dim, grad, BLOCK_D: tl.constexpr):
    """Add the padded slots' gradient rows of a chunk to this program's own fp32 qkv_pad partial row."""
    offs_d = d0 + tl.arange(0, BLOCK_D)
    mask_d = offs_d < head_dim
    ptrs = part_ptr + channel0 + offs_d
    total = tl.load(ptrs, mask=mask_d, other=0.0) + tl.sum(tl.where(pad_slots[:, None], grad, 0.0), axis=0)
    tl.store(ptrs, total, mask=mask_d)


@triton.jit
def _window_attention_bwd_kernel(
    # inputs: qkv (B, H, W, 3C), rel_bias (heads, N, N), qkv_pad (3C,) as in the forward; dO (B, H, W, C)
    qkv_ptr, bias_ptr, pad_ptr, grad_out_ptr,
    # outputs: dqkv (B, H, W, 3C); fp32 partials of d rel_bias (programs, heads, N, N) and d qkv_pad (programs, 3C)
    grad_qkv_ptr, grad_bias_part_ptr, grad_pad_part_ptr,
    # strides, in elements
    stride_qb, stride_qh, stride_qw, stride_qc,
    stride_bh, stride_bi, stride_bj,
    stride_pc,
    stride_gob, stride_goh, stride_gow, stride_goc,
    stride_gqb, stride_gqh, stride_gqw, stride_gqc,
    stride_gbp, stride_gbh, stride_gbi,
    stride_gpp,
    # map geometry, shift and heads as in the forward; scale (for dQ and dK)
    height, width, padded_h, padded_w, window, windows_w, windows_per_image, num_windows,
    shift, row_band_1, row_band_2, col_band_1, col_band_2,
    channels, head_dim, has_pad, scale, qk_scale_log2,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    pid = tl.program_id(0)
    head = tl.program_id(1)
    tokens = window * window
    q_channel0 = head * head_dim
    k_channel0 = channels + q_channel0
    v_channel0 = 2 * channels + q_channel0
    bias_log2 = _bias_tile(bias_ptr, head, tokens, stride_bh, stride_bi, stride_bj, BLOCK_N) * _LOG2E
    grad_bias = tl.zeros((BLOCK_N, BLOCK_N), dtype=tl.float32)
    pad_part_ptr = grad_pad_part_ptr + pid * stride_gpp
    for d0 in tl.range(0, head_dim, BLOCK_D):  # this program's qkv_pad partial starts at 0
        offs_d = d0 + tl.arange(0, BLOCK_D)
        for channel0 in tl.static_range(0, 3):
            tl.store(pad_part_ptr + channel0 * channels + q_channel0 + offs_d, tl.zeros((BLOCK_D,), tl.float32),
                     mask=offs_d < head_dim)

    for win in tl.range(pid, num_windows, tl.num_programs(0)):
        batch, src_y, src_x, mask_n, in_map, region = _window_tokens(
            win, window, windows_w, windows_per_image, height, width, padded_h, padded_w, shift,
            row_band_1, row_band_2, col_band_1, col_band_2, BLOCK_N)
        rows = _token_rows(batch, src_y, src_x, stride_qb, stride_qh, stride_qw)
        grad_out_rows = _token_rows(batch, src_y, src_x, stride_gob, stride_goh, stride_gow)
        p = _window_probabilities(qkv_ptr, pad_ptr, rows, in_map, mask_n, region, bias_log2,
                                  q_channel0, k_channel0, head_dim, stride_qc, stride_pc, has_pad,
                                  qk_scale_log2, BLOCK_N, BLOCK_D, DOT_PRECISION)
        # dP = dO V^T (dO of padded slots is 0: they are cropped)
        grad_p = tl.zeros((BLOCK_N, BLOCK_N), dtype=tl.float32)
        for d0 in tl.range(0, head_dim, BLOCK_D):
            grad_o = _load_slice(grad_out_ptr, grad_out_ptr, grad_out_rows, in_map, q_channel0, d0, head_dim,
                                 stride_goc, 0, 0, BLOCK_D)
            v = _load_slice(qkv_ptr, pad_ptr, rows, in_map, v_channel0, d0, head_dim, stride_qc, stride_pc, has_pad,
                            BLOCK_D)
            grad_p = tl.dot(grad_o, tl.trans(v), grad_p, input_precision=DOT_PRECISION)
        # dS = P (dP - delta), delta_i = sum_j P_ij dP_ij
        grad_s = p * (grad_p - tl.sum(p * grad_p, axis=1)[:, None])
        grad_bias += grad_s
        p_in = p.to(qkv_ptr.dtype.element_ty)
        grad_s_in = grad_s.to(qkv_ptr.dtype.element_ty)

        grad_rows = _token_rows(batch, src_y, src_x, stride_gqb, stride_gqh, stride_gqw)
        pad_slots = mask_n & ~in_map
        for d0 in tl.range(0, head_dim, BLOCK_D):
            k = _load_slice(qkv_ptr, pad_ptr, rows, in_map, k_channel0, d0, head_dim, stride_qc, stride_pc, has_pad,
                            BLOCK_D)
            grad_q = tl.dot(grad_s_in, k, input_precision=DOT_PRECISION) * scale
            _store_slice(grad_qkv_ptr, grad_rows, in_map, q_channel0, d0, head_dim, stride_gqc, grad_q, BLOCK_D)
            _accumulate_pad_grad(pad_part_ptr, pad_slots, q_channel0, d0, head_dim, grad_q, BLOCK_D)

            q = _load_slice(qkv_ptr, pad_ptr, rows, in_map, q_channel0, d0, head_dim, stride_qc, stride_pc, has_pad,
                            BLOCK_D)
            grad_k = tl.dot(tl.trans(grad_s_in), q, input_precision=DOT_PRECISION) * scale
            _store_slice(grad_qkv_ptr, grad_rows, in_map, k_channel0, d0, head_dim, stride_gqc, grad_k, BLOCK_D)
            _accumulate_pad_grad(pad_part_ptr, pad_slots, k_channel0, d0, head_dim, grad_k, BLOCK_D)

            grad_o = _load_slice(grad_out_ptr, grad_out_ptr, grad_out_rows, in_map, q_channel0, d0, head_dim,
                                 stride_goc, 0, 0, BLOCK_D)
            grad_v = tl.dot(tl.trans(p_in), grad_o, input_precision=DOT_PRECISION)
            _store_slice(grad_qkv_ptr, grad_rows, in_map, v_channel0, d0, head_dim, stride_gqc, grad_v, BLOCK_D)
            _accumulate_pad_grad(pad_part_ptr, pad_slots, v_channel0, d0, head_dim, grad_v, BLOCK_D)

    offs_n = tl.arange(0, BLOCK_N)
    ptrs = (grad_bias_part_ptr + pid * stride_gbp + head * stride_gbh + offs_n[:, None] * stride_gbi
            + offs_n[None, :])
    tl.store(ptrs, grad_bias, mask=(offs_n[:, None] < tokens) & (offs_n[None, :] < tokens))


# ---------------------------------------------------------------------------------------------------------------------
# Launchers
# ---------------------------------------------------------------------------------------------------------------------


def _check_triton_inputs(qkv: torch.Tensor, window_size: int, num_heads: int) -> None:
    """What the Triton kernels need beyond the shared validator."""
    check_kernel_dtype("qkv", qkv)
    if window_size > MAX_WINDOW:
        raise ValueError(
            f"window_size must be <= {MAX_WINDOW} for the triton backend (a window's {MAX_WINDOW ** 2} tokens are "
            f"held in registers), got {window_size}"
        )
    if qkv.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(f"qkv must be on a CUDA device for the triton backend, got device {qkv.device}")
    batch, height, width, _ = qkv.shape
    windows = batch * -(-height // window_size) * -(-width // window_size)
    if windows > INT32_MAX:
        raise ValueError(f"qkv of shape {tuple(qkv.shape)} has {windows} windows of {window_size} x {window_size}, "
                         f"more than the kernels' int32 window index allows ({INT32_MAX})")


def _block_d(head_dim: int) -> int:
    """Head-dim chunk: the next power of two, at least what tl.dot needs, at most MAX_BLOCK_D."""
    return min(MAX_BLOCK_D, max(MIN_DOT, triton.next_power_of_2(head_dim)))


def _programs_per_head(num_windows: int, num_heads: int, device: torch.device) -> int:
    """Persistent programs per head: about PROGRAMS_PER_SM per SM over all heads, never more than the windows."""
    return max(1, min(num_windows, triton.cdiv(sm_count(device) * PROGRAMS_PER_SM, num_heads)))


def _geometry(qkv: torch.Tensor, num_heads: int, window_size: int, shift_size: int, scale: float | None) -> dict:
    """The scalar kernel arguments shared by both passes (map, padded map, windows, shift bands, heads)."""
    batch, height, width, three_c = qkv.shape
    channels = three_c // 3
    head_dim = channels // num_heads
    padded_h, padded_w = -(-height // window_size) * window_size, -(-width // window_size) * window_size
    windows_w = padded_w // window_size
    windows_per_image = (padded_h // window_size) * windows_w
    scale = head_dim**-0.5 if scale is None else scale
    # Bands of the rolled padded map: [0, Hp - w), [Hp - w, Hp - s), [Hp - s, Hp); unshifted: one band, no mask.
    row_bands = (padded_h - window_size, padded_h - shift_size) if shift_size else (padded_h, padded_h)
    col_bands = (padded_w - window_size, padded_w - shift_size) if shift_size else (padded_w, padded_w)
    return dict(
        height=height, width=width, padded_h=padded_h, padded_w=padded_w, window=window_size, windows_w=windows_w,
        windows_per_image=windows_per_image, num_windows=batch * windows_per_image,
        shift=shift_size, row_band_1=row_bands[0], row_band_2=row_bands[1], col_band_1=col_bands[0],
        col_band_2=col_bands[1], channels=channels, head_dim=head_dim, scale=scale,
        qk_scale_log2=scale * math.log2(math.e),
    )


def window_attention_fwd(
    qkv: torch.Tensor, rel_bias: torch.Tensor, qkv_pad: torch.Tensor | None, num_heads: int, window_size: int,
    shift_size: int, scale: float | None,
) -> torch.Tensor:
    """out (B, H, W, C) in qkv's dtype; one launch."""
    _check_triton_inputs(qkv, window_size, num_heads)
    batch, height, width, three_c = qkv.shape
    out = qkv.new_empty(batch, height, width, three_c // 3)
    if out.numel() == 0:
        return out
    geo = _geometry(qkv, num_heads, window_size, shift_size, scale)
    pad = qkv_pad if qkv_pad is not None else qkv
    grid = (_programs_per_head(geo["num_windows"], num_heads, qkv.device), num_heads)
    _window_attention_fwd_kernel[grid](
        qkv, rel_bias, pad, out,
        *qkv.stride(), *rel_bias.stride(), pad.stride(0) if qkv_pad is not None else 1, *out.stride(),
        geo["height"], geo["width"], geo["padded_h"], geo["padded_w"], geo["window"], geo["windows_w"],
        geo["windows_per_image"], geo["num_windows"],
        geo["shift"], geo["row_band_1"], geo["row_band_2"], geo["col_band_1"], geo["col_band_2"],
        geo["channels"], geo["head_dim"], int(qkv_pad is not None), geo["qk_scale_log2"],
        BLOCK_N=BLOCK_N, BLOCK_D=_block_d(geo["head_dim"]), DOT_PRECISION=DOT_PRECISION[qkv.dtype],
        num_warps=FWD_WARPS, num_stages=NUM_STAGES,
    )
    return out


def window_attention_bwd(
    grad_out: torch.Tensor, qkv: torch.Tensor, rel_bias: torch.Tensor, qkv_pad: torch.Tensor | None, num_heads: int,
    window_size: int, shift_size: int, scale: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dqkv (B, H, W, 3C), d rel_bias (heads, N, N), d qkv_pad (3C,)), each in its input's dtype (d qkv_pad in
    qkv's dtype, also when qkv_pad is None). One kernel launch plus the fixed-order sums of the fp32 partials."""
    batch, height, width, three_c = qkv.shape
    grad_qkv = torch.empty_like(qkv, memory_format=torch.contiguous_format)
    tokens = window_size * window_size
    if qkv.numel() == 0:
        return grad_qkv, torch.zeros_like(rel_bias), qkv.new_zeros(three_c)
    geo = _geometry(qkv, num_heads, window_size, shift_size, scale)
    programs = _programs_per_head(geo["num_windows"], num_heads, qkv.device)
    grad_bias_part = torch.empty(programs, num_heads, tokens, tokens, device=qkv.device, dtype=torch.float32)
    grad_pad_part = torch.empty(programs, three_c, device=qkv.device, dtype=torch.float32)
    pad = qkv_pad if qkv_pad is not None else qkv
    _window_attention_bwd_kernel[(programs, num_heads)](
        qkv, rel_bias, pad, grad_out, grad_qkv, grad_bias_part, grad_pad_part,
        *qkv.stride(), *rel_bias.stride(), pad.stride(0) if qkv_pad is not None else 1, *grad_out.stride(),
        *grad_qkv.stride(), *grad_bias_part.stride()[:3], grad_pad_part.stride(0),
        geo["height"], geo["width"], geo["padded_h"], geo["padded_w"], geo["window"], geo["windows_w"],
        geo["windows_per_image"], geo["num_windows"],
        geo["shift"], geo["row_band_1"], geo["row_band_2"], geo["col_band_1"], geo["col_band_2"],
        geo["channels"], geo["head_dim"], int(qkv_pad is not None), geo["scale"], geo["qk_scale_log2"],
        BLOCK_N=BLOCK_N, BLOCK_D=_block_d(geo["head_dim"]), DOT_PRECISION=DOT_PRECISION[qkv.dtype],
        num_warps=BWD_WARPS, num_stages=NUM_STAGES,
    )
    # Fixed-order reduce over the programs dimension (no atomics: bitwise reproducible).
    grad_bias = grad_bias_part.sum(dim=0).to(rel_bias.dtype)
    grad_pad = grad_pad_part.sum(dim=0).to(qkv.dtype)
    return grad_qkv, grad_bias, grad_pad


# ---------------------------------------------------------------------------------------------------------------------
# Autograd and the public op
# ---------------------------------------------------------------------------------------------------------------------


class WindowAttentionFunction(torch.autograd.Function):
    """Forward and backward through the Triton kernels; saves qkv, rel_bias and qkv_pad only (P is recomputed)."""

    @staticmethod
    def forward(ctx, qkv, rel_bias, qkv_pad, num_heads, window_size, shift_size, scale):
        out = window_attention_fwd(qkv, rel_bias, qkv_pad, num_heads, window_size, shift_size, scale)
        ctx.save_for_backward(qkv, rel_bias, qkv_pad)
        ctx.config = (num_heads, window_size, shift_size, scale)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        qkv, rel_bias, qkv_pad = ctx.saved_tensors
        grad_qkv, grad_bias, grad_pad = window_attention_bwd(grad_out, qkv, rel_bias, qkv_pad, *ctx.config)
        return grad_qkv, grad_bias, (grad_pad if qkv_pad is not None else None), None, None, None, None


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
    _check_triton_inputs(qkv, window_size, num_heads)
    return WindowAttentionFunction.apply(qkv, rel_bias, qkv_pad, num_heads, window_size, shift_size, scale)


# ---------------------------------------------------------------------------------------------------------------------
# Ahead-of-time configurations
# ---------------------------------------------------------------------------------------------------------------------

_UNIT_STRIDES = ("stride_qc", "stride_bj", "stride_pc", "stride_oc", "stride_goc", "stride_gqc")  # JIT: == 1
_FLOAT_ARGS = ("qk_scale_log2", "scale")


def _aot_signature(kernel, dtype: torch.dtype) -> tuple[dict, dict]:
    """Triton signature and constexprs of a launch with qkv of `dtype`, contiguous channels (a stride of 1 is
    specialised to a constant by the JIT, as here) and the fp32 partial buffers."""
    element = TRITON_DTYPE_NAMES[dtype]
    signature, constexprs = {}, {}
    for name in kernel.arg_names:
        if name in ("grad_bias_part_ptr", "grad_pad_part_ptr"):
            signature[name] = "*fp32"
        elif name.endswith("_ptr"):
            signature[name] = f"*{element}"
        elif name in _UNIT_STRIDES:
            signature[name], constexprs[name] = "constexpr", 1
        elif name in _FLOAT_ARGS:
            signature[name] = "fp32"
        elif name.isupper() or name.startswith(("BLOCK", "DOT")):
            signature[name] = "constexpr"
        else:
            signature[name] = "i32"
    return signature, constexprs


def aot_configs() -> list[AotConfig]:
    """Every (kernel, dtype, head-dim chunk) the launchers can pick: the head-dim chunk is the only shape choice."""
    configs = []
    for dtype in TRITON_DTYPE_NAMES:
        for block_d in (MIN_DOT, 2 * MIN_DOT, MAX_BLOCK_D):
            for kernel, warps in ((_window_attention_fwd_kernel, FWD_WARPS), (_window_attention_bwd_kernel, BWD_WARPS)):
                signature, constexprs = _aot_signature(kernel, dtype)
                constexprs.update(BLOCK_N=BLOCK_N, BLOCK_D=block_d, DOT_PRECISION=DOT_PRECISION[dtype])
                configs.append(AotConfig(
                    name=f"{kernel.__name__}[{TRITON_DTYPE_NAMES[dtype]}, BLOCK_D={block_d}]", kernel=kernel,
                    signature=signature, constexprs=constexprs, num_warps=warps, num_stages=NUM_STAGES,
                    tensor_cores=True,
                ))
    return configs
