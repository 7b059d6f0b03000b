"""Triton backend of `kernels.linear_cross_attention`: softplus-feature linear cross attention, forward and backward.

Math (one batch element; p_i = phi(q_i), f_a = phi(k_a), phi = softplus or identity, applied on load):

    S = sum_a v_a f_a^T  (E x D),   z = sum_a f_a  (D),   mu = mean_a v_a  (E)
    den_i = z . p_i,   m_i = max(den_i, eps),   out_i = S p_i / m_i

eps is applied to the sum (not a mean), exactly as in the reference. The kernels keep the state *centred*,
S_c = S - mu z^T = sum_a (v_a - mu) f_a^T, and compute out_i = S_c p_i / m_i + mu den_i / m_i. This is the same
function, but the rounding of the tensor-core operands (bf16 or TF32) then scales with the spread of v, not its
mean. The backward needs that: dq is a difference of two terms of order Ls * mean(v) whose result is of order
sqrt(Ls) * std(v), so an uncentred bf16 state would lose up to sqrt(19200) ~ 140 times its precision there (relu
values have mean ~ std). For the same reason the state pass also shifts the features by a per-split estimate of
their mean (pre-activations near +30 give features 30 +- 1) and adds the shifts back exactly in fp32.

VJP. With G_i the upstream gradient, g_i = G_i / m_i, u_i = S_c^T G_i and [den_i >= eps] the clamp's pass-through
(torch's clamp_min passes the gradient where den >= eps):

    b_i   = -(p_i . u_i) / m_i^2  if den_i >= eps  else  (mu . G_i) / m_i     (a scalar per target token)
    dp_i  = u_i / m_i + b_i z                               -> dq_i = phi'(q_i) * dp_i
    dS    = sum_i g_i p_i^T  (E x D),   dz_c = sum_i b_i p_i  (D)
    df_a  = dS^T (v_a - mu) + dz_c                          -> dk_a = phi'(k_a) * df_a
    dv_a  = dS f_a

Derivation: out_i = w_i + mu den_i / m_i with w_i = S_c p_i / m_i. Then dp_i = S^T g_i + dden_i z with
dden_i = -(g_i . out_i) [den_i >= eps]. Substituting S = S_c + mu z^T leaves S_c^T g_i + (mu . g_i + dden_i) z, and
mu . g_i + dden_i = -(g_i . w_i) = -(p_i . u_i) / m_i^2 when den_i >= eps. Likewise df_a = dS^T v_a + dz with
dz = sum_i dden_i p_i, and v_a is split as (v_a - mu) + mu. One product, u_i = S_c^T G_i, serves both b_i and dq_i.
phi'(x) = sigmoid(x) is computed from the pre-activation, which the backward re-reads anyway, sharing exp(-|x|)
with the softplus. It stays exact where 1 - exp(-phi) would round to 0. The softplus is max(x, 0) + log1p(e),
e = exp2(-|x| log2 e) on the hardware's exponential, and log1p(e) = e P(e) with a degree-7 polynomial P accurate
to 4e-7 (relative) on [0, 1]: no libdevice log, no branch. The derivative is one fast division, e or 1 over 1 + e.

Passes (B batch, D = q/k channels, E = v channels, Lq targets, Ls sources, b bytes per element, NS splits; the
channels are cut into 64-wide tiles, padded by masked loads, so that every tl.dot dimension is >= 16). The split
kernels share the tokens of each batch entry among NS programs, NS chosen from the kernel's residency so that the
last wave is full (`split`). The reduced state is stored padded to whole tiles (zeros), so that it loads unmasked.
- forward state (`_..._state_kernel`, grid (NS, E tiles x D tiles, B)): each program reduces its slice of the
  source into fp32 partials: S (E x D), z and sum(v). Reads B Ls (D + E) b bytes (more from L2 when there are
  several channel tiles); 2 B E D Ls FLOPs.
- reduce (`_..._reduce_kernel`, grid (channel tiles, B)): sums the partials over NS in a fixed order (bitwise
  reproducible, no atomics) and centres them: S_c, z, mu in fp32. Reads B NS (E D + D + 2E) 4 bytes.
- forward output: den and S_c p in fp32, one division per token, the store. D, E <= 64
  (`_..._fwd_fused_kernel`, grid (NS, B)): the state loaded once per program, which sweeps its split of the
  target. Wider states (`_..._fwd_kernel`, grid (Lq tiles, E tiles, B)) loop over the D tiles. Reads B Lq D b
  bytes (once per E tile) and writes B Lq E b bytes; 2 B E D Lq FLOPs. The backward gets q, k, v and the fp32
  state (S_c, z, mu: B (E D + D + E) 4 bytes, padded); nothing of size L is saved.
- backward target pass, D, E <= 64 (`_..._bwd_target_fused_kernel`, grid (NS, B)): p, den, u, b and dq for each
  target tile, plus the dS and dz_c partials of its split kept in registers. One read of q and dO, one write of dq:
  B Lq (2D + E) b bytes; 4 B E D Lq FLOPs. Wider states (`_..._bwd_target_kernel`, grid (Lq tiles, B)) loop
  over the channel tiles and store 1/m and b (B Lq 8 bytes); the state kernel then computes the dS, dz_c partials
  in a second sweep over q and dO (another B Lq (D + E) b bytes).
- reduce again (dS, dz_c), then the source pass. D, E <= 64 (`_..._bwd_source_fused_kernel`, grid (NS, B)): dS
  loaded once per program, dk and dv of each token block from one read of k and v (the features computed once).
  Wider states (`_..._bwd_source_kernel`, grid (Ls tiles, D tiles + E tiles, B): a program computes one channel
  tile of dk or of dv). Reads and writes B Ls (2D + 2E) b bytes; 4 B E D Ls FLOPs.
Stacked inputs: q, k and v may each be parts of one shape and strides stacked along the batch (the model's batched
calls pass every attention's projections as parts). Batch entry b of a launch reads part b // part_batch through
its offset from the first part, a scalar argument (`_entry`); MAX_PARTS parts per launch sequence, larger stacks
in several. The outputs, the state and the gradients are single stacked tensors.
Every state product is a tensor-core MMA with fp32 accumulation. den, z, the per-token scalars and all partials
are fp32 sums, and the state is never stored in float16, so L = 19,200 cannot overflow it (bf16 inputs store the
state matrices S_c and dS as the bf16 operands their products round them to: `state_matrix_dtype`).

Precision of the products. bfloat16 inputs: operands rounded to bf16 (round to nearest even), fp32 accumulation. float16
inputs, and float32 inputs where PyTorch allows TF32 matmuls (torch.backends.cuda.matmul.allow_tf32): TF32 (10-bit
mantissa), with the operands rounded to nearest (kernels/_triton.py's `dot`), because the tensor core would truncate the
low 13 bits, a bias that adds up coherently over the source. float16 is never an operand type: the features of
pre-activations below about -17 underflow it, and S overflows it. float32 inputs otherwise (PyTorch's default): IEEE
fp32 products on the FMA units, what the reference computes.

Anchors. flash-bidirectional-linear-attention: two kernels, one for the state and one for the output, and fp32 dS
partials reduced by a fixed-order sum. EfficientViT's LiteMLA: the channel-first NCHW layout, read in place. Sana's
Triton LiteMLA: feature maps fused into the loads. Beyond these anchors: Lq != Ls; a split of the source across
programs, tied to the SM count (their grids have B x heads programs); an fp32 state; the centred state.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ._aot import AotConfig
from ._autocast import autocast_aware
from ._call_memo import CallMemo, memo_key
from ._checks import Stackable, check_linear_cross_attention
from ._launch import (
    COMPILE_OPTIONS,
    INT32_MAX,
    JIT_DIVISIBILITY,
    TRITON_DTYPE_NAMES,
    best_split,
    ceil_div,
    check_kernel_dtype,
    fp32_matmul_precision,
    sm_count,
)
from ._library import custom_op
from ._triton import INTERPRETED, aot_signature, cdiv, check_device, dot, round_mantissa, sum_

# Feature maps (constexpr FEATURE).
IDENTITY = tl.constexpr(0)
SOFTPLUS = tl.constexpr(1)
FEATURE_CODES = {"identity": IDENTITY.value, "softplus": SOFTPLUS.value}

# Operand precision of the tensor-core products (constexpr MMA). The interpreter's tl.dot multiplies bf16 tensors
# as their raw 16-bit patterns, and its fp32 -> bf16 cast truncates, so under the interpreter bf16 inputs get
# bf16-rounded fp32 operands instead: the same products, exact in fp32, and the GPU's rounding.
MMA_TF32 = tl.constexpr(0)
MMA_BF16 = tl.constexpr(1)
MMA_BF16_ROUNDED_FP32 = tl.constexpr(2)
MMA_IEEE = tl.constexpr(3)


# ---------------------------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------------------------


LOG2E = tl.constexpr(1.4426950408889634)  # exp(x) = exp2(x log2 e): the hardware's exponential is base 2
# log1p(e) ~= e P(e) on [0, 1], P of degree 7 (coefficients c0 .. c7): a least-squares fit on Chebyshev nodes,
# reweighted toward the least maximal relative error. Evaluated in fp32 (Horner) its relative error is below 4e-7
# on all of [0, 1], denormal e included (tests/kernels/test_linear_attention.py checks the bound): a few fp32 ulps,
# against libdevice's log, ~25 instructions with a branch, which bound the kernels by instruction issue.
LOG1P_POLYNOMIAL = tl.constexpr((0.9999998211860657, -0.4999740421772003, 0.33275479078292847, -0.24495463073253632,
                                 0.1774524301290512, -0.1076817438006401, 0.044089652597904205,
                                 -0.008539213798940182))


@triton.jit
def _log1p_unit(e):
    """log1p(e) for e in [0, 1], as e P(e): seven FMAs and a multiply, no branch."""
    p = tl.full(e.shape, LOG1P_POLYNOMIAL[7], tl.float32)
    for i in tl.static_range(6, -1, -1):
        p = p * e + LOG1P_POLYNOMIAL[i]
    return p * e


@triton.jit
def _features(x, FEATURE: tl.constexpr):
    """(phi(x), phi'(x)) in fp32. Softplus in the stable form max(x, 0) + log1p(exp(-|x|)), the log1p a polynomial
    accurate in relative terms (so softplus(-30) ~ 9.4e-14, not 0), and its derivative sigmoid(x) from the same
    exp(-|x|) by one fast (2-ulp) division. Unused results are removed by the compiler."""
    if FEATURE == SOFTPLUS:
        e = tl.exp2(-tl.abs(x) * LOG2E)
        phi = tl.maximum(x, 0.0) + _log1p_unit(e)
        dphi = tl.fdiv(tl.where(x >= 0, 1.0, e), 1.0 + e)
    else:
        phi = x
        dphi = tl.full(x.shape, 1.0, tl.float32)
    return phi, dphi


@triton.jit
def _mma(a, b, acc, MMA: tl.constexpr):
    """acc + a @ b on the tensor cores for fp32 tiles a, b, with the operand precision MMA; fp32 accumulation."""
    if MMA == MMA_BF16:
        acc = dot(a.to(tl.bfloat16), b.to(tl.bfloat16), acc, "ieee")
    elif MMA == MMA_BF16_ROUNDED_FP32:  # a bf16 operand (a stored state) is exact in fp32
        acc = dot(round_mantissa(a.to(tl.float32), 16), round_mantissa(b.to(tl.float32), 16), acc, "ieee")
    elif MMA == MMA_IEEE:
        acc = dot(a, b, acc, "ieee")
    else:  # operands rounded to nearest TF32 (`dot`)
        acc = dot(a, b, acc, "tf32")
    return acc


@triton.jit
def _to_output(x, ptr, MMA: tl.constexpr):
    """x cast for a store through ptr, rounded to nearest even (the interpreter's own fp32 -> bf16 cast truncates)."""
    if MMA == MMA_BF16_ROUNDED_FP32:
        x = round_mantissa(x, 16)
    return x.to(ptr.dtype.element_ty)


@triton.jit
def _split_range(pid_s, num_splits, length, BLOCK: tl.constexpr):
    """[start, end) of split pid_s when num_splits <= cdiv(length, BLOCK) splits share the blocks of BLOCK tokens
    as evenly as possible (floor or ceil each, none empty)."""
    num_blocks = cdiv(length, BLOCK)
    block_start = pid_s.to(tl.int64) * num_blocks // num_splits
    block_end = (pid_s + 1).to(tl.int64) * num_blocks // num_splits
    return block_start * BLOCK, tl.minimum(block_end * BLOCK, length)


@triton.jit
def _padded(c, BLOCK_C: tl.constexpr):
    """c channels rounded up to whole tiles. The reduced state and its gradient are stored padded, (B, E_pad,
    D_pad) with zeros in the padding, so that every kernel reading them loads whole tiles unmasked (vector loads)."""
    return cdiv(c, BLOCK_C) * BLOCK_C


# Parts of a stacked input that one launch reads: the first one's pointer and the others' offsets from it, per-call
# values that are not specialised on (a recompile per alignment pattern), and whose number fixes the kernels' arguments
MAX_PARTS = 8


def _parts(*tensors: str) -> list[str]:
    """The offset arguments of the stacked inputs `tensors` (`_entry`)."""
    return [f"{tensor}_part{i}" for tensor in tensors for i in range(1, MAX_PARTS)]


@triton.jit
def _entry(pid_b, part_batch, stride_b, p1, p2, p3, p4, p5, p6, p7, PART_UNIT: tl.constexpr):
    """Element offset of batch entry pid_b of a stacked input (`Stacked`) from its first part: entry pid_b is entry
    pid_b - j part_batch of part j = pid_b // part_batch, which lies p_j PART_UNITs of elements from part 0 (p_0 = 0).
    The offsets are multiples of a constexpr unit so that the compiler keeps what it knows of the parts' alignment
    (vector loads): one division and a few selects per program."""
    part = pid_b // part_batch
    delta = tl.where(part == 1, p1, tl.where(part == 2, p2, tl.where(part == 3, p3, tl.where(
        part == 4, p4, tl.where(part == 5, p5, tl.where(part == 6, p6, tl.where(part == 7, p7, 0)))))))
    return delta.to(tl.int64) * PART_UNIT + (pid_b - part * part_batch) * stride_b


@triton.jit
def _state_block(x_rows, f_rows, offs_l, stride_xl, stride_fl, mask_e, mask_d, L, FEATURE: tl.constexpr):
    """One block of the state's operands in fp32: x (BLOCK_C, BLOCK_L) and phi(f) (BLOCK_C, BLOCK_L), zero outside."""
    mask_l = offs_l < L
    x = tl.load(x_rows + offs_l[None, :] * stride_xl, mask=mask_e[:, None] & mask_l[None, :], other=0.0)
    mask_f = mask_d[:, None] & mask_l[None, :]
    f = tl.load(f_rows + offs_l[None, :] * stride_fl, mask=mask_f, other=0.0)
    phi, _ = _features(f.to(tl.float32), FEATURE)
    return x.to(tl.float32), tl.where(mask_f, phi, 0.0)  # softplus(0) = log 2: padding must not count


@triton.jit(do_not_specialize=_parts("x", "f"))
def _linear_cross_attention_state_kernel(
    # x: (B, E, L), the E side of the state: v (forward) or the upstream gradient dO (backward), stacked (`_entry`)
    x_ptr, stride_xb, stride_xe, stride_xl, x_part1, x_part2, x_part3, x_part4, x_part5, x_part6, x_part7,
    # f: (B, D, L), pre-activations of the D side: k (forward) or q (backward), stacked
    f_ptr, stride_fb, stride_fd, stride_fl, f_part1, f_part2, f_part3, f_part4, f_part5, f_part6, f_part7,
    # backward only, (B, L) fp32 contiguous: 1/m (scales x) and the bracket (weights the sum of features)
    inv_m_ptr, bracket_ptr,
    # partials per split, fp32 contiguous: mat (B, NS, E, D), fsum (B, NS, D); forward only: xsum, xshift (B, NS, E)
    mat_part_ptr, fsum_part_ptr, xsum_part_ptr, xshift_part_ptr,
    E, D, L, part_batch,
    FEATURE: tl.constexpr, MMA: tl.constexpr, BACKWARD: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_L: tl.constexpr, PART_UNIT: tl.constexpr,
):
    # Forward: mat = sum (v - v^) phi(k)^T, fsum = sum phi(k), xsum = sum v, xshift = v^ (the mean of the split's
    # first block). Backward: mat = sum (dO / m) phi(q)^T, fsum = sum bracket phi(q).
    pid_s = tl.program_id(0)
    pid_tile = tl.program_id(1)
    pid_b = tl.program_id(2).to(tl.int64)
    num_splits = tl.num_programs(0)
    d_tiles = cdiv(D, BLOCK_C)
    pid_e = pid_tile // d_tiles
    pid_d = pid_tile % d_tiles
    offs_e = pid_e * BLOCK_C + tl.arange(0, BLOCK_C)
    offs_d = pid_d * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_e = offs_e < E
    mask_d = offs_d < D
    x_batch = x_ptr + _entry(pid_b, part_batch, stride_xb, x_part1, x_part2, x_part3, x_part4, x_part5, x_part6,
                             x_part7, PART_UNIT)
    x_rows = x_batch + offs_e[:, None] * stride_xe
    f_batch = f_ptr + _entry(pid_b, part_batch, stride_fb, f_part1, f_part2, f_part3, f_part4, f_part5, f_part6,
                             f_part7, PART_UNIT)
    f_rows = f_batch + offs_d[:, None] * stride_fd
    l_start, l_end = _split_range(pid_s, num_splits, L, BLOCK_L)

    if not BACKWARD:
        # Shift both operands by the means of the split's first block: the MMA then rounds values of the size of
        # the spread of v and phi(k), not of their means (features of pre-activations near +30 are 30 +- 1).
        x, phi = _state_block(x_rows, f_rows, l_start + tl.arange(0, BLOCK_L), stride_xl, stride_fl,
                              mask_e, mask_d, L, FEATURE)
        first_count = tl.minimum(L - l_start, BLOCK_L).to(tl.float32)
        x_shift = sum_(x, 1) / first_count
        f_shift = sum_(phi, 1) / first_count
        # The sum of v is kept per token column and reduced once after the loop. Besides saving a cross-thread
        # reduction per block, this keeps Triton 3.6 from crashing: its thread-locality pass asserts that a reduction
        # carried by a loop has one use after it, and the sum of v has two (the correction below and its store).
        xsum_columns = tl.full([BLOCK_C, BLOCK_L], 0.0, tl.float32)
    acc = tl.full([BLOCK_C, BLOCK_C], 0.0, tl.float32)
    fsum = tl.full([BLOCK_C], 0.0, tl.float32)
    for l0 in tl.range(l_start, l_end, BLOCK_L):
        offs_l = l0 + tl.arange(0, BLOCK_L)
        x, phi = _state_block(x_rows, f_rows, offs_l, stride_xl, stride_fl, mask_e, mask_d, L, FEATURE)
        if BACKWARD:
            inv_m = tl.load(inv_m_ptr + pid_b * L + offs_l, mask=offs_l < L, other=0.0)
            bracket = tl.load(bracket_ptr + pid_b * L + offs_l, mask=offs_l < L, other=0.0)
            x = x * inv_m[None, :]
            fsum += sum_(phi * bracket[None, :], 1)
        else:
            fsum += sum_(phi, 1)
            xsum_columns += x
            inside = (offs_l < L)[None, :]
            x = tl.where(inside, x - x_shift[:, None], 0.0)
            phi = tl.where(inside, phi - f_shift[:, None], 0.0)
        acc = _mma(x, tl.trans(phi), acc, MMA)

    part = pid_b * num_splits + pid_s
    if not BACKWARD:  # sum (v - v^) phi^T = acc + sum (v - v^) c^T, in fp32
        xsum = sum_(xsum_columns, 1)
        acc += (xsum - (l_end - l_start).to(tl.float32) * x_shift)[:, None] * f_shift[None, :]
        if pid_d == 0:  # the E vectors are the same in every D tile: the first one writes them
            tl.store(xsum_part_ptr + part * E + offs_e, xsum, mask=mask_e)
            tl.store(xshift_part_ptr + part * E + offs_e, x_shift, mask=mask_e)
    tl.store(mat_part_ptr + (part * E + offs_e[:, None]) * D + offs_d[None, :], acc,
             mask=mask_e[:, None] & mask_d[None, :])
    if pid_e == 0:
        tl.store(fsum_part_ptr + part * D + offs_d, fsum, mask=mask_d)


@triton.jit
def _linear_cross_attention_reduce_kernel(
    # partials (B, NS, E, D), (B, NS, D) fp32 contiguous; CENTER (forward) also xsum, xshift (B, NS, E)
    mat_part_ptr, fsum_part_ptr, xsum_part_ptr, xshift_part_ptr,
    # results, padded to whole tiles (_padded): (B, E_pad, D_pad) in state_matrix_dtype, fp32 (B, D_pad) and
    # (B, E_pad): S_c, z, mu (forward) or dS, dz_c (backward)
    mat_ptr, fsum_ptr, xmean_ptr,
    E, D, num_splits, inv_count,  # inv_count = 1 / Ls turns the sum of v into its mean
    CENTER: tl.constexpr, MMA: tl.constexpr, BLOCK_C: tl.constexpr,
):
    # Every loop over the splits runs in a fixed order: the result is bitwise reproducible.
    pid_tile = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    d_tiles = cdiv(D, BLOCK_C)
    pid_e = pid_tile // d_tiles
    pid_d = pid_tile % d_tiles
    offs_e = pid_e * BLOCK_C + tl.arange(0, BLOCK_C)
    offs_d = pid_d * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_e = offs_e < E
    mask_d = offs_d < D
    mask_ed = mask_e[:, None] & mask_d[None, :]
    first_part = pid_b * num_splits

    acc = tl.full([BLOCK_C, BLOCK_C], 0.0, tl.float32)
    fsum = tl.full([BLOCK_C], 0.0, tl.float32)
    # CENTER: split s stored P_s = sum over its tokens of (v - v^_s) phi^T, its v shift v^_s and z_s = its sum of
    # phi; then S_c = sum_s [P_s + (v^_s - mu) z_s^T], with mu (from the sums of v) needed first.
    if CENTER:
        xsum = tl.full([BLOCK_C], 0.0, tl.float32)
        for s in tl.range(0, num_splits):
            xsum += tl.load(xsum_part_ptr + (first_part + s) * E + offs_e, mask=mask_e, other=0.0)
        mean = xsum * inv_count
    for s in tl.range(0, num_splits):
        part = first_part + s
        acc += tl.load(mat_part_ptr + (part * E + offs_e[:, None]) * D + offs_d[None, :], mask=mask_ed, other=0.0)
        fsum_s = tl.load(fsum_part_ptr + part * D + offs_d, mask=mask_d, other=0.0)
        fsum += fsum_s
        if CENTER:
            shift = tl.load(xshift_part_ptr + part * E + offs_e, mask=mask_e, other=0.0)
            acc += (shift - mean)[:, None] * fsum_s[None, :]
    e_pad, d_pad = _padded(E, BLOCK_C), _padded(D, BLOCK_C)  # the padding gets the zeros of masked loads
    if CENTER:
        if pid_d == 0:
            tl.store(xmean_ptr + pid_b * e_pad + offs_e, mean)
    tl.store(mat_ptr + (pid_b * e_pad + offs_e[:, None]) * d_pad + offs_d[None, :], _to_output(acc, mat_ptr, MMA))
    if pid_e == 0:
        tl.store(fsum_ptr + pid_b * d_pad + offs_d, fsum)


@triton.jit
def _normalised(acc, den, mu, eps):
    """out = (S_c p + mu den) / max(den, eps) for acc = S_c p (BLOCK_C, BLOCK_T): one division per token."""
    inv_m = 1.0 / tl.maximum(den, eps)
    return (acc + mu[:, None] * den[None, :]) * inv_m[None, :]


@triton.jit(do_not_specialize=_parts("q"))
def _linear_cross_attention_fwd_fused_kernel(
    # the arguments of _linear_cross_attention_fwd_kernel (one launcher call serves both)
    q_ptr, stride_qb, stride_qd, stride_ql, q_part1, q_part2, q_part3, q_part4, q_part5, q_part6, q_part7,
    state_ptr, norm_ptr, mean_ptr, out_ptr, stride_ob, stride_oe, stride_ol, E, D, Lq, eps, part_batch,
    FEATURE: tl.constexpr, MMA: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_T: tl.constexpr, PART_UNIT: tl.constexpr,
):
    # D, E <= BLOCK_C: the state is one tile, loaded once; each program sweeps one split of the target.
    pid_s = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_c = tl.arange(0, BLOCK_C)
    mask_e = offs_c < E
    mask_d = offs_c < D
    state = tl.load(state_ptr + (pid_b * BLOCK_C + offs_c[:, None]) * BLOCK_C + offs_c[None, :])  # S_c (E, D)
    z = tl.load(norm_ptr + pid_b * BLOCK_C + offs_c)
    mu = tl.load(mean_ptr + pid_b * BLOCK_C + offs_c)
    q_batch = q_ptr + _entry(pid_b, part_batch, stride_qb, q_part1, q_part2, q_part3, q_part4, q_part5, q_part6,
                             q_part7, PART_UNIT)
    q_rows = q_batch + offs_c[:, None] * stride_qd
    out_rows = out_ptr + pid_b * stride_ob + offs_c[:, None] * stride_oe

    t_start, t_end = _split_range(pid_s, tl.num_programs(0), Lq, BLOCK_T)
    for t0 in tl.range(t_start, t_end, BLOCK_T):
        offs_t = t0 + tl.arange(0, BLOCK_T)
        mask_t = offs_t < Lq
        q = tl.load(q_rows + offs_t[None, :] * stride_ql, mask=mask_d[:, None] & mask_t[None, :], other=0.0)
        p, _ = _features(q.to(tl.float32), FEATURE)  # padded rows meet zero z and S_c: no mask needed
        acc = _mma(state, p, tl.full([BLOCK_C, BLOCK_T], 0.0, tl.float32), MMA)
        out = _normalised(acc, sum_(z[:, None] * p, 0), mu, eps)
        tl.store(out_rows + offs_t[None, :] * stride_ol, _to_output(out, out_ptr, MMA),
                 mask=mask_e[:, None] & mask_t[None, :])


@triton.jit(do_not_specialize=_parts("q"))
def _linear_cross_attention_fwd_kernel(
    # q: (B, D, Lq) query pre-activations, stacked (`_entry`)
    q_ptr, stride_qb, stride_qd, stride_ql, q_part1, q_part2, q_part3, q_part4, q_part5, q_part6, q_part7,
    # the centred state, padded (_padded): S_c (B, E_pad, D_pad) (state_matrix_dtype), fp32 z (B, D_pad), mu (B, E_pad)
    state_ptr, norm_ptr, mean_ptr,
    # out: (B, E, Lq)
    out_ptr, stride_ob, stride_oe, stride_ol,
    E, D, Lq, eps, part_batch,
    FEATURE: tl.constexpr, MMA: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_T: tl.constexpr, PART_UNIT: tl.constexpr,
):
    pid_t = tl.program_id(0)
    pid_e = tl.program_id(1)
    pid_b = tl.program_id(2).to(tl.int64)
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_e = pid_e * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_t = offs_t < Lq
    mask_e = offs_e < E
    e_pad, d_pad = _padded(E, BLOCK_C), _padded(D, BLOCK_C)
    q_batch = q_ptr + _entry(pid_b, part_batch, stride_qb, q_part1, q_part2, q_part3, q_part4, q_part5, q_part6,
                             q_part7, PART_UNIT)

    acc = tl.full([BLOCK_C, BLOCK_T], 0.0, tl.float32)  # S_c p
    den = tl.full([BLOCK_T], 0.0, tl.float32)  # z . p
    for d0 in tl.range(0, D, BLOCK_C):
        offs_d = d0 + tl.arange(0, BLOCK_C)
        mask_d = offs_d < D
        q = tl.load(q_batch + offs_d[:, None] * stride_qd + offs_t[None, :] * stride_ql,
                    mask=mask_d[:, None] & mask_t[None, :], other=0.0)
        p, _ = _features(q.to(tl.float32), FEATURE)  # padded rows meet zero z and S_c: no mask needed
        z = tl.load(norm_ptr + pid_b * d_pad + offs_d)
        den += sum_(z[:, None] * p, 0)
        s = tl.load(state_ptr + (pid_b * e_pad + offs_e[:, None]) * d_pad + offs_d[None, :])
        acc = _mma(s, p, acc, MMA)

    out = _normalised(acc, den, tl.load(mean_ptr + pid_b * e_pad + offs_e), eps)
    tl.store(out_ptr + pid_b * stride_ob + offs_e[:, None] * stride_oe + offs_t[None, :] * stride_ol,
             _to_output(out, out_ptr, MMA), mask=mask_e[:, None] & mask_t[None, :])


@triton.jit
def _bracket(den, p_dot_u, mu_dot_do, eps):
    """(1/m, b) per target token from den = z . p, p . u = dO . (S_c p) (u = S_c^T dO) and mu . dO (see the module
    docstring)."""
    inv_m = 1.0 / tl.maximum(den, eps)
    bracket = tl.where(den >= eps, -p_dot_u * inv_m * inv_m, mu_dot_do * inv_m)
    return inv_m, bracket


@triton.jit(do_not_specialize=_parts("q"))
def _linear_cross_attention_bwd_target_fused_kernel(
    # q: (B, D, Lq) query pre-activations, stacked (`_entry`); do: (B, E, Lq) upstream gradient
    q_ptr, stride_qb, stride_qd, stride_ql, q_part1, q_part2, q_part3, q_part4, q_part5, q_part6, q_part7,
    do_ptr, stride_gb, stride_ge, stride_gl,
    # the forward's centred state, padded (_padded): S_c (B, E_pad, D_pad), fp32 z (B, D_pad), mu (B, E_pad)
    state_ptr, norm_ptr, mean_ptr,
    # dq: (B, D, Lq)
    dq_ptr, stride_dqb, stride_dqd, stride_dql,
    # partials per split of the target, fp32 contiguous: dS (B, NS, E, D), dz_c (B, NS, D)
    mat_part_ptr, fsum_part_ptr,
    E, D, Lq, eps, part_batch,
    FEATURE: tl.constexpr, MMA: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_T: tl.constexpr, PART_UNIT: tl.constexpr,
):
    # D, E <= BLOCK_C: the whole state is one tile, loaded once; each program sweeps one split of the target and
    # keeps its dS, dz_c partials in registers (one read of q and dO for dq and the state gradients).
    pid_s = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_c = tl.arange(0, BLOCK_C)
    mask_e = offs_c < E
    mask_d = offs_c < D
    mask_ed = mask_e[:, None] & mask_d[None, :]
    state_t = tl.load(state_ptr + (pid_b * BLOCK_C + offs_c[None, :]) * BLOCK_C + offs_c[:, None])  # S_c^T (D, E)
    z = tl.load(norm_ptr + pid_b * BLOCK_C + offs_c)
    mu = tl.load(mean_ptr + pid_b * BLOCK_C + offs_c)
    q_batch = q_ptr + _entry(pid_b, part_batch, stride_qb, q_part1, q_part2, q_part3, q_part4, q_part5, q_part6,
                             q_part7, PART_UNIT)
    q_rows = q_batch + offs_c[:, None] * stride_qd
    do_rows = do_ptr + pid_b * stride_gb + offs_c[:, None] * stride_ge
    dq_rows = dq_ptr + pid_b * stride_dqb + offs_c[:, None] * stride_dqd

    ds_acc = tl.full([BLOCK_C, BLOCK_C], 0.0, tl.float32)
    dz_acc = tl.full([BLOCK_C], 0.0, tl.float32)
    t_start, t_end = _split_range(pid_s, tl.num_programs(0), Lq, BLOCK_T)
    for t0 in tl.range(t_start, t_end, BLOCK_T):
        offs_t = t0 + tl.arange(0, BLOCK_T)
        mask_t = offs_t < Lq
        mask_dt = mask_d[:, None] & mask_t[None, :]
        do = tl.load(do_rows + offs_t[None, :] * stride_gl, mask=mask_e[:, None] & mask_t[None, :], other=0.0)
        do = do.to(tl.float32)
        u = _mma(state_t, do, tl.full([BLOCK_C, BLOCK_T], 0.0, tl.float32), MMA)  # S_c^T dO
        q = tl.load(q_rows + offs_t[None, :] * stride_ql, mask=mask_dt, other=0.0)
        p, dphi = _features(q.to(tl.float32), FEATURE)
        inv_m, bracket = _bracket(sum_(z[:, None] * p, 0), sum_(p * u, 0),
                                  sum_(mu[:, None] * do, 0), eps)
        dq = dphi * (u * inv_m[None, :] + z[:, None] * bracket[None, :])
        tl.store(dq_rows + offs_t[None, :] * stride_dql, _to_output(dq, dq_ptr, MMA), mask=mask_dt)
        # padded tokens: dO = 0, so g = 0 and bracket = 0, and they add nothing
        ds_acc = _mma(do * inv_m[None, :], tl.trans(p), ds_acc, MMA)
        dz_acc += sum_(p * bracket[None, :], 1)

    part = pid_b * tl.num_programs(0) + pid_s
    tl.store(mat_part_ptr + (part * E + offs_c[:, None]) * D + offs_c[None, :], ds_acc, mask=mask_ed)
    tl.store(fsum_part_ptr + part * D + offs_c, dz_acc, mask=mask_d)


@triton.jit
def _state_t_times_do(state_ptr, do_batch, stride_ge, stride_gl, pid_b, offs_d, offs_t, mask_t, E, D,
                      MMA: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_T: tl.constexpr):
    """u = S_c^T dO for one D tile (BLOCK_C, BLOCK_T), looping over the E tiles."""
    u = tl.full([BLOCK_C, BLOCK_T], 0.0, tl.float32)
    for e0 in tl.range(0, E, BLOCK_C):
        offs_e = e0 + tl.arange(0, BLOCK_C)
        mask_e = offs_e < E
        do = tl.load(do_batch + offs_e[:, None] * stride_ge + offs_t[None, :] * stride_gl,
                     mask=mask_e[:, None] & mask_t[None, :], other=0.0)
        s_t = tl.load(state_ptr + (pid_b * _padded(E, BLOCK_C) + offs_e[None, :]) * _padded(D, BLOCK_C)
                      + offs_d[:, None])  # S_c^T tile (D, E)
        u = _mma(s_t, do.to(tl.float32), u, MMA)
    return u


@triton.jit(do_not_specialize=_parts("q"))
def _linear_cross_attention_bwd_target_kernel(
    # q: (B, D, Lq) query pre-activations, stacked (`_entry`); do: (B, E, Lq) upstream gradient
    q_ptr, stride_qb, stride_qd, stride_ql, q_part1, q_part2, q_part3, q_part4, q_part5, q_part6, q_part7,
    do_ptr, stride_gb, stride_ge, stride_gl,
    # the forward's centred state, padded (_padded): S_c (B, E_pad, D_pad), fp32 z (B, D_pad), mu (B, E_pad)
    state_ptr, norm_ptr, mean_ptr,
    # dq: (B, D, Lq)
    dq_ptr, stride_dqb, stride_dqd, stride_dql,
    # per target token, fp32 (B, Lq) contiguous: 1/m and the bracket, for the state kernel's dS, dz_c sweep
    inv_m_ptr, bracket_ptr,
    E, D, Lq, eps, part_batch,
    FEATURE: tl.constexpr, MMA: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_T: tl.constexpr, PART_UNIT: tl.constexpr,
):
    # A state wider than one tile, its tiles looped over: u = S_c^T dO is computed twice per D tile, once for the
    # per-token sums (they need every D tile) and once for dq.
    pid_t = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    mask_t = offs_t < Lq
    q_batch = q_ptr + _entry(pid_b, part_batch, stride_qb, q_part1, q_part2, q_part3, q_part4, q_part5, q_part6,
                             q_part7, PART_UNIT)
    do_batch = do_ptr + pid_b * stride_gb

    mu_dot_do = tl.full([BLOCK_T], 0.0, tl.float32)
    for e0 in tl.range(0, E, BLOCK_C):
        offs_e = e0 + tl.arange(0, BLOCK_C)
        mask_e = offs_e < E
        do = tl.load(do_batch + offs_e[:, None] * stride_ge + offs_t[None, :] * stride_gl,
                     mask=mask_e[:, None] & mask_t[None, :], other=0.0)
        mu = tl.load(mean_ptr + pid_b * _padded(E, BLOCK_C) + offs_e)
        mu_dot_do += sum_(mu[:, None] * do.to(tl.float32), 0)
    den = tl.full([BLOCK_T], 0.0, tl.float32)
    p_dot_u = tl.full([BLOCK_T], 0.0, tl.float32)
    for d0 in tl.range(0, D, BLOCK_C):
        offs_d = d0 + tl.arange(0, BLOCK_C)
        mask_d = offs_d < D
        q = tl.load(q_batch + offs_d[:, None] * stride_qd + offs_t[None, :] * stride_ql,
                    mask=mask_d[:, None] & mask_t[None, :], other=0.0)
        p, _ = _features(q.to(tl.float32), FEATURE)
        z = tl.load(norm_ptr + pid_b * _padded(D, BLOCK_C) + offs_d)
        den += sum_(z[:, None] * p, 0)
        u = _state_t_times_do(state_ptr, do_batch, stride_ge, stride_gl, pid_b, offs_d, offs_t, mask_t,
                              E, D, MMA, BLOCK_C, BLOCK_T)
        p_dot_u += sum_(p * u, 0)
    inv_m, bracket = _bracket(den, p_dot_u, mu_dot_do, eps)
    tl.store(inv_m_ptr + pid_b * Lq + offs_t, inv_m, mask=mask_t)
    tl.store(bracket_ptr + pid_b * Lq + offs_t, bracket, mask=mask_t)

    for d0 in tl.range(0, D, BLOCK_C):  # dq = phi'(q) (u / m + bracket z)
        offs_d = d0 + tl.arange(0, BLOCK_C)
        mask_d = offs_d < D
        mask_dt = mask_d[:, None] & mask_t[None, :]
        u = _state_t_times_do(state_ptr, do_batch, stride_ge, stride_gl, pid_b, offs_d, offs_t, mask_t,
                              E, D, MMA, BLOCK_C, BLOCK_T)
        q = tl.load(q_batch + offs_d[:, None] * stride_qd + offs_t[None, :] * stride_ql, mask=mask_dt, other=0.0)
        _, dphi = _features(q.to(tl.float32), FEATURE)
        z = tl.load(norm_ptr + pid_b * _padded(D, BLOCK_C) + offs_d)
        dq = dphi * (u * inv_m[None, :] + z[:, None] * bracket[None, :])
        tl.store(dq_ptr + pid_b * stride_dqb + offs_d[:, None] * stride_dqd + offs_t[None, :] * stride_dql,
                 _to_output(dq, dq_ptr, MMA), mask=mask_dt)


@triton.jit(do_not_specialize=_parts("k", "v"))
def _linear_cross_attention_bwd_source_kernel(
    # k: (B, D, Ls) key pre-activations; v: (B, E, Ls) values; both stacked (`_entry`)
    k_ptr, stride_kb, stride_kd, stride_kl, k_part1, k_part2, k_part3, k_part4, k_part5, k_part6, k_part7,
    v_ptr, stride_vb, stride_ve, stride_vl, v_part1, v_part2, v_part3, v_part4, v_part5, v_part6, v_part7,
    # reduced gradients, padded (_padded): dS (B, E_pad, D_pad), fp32 dz_c (B, D_pad); the forward's mu (B, E_pad)
    dstate_ptr, dnorm_ptr, mean_ptr,
    # dk: (B, D, Ls); dv: (B, E, Ls)
    dk_ptr, stride_dkb, stride_dkd, stride_dkl,
    dv_ptr, stride_dvb, stride_dve, stride_dvl,
    E, D, Ls, part_batch,
    FEATURE: tl.constexpr, MMA: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_L: tl.constexpr, PART_UNIT: tl.constexpr,
):
    # Programs 0 .. D tiles - 1 of axis 1 compute a D tile of dk, the others an E tile of dv.
    pid_l = tl.program_id(0)
    pid_c = tl.program_id(1)
    pid_b = tl.program_id(2).to(tl.int64)
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    mask_l = offs_l < Ls
    arange_c = tl.arange(0, BLOCK_C)
    k_batch = k_ptr + _entry(pid_b, part_batch, stride_kb, k_part1, k_part2, k_part3, k_part4, k_part5, k_part6,
                             k_part7, PART_UNIT)
    v_batch = v_ptr + _entry(pid_b, part_batch, stride_vb, v_part1, v_part2, v_part3, v_part4, v_part5, v_part6,
                             v_part7, PART_UNIT)
    d_tiles = cdiv(D, BLOCK_C)
    e_pad, d_pad = _padded(E, BLOCK_C), _padded(D, BLOCK_C)

    if pid_c < d_tiles:  # dk = phi'(k) (dS^T (v - mu) + dz_c)
        offs_d = pid_c * BLOCK_C + arange_c
        mask_d = offs_d < D
        acc = tl.full([BLOCK_C, BLOCK_L], 0.0, tl.float32)
        for e0 in tl.range(0, E, BLOCK_C):
            offs_e = e0 + arange_c
            mask_e = offs_e < E
            v = tl.load(v_batch + offs_e[:, None] * stride_ve + offs_l[None, :] * stride_vl,
                        mask=mask_e[:, None] & mask_l[None, :], other=0.0).to(tl.float32)
            mu = tl.load(mean_ptr + pid_b * e_pad + offs_e)
            ds_t = tl.load(dstate_ptr + (pid_b * e_pad + offs_e[None, :]) * d_pad + offs_d[:, None])  # dS^T (D, E)
            acc = _mma(ds_t, v - mu[:, None], acc, MMA)
        mask_dl = mask_d[:, None] & mask_l[None, :]
        k = tl.load(k_batch + offs_d[:, None] * stride_kd + offs_l[None, :] * stride_kl, mask=mask_dl, other=0.0)
        _, dphi = _features(k.to(tl.float32), FEATURE)
        dz = tl.load(dnorm_ptr + pid_b * d_pad + offs_d)
        dk = dphi * (acc + dz[:, None])
        tl.store(dk_ptr + pid_b * stride_dkb + offs_d[:, None] * stride_dkd + offs_l[None, :] * stride_dkl,
                 _to_output(dk, dk_ptr, MMA), mask=mask_dl)
    else:  # dv = dS phi(k)
        offs_e = (pid_c - d_tiles) * BLOCK_C + arange_c
        mask_e = offs_e < E
        acc = tl.full([BLOCK_C, BLOCK_L], 0.0, tl.float32)
        for d0 in tl.range(0, D, BLOCK_C):
            offs_d = d0 + arange_c
            mask_d = offs_d < D
            k = tl.load(k_batch + offs_d[:, None] * stride_kd + offs_l[None, :] * stride_kl,
                        mask=mask_d[:, None] & mask_l[None, :], other=0.0)
            f, _ = _features(k.to(tl.float32), FEATURE)  # padded rows meet zero dS columns
            ds = tl.load(dstate_ptr + (pid_b * e_pad + offs_e[:, None]) * d_pad + offs_d[None, :])
            acc = _mma(ds, f, acc, MMA)
        tl.store(dv_ptr + pid_b * stride_dvb + offs_e[:, None] * stride_dve + offs_l[None, :] * stride_dvl,
                 _to_output(acc, dv_ptr, MMA), mask=mask_e[:, None] & mask_l[None, :])


@triton.jit(do_not_specialize=_parts("k", "v"))
def _linear_cross_attention_bwd_source_fused_kernel(
    # the arguments of _linear_cross_attention_bwd_source_kernel (one launcher call serves both)
    k_ptr, stride_kb, stride_kd, stride_kl, k_part1, k_part2, k_part3, k_part4, k_part5, k_part6, k_part7,
    v_ptr, stride_vb, stride_ve, stride_vl, v_part1, v_part2, v_part3, v_part4, v_part5, v_part6, v_part7,
    dstate_ptr, dnorm_ptr, mean_ptr, dk_ptr, stride_dkb, stride_dkd, stride_dkl, dv_ptr, stride_dvb, stride_dve,
    stride_dvl, E, D, Ls, part_batch,
    FEATURE: tl.constexpr, MMA: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_L: tl.constexpr, PART_UNIT: tl.constexpr,
):
    # D, E <= BLOCK_C: dS is one tile, loaded once as both operands; each program sweeps one split of the source
    # and computes dk and dv of each token block from one read of k and v (the features computed once).
    pid_s = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_c = tl.arange(0, BLOCK_C)
    mask_e = offs_c < E
    mask_d = offs_c < D
    ds = tl.load(dstate_ptr + (pid_b * BLOCK_C + offs_c[:, None]) * BLOCK_C + offs_c[None, :])  # dS (E, D)
    ds_t = tl.load(dstate_ptr + (pid_b * BLOCK_C + offs_c[None, :]) * BLOCK_C + offs_c[:, None])  # dS^T (D, E)
    dz = tl.load(dnorm_ptr + pid_b * BLOCK_C + offs_c)
    mu = tl.load(mean_ptr + pid_b * BLOCK_C + offs_c)
    k_batch = k_ptr + _entry(pid_b, part_batch, stride_kb, k_part1, k_part2, k_part3, k_part4, k_part5, k_part6,
                             k_part7, PART_UNIT)
    k_rows = k_batch + offs_c[:, None] * stride_kd
    v_batch = v_ptr + _entry(pid_b, part_batch, stride_vb, v_part1, v_part2, v_part3, v_part4, v_part5, v_part6,
                             v_part7, PART_UNIT)
    v_rows = v_batch + offs_c[:, None] * stride_ve
    dk_rows = dk_ptr + pid_b * stride_dkb + offs_c[:, None] * stride_dkd
    dv_rows = dv_ptr + pid_b * stride_dvb + offs_c[:, None] * stride_dve

    l_start, l_end = _split_range(pid_s, tl.num_programs(0), Ls, BLOCK_L)
    for l0 in tl.range(l_start, l_end, BLOCK_L):
        offs_l = l0 + tl.arange(0, BLOCK_L)
        mask_l = offs_l < Ls
        mask_dl = mask_d[:, None] & mask_l[None, :]
        mask_el = mask_e[:, None] & mask_l[None, :]
        k = tl.load(k_rows + offs_l[None, :] * stride_kl, mask=mask_dl, other=0.0)
        f, dphi = _features(k.to(tl.float32), FEATURE)  # padded rows meet zero dS columns
        v = tl.load(v_rows + offs_l[None, :] * stride_vl, mask=mask_el, other=0.0).to(tl.float32)
        # dk = phi'(k) (dS^T (v - mu) + dz_c), dv = dS phi(k)
        dk = dphi * (_mma(ds_t, v - mu[:, None], tl.full([BLOCK_C, BLOCK_L], 0.0, tl.float32), MMA) + dz[:, None])
        tl.store(dk_rows + offs_l[None, :] * stride_dkl, _to_output(dk, dk_ptr, MMA), mask=mask_dl)
        dv = _mma(ds, f, tl.full([BLOCK_C, BLOCK_L], 0.0, tl.float32), MMA)
        tl.store(dv_rows + offs_l[None, :] * stride_dvl, _to_output(dv, dv_ptr, MMA), mask=mask_el)


# ---------------------------------------------------------------------------------------------------------------
# Launchers
# ---------------------------------------------------------------------------------------------------------------

BLOCK_C = 64  # channels (D and E) per tile: states up to 64 x 64 are one tile, wider ones are looped over


@dataclass(frozen=True)
class KernelLaunch:
    """Token block and launch options of one kernel. Fixed per kernel (no autotuning), and chosen so that every
    dtype compiles for sm_90 without register spills even where the loads cannot be vectorised (lengths that are
    not multiples of 16). `ctas_per_sm`: the residency (CTAs one SM holds, from the cubin's registers and shared
    memory) of the model's calls, bf16 with the JIT's specialisation, by which the split kernels size their grids;
    other dtypes or layouts may hold fewer and then run a partly empty last wave. tests/kernels/test_compile.py
    checks both against the cubins, for each Triton version tested. `max_registers`: ptxas's per-thread cap
    (maxnreg), where the compiler would otherwise take just more than the declared residency allows."""

    block_tokens: int
    num_warps: int
    num_stages: int = 2
    ctas_per_sm: int = 1
    max_registers: int | None = None

    def options(self) -> dict:
        """The launch options of a kernel call (num_warps, num_stages, COMPILE_OPTIONS and, where capped, maxnreg)."""
        options = dict(num_warps=self.num_warps, num_stages=self.num_stages, **COMPILE_OPTIONS)
        if self.max_registers:
            options["maxnreg"] = self.max_registers
        return options


# 2 CTAs of 256 threads hold at most 128 registers each; at lengths that are not multiples of 16 (scalar loads) the
# bf16 state pass would take 154 on triton 3.8 without the cap (none spilled at 128)
STATE_LAUNCH = KernelLaunch(block_tokens=32, num_warps=8, ctas_per_sm=2, max_registers=128)
REDUCE_LAUNCH = KernelLaunch(block_tokens=0, num_warps=8)  # no token axis
FWD_LAUNCH = KernelLaunch(block_tokens=64, num_warps=8)
FWD_FUSED_LAUNCH = KernelLaunch(block_tokens=128, num_warps=8, ctas_per_sm=2)
TARGET_FUSED_LAUNCH = KernelLaunch(block_tokens=16, num_warps=8, num_stages=1, ctas_per_sm=2)
# The non-fused target pass (states wider than one tile) reloads the state per token block: 64-token blocks halve that
# (it is bound by L2 and issue), on 16 warps, which hold them in 94-114 registers (one CTA of 16 warps per SM) where
# 8 warps took 148-160 on triton 3.6 (1 CTA of 8 warps) and spilled when capped at 128.
TARGET_LAUNCH = KernelLaunch(block_tokens=64, num_warps=16)
# The non-fused source pass re-reads its dS tiles per token block: 128-token blocks halve that where the source rows
# are 16-element aligned (vector loads; 123 registers at the model's calls on triton 3.8, 2 CTAs per SM), 64-token
# blocks where they are not, whose scalar loads take 117 registers at 64 tokens and 171-181 at 128 (`_source_launch`)
SOURCE_LAUNCH = KernelLaunch(block_tokens=64, num_warps=8)
SOURCE_ALIGNED_LAUNCH = KernelLaunch(block_tokens=128, num_warps=8)
# The cap: where the source length is not a multiple of 16 (scalar loads; the model's CSAM call from the 300-token
# scale) the bf16 source pass took 141-144 registers without it (1 CTA per SM), 128 with it (2, no spills on triton
# 3.6, 3.8, 3.9); the aligned calls then compile to 62-63 registers instead of 48 (4 CTAs per SM instead of 5),
# predicted 1-2 % faster by the static report.
SOURCE_FUSED_LAUNCH = KernelLaunch(block_tokens=32, num_warps=8, ctas_per_sm=3, max_registers=128)
# float16 and float32 inputs, whose products take fp32 operands (TF32 or IEEE FMA dots): smaller token blocks and one
# stage, for the registers their fp32 tiles hold
FP32_STATE_LAUNCH = KernelLaunch(block_tokens=32, num_warps=8, ctas_per_sm=2)  # 128 registers would spill
FP32_FWD_LAUNCH = KernelLaunch(block_tokens=32, num_warps=8, num_stages=1)
FP32_FWD_FUSED_LAUNCH = KernelLaunch(block_tokens=32, num_warps=8, num_stages=1)
FP32_TARGET_LAUNCH = KernelLaunch(block_tokens=16, num_warps=8, num_stages=1)
# 32 tokens, not 16: at 16, triton 3.9's IEEE path is capped near 80 registers and spills 4-8 B (106 at 32)
FP32_SOURCE_LAUNCH = KernelLaunch(block_tokens=32, num_warps=8, num_stages=1)
FP32_SOURCE_FUSED_LAUNCH = KernelLaunch(block_tokens=16, num_warps=8, num_stages=1)
# The largest block any kernel adds to an index before masking (the int32 bound of `_check_walkable`)
MAX_BLOCK = max(BLOCK_C, *(launch.block_tokens for launch in (
    STATE_LAUNCH, FWD_LAUNCH, FWD_FUSED_LAUNCH, TARGET_FUSED_LAUNCH, TARGET_LAUNCH, SOURCE_LAUNCH,
    SOURCE_ALIGNED_LAUNCH, SOURCE_FUSED_LAUNCH,
    FP32_STATE_LAUNCH, FP32_FWD_LAUNCH, FP32_FWD_FUSED_LAUNCH, FP32_TARGET_LAUNCH, FP32_SOURCE_LAUNCH,
    FP32_SOURCE_FUSED_LAUNCH)))


def for_inputs(launch: KernelLaunch, fp32_launch: KernelLaunch, dtype: torch.dtype) -> KernelLaunch:
    """`launch` for bfloat16 inputs (bf16 operands), `fp32_launch` for the others (fp32 operands)."""
    return launch if dtype == torch.bfloat16 else fp32_launch


def _source_launch(length: int, dtype: torch.dtype) -> KernelLaunch:
    """The non-fused source pass's launch for a source of `length` tokens (see SOURCE_ALIGNED_LAUNCH)."""
    aligned = length % JIT_DIVISIBILITY == 0
    return for_inputs(SOURCE_ALIGNED_LAUNCH if aligned else SOURCE_LAUNCH, FP32_SOURCE_LAUNCH, dtype)


def fuses_state(d: int, e: int) -> bool:
    """Whether the whole state is one channel tile: the `_fused` kernels then hold it in registers across a split of
    the tokens (forward output, backward source pass), and the backward's target pass reduces dS itself."""
    return d <= BLOCK_C and e <= BLOCK_C


def mma_mode(dtype: torch.dtype) -> int:
    """The operand precision of the products for inputs of `dtype` (see the module docstring)."""
    if dtype == torch.bfloat16:
        return MMA_BF16_ROUNDED_FP32.value if INTERPRETED else MMA_BF16.value
    if dtype == torch.float32 and fp32_matmul_precision() == "ieee":
        return MMA_IEEE.value
    return MMA_TF32.value


def split(num_blocks: int, programs_per_split: int, device: torch.device, ctas_per_sm: int) -> int:
    """Into how many splits NS to share `num_blocks` token blocks, each split launching `programs_per_split`
    programs of a kernel `ctas_per_sm` of which fit on an SM (`best_split`)."""
    return best_split(((num_blocks, programs_per_split, sm_count(device) * ctas_per_sm),), num_blocks)


def _check_walkable(name: str, t: torch.Tensor) -> None:
    """The kernels offset the batch in int64 and within one (C, L) plane in int32."""
    span = sum((size + MAX_BLOCK) * stride for size, stride in zip(t.shape[1:], t.stride()[1:]))
    if span > INT32_MAX:
        raise ValueError(
            f"{name} of shape {tuple(t.shape)} and strides {t.stride()} spans {span} elements per batch entry: "
            f"the triton backend indexes one (C, L) plane in int32 (at most {INT32_MAX})"
        )


def _strides(t: torch.Tensor) -> tuple[int, int, int]:
    return t.stride(0), t.stride(1), t.stride(2)


def _has_no_work(b: int, d: int, e: int, lq: int, ls: int) -> bool:
    """Some size is zero: then the output and every gradient are all zeros (or empty)."""
    return 0 in (b, d, e, lq, ls)


def padded_channels(c: int) -> int:
    """c rounded up to whole channel tiles (the state's padded layout: see the kernels' `_padded`)."""
    return ceil_div(c, BLOCK_C) * BLOCK_C


def state_matrix_dtype(dtype: torch.dtype) -> torch.dtype:
    """How the reduced state matrix (S_c, dS) is stored for inputs of `dtype`. It is only ever an MMA operand: for
    bf16 inputs a bf16 one, rounded to nearest even, so it is stored rounded (the same products, half the reads);
    fp32 otherwise (TF32 operands are rounded in the kernels, IEEE products take fp32)."""
    return torch.bfloat16 if dtype == torch.bfloat16 else torch.float32


def _state_buffers(like: torch.Tensor, b: int, e: int, d: int) -> tuple:
    """Uninitialised (B, E_pad, D_pad) state matrix (`state_matrix_dtype`), fp32 (B, D_pad) and (B, E_pad) vectors:
    the reduce writes every element, padding included."""
    e_pad, d_pad = padded_channels(e), padded_channels(d)
    return (like.new_empty((b, e_pad, d_pad), dtype=state_matrix_dtype(like.dtype)),
            *(like.new_empty(shape, dtype=torch.float32) for shape in ((b, d_pad), (b, e_pad))))


def _channel_tiles(e: int, d: int) -> int:
    return ceil_div(e, BLOCK_C) * ceil_div(d, BLOCK_C)


def _reduce(parts: tuple, results: tuple, e: int, d: int, num_splits: int, inv_count: float, center: bool,
            mma: int) -> None:
    b = results[0].shape[0]
    _linear_cross_attention_reduce_kernel[(_channel_tiles(e, d), b)](
        *parts, *results, e, d, num_splits, inv_count, CENTER=center, MMA=mma, BLOCK_C=BLOCK_C,
        **REDUCE_LAUNCH.options(),
    )


# A stacked input is a list of parts of one shape and strides, stacked along the batch and read where they lie
# (`_entry`): the model's batched calls stack the attentions of several layers without copying them.
ALIGNED_PART_UNIT = JIT_DIVISIBILITY  # elements: part offsets that are multiples keep the alignment the JIT knows


class Stacked:
    """A (B, C, L) kernel input as parts of one shape and strides stacked along the batch: the parts and their
    offsets from the first in elements. `of` builds it where the kernels can read the parts in place."""

    __slots__ = ("parts", "offsets")

    def __init__(self, parts: list, offsets: list[int]):
        self.parts, self.offsets = parts, offsets

    @staticmethod
    def of(parts: list) -> Stacked | None:
        """The parts (made contiguous where their strides differ: a copy), or None where one lies a fraction of an
        element from the first (reinterpreted byte buffers)."""
        if len({part.stride() for part in parts}) > 1:
            parts = [part.contiguous() for part in parts]
        size, first = parts[0].element_size(), parts[0].data_ptr()
        distances = [part.data_ptr() - first for part in parts]
        if any(distance % size for distance in distances):
            return None
        return Stacked(parts, [distance // size for distance in distances])

    def aligned(self, start: int, end: int) -> bool:
        """Whether parts start..end-1 lie multiples of ALIGNED_PART_UNIT elements from part `start`."""
        base = self.offsets[start]
        return all((offset - base) % ALIGNED_PART_UNIT == 0 for offset in self.offsets[start + 1:end])

    def arguments(self, start: int, end: int, unit: int) -> tuple:
        """The kernel arguments of parts start..end-1 (at most MAX_PARTS): part `start`, its three strides and the
        others' offsets from it in `unit`s of elements, zero past the last (`_entry`)."""
        first, base = self.parts[start], self.offsets[start]
        offsets = [(offset - base) // unit for offset in self.offsets[start + 1:end]]
        return (first, *_strides(first), *offsets, *(0,) * (MAX_PARTS - len(offsets) - 1))


def _part_unit(inputs: tuple, start: int, end: int) -> int:
    """PART_UNIT of a launch reading parts start..end-1 of the stacked `inputs`: ALIGNED_PART_UNIT where every
    offset is a multiple of it (always, for tensors of their own allocations), else 1."""
    return ALIGNED_PART_UNIT if all(x.aligned(start, end) for x in inputs) else 1


def _stacked_inputs(q: list, k: list, v: list) -> tuple[Stacked, Stacked, Stacked]:
    """q, k, v as the kernels read them: in place where they have one number of parts, else (calls unlike the
    model's) each concatenated into one part, a copy inside the launchers (the gradients are stacked either way)."""
    if len(q) == len(k) == len(v):
        stacked = tuple(Stacked.of(parts) for parts in (q, k, v))
        if all(stacked):
            return stacked
    return tuple(Stacked([torch.cat(parts)], [0]) for parts in (q, k, v))


@functools.cache
def _chunks(num_parts: int) -> tuple[tuple[int, int], ...]:
    """[start, end) part ranges of at most MAX_PARTS parts, as even as possible: one launch sequence each."""
    count = ceil_div(num_parts, MAX_PARTS)
    return tuple((i * num_parts // count, (i + 1) * num_parts // count) for i in range(count))


def _rows(tensors: tuple, start: int, end: int, part_batch: int, num_parts: int) -> tuple:
    """The rows of parts start..end-1 of stacked outputs (the tensors themselves when that is all of them)."""
    if (start, end) == (0, num_parts):
        return tensors
    return tuple(t[start * part_batch:end * part_batch] for t in tensors)


def _state_partials(x: Stacked, f: Stacked, start: int, end: int, unit: int, feature: int,
                    inv_m: torch.Tensor | None = None, bracket: torch.Tensor | None = None) -> tuple:
    """Partial sums over splits of the length axis (see the state kernel) and the number of splits, for parts
    start..end-1 of the stacked x (B, E, L) and f (B, D, L)."""
    part_batch, e, length = x.parts[0].shape
    b, d = part_batch * (end - start), f.parts[0].shape[1]
    device = x.parts[0].device
    channel_tiles = _channel_tiles(e, d)
    launch = for_inputs(STATE_LAUNCH, FP32_STATE_LAUNCH, x.parts[0].dtype)
    num_splits = split(ceil_div(length, launch.block_tokens), channel_tiles * b, device, launch.ctas_per_sm)
    backward = inv_m is not None
    mat = torch.empty(b, num_splits, e, d, device=device, dtype=torch.float32)
    fsum = torch.empty(b, num_splits, d, device=device, dtype=torch.float32)
    xsum, xshift = (torch.empty(b, 0 if backward else num_splits, e, device=device, dtype=torch.float32)
                    for _ in range(2))
    _linear_cross_attention_state_kernel[(num_splits, channel_tiles, b)](
        *x.arguments(start, end, unit), *f.arguments(start, end, unit),
        inv_m if backward else fsum, bracket if backward else fsum,  # placeholders: read only when BACKWARD
        mat, fsum, xsum, xshift, e, d, length, part_batch,
        FEATURE=feature, MMA=mma_mode(x.parts[0].dtype), BACKWARD=backward, BLOCK_C=BLOCK_C,
        BLOCK_L=launch.block_tokens, PART_UNIT=unit, **launch.options(),
    )
    return (mat, fsum, xsum, xshift), num_splits


def linear_cross_attention_fwd(q: list, k: list, v: list, feature_map: str, eps: float):
    """out (B, E, Lq) in q's dtype for q, k, v given as lists of parts (`Stacked`), and the state the backward needs,
    padded to whole channel tiles (zeros): S_c (B, E_pad, D_pad) in `state_matrix_dtype`, fp32 z (B, D_pad) and
    mu (B, E_pad). Every MAX_PARTS parts are one launch sequence, into their rows of the outputs."""
    inputs = q, k, v = _stacked_inputs(q, k, v)
    first, num_parts = q.parts[0], len(q.parts)
    part_batch, d, lq = first.shape
    e, ls = v.parts[0].shape[1], v.parts[0].shape[2]
    b = part_batch * num_parts
    out = first.new_empty(b, e, lq)
    state, norm, mean = _state_buffers(first, b, e, d)
    if _has_no_work(b, d, e, lq, ls):
        return out.zero_(), state.zero_(), norm.zero_(), mean.zero_()
    feature, mma = FEATURE_CODES[feature_map], mma_mode(first.dtype)
    fused = fuses_state(d, e)
    if fused:
        launch = for_inputs(FWD_FUSED_LAUNCH, FP32_FWD_FUSED_LAUNCH, first.dtype)
        kernel = _linear_cross_attention_fwd_fused_kernel
    else:
        launch = for_inputs(FWD_LAUNCH, FP32_FWD_LAUNCH, first.dtype)
        kernel = _linear_cross_attention_fwd_kernel
    for start, end in _chunks(num_parts):
        unit = _part_unit(inputs, start, end)
        chunk_b = part_batch * (end - start)
        chunk_out, *chunk_state = _rows((out, state, norm, mean), start, end, part_batch, num_parts)
        parts, num_splits = _state_partials(v, k, start, end, unit, feature)
        _reduce(parts, chunk_state, e, d, num_splits, 1.0 / ls, True, mma)
        if fused:
            grid = (split(ceil_div(lq, launch.block_tokens), chunk_b, first.device, launch.ctas_per_sm), chunk_b)
        else:
            grid = (ceil_div(lq, launch.block_tokens), ceil_div(e, BLOCK_C), chunk_b)
        kernel[grid](
            *q.arguments(start, end, unit), *chunk_state, chunk_out, *_strides(chunk_out), e, d, lq, eps, part_batch,
            FEATURE=feature, MMA=mma, BLOCK_C=BLOCK_C, BLOCK_T=launch.block_tokens, PART_UNIT=unit,
            **launch.options(),
        )
    return out, state, norm, mean


def linear_cross_attention_bwd(grad_out: torch.Tensor, q: list, k: list, v: list, state: torch.Tensor,
                               norm: torch.Tensor, mean: torch.Tensor, feature_map: str, eps: float):
    """(dq, dk, dv), each (B, C, L) stacked in the inputs' dtype, from the upstream gradient (B, E, Lq) (any
    strides) and the forward's fp32 state."""
    q, k, v = _stacked_inputs(q, k, v)
    first, num_parts = q.parts[0], len(q.parts)
    part_batch, d, lq = first.shape
    e, ls = v.parts[0].shape[1], v.parts[0].shape[2]
    b = part_batch * num_parts
    dq, dk, dv = (x.parts[0].new_empty(b, *x.parts[0].shape[1:]) for x in (q, k, v))
    if _has_no_work(b, d, e, lq, ls):
        return dq.zero_(), dk.zero_(), dv.zero_()
    _check_walkable("grad_out", grad_out)
    grad = Stacked.of(list(grad_out.split(part_batch)))  # views: a stacked input like the others
    feature, mma = FEATURE_CODES[feature_map], mma_mode(first.dtype)
    common = dict(FEATURE=feature, MMA=mma, BLOCK_C=BLOCK_C)
    fused = fuses_state(d, e)
    for start, end in _chunks(num_parts):
        unit = _part_unit((q, k, v, grad), start, end)
        chunk_b = part_batch * (end - start)
        chunk_dq, chunk_dk, chunk_dv, *chunk_state = _rows((dq, dk, dv, state, norm, mean), start, end, part_batch,
                                                           num_parts)
        dstate, dnorm, _ = _state_buffers(first, chunk_b, e, d)
        target = (*q.arguments(start, end, unit), *grad.arguments(start, end, unit)[:4], *chunk_state, chunk_dq,
                  *_strides(chunk_dq))
        if fused:
            launch = TARGET_FUSED_LAUNCH
            num_splits = split(ceil_div(lq, launch.block_tokens), chunk_b, first.device, launch.ctas_per_sm)
            mat = torch.empty(chunk_b, num_splits, e, d, device=first.device, dtype=torch.float32)
            fsum = torch.empty(chunk_b, num_splits, d, device=first.device, dtype=torch.float32)
            _linear_cross_attention_bwd_target_fused_kernel[(num_splits, chunk_b)](
                *target, mat, fsum, e, d, lq, eps, part_batch, **common, BLOCK_T=launch.block_tokens, PART_UNIT=unit,
                **launch.options(),
            )
        else:
            inv_m = torch.empty(chunk_b, lq, device=first.device, dtype=torch.float32)
            bracket = torch.empty(chunk_b, lq, device=first.device, dtype=torch.float32)
            launch = for_inputs(TARGET_LAUNCH, FP32_TARGET_LAUNCH, first.dtype)
            _linear_cross_attention_bwd_target_kernel[(ceil_div(lq, launch.block_tokens), chunk_b)](
                *target, inv_m, bracket, e, d, lq, eps, part_batch, **common, BLOCK_T=launch.block_tokens,
                PART_UNIT=unit, **launch.options(),
            )
            (mat, fsum, _, _), num_splits = _state_partials(grad, q, start, end, unit, feature, inv_m, bracket)
        # no centring in the backward: the slots for the E vectors are placeholders
        _reduce((mat, fsum, fsum, fsum), (dstate, dnorm, dnorm), e, d, num_splits, 1.0, False, mma)

        if fused:
            launch = for_inputs(SOURCE_FUSED_LAUNCH, FP32_SOURCE_FUSED_LAUNCH, first.dtype)
            num_splits = split(ceil_div(ls, launch.block_tokens), chunk_b, first.device, launch.ctas_per_sm)
            kernel, grid = _linear_cross_attention_bwd_source_fused_kernel, (num_splits, chunk_b)
        else:
            launch = _source_launch(ls, first.dtype)
            kernel, grid = _linear_cross_attention_bwd_source_kernel, (
                ceil_div(ls, launch.block_tokens), ceil_div(d, BLOCK_C) + ceil_div(e, BLOCK_C), chunk_b)
        kernel[grid](
            *k.arguments(start, end, unit), *v.arguments(start, end, unit), dstate, dnorm, chunk_state[2], chunk_dk,
            *_strides(chunk_dk), chunk_dv, *_strides(chunk_dv), e, d, ls, part_batch,
            **common, BLOCK_L=launch.block_tokens, PART_UNIT=unit, **launch.options(),
        )
    return dq, dk, dv


# ---------------------------------------------------------------------------------------------------------------
# Custom operators (kernels/_library.py), their autograd, the eager path, and the public op
# ---------------------------------------------------------------------------------------------------------------


@custom_op("linear_cross_attention_fwd")
def _forward_op(
    q: list[torch.Tensor], k: list[torch.Tensor], v: list[torch.Tensor], feature_map: str, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return linear_cross_attention_fwd(q, k, v, feature_map, eps)


@_forward_op.register_fake
def _(q, k, v, feature_map, eps):
    part_batch, d, lq = q[0].shape
    b, e = part_batch * len(q), v[0].shape[1]
    return q[0].new_empty(b, e, lq), *_state_buffers(q[0], b, e, d)


@custom_op("linear_cross_attention_bwd")
def _backward_op(
    grad_out: torch.Tensor, q: list[torch.Tensor], k: list[torch.Tensor], v: list[torch.Tensor], state: torch.Tensor,
    norm: torch.Tensor, mean: torch.Tensor, feature_map: str, eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return linear_cross_attention_bwd(grad_out, q, k, v, state, norm, mean, feature_map, eps)


@_backward_op.register_fake
def _(grad_out, q, k, v, state, norm, mean, feature_map, eps):
    return tuple(parts[0].new_empty(parts[0].shape[0] * len(parts), *parts[0].shape[1:]) for parts in (q, k, v))


def _split_grads(grads: tuple, counts: tuple) -> tuple:
    """The stacked (dq, dk, dv) as lists of views, one per part of q, k and v (`counts` parts each)."""
    return tuple(list(grad.split(grad.shape[0] // n)) if grad.shape[0] else [grad] * n
                 for grad, n in zip(grads, counts))


def _setup_context(ctx, inputs, output):
    """Saves the parts of q, k, v and the fp32 state (S_c, z, mu), nothing of size L but the inputs."""
    q, k, v, feature_map, eps = inputs
    ctx.save_for_backward(*q, *k, *v, *output[1:])
    ctx.counts, ctx.feature_map, ctx.eps = (len(q), len(k), len(v)), feature_map, eps


def _saved_inputs(ctx) -> tuple:
    """([q parts], [k parts], [v parts], state, norm, mean) from the tensors `_setup_context` or `_Eager` saved."""
    saved, inputs = list(ctx.saved_tensors), []
    for count in ctx.counts:
        inputs.append(saved[:count])
        del saved[:count]
    return *inputs, *saved


def _backward(ctx, grad_out, *state_grads):  # the state outputs are internal: their gradients are unused
    grads = _backward_op(grad_out, *_saved_inputs(ctx), ctx.feature_map, ctx.eps)
    return *_split_grads(grads, ctx.counts), None, None


_forward_op.register_autograd(_backward, setup_context=_setup_context)


class _Eager(torch.autograd.Function):
    """The op outside torch.compile: the launchers and the autograd formula of the custom operators above, without
    the operators' dispatch (host time of the order of the launchers' own). torch.compile traces the operators."""

    @staticmethod
    def forward(ctx, feature_map, eps, counts, *inputs):
        q, k, v = (list(inputs[sum(counts[:i]):sum(counts[:i + 1])]) for i in range(3))
        out, *state = linear_cross_attention_fwd(q, k, v, feature_map, eps)
        ctx.save_for_backward(*inputs, *state)
        ctx.counts, ctx.feature_map, ctx.eps = counts, feature_map, eps
        return out

    @staticmethod
    def backward(ctx, grad_out):
        grads = linear_cross_attention_bwd(grad_out, *_saved_inputs(ctx), ctx.feature_map, ctx.eps)
        return None, None, None, *(g for parts in _split_grads(grads, ctx.counts) for g in parts)


# Per call key (kernels/_call_memo.py): the calls validated before.
_CALLS = CallMemo()


@autocast_aware
def linear_cross_attention(
    q: Stackable, k: Stackable, v: Stackable, *, feature_map: str = "softplus", eps: float = 1e-12
) -> torch.Tensor:
    """q: (B, D, Lq) and k: (B, D, Ls) pre-activations, v: (B, E, Ls) values -> (B, E, Lq); any strides. Each of
    q, k, v may also be a sequence of parts of one shape, stacked along the batch as by torch.cat and read in place.

    out[b, :, i] = sum_a (phi(q_i) . phi(k_a)) v_a / max(sum_a phi(q_i) . phi(k_a), eps), phi = softplus or identity.
    """
    parts = tuple(list(x) if isinstance(x, (list, tuple)) else [x] for x in (q, k, v))
    key = memo_key((*parts[0], *parts[1], *parts[2]), *map(type, (q, k, v)), *map(len, parts), feature_map, eps)
    if _CALLS.get(key) is None:
        parts = check_linear_cross_attention(q, k, v, feature_map, eps)
        for name, x in zip("qkv", parts):
            check_kernel_dtype(name, x[0])
            check_device(name, x[0])
            for part in {part.stride(): part for part in x}.values():  # the parts share their shape
                _check_walkable(name, part)
        if torch.compiler.is_compiling():
            return _forward_op(*parts, feature_map, eps)[0]
        _CALLS.put(key, True)
    return _Eager.apply(feature_map, eps, tuple(map(len, parts)), *parts[0], *parts[1], *parts[2])


# ---------------------------------------------------------------------------------------------------------------
# Ahead-of-time compile list
# ---------------------------------------------------------------------------------------------------------------

# Pointers to tensors of the input dtype; every other pointer is an fp32 buffer.
_DATA_POINTERS = {"x_ptr", "f_ptr", "q_ptr", "k_ptr", "v_ptr", "do_ptr", "out_ptr", "dq_ptr", "dk_ptr", "dv_ptr"}
_STATE_MATRIX_POINTERS = {"state_ptr", "dstate_ptr", "mat_ptr"}  # in state_matrix_dtype
_FLOAT_ARGS = ("eps", "inv_count")
_LENGTHS = ("L", "Lq", "Ls")


def _aot_config(name: str, kernel, dtype_name: str, constexprs: dict, launch: KernelLaunch,
                tensor_cores: bool = True, model_layout: bool = False, state_matrix: str = "fp32") -> AotConfig:
    """The launch compiled for the worst case (no argument divisible by 16: every load scalar), or, with
    `model_layout`, specialised as the JIT specialises the model's hot calls (token strides 1; pointers, the other
    strides and the lengths divisible by 16; separately allocated parts of stacked inputs), where the residency the
    launcher sizes grids by must hold."""
    if "PART_UNIT" in kernel.arg_names:
        constexprs = dict(constexprs, PART_UNIT=ALIGNED_PART_UNIT if model_layout else 1)
    buffers = {arg: state_matrix if arg in _STATE_MATRIX_POINTERS else "fp32" for arg in kernel.arg_names
               if arg.endswith("_ptr") and arg not in _DATA_POINTERS}
    unit, divisible = (), ()
    if model_layout:
        unit = tuple(arg for arg in kernel.arg_names if arg.startswith("stride_") and arg.endswith("l"))
        divisible = tuple(arg for arg in kernel.arg_names if arg.endswith("_ptr") or arg in _LENGTHS
                          or (arg.startswith("stride_") and arg not in unit))
    signature, constexprs = aot_signature(kernel, dtype_name, pointers=buffers, floats=_FLOAT_ARGS,
                                          unit_strides=unit, constexprs=constexprs)
    return AotConfig(name=name, kernel=kernel, signature=signature, constexprs=constexprs,
                     num_warps=launch.num_warps, num_stages=launch.num_stages, tensor_cores=tensor_cores,
                     divisible=divisible, ctas_per_sm=launch.ctas_per_sm if model_layout else 0,
                     extra=dict(maxnreg=launch.max_registers) if launch.max_registers else {})


def aot_configs() -> list[AotConfig]:
    """Every configuration the launchers can pick: each kernel for each dtype, operand precision and feature map
    (the tiles and launch options are fixed per kernel), and the reduce with and without centring; and the kernels
    whose grids are split by their residency once more as the model's bf16 calls specialise them, with the
    residency their launch declares (`KernelLaunch.ctas_per_sm`)."""
    configs = [_aot_config(f"reduce-center{int(center)}-{matrix}", _linear_cross_attention_reduce_kernel, "fp32",
                           dict(CENTER=center, MMA=mma.value, BLOCK_C=BLOCK_C), REDUCE_LAUNCH, tensor_cores=False,
                           state_matrix=matrix)
               for center in (True, False) for matrix, mma in (("fp32", MMA_TF32), ("bf16", MMA_BF16))]
    # (dtype, operand precision): bf16 on bf16 tensor cores; fp16 on TF32 ones; fp32 on TF32 ones or IEEE on FMAs
    modes = [(torch.bfloat16, MMA_BF16), (torch.float16, MMA_TF32), (torch.float32, MMA_TF32),
             (torch.float32, MMA_IEEE)]
    for dtype, mma in modes:
        dtype_name = TRITON_DTYPE_NAMES[dtype]
        tensor_cores = mma.value != MMA_IEEE.value
        for feature_map, feature in FEATURE_CODES.items():
            common = dict(FEATURE=feature, MMA=mma.value, BLOCK_C=BLOCK_C)
            label = f"{dtype_name}{'' if tensor_cores else '-ieee'}-{feature_map}"
            fwd = for_inputs(FWD_LAUNCH, FP32_FWD_LAUNCH, dtype)
            target = for_inputs(TARGET_LAUNCH, FP32_TARGET_LAUNCH, dtype)
            source = for_inputs(SOURCE_LAUNCH, FP32_SOURCE_LAUNCH, dtype)
            fwd_fused = for_inputs(FWD_FUSED_LAUNCH, FP32_FWD_FUSED_LAUNCH, dtype)
            source_fused = for_inputs(SOURCE_FUSED_LAUNCH, FP32_SOURCE_FUSED_LAUNCH, dtype)
            state = for_inputs(STATE_LAUNCH, FP32_STATE_LAUNCH, dtype)
            # (name, kernel, launch, constexprs, split over the tokens by its residency)
            kernels = [(f"state-{'bwd' if backward else 'fwd'}", _linear_cross_attention_state_kernel, state,
                        dict(BACKWARD=backward, BLOCK_L=state.block_tokens), True) for backward in (False, True)]
            kernels += [
                ("fwd", _linear_cross_attention_fwd_kernel, fwd, dict(BLOCK_T=fwd.block_tokens), False),
                ("bwd-target-fused", _linear_cross_attention_bwd_target_fused_kernel, TARGET_FUSED_LAUNCH,
                 dict(BLOCK_T=TARGET_FUSED_LAUNCH.block_tokens), True),
                ("bwd-target", _linear_cross_attention_bwd_target_kernel, target,
                 dict(BLOCK_T=target.block_tokens), False),
                ("bwd-source", _linear_cross_attention_bwd_source_kernel, source, dict(BLOCK_L=source.block_tokens),
                 False),
                ("fwd-fused", _linear_cross_attention_fwd_fused_kernel, fwd_fused,
                 dict(BLOCK_T=fwd_fused.block_tokens), True),
                ("bwd-source-fused", _linear_cross_attention_bwd_source_fused_kernel, source_fused,
                 dict(BLOCK_L=source_fused.block_tokens), True),
            ]
            if dtype == torch.bfloat16:  # the source pass of aligned lengths (`_source_launch`), here at its worst
                kernels.append(("bwd-source-aligned", _linear_cross_attention_bwd_source_kernel, SOURCE_ALIGNED_LAUNCH,
                                dict(BLOCK_L=SOURCE_ALIGNED_LAUNCH.block_tokens), False))
            matrix = TRITON_DTYPE_NAMES[state_matrix_dtype(dtype)]
            for name, kernel, launch, constexprs, split_by_residency in kernels:
                configs.append(_aot_config(f"{name}-{label}", kernel, dtype_name, dict(common, **constexprs), launch,
                                           tensor_cores, state_matrix=matrix))
                if split_by_residency and dtype == torch.bfloat16:
                    configs.append(_aot_config(f"{name}-{label}-model-layout", kernel, dtype_name,
                                               dict(common, **constexprs), launch, tensor_cores, model_layout=True,
                                               state_matrix=matrix))
    return configs
