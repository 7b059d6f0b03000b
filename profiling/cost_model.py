"""Residency, waves, the roofline floor and the predicted time of a Triton launch on an H100/H200 (sm_90), from
compile-time figures only. Everything here is a prediction, not a measurement: the GPU session measures.

Residency. A CTA of `w` warps with `r` registers per thread and `s` bytes of shared memory fits on one SM
    min(REGISTERS_PER_SM // (w * ceil(32 r / REGISTER_UNIT) * REGISTER_UNIT),   registers, allocated per warp
        SHARED_PER_SM // (s + SHARED_RESERVED_PER_CTA),                            shared memory
        WARPS_PER_SM // w,  CTAS_PER_SM)                                            warps, blocks
times; 0 when it cannot run at all (s > SHARED_PER_CTA or r > MAX_REGISTERS). A grid of P programs then runs in
waves = P / (SMS * ctas_per_sm) (fractional; the last wave of ceil(waves) may be partial).

Floor of an op call: max(bytes / BANDWIDTH, flops / TENSOR_FLOPS["BF16"]), its minimal bytes and FLOPs against the
two ceilings measured on these machines (KERNELS.md section 0). Eager prediction (`eager_us`): the same floor for each
kernel the reference runs in eager mode, plus LAUNCH_US each, summed.

Prediction of a launch (`predicted_us`): the busiest SM's work against its share of each of the chip's rates, the
slowest of them, plus a fixed cost per launch:
    predicted_us = LAUNCH_US + max(issue, tensor, mufu, dram, l2)
Per program the work is the launch's total over its P programs, each priced as the mean of up to 16 programs sampled
over the grid (profiling/_sass.py's `sampled_programs`). The busiest SM runs ceil(waves) waves of `resident` =
min(ctas_per_sm, ceil(P / SMS)) CTAs each, i.e. `per_sm` = ceil(waves) * resident programs, and the terms are
    issue   per_sm * warp instructions per program / (ISSUE_PER_CLOCK * CLOCK_HZ) * max(1, LATENCY_WARPS / warps):
            4 schedulers issue one warp instruction per clock each when each has LATENCY_WARPS / 4 warps to pick
            from; with fewer resident warps (`warps` = resident * num_warps) the issue rate falls in proportion;
    tensor  per_sm * tensor-core FLOPs per program / (TENSOR_FLOPS[operand type] / SMS), summed over operand types;
    mufu    per_sm * MUFU warp instructions per program * 32 / (MUFU_PER_CLOCK * CLOCK_HZ);
    dram    per_sm * DRAM bytes per program / (BANDWIDTH / SMS): each tensor the launch loads or stores, once, as far
            as it is touched (profiling/_sass.py's `dram_bytes`: Triton IR loads and stores per pointer argument,
            weighted by loop trips and by the shares of trips that take the branches around them, none in an arm
            known not taken, capped at the tensor's extent);
    l2      per_sm * bytes requested per program / (L2_BANDWIDTH / SMS): every global load and store issued (LDG,
            STG, LDGSTS), at its width, re-reads included (TMA copies are not counted: their size is not in the
            instruction).
Every term but dram is at least `resident` times the heaviest sampled program's work: in a launch whose programs'
work is uneven (the window attention backward's first programs hold whole ranges of windows, its last ones fewer or
none), the heavy programs of the first wave share SMs, so the busiest SM runs that much; with many waves the mean
decides (the aggregation's 82 waves), with about one it is the heaviest programs' (as pricing every program as
program 0 did, where program 0 is the heaviest).
Instructions, requested bytes, tensor-core FLOPs and MUFU operations are the SASS counts weighted by the loops' trip
counts for the launch, along program 0's path where its arguments decide a branch (profiling/_sass.py): where
programs take one of two arms by their id (the linear attention's non-fused source pass: dk programs and dv
programs), every program is priced as program 0's arm; a branch inside a loop whose condition changes from trip to
trip is counted at the share of trips that take it (a third compile without its arm: profiling/_sass.py, "Branches
in loops"). The model ignores memory latency
beyond the LATENCY_WARPS rule, L2 hit rates, bank conflicts and the overlap of launches; the GPU session's
measurements judge it.
"""

from __future__ import annotations

import math

# sm_90 residency limits (CUDA occupancy calculator, compute capability 9.0)
REGISTERS_PER_SM = 65536
REGISTER_UNIT = 256  # registers are allocated per warp in units of 256
MAX_REGISTERS = 255
SHARED_PER_SM = 228 * 1024
SHARED_PER_CTA = 227 * 1024  # the most one block may use
SHARED_RESERVED_PER_CTA = 1024  # the system's shared memory per block
WARPS_PER_SM = 64
CTAS_PER_SM = 32

# H100 SXM / H200 rates
SMS = 132
CLOCK_HZ = 1.755e9  # sustained SM clock under load (boost 1.98 GHz)
ISSUE_PER_CLOCK = 4  # warp instructions per clock per SM (4 schedulers)
LATENCY_WARPS = 16  # resident warps per SM (4 per scheduler) that keep every scheduler issuing
MUFU_PER_CLOCK = 16  # exp2/log2/rcp lanes per clock per SM (KERNELS.md section 0)
BANDWIDTH = 3.0e12  # bytes/s, copy bandwidth measured on H100 (read + written)
L2_BANDWIDTH = 7.0e12  # bytes/s, L2 hits (assumed: about 2.3x HBM, published H100 microbenchmarks)
# Tensor-core FLOP/s per operand type: an 8192^3 bf16 GEMM measured on H100/H200; the other types scaled by their
# datasheet ratio to bf16.
TENSOR_FLOPS = {"BF16": 790e12, "F16": 790e12, "TF32": 395e12, "E4M3": 1580e12, "E5M2": 1580e12}
LAUNCH_US = 2.5  # launch and tail of one kernel in a stream of launches (KERNELS.md: below ~10 us latency rules)


def ctas_per_sm(registers: int, shared_bytes: int, num_warps: int) -> int:
    """CTAs of one launch resident on an SM at once: the least of what registers, shared memory, warps and the
    block limit allow (0 if one CTA cannot fit)."""
    if registers > MAX_REGISTERS or shared_bytes > SHARED_PER_CTA:
        return 0
    per_warp = math.ceil(max(registers, 1) * 32 / REGISTER_UNIT) * REGISTER_UNIT
    by_registers = REGISTERS_PER_SM // (num_warps * per_warp)
    by_shared = SHARED_PER_SM // (shared_bytes + SHARED_RESERVED_PER_CTA)
    return min(by_registers, by_shared, WARPS_PER_SM // num_warps, CTAS_PER_SM)


def waves(programs: int, ctas: int) -> float:
    """Full passes of the grid over the SMs (fractional); infinite if a CTA cannot fit."""
    return programs / (SMS * ctas) if ctas else math.inf


def floor_us(nbytes: float, flops: float) -> float:
    """The op call's roofline floor: its minimal bytes or FLOPs at the measured ceilings, whichever is slower."""
    return max(nbytes / BANDWIDTH, flops / TENSOR_FLOPS["BF16"]) * 1e6


def eager_us(kernels: list) -> float:
    """A prediction of the reference's eager run: each of its kernels ((bytes, FLOPs), bench/eager_trace.py's
    `eager_kernels`) at its roofline floor, plus a launch each. Every kernel at the ceilings: a lower bound on eager
    time, so the comparison favours eager."""
    return sum(LAUNCH_US + floor_us(nbytes, flops) for nbytes, flops in kernels)


def terms_us(record: dict) -> dict:
    """The five terms of the module docstring, in microseconds on the busiest SM, from a record's compile-time fields:
    grid, num_warps, ctas_per_sm, and per launch (all programs) issued_instructions, tensor_flops (operand type ->
    FLOPs), mufu_ops, dram_bytes and requested_bytes; each term but dram at least `resident` programs' of the
    heaviest's work (`heaviest_program`, the same fields for one program, where recorded)."""
    programs = math.prod(record["grid"])
    ctas = record["ctas_per_sm"]
    if not ctas:
        return dict.fromkeys(("issue", "tensor", "mufu", "dram", "l2"), math.inf)
    resident = min(ctas, math.ceil(programs / SMS))
    busiest = math.ceil(waves(programs, ctas)) * resident / programs  # the busiest SM's share of the launch
    latency = max(1.0, LATENCY_WARPS / (resident * record["num_warps"]))

    def seconds(work: dict) -> dict:
        return dict(
            issue=work["issued_instructions"] / (ISSUE_PER_CLOCK * CLOCK_HZ) * latency,
            tensor=sum(flops / (TENSOR_FLOPS[kind] / SMS) for kind, flops in work["tensor_flops"].items()),
            mufu=work["mufu_ops"] * 32 / (MUFU_PER_CLOCK * CLOCK_HZ),
            l2=work["requested_bytes"] / (L2_BANDWIDTH / SMS),
        )

    launch = {name: busiest * value for name, value in seconds(record).items()}
    heaviest = seconds(record["heaviest_program"]) if record.get("heaviest_program") else {}
    terms = {name: max(value, resident * heaviest.get(name, 0.0)) for name, value in launch.items()}
    terms["dram"] = busiest * record["dram_bytes"] / (BANDWIDTH / SMS)
    return {name: value * 1e6 for name, value in terms.items()}


def predicted_us(record: dict) -> float:
    """The predicted time of one launch (the module docstring's model): the one place it is computed."""
    return LAUNCH_US + max(terms_us(record).values())
