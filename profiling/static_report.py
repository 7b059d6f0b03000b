"""Static cost report: every Triton launch of one SCA-MTL training step (NYUD-v2, 3 tasks, 480 x 640, batch 8, bf16
autocast, forward and backward), compiled for Hopper (sm_90) without a GPU. Compile-time figures and predictions,
not measurements.

How. Each distinct op call of the step (bench/shapes.py) runs on bf16 CPU tensors through the public Triton op,
forward and backward (autograd), with TRITON_INTERPRET=0 (the kernels stay JIT functions) and every
`JITFunction.run` intercepted: the launch is specialised as the JIT would (profiling/_sass.py) and recorded, nothing
runs on a device. The launchers' device check is bypassed (`bypass_device_checks`); the SM count they size grids by
is 132 without CUDA (an H100's). Outputs of intercepted launches are uninitialised memory, which the torch glue
between launches (sums of partials) reads harmlessly. Each distinct launch is compiled for sm_90, its cubin read
(registers, spills, shared memory, SASS counted by kind and per loop), and priced by profiling/cost_model.py. A
baseline is the `kernels` package of an older commit (`--kernels-commit`) under today's tool, shapes and model.

One JSONL record per distinct launch of an op call and direction (identical launches within one call are counted in
`launches`), after a header line (`"kind": "header"`):
    op, kernel, case, direction, calls_per_step, launches, grid, num_warps, num_stages, constexprs
    registers, spill_bytes (stored; spill_load_bytes loaded), stack_bytes, shared_bytes (dynamic + static per CTA),
    ctas_per_sm, waves                                                            (profiling/cost_model.py)
    tensor_core_ops, async_copies, vector_loads (LDG .128/.64), scalar_loads (LDG 32/16/8-bit), mufu,
    sass_instructions (the kernel), loop_instructions and loop_trips (its main loop, the top-level loop issuing the
    most: static instructions, trips per program for this launch, the sampled programs' mean), trips_matched (the
    SASS and TTIR loop nests agreed), unknown_trip_loops (SASS loops without a trip count, each counted as one
    iteration); where the nests disagree or a loop's trips are unknown, the dynamic counts are low
    decided_branches: the kernel's branches whose conditions program 0's arguments decide
    branch_shares: per branch in a loop's body that the arguments do not decide (its condition changes from trip to
    trip), the share of its executions that take it, where some program does not always take it
    issued_instructions, requested_bytes (global loads and stores at their widths), tensor_flops, mufu_ops: dynamic
    estimates for the whole launch (SASS counts weighted by loop trips and by branch_shares, the mean of sampled
    programs, along program 0's path where decided_branches: profiling/_sass.py); heaviest_program: the same four for
    the heaviest sampled program alone; dram_bytes (each tensor the launch reads or writes, once:
    profiling/_sass.py's `dram_bytes`)
    bytes, flops, floor_us: the op call's minimal bytes and FLOPs in this direction (bench/costs.py) and its floor
    eager_us: the reference's eager run of the op call predicted: its kernels traced (bench/eager_trace.py), each at
    its roofline plus a launch (profiling/cost_model.py `eager_us`); this checkout's reference, for a baseline too
    predicted_us, bound_by: the launch's predicted time and its largest term
    host_us: the op call's host time in this direction (the least of --repeats calls on this CPU: launcher planning,
    tables, allocations, torch's dispatch; the glue's arithmetic and Triton's own dispatch per launch excluded)
    host_floor_us: the same for an autograd.Function that takes the same tensors and does nothing but allocate its
    output and gradients (profiling/host_time.py): what any op of these inputs costs here, launchers or none
    host_dispatch_us: host_us with each launch going through Triton's own dispatch (`JITFunction.run` in its warm-up
    mode, against an sm_90 driver that answers without a GPU: argument binding, specialisation, the kernel cache's
    look-up); only the driver's launch call is left out
Files: bench/results/static/triton-<version>.jsonl and .md (baseline-triton-<version>.* with --baseline, kept as
what the kernel issues are measured against). Every report recomputes the baseline's predictions with today's
`cost_model.predicted_us`, so a change of the model moves both sides alike; measured GPU times
(bench/results/*.jsonl rows of provider "triton" from bench/gpu_session.py) are set beside the predictions where
they exist.

    python -m profiling.static_report                          # this checkout, the installed triton
    python -m profiling.static_report --baseline --kernels-commit 3d4e074   # the kept baseline's kernels package
    python -m profiling.static_report --readme                 # regenerate README's section from the files
    python -m profiling.static_report --markdown               # the .md files again, with new GPU times beside
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from profiling.host_time import (
    PreparedCall,
    call_host_seconds,
    glue_arithmetic_skipped,
    host_seconds,
    prepare_call,
    sm90_driver,
    tensors_in,
)

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "bench" / "results" / "static"
MEASURED_DIR = ROOT / "bench" / "results"
README = ROOT / "README.md"
README_START, README_END = "<!-- static-report:start -->", "<!-- static-report:end -->"
GOALS_START, GOALS_END = "<!-- static-goals:start -->", "<!-- static-goals:end -->"  # profiling/goals.py
DIRECTIONS = ("fwd", "bwd")
OP_MODULES = ("linear_attention", "window_attention", "concat_conv")
HONESTY = ("compile-time figures (sm_90 cubins compiled on a CPU) and predictions of profiling/cost_model.py; "
           "not measurements")


# ---------------------------------------------------------------------------------------------------------------------
# Capturing the launches of the step
# ---------------------------------------------------------------------------------------------------------------------


def _use_kernels_at(commit: str | None) -> None:
    """From here on, import the `kernels` package as it was at `commit` (the baseline's), the rest (bench, sca_mtl,
    profiling) from this checkout: the package is extracted with `git archive` into a temporary directory put first
    on sys.path, and this checkout's, imported to record the model's op calls, is forgotten."""
    if commit is None:
        return
    holder = tempfile.mkdtemp(prefix="static-report-kernels-")
    archive = subprocess.run(["git", "archive", commit, "kernels"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", holder], input=archive, check=True)
    sys.path.insert(0, holder)
    for name in [name for name in sys.modules if name == "kernels" or name.startswith("kernels.")]:
        del sys.modules[name]


def bypass_device_checks() -> None:
    """The op modules' launchers take CPU tensors from here on. They refuse them outside the interpreter: today by one
    function, kernels._triton's check_device, imported by name into each op module; the baseline commit 3d4e074
    predates it: its linear attention has `_check_device`, its window attention compares against its module flag
    INTERPRETED (read nowhere else after import: the kernels' constexpr copy of it was taken then) and its concat conv
    checks nothing."""
    for module in (importlib.import_module(f"kernels.{name}") for name in OP_MODULES):
        for name in ("check_device", "_check_device"):
            if hasattr(module, name):
                setattr(module, name, lambda *args: None)
        if not hasattr(module, "check_device") and hasattr(module, "INTERPRETED"):
            module.INTERPRETED = True


class Interceptor:
    """While active, `kernel[grid](...)` records its specialisation in `launches` (when `recording`) instead of
    launching anything; when `dispatching` instead, it goes through the JIT's own dispatch in its warm-up mode (no
    launch; `host_time.sm90_driver` must be active)."""

    def __init__(self, specialiser):
        self.specialiser = specialiser
        self.launches: list = []
        self.recording = True
        self.dispatching = False

    @contextmanager
    def active(self) -> Iterator[Interceptor]:
        from triton.runtime.jit import JITFunction

        from profiling import _sass

        original = JITFunction.run

        def run(kernel, *args, grid, warmup, **kwargs):
            if self.recording:
                if not all(_sass.storage_aligned(t) for t in tensors_in([*args, *kwargs.values()])):
                    raise RuntimeError(f"{kernel.__name__}: a tensor whose storage is not 16-byte aligned, unlike "
                                       "any CUDA allocation: the launch would not be specialised as on the GPU")
                self.launches.append(self.specialiser(kernel, grid, args, kwargs))
            elif self.dispatching:
                original(kernel, *args, grid=grid, warmup=True, **kwargs)

        JITFunction.run = run
        try:
            yield self
        finally:
            JITFunction.run = original

    def take(self) -> list:
        launches, self.launches = self.launches, []
        return launches


@dataclass
class RecordedCall:
    """One op call run once forward and once backward with its launches intercepted, and what timing it again needs."""

    forward: list  # the forward's launches (Specialisations), in order
    backward: list
    prepared: PreparedCall


def record_call(call, interceptor: Interceptor, dtype=None) -> RecordedCall:
    """`call` on CPU tensors of `dtype` (default bf16, the model's under autocast) through the Triton op, forward and
    backward, recording its launches (`interceptor` active)."""
    prepared = prepare_call(call, "cpu", dtype)
    forward = interceptor.take()
    prepared.run_backward()
    return RecordedCall(forward, interceptor.take(), prepared)


def capture_call(call, interceptor: Interceptor, repeats: int) -> dict:
    """direction -> (launches, host times: `HOST_FIELDS` -> seconds) of one op call on bf16 CPU tensors, the host times
    with the glue's arithmetic skipped (profiling/host_time.py) and on one thread (`main` sets it: a thread pool's
    start-up on a shared CPU costs milliseconds per parallel op, no part of a launcher's cost)."""
    recorded = record_call(call, interceptor)
    prepared = recorded.prepared
    runs = {"fwd": prepared.run_forward, "bwd": prepared.run_backward}
    interceptor.recording = False
    try:
        with glue_arithmetic_skipped():
            intercepted = call_host_seconds(prepared, repeats)
            interceptor.dispatching = True
            with sm90_driver():
                for run in runs.values():
                    run()  # untimed: the JIT compiles each kernel here, or loads it from Triton's cache
                dispatched = {direction: host_seconds(run, repeats) for direction, run in runs.items()}
    finally:
        interceptor.recording, interceptor.dispatching = True, False
    launches = {"fwd": recorded.forward, "bwd": recorded.backward}
    return {direction: (launches[direction], dict(zip(HOST_FIELDS, (*intercepted[direction], dispatched[direction]))))
            for direction in DIRECTIONS}


# A launch record's host times (us per op call, the same for each launch of the call): see the module docstring
HOST_FIELDS = ("host_us", "host_floor_us", "host_dispatch_us")


def distinct(launches: list) -> list[tuple]:
    """(specialisation, count) of the distinct launches, in first-launch order."""
    counts: dict = {}
    for spec in launches:
        key = (spec.key(), spec.grid, spec.scalars, tuple(t and t[1] for t in spec.tensors), spec.tables)
        if key in counts:
            counts[key][1] += 1
        else:
            counts[key] = [spec, 1]
    return [tuple(entry) for entry in counts.values()]


# ---------------------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------------------


class Compiler:
    """Compiles each distinct specialisation once per run and keeps what the records need."""

    def __init__(self, specialiser):
        self.specialiser = specialiser
        self._codes: dict = {}

    def code(self, spec):
        from profiling import _sass

        key = spec.key()
        if key not in self._codes:
            self._codes[key] = _sass.kernel_code(self.specialiser.compile(spec))
        return self._codes[key]

    def path_code(self, spec) -> tuple:
        """(the code program 0 of the launch runs, the number of branches its arguments decide, the code with one
        more branch's condition constant: (condition, value) -> code): the kernel compiled again from its TTIR with
        those branches taken as decided (`_sass.program_zero_path`), or the kernel's own code where none is; the
        third compiles, when first asked, the path with that condition constant too (for `_sass.dynamic_counts`)."""
        from profiling import _sass

        code = self.code(spec)
        decided = _sass.decided_branches(code.ttir, spec.scalars, spec.grid, spec.tables)

        def path(branches: dict):
            if not branches:
                return code
            key = (spec.key(), tuple(sorted(branches.items())))
            if key not in self._codes:
                self._codes[key] = _sass.kernel_code(
                    self.specialiser.compile_ttir(_sass.program_zero_path(code.ttir, branches), spec))
            return self._codes[key]

        return path(decided), len(decided), lambda condition, value: path({**decided, condition: value})


def launch_record(call, direction: str, spec, count: int, compiler: Compiler, costs: dict, eager: dict,
                  host: dict) -> dict:
    """The JSONL record of one distinct launch (see the module docstring); `host`: its call's host times in seconds
    (`HOST_FIELDS`)."""
    from profiling import _sass, cost_model

    code = compiler.code(spec)
    static = _sass.static_counts(code)
    path, decided, fixing = compiler.path_code(spec)
    programs = spec.grid[0] * spec.grid[1] * spec.grid[2]
    ctas = cost_model.ctas_per_sm(static["registers"], static["shared_bytes"], spec.options.num_warps)
    nbytes, flops = costs[direction]
    record = dict(
        kind="launch", op=call.op, kernel=spec.kernel.__name__, case=call.case, direction=direction,
        calls_per_step=call.count, launches=count, grid=list(spec.grid), num_warps=spec.options.num_warps,
        num_stages=spec.options.num_stages, constexprs=_constexpr_names(spec), **static, ctas_per_sm=ctas,
        waves=round(cost_model.waves(programs, ctas), 3), decided_branches=decided,
        **_sass.dynamic_counts(path, spec, fixing),
        bytes=nbytes, flops=flops, floor_us=round(cost_model.floor_us(nbytes, flops), 2),
        eager_us=round(cost_model.eager_us(eager[direction]), 2),
        **{field: round(seconds * 1e6, 1) for field, seconds in host.items()},
    )
    return with_prediction(record)


def with_prediction(record: dict) -> dict:
    """The record with `predicted_us` and `bound_by` from today's cost model (also applied to kept baselines)."""
    from profiling import cost_model

    terms = cost_model.terms_us(record)
    return {**record, "predicted_us": round(cost_model.predicted_us(record), 2), "bound_by": max(terms, key=terms.get)}


def _constexpr_names(spec) -> dict:
    """The launch's compile-time constants by parameter name (tensor-valued or structural ones as text)."""
    names = list(spec.signature)
    return {names[path[0]]: value if isinstance(value, (int, float, str, bool)) else str(value)
            for path, value in spec.constexprs.items() if len(path) == 1}


def step_records(calls, eager: dict, repeats: int, log=print) -> list[dict]:
    """Capture, compile and price every distinct launch of `calls` (forward and backward of each); `eager`: each
    call's eager kernels by case (bench/eager_trace.py)."""
    from bench.costs import call_costs
    from profiling import _sass

    specialiser = _sass.Specialiser()
    interceptor, compiler = Interceptor(specialiser), Compiler(specialiser)
    bypass_device_checks()
    records = []
    with interceptor.active():
        for call in calls:
            started = time.perf_counter()
            captured, costs = capture_call(call, interceptor, repeats), call_costs(call)
            for direction in DIRECTIONS:
                launches, host = captured[direction]
                records += [launch_record(call, direction, spec, count, compiler, costs, eager[call.case], host)
                            for spec, count in distinct(launches)]
            log(f"{call.case}: {sum(len(captured[d][0]) for d in DIRECTIONS)} launches, "
                f"{time.perf_counter() - started:.1f} s")
    return records


# ---------------------------------------------------------------------------------------------------------------------
# Files: JSONL, markdown, README section
# ---------------------------------------------------------------------------------------------------------------------


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def header(kernels_commit: str | None, size, batch: int, records: list[dict]) -> dict:
    """What the file describes: versions, the commit of the kernels, the step, and that nothing was measured."""
    import torch
    import triton

    if kernels_commit is None:
        commit = _git("rev-parse", "HEAD")
        changed = bool(_git("status", "--porcelain", "--", "kernels"))
        described = f"{commit}{' with uncommitted changes in kernels/' if changed else ''}"
    else:
        described = _git("rev-parse", kernels_commit)
    return dict(
        kind="header", what=f"every Triton launch of one SCA-MTL training step, {HONESTY}",
        kernels_commit=described, report_commit=_git("rev-parse", "HEAD"), triton=triton.__version__,
        torch=torch.__version__, target="sm_90 (H100/H200), 132 SMs", step=f"NYUD-v2 3 tasks, {size[0]}x{size[1]}, "
        f"batch {batch}, bf16, forward and backward", model="profiling/cost_model.py", host_cpu=_cpu_name(),
        date=time.strftime("%Y-%m-%d"), records=len(records),
    )


def _cpu_name() -> str:
    """The CPU the host times were taken on (they scale with it)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def read_report(path: Path) -> tuple[dict, list[dict]]:
    """(header, launch records with today's predictions) of a JSONL report."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    head = next(r for r in rows if r.get("kind") == "header")
    return head, [with_prediction(r) for r in rows if r.get("kind") == "launch"]


def write_report(path: Path, head: dict, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for row in (head, *records):
            f.write(json.dumps(row) + "\n")


def per_call(records: list[dict]) -> dict:
    """(op, case, direction) -> the op call's totals: predicted_us over its launches, floor, host time, calls."""
    calls: dict = {}
    for r in records:
        key = (r["op"], r["case"], r["direction"])
        entry = calls.setdefault(key, dict(predicted_us=0.0, launches=0, floor_us=r["floor_us"], host_us=r["host_us"],
                                           host_floor_us=r.get("host_floor_us"),
                                           host_dispatch_us=r.get("host_dispatch_us"), eager_us=r.get("eager_us"),
                                           calls_per_step=r["calls_per_step"]))
        entry["predicted_us"] += r["launches"] * r["predicted_us"]
        entry["launches"] += r["launches"]
    return calls


# The eager reference's provider name in each op benchmark's rows (window attention, linear attention, concat conv)
EAGER_PROVIDERS = ("reference", "torch", "eager")


def measured_us(results_dir: Path = MEASURED_DIR, providers: tuple = ("triton",)) -> dict:
    """(case, mode) -> the newest measured GPU time (us) of `providers` (the Triton op's, or EAGER_PROVIDERS: the
    eager reference's) in bf16, from bench/results/*.jsonl (bench/gpu_session.py's rows: op, case, provider, mode, ms;
    a dry run's rows are no measurements)."""
    return _newest(results_dir, lambda row: row.get("provider") in providers and "ms" in row
                   and row.get("dtype", "bfloat16") == "bfloat16", lambda row: 1000 * row["ms"])


def measured_host_us(results_dir: Path = MEASURED_DIR) -> dict:
    """(case, direction) -> the newest host time per call (us) of the Triton op measured by a GPU session (its unit
    "host": the GPU machine's CPU, the launches real; profiling/host_time.py)."""
    return _newest(results_dir, lambda row: row.get("op") == "host_time" and row.get("provider") == "triton"
                   and "host_us" in row, lambda row: row["host_us"])


def _newest(results_dir: Path, keep: Callable[[dict], bool], value: Callable[[dict], float]) -> dict:
    """(case, mode) -> value(row) of the newest row that `keep`s, of bench/results/*.jsonl (no dry run's)."""
    newest: dict = {}
    for path in sorted(results_dir.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line) if line.strip() else {}
            if not keep(row) or row.get("dry_run"):
                continue
            key = (row.get("case"), row.get("mode"))
            if key not in newest or row.get("date", "") >= newest[key][0]:
                newest[key] = (row.get("date", ""), value(row))
    return {key: value for key, (_, value) in newest.items()}


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def call_table(records: list[dict], baseline: list[dict] | None, measured: dict, measured_eager: dict,
               measured_host: dict) -> list[str]:
    """One row per op call and direction: floor, prediction, the baseline's prediction, measured time, the eager
    prediction and the eager reference's measured time, host time here (with Triton's dispatch, without it, and the
    autograd floor's), and the host time measured on the GPU machine."""
    today, before = per_call(records), per_call(baseline or [])
    lines = ["| op call | dir | calls/step | launches | floor us | predicted us | baseline predicted us | vs baseline "
             "| measured us | eager predicted us | eager measured us | host us with Triton dispatch | host us "
             "| autograd floor host us | measured host us |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (op, case, direction), entry in sorted(today.items(), key=lambda item: -item[1]["predicted_us"]):
        old = before.get((op, case, direction), {}).get("predicted_us")
        lines.append(f"| {case} | {direction} | {entry['calls_per_step']} | {entry['launches']} | "
                     f"{_us(entry['floor_us'])} | {_us(entry['predicted_us'])} | {_us(old)} | "
                     f"{_ratio(entry['predicted_us'], old)} | {_us(measured.get((case, direction)))} | "
                     f"{_us(entry['eager_us'])} | {_us(measured_eager.get((case, direction)))} | "
                     f"{_us(entry['host_dispatch_us'])} | {_us(entry['host_us'])} | {_us(entry['host_floor_us'])} | "
                     f"{_us(measured_host.get((case, direction)))} |")
    return lines


def _trips_known(record: dict) -> bool:
    """Whether every loop of the launch has its trip count (records before `unknown_trip_loops` say only whether the
    nests matched)."""
    return record["trips_matched"] and not record.get("unknown_trip_loops")


def launch_table(records: list[dict]) -> list[str]:
    """One row per distinct launch, the slowest predicted first."""
    lines = ["| kernel | op call | dir | grid | warps/stages | regs | spill B | smem KB | CTAs/SM | waves | MMA "
             "| async | LDG vec/scalar | MUFU | SASS | loop x trips | predicted us | bound by |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: -r["predicted_us"]):
        trips = "-" if not r["loop_instructions"] else "?" if r["loop_trips"] is None else r["loop_trips"]
        lines.append(
            f"| {r['kernel']} | {r['case']} | {r['direction']} | {'x'.join(map(str, r['grid']))} | "
            f"{r['num_warps']}/{r['num_stages']} | {r['registers']} | {r['spill_bytes']} | "
            f"{r['shared_bytes'] / 1024:.1f} | {r['ctas_per_sm']} | {r['waves']} | {r['tensor_core_ops']} | "
            f"{r['async_copies']} | {r['vector_loads']}/{r['scalar_loads']} | {r['mufu']} | {r['sass_instructions']} | "
            f"{r['loop_instructions']} x {trips}{'' if _trips_known(r) else ' (?)'} | {_us(r['predicted_us'])} | "
            f"{r['bound_by']} |")
    return lines


def markdown(head: dict, records: list[dict], baseline: tuple | None, measured: dict, measured_eager: dict,
             measured_host: dict) -> str:
    """The report of one file: its header in words, then the op-call and launch tables."""
    base_head, base_records = baseline or ({}, None)
    described = (f"the kernels at {base_head['kernels_commit']}" if baseline else "no kept baseline for this version")
    parts = [
        f"# Static cost report: triton {head['triton']}, {head['target']}",
        "",
        f"**{head['what'][0].upper()}{head['what'][1:]}.** Step: {head['step']}. Kernels: {head['kernels_commit']}. "
        f"Torch {head['torch']}; report made {head['date']} by profiling/static_report.py at {head['report_commit']}. "
        f"Predictions from {head['model']} (its docstring gives the formula and constants); the baseline column is "
        f"{described}, re-predicted with today's model. Measured times, where a GPU session produced them, are "
        f"bench/gpu_session.py's (bf16, the Triton op and the eager reference). Host times: one thread of "
        f"{head['host_cpu']}, the launches intercepted (with Triton's dispatch: through the JIT's own dispatch, "
        f"no launch); measured host times: the GPU machine's CPU, the launches real (profiling/host_time.py).",
        "",
        "## Per op call (predicted: the sum over its launches)",
        "",
        *call_table(records, base_records, measured, measured_eager, measured_host),
        "",
        "## Per launch",
        "",
        "regs: registers per thread; spill B: bytes stored to local memory; smem KB: shared memory per CTA; MMA, "
        "async, LDG, MUFU, SASS: static SASS instruction counts (tensor-core, cp.async/TMA, global loads by width, "
        "special-function, all); loop x trips: the main loop's static instructions and its trips per program "
        "for this launch, the mean of the sampled programs ((?): loop nests of SASS and TTIR disagreed, or some "
        "loop's trips are unknown and counted once: dynamic counts are low).",
        "",
        *launch_table(records),
        "",
    ]
    return "\n".join(parts)


def write_markdown(path: Path, head: dict, records: list[dict], baseline: tuple | None,
                   results_dir: Path = MEASURED_DIR) -> None:
    path.write_text(markdown(head, records, baseline, measured_us(results_dir),
                             measured_us(results_dir, providers=EAGER_PROVIDERS), measured_host_us(results_dir)))


def refresh_from_results(results_dir: Path, readme: Path = README) -> None:
    """After a GPU session's rows are recorded in `results_dir`: the .md files of its static reports
    (`results_dir`/static) and `readme`'s static and goals sections, with the measured times beside the
    predictions."""
    out_dir = results_dir / "static"
    refresh_markdown(out_dir, results_dir)
    refresh_readme(out_dir, results_dir, readme)


def refresh_readme(out_dir: Path = OUT_DIR, results_dir: Path = MEASURED_DIR, readme: Path = README) -> None:
    """`readme`'s static and goals sections, from the reports in `out_dir` and the GPU rows in `results_dir`."""
    from bench.report import replace_readme_section
    from profiling.goals import goals_section

    replace_readme_section(README_START, README_END, readme_section(out_dir, results_dir), readme)
    replace_readme_section(GOALS_START, GOALS_END, goals_section(out_dir, results_dir), readme)


def refresh_markdown(out_dir: Path = OUT_DIR, results_dir: Path = MEASURED_DIR) -> list[Path]:
    """Rewrites each report's .md from its .jsonl with the GPU times `results_dir` holds now (bench/gpu_session.py's
    --record runs it): the compile-time figures and predictions stay those of the report's own run."""
    written = []
    for path in sorted(out_dir.glob("*triton-*.jsonl")):
        head, records = read_report(path)
        base = baseline_path(head["triton"], out_dir)
        baseline = read_report(base) if base != path and base.exists() else None
        write_markdown(path.with_suffix(".md"), head, records, baseline, results_dir)
        written.append(path.with_suffix(".md"))
    return written


def baseline_path(version: str, out_dir: Path = OUT_DIR) -> Path:
    return out_dir / f"baseline-triton-{version}.jsonl"


def readme_section(out_dir: Path = OUT_DIR, results_dir: Path = MEASURED_DIR) -> str:
    """Per Triton version and op/direction: step totals of floor, predictions (today, baseline, eager) and measured
    GPU time (where every call of the op and direction has one in `results_dir`), and the worst registers, spills and
    residency of its launches (the baseline's in parentheses)."""
    measured = measured_us(results_dir)
    lines = [f"Generated by `make static-report` from `{_shown(out_dir)}/`: {HONESTY}. Step totals over the calls of "
             "one training step (us per step); per op call and per launch in the `.md` files there."]
    for path in sorted(out_dir.glob("triton-*.jsonl")):
        head, records = read_report(path)
        base = baseline_path(head["triton"], out_dir)
        base_head, base_records = read_report(base) if base.exists() else ({}, [])
        lines += ["", f"triton {head['triton']} (kernels {head['kernels_commit'][:12]}; baseline: kernels "
                  f"{base_head.get('kernels_commit', 'none')[:12]}; `{_shown(path.with_suffix('.md'))}`):",
                  "", "| op | dir | floor | predicted | measured | baseline predicted | eager predicted | max regs "
                  "| spill B | min CTAs/SM |", "|---|---|---|---|---|---|---|---|---|---|"]
        for op in dict.fromkeys(r["op"] for r in records):
            for direction in DIRECTIONS:
                mine = [r for r in records if r["op"] == op and r["direction"] == direction]
                old = [r for r in base_records if r["op"] == op and r["direction"] == direction]
                totals = [_step_total(mine, lambda _, entry: entry["floor_us"]),
                          _step_total(mine, lambda _, entry: entry["predicted_us"]),
                          _step_total(mine, lambda key, _: measured.get(key[1:])),
                          _step_total(old, lambda _, entry: entry["predicted_us"]),
                          _step_total(mine, lambda _, entry: entry["eager_us"])]
                lines.append(f"| {op} | {direction} | " + " | ".join(map(_us, totals)) + " | "
                             f"{_worst(mine, old, 'registers', max)} | "
                             f"{_worst(mine, old, 'spill_bytes', sum)} | {_worst(mine, old, 'ctas_per_sm', min)} |")
    return "\n".join(lines)


def _shown(path: Path) -> Path:
    """`path` relative to the checkout, where it lies inside."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _worst(records: list[dict], baseline: list[dict], field: str, combine) -> str:
    """`combine` of a field over today's launches, and over the baseline's in parentheses."""
    today = combine(r[field] for r in records)
    return f"{today} ({combine(r[field] for r in baseline)})" if baseline else f"{today}"


def _step_total(records: list[dict], value: Callable[[tuple, dict], float | None]) -> float | None:
    """Over the op calls of `records` (`per_call`: (op, case, direction) -> entry), the sum of each call's calls per
    step times value(key, entry); None where there is no call, or some call has no value."""
    values = [(entry["calls_per_step"], value(key, entry)) for key, entry in per_call(records).items()]
    if not values or any(v is None for _, v in values):
        return None
    return sum(calls * v for calls, v in values)


# ---------------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true",
                        help="only regenerate the README's sections (the reports, the goals) from --out")
    parser.add_argument("--markdown", action="store_true",
                        help="only rewrite --out's .md files from their .jsonl and the GPU times in bench/results")
    parser.add_argument("--baseline", action="store_true", help="write baseline-triton-<version>.* (kept)")
    parser.add_argument("--kernels-commit", help="profile the kernels package of this commit (git archive)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"), help="default: the model's")
    parser.add_argument("--batch", type=int, default=None, help="default: the model's")
    parser.add_argument("--cases", nargs="*", help="only op calls whose case contains one of these strings")
    parser.add_argument("--repeats", type=int, default=100, help="host-time repetitions per op call and direction")
    args = parser.parse_args(argv)
    if args.readme:
        refresh_readme(args.out)
        return
    if args.markdown:
        for path in refresh_markdown(args.out):
            print(path)
        return
    os.environ["TRITON_INTERPRET"] = "0"  # before anything imports triton: the kernels must stay JIT functions
    import torch

    torch.set_num_threads(1)  # see capture_call
    from bench.shapes import MODEL_BATCH, MODEL_SIZE, model_op_calls

    size, batch = tuple(args.size or MODEL_SIZE), args.batch or MODEL_BATCH
    calls = [call for call in model_op_calls(size=size, batch=batch)  # today's model, on this checkout's kernels
             if not args.cases or any(part in call.case for part in args.cases)]
    import bench.costs  # noqa: F401  (the op calls' bytes and FLOPs: this checkout's references)
    from bench.eager_trace import eager_kernels

    eager = {call.case: eager_kernels(call) for call in calls}  # this checkout's references, a baseline's too
    _use_kernels_at(args.kernels_commit)
    started = time.perf_counter()
    records = step_records(calls, eager, args.repeats, log=lambda line: print(line, file=sys.stderr, flush=True))
    head = header(args.kernels_commit, size, batch, records)
    path = (baseline_path(head["triton"], args.out) if args.baseline else args.out / f"triton-{head['triton']}.jsonl")
    write_report(path, head, records)
    baseline = None if args.baseline or not baseline_path(head["triton"], args.out).exists() else \
        read_report(baseline_path(head["triton"], args.out))
    write_markdown(path.with_suffix(".md"), head, records, baseline)
    print(f"{path}: {len(records)} distinct launches of {len(calls)} op calls, {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
