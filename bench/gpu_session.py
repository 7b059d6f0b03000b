"""One prepared GPU session: every measurement the project makes on a GPU, in one command that finishes in under
8 minutes on one H100/H200 from a cold start (Triton's compilation included) and leaves 7 small files to carry back.

    PYTHONPATH=. python bench/gpu_session.py --out DIR               # on a CUDA machine (make gpu-session OUT=DIR)
    PYTHONPATH=. python bench/gpu_session.py --out DIR --steps d,e   # some steps only (a rerun)
    PYTHONPATH=. python bench/gpu_session.py --out DIR --dry-run     # CPU, tiny shapes: every unit's plumbing
    PYTHONPATH=. python bench/gpu_session.py --record DIR            # DIR carried back: into bench/results + README

Steps, in this order. Each unit runs in its own process with a timeout, so that a hung CUDA call or a slow
torch.compile is killed and recorded and the next unit runs. A unit's timeout is its budget plus what the units
before it left unused, so the session ends within the sum of the budgets (470 s); a unit that plans its own work
(d) plans within its budget, so that unused time flows on to the training-step compiles. Each unit's status row
counts the entries it added to Triton's kernel cache (the kernels it compiled, Inductor's included: every unit
shares the one cache folder). Before the first unit, the session records the model's op calls (bench/shapes.py) once
for all of them (`model_calls`).
    a  environment    device, SM count, torch/triton/CUDA/cuDNN versions, and two measured ceilings: a 1 GiB
                      device-to-device copy (bytes read + written per second), an 8192^3 bf16 matmul (FLOP/s)
       compile-cache  every launch of the model's op calls in bf16, fp16 and fp32 compiled into Triton's cache by
                      a process per CPU (profiling/compile_cache.py), instead of one at a time at first launch in
                      the units after it
    b  pytest         `pytest -m gpu` (parity at the model's sizes in bf16/fp16/fp32, determinism): a row per test
    c  graphs         each model op call's Triton forward+backward, then one Triton training step, captured in a
                      CUDA graph and replayed: the replay's outputs against eager ones (bitwise equal? largest
                      difference), or the capture's error; eager and replayed times
    d  host           every model op call's host time through the Triton op and the eager reference, forward and
                      backward, beside the autograd floor's (profiling/host_time.py): this machine's CPU with the
                      launches real, the least of HOST_REPEATS back-to-back calls; the issues' host goal (50 us per
                      call) is judged by the Triton op's
       ops            every model op call (bench/shapes.py) in bf16, forward, backward and forward+backward, with the
                      op benchmarks' providers: first the eager ones at every call (the reference, Triton, SDPA),
                      then the compiled ones (torch.compile of the reference, FlexAttention), the costliest calls of
                      each op first, while the budget lasts; what it leaves out is recorded as skipped
    e  training step  bench/bench_model_step.py's providers (bf16 autocast, 480 x 640, batch 8): eager and triton,
                      then compile and compile+triton, each in its own unit (an inductor compile of the whole model
                      that does not fit its budget is recorded as a timeout)
    f  profile        torch.profiler's table of the top 25 kernels of the Triton training step
Timing: triton.testing.do_bench with a short `rep` (TIMER; do_bench's default is 100 ms), L2 flushed, after warm-up
calls; inputs built outside the timed calls (bench/_common.py).

Files in DIR: session.log (all the units printed), results.jsonl (a JSON row per measurement, test, error and skip,
and a status row per unit), one PNG per op and training_step.png (the benchmarks' plots), top_kernels.txt. After a
real run the rows are appended to bench/results/<device>.jsonl and the README's results section is regenerated
(bench/report.py); `--record DIR` does that here with a folder carried back from the GPU machine. The last thing
printed is the summary: a status line per unit, then a line per op and provider (ms per training step: each call's
time times its calls per forward pass, summed) and a line per training-step provider.

The dry run goes through every unit on the CPU at a tiny model size, one call per op, with the Triton kernels in
Triton's interpreter and one wall-clock call in place of do_bench: its rows say dry_run, are not measurements, and
are never recorded. A training step through the interpreter takes minutes, so the dry run's c/e/f units run the
eager model and leave out the Triton and compiled steps, saying so; torch.compile uses the aot_eager backend.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import MODES, measure_calls, mode_calls, timing  # noqa: E402
from profiling.compile_cache import cache_dir, cache_entries  # noqa: E402

RESULTS, LOG, TOP_KERNELS = "results.jsonl", "session.log", "top_kernels.txt"
MAX_FILES, MAX_FILE_BYTES = 8, 16 * 2**20
OPS = ("linear_cross_attention", "window_attention", "concat_conv1x1")
DTYPE = torch.bfloat16
TIMER = dict(warmup=5, rep=20)  # do_bench ms per timing: the session's time box (do_bench's defaults: 25, 100)
CEILING_REP = 200  # the two ceilings are timed longer
MIN_COMPILE_SECONDS = 20  # a compiled provider starts only with this much of unit d's budget left
MARGIN_SECONDS = 5  # a unit stops planning work this long before its budget ends (writing its last rows)
STEP_WARMUP, STEP_TIMED, PROFILED_STEPS = 3, 10, 2  # training steps (the dry run: 1, 2, 1)
GRAPH_WARMUP = 3  # calls on a side stream before a capture (torch.cuda.graphs' recipe)
DRY_SIZE, DRY_CALL_BATCH, DRY_STEP_BATCH = (32, 64), 1, 2  # the dry run's model: every op still called
DRY_COMPILES = 3  # launches the dry run compiles ahead (a 2-core CPU: ~1 s each)
HOST_REPEATS = 30  # back-to-back calls per op call, direction and autograd floor; the least counts (the dry run: 1)
CALLS_VARIABLE = "SCA_MTL_SESSION_CALLS"  # the file of the model's op calls that the session leaves for its units
DRY_RUN_STEP = "dry run: the eager (torch) model stands in; a Triton step through the interpreter takes minutes"


# ----------------------------------------------------------------------------------------------------------------------
# Inside a unit's process
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class Context:
    """What a unit's function gets: where its rows go, whether this is the dry run, and its planning deadline."""

    out: Path
    step: str
    unit: str
    dry_run: bool
    deadline: float  # time.time() by which the unit should have stopped starting new work

    @property
    def device(self) -> torch.device:
        return torch.device("cpu" if self.dry_run else "cuda")

    def seconds_left(self) -> float:
        return self.deadline - time.time()

    def emit(self, row: dict) -> None:
        """Append one row to results.jsonl at once: a unit killed later keeps what it measured."""
        row = {"step": self.step, "unit": self.unit, **({"dry_run": True} if self.dry_run else {}), **row}
        with open(self.out / RESULTS, "a") as f:
            f.write(json.dumps(row, default=str) + "\n")

    def attempt(self, what: dict, rows: Callable[[], Iterable[dict]]) -> None:
        """Emit `what` merged into each row `rows()` gives; on an exception, an error row (and the unit goes on)."""
        try:
            for row in rows():
                self.emit({**what, **row})
        except Exception as error:  # any failure of one item is a result to record
            self.emit_error(what, error)

    def emit_error(self, what: dict, error: Exception) -> None:
        """The error and its traceback's tail: in the log, and as a row."""
        traceback.print_exc()
        self.emit({**what, "error": f"{type(error).__name__}: {error}"[:1000],
                   "traceback": "".join(traceback.format_exc().splitlines(keepends=True)[-12:])})

    def timer(self, **options) -> Callable[..., dict]:
        """do_bench with the session's repetitions (or `options`); in the dry run one wall-clock call instead."""
        return _one_call if self.dry_run else functools.partial(timing, **{**TIMER, **options})

    def calls(self) -> list:
        """The model's op calls; in the dry run the call of each op with the fewest forward FLOPs (bench/costs.py) at
        the tiny model size: the interpreter's time goes with the work."""
        from bench.costs import call_costs

        calls = model_calls(self.dry_run)
        if not self.dry_run:
            return calls
        return [min((c for c in calls if c.op == op), key=lambda c: call_costs(c)["fwd"][1]) for op in OPS]

    def batch(self) -> tuple:
        from bench.shapes import MODEL_BATCH, MODEL_SIZE, NYUD_TASKS
        from sca_mtl.engine.step import random_batch

        batch, size = (DRY_STEP_BATCH, DRY_SIZE) if self.dry_run else (MODEL_BATCH, MODEL_SIZE)
        return random_batch(NYUD_TASKS, batch, size, self.device, torch.Generator().manual_seed(0))


def model_calls(dry_run: bool) -> list:
    """The model's op calls at the session's size (bench/shapes.py; the dry run's tiny model): recorded once by the
    session, which leaves them in the file CALLS_VARIABLE names, so that its units neither build the model nor import
    timm for them (seconds per unit); recorded here where that is not set (a unit run on its own)."""
    path = os.environ.get(CALLS_VARIABLE)
    if path:
        return pickle.loads(Path(path).read_bytes())
    from bench.shapes import model_op_calls

    return model_op_calls(size=DRY_SIZE, batch=DRY_CALL_BATCH) if dry_run else model_op_calls()


def _one_call(fn: Callable[[], object], grad_to_none=None) -> dict:
    """The dry run's stand-in for do_bench: one call's wall-clock ms (plumbing, not a measurement)."""
    started = time.perf_counter()
    fn()
    ms = 1e3 * (time.perf_counter() - started)
    return {"ms": ms, "ms_p20": ms, "ms_p80": ms}


def _op_module(op: str):
    from bench import bench_concat_conv, bench_linear_attention, bench_window_attention

    return {"linear_cross_attention": bench_linear_attention, "window_attention": bench_window_attention,
            "concat_conv1x1": bench_concat_conv}[op]


def _synchronize(ctx: Context) -> None:
    if not ctx.dry_run:
        torch.cuda.synchronize()


# --- a: environment ---------------------------------------------------------------------------------------------------


def environment(ctx: Context) -> None:
    """The device and versions (every recorded row later carries them), then the copy and matmul ceilings."""
    import platform

    from bench._common import Case, metadata

    row = {"op": "environment", "case": "device", **metadata(), "cuda": torch.version.cuda,
           "python": platform.python_version(), "cpus": os.cpu_count()}
    if not ctx.dry_run:
        props = torch.cuda.get_device_properties(0)
        row.update(sm_count=props.multi_processor_count, capability=f"{props.major}.{props.minor}",
                   memory_bytes=props.total_memory, l2_bytes=getattr(props, "L2_cache_size", None))
    ctx.emit(row)
    elements, n = (2**12, 64) if ctx.dry_run else (2**29, 8192)  # a 1 GiB bf16 copy; an 8192^3 bf16 matmul
    source = torch.empty(elements, dtype=DTYPE, device=ctx.device)
    target = torch.empty_like(source)
    a, b, c = (torch.randn(n, n, dtype=DTYPE, device=ctx.device) for _ in range(3))
    ceilings = [
        (Case(op="ceiling", name=f"copy-{source.nbytes >> 10}KiB", dtype=DTYPE, bytes={"copy": 2 * source.nbytes}),
         {"copy": (lambda: target.copy_(source), None)}),
        (Case(op="ceiling", name=f"matmul-{n}", dtype=DTYPE, bytes={}, flops={"matmul": 2 * n**3}),
         {"matmul": (lambda: torch.mm(a, b, out=c), None)}),
    ]
    for case, calls in ceilings:
        ctx.attempt({}, lambda case=case, calls=calls: measure_calls(case, "torch", calls,
                                                                     timer=ctx.timer(rep=CEILING_REP)))


def compile_cache(ctx: Context) -> None:
    """Triton's kernel cache filled ahead (profiling/compile_cache.py; this unit's process has TRITON_INTERPRET=0, so
    that the dry run captures JIT functions too). The dry run compiles a few launches of the tiny model, on one
    process."""
    from profiling.compile_cache import DTYPES, fill

    calls = model_calls(ctx.dry_run)
    if ctx.dry_run:
        summary = fill(calls, DTYPES[:1], workers=1, deadline=ctx.deadline, limit=DRY_COMPILES)
    else:
        summary = fill(calls, DTYPES, deadline=ctx.deadline)
    ctx.emit({"op": "compile_cache", "case": "model op calls", **summary})


# --- b: pytest -m gpu -------------------------------------------------------------------------------------------------


class _TestRows:
    """A pytest plugin: one row per test as soon as it has an outcome (a killed run keeps the tests it finished)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def pytest_runtest_logreport(self, report) -> None:
        if report.when != "call" and report.passed:
            return
        outcome = report.outcome if report.when == "call" or report.skipped else "error"
        row = {"op": "pytest", "case": report.nodeid, "outcome": outcome, "seconds": round(report.duration, 3)}
        if isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
            row["message"] = report.longrepr[2][:300]
        elif not report.passed:
            row["message"] = (report.longreprtext.strip().splitlines() or [""])[-1][:300]
        self.ctx.emit(row)


def pytest_gpu(ctx: Context) -> None:
    import pytest

    code = pytest.main(["-m", "gpu", "-p", "no:cacheprovider", "-q", "--tb=short", "-rfE", "--durations=5",
                        str(ROOT / "tests")], plugins=[_TestRows(ctx)])
    ctx.emit({"op": "pytest", "case": "exit status", "exit_code": int(code)})


# --- c: CUDA graphs ---------------------------------------------------------------------------------------------------


def _captured(fn: Callable[[], list]) -> Callable[[], list]:
    """`fn` captured in a CUDA graph after warm-up calls on a side stream; returns its replay (the capture's outputs,
    rewritten in place)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(GRAPH_WARMUP):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = fn()

    def replay() -> list:
        graph.replay()
        return outputs

    return replay


def _replay_against_eager(ctx: Context, fn: Callable[[], list], reset: Callable[[], None]) -> dict:
    """Eager outputs of `fn`, then the replay's of its CUDA graph from the same state (`reset` restores it); in the
    dry run (no CUDA graphs) a second eager call stands in for the replay."""
    reset()
    eager = [t.detach().clone() for t in fn()]
    replay = fn if ctx.dry_run else _captured(fn)
    reset()
    replayed = replay()
    _synchronize(ctx)
    differences = [(a.float() - b.float()).abs().max().item() for a, b in zip(eager, replayed)]
    row = {"captured": not ctx.dry_run, "bitwise_equal": all(torch.equal(a, b) for a, b in zip(eager, replayed)),
           "max_abs_diff": max(differences), "max_abs": max(a.float().abs().max().item() for a in eager)}
    if not ctx.dry_run:  # (the dry run has no replay to time)
        row.update(eager_ms=timing(fn, rep=10)["ms"], graph_ms=timing(replay, rep=10)["ms"])
    return row


def graphs_ops(ctx: Context) -> None:
    """Each op call's Triton forward+backward (output and every input gradient), in the model's order."""
    for call in ctx.calls():
        def rows(call=call):
            forward, leaves = _op_module(call.op).call_providers(call, DTYPE, ctx.device)["triton"]
            upstream = torch.randn_like(forward())

            def forward_backward() -> list:
                for leaf in leaves:
                    leaf.grad = None
                out = forward()
                out.backward(upstream)
                return [out, *(leaf.grad for leaf in leaves)]

            yield _replay_against_eager(ctx, forward_backward, lambda: None)

        ctx.attempt({"op": "cuda_graph", "case": call.case, "subject": call.op}, rows)


def graphs_step(ctx: Context) -> None:
    """One training step (forward, loss, backward, Adam with its state on the GPU) captured and replayed; compared
    with an eager step from the same parameters, optimiser state and random seed: the loss and updated parameters."""
    from bench.bench_model_step import build_step

    provider = "eager" if ctx.dry_run else "triton"

    def rows():
        step = build_step(provider, ctx.device, None if ctx.dry_run else DTYPE, capturable=not ctx.dry_run)
        images, targets = ctx.batch()
        step(images, targets)  # creates the optimiser state the capture must find
        parameters = list(step.network.parameters())
        state = [*parameters, *step.network.buffers(),
                 *(t for s in step.optimizer.state.values() for t in s.values() if torch.is_tensor(t))]
        saved = [t.detach().clone() for t in state]

        def reset():
            with torch.no_grad():
                for tensor, value in zip(state, saved):
                    tensor.copy_(value)
            torch.manual_seed(0)  # the model's stochastic depth draws the same in both

        def train_step() -> list:
            return [step(images, targets)["total"], *parameters]

        yield {"kernels": "torch" if ctx.dry_run else "triton", **_replay_against_eager(ctx, train_step, reset)}

    note = {"note": DRY_RUN_STEP} if ctx.dry_run else {}
    ctx.attempt({"op": "cuda_graph", "case": f"training_step/{provider}", "subject": "training_step", **note}, rows)


# --- d: the ops -------------------------------------------------------------------------------------------------------


def _measure_providers(ctx: Context, call, compile_backend: str | None, skip: set, compiling: bool) -> set:
    """Rows of every provider of `call` not in `skip`, each mode on its own (a failing mode is an error row); a
    compiled provider only while the budget lasts (else a skipped row), from a fresh compile. Returns the providers."""
    from bench._common import call_case

    case = call_case(call, DTYPE)
    options = dict(timer=ctx.timer(), warmup_calls=0 if ctx.dry_run else 3)
    timer = "one call (dry run)" if ctx.dry_run else f"do_bench rep {TIMER['rep']} ms"
    try:
        providers = _op_module(call.op).call_providers(call, DTYPE, ctx.device, compile_backend)
    except Exception as error:  # (the inputs, e.g. out of memory): the call's row says so, the next call runs
        ctx.emit_error({"op": call.op, "case": call.case}, error)
        return set()
    for name, (forward, leaves) in providers.items():
        what = {"op": call.op, "case": call.case, "provider": name, "dtype": "bfloat16"}
        if name in skip:
            continue
        if compiling and ctx.seconds_left() < MIN_COMPILE_SECONDS:
            ctx.emit({**what, "skipped": "budget", "seconds_left": round(ctx.seconds_left(), 1)})
            continue
        if compiling:
            torch._dynamo.reset()  # a fresh compile per call: no recompile limit turns it back into eager
        try:
            calls = mode_calls(forward, leaves)
        except Exception as error:  # a provider that cannot run this call is a result
            ctx.emit_error(what, error)
            continue
        for mode in MODES:
            ctx.attempt({**what, "mode": mode, "timer": timer},
                        functools.partial(measure_calls, case, name, {mode: calls[mode]}, **options))
        for leaf in leaves:
            leaf.grad = None
    return set(providers)


def ops(ctx: Context) -> None:
    """Every call's eager providers, then the compiled ones by the eager reference's cost, round robin over the ops."""
    calls = ctx.calls()
    eager = {}
    for call in calls:
        eager[call.case] = _measure_providers(ctx, call, None, set(), compiling=False)
        _free(ctx)
        print(f"ops: {call.case}: eager providers done, {ctx.seconds_left():.0f} s of the budget left", flush=True)
    backend = "aot_eager" if ctx.dry_run else "inductor"
    for call in _costliest_first(ctx, calls):
        _measure_providers(ctx, call, backend, eager[call.case], compiling=True)
        _free(ctx)
        print(f"ops: {call.case}: compiled providers done, {ctx.seconds_left():.0f} s left", flush=True)


def _costliest_first(ctx: Context, calls: list) -> list:
    """The calls by the reference's forward+backward ms per training step (measured rows), round robin over ops."""
    cost = {}
    for row in _read_rows(ctx.out / RESULTS):
        if row.get("unit") == ctx.unit and row.get("mode") == "fwdbwd" and "ms" in row:
            cost.setdefault(row["case"], row["ms"] * row.get("calls_per_step", 1))  # the first provider: reference
    ranked = {op: sorted((c for c in calls if c.op == op), key=lambda c: -cost.get(c.case, 0.0)) for op in OPS}
    return [call for group in zip(*_padded(ranked.values())) for call in group if call is not None]


def _padded(groups: Iterable[list]) -> list[list]:
    groups = list(groups)
    longest = max(map(len, groups))
    return [group + [None] * (longest - len(group)) for group in groups]


def _free(ctx: Context) -> None:
    if not ctx.dry_run:
        torch.cuda.empty_cache()


# --- d: host time -----------------------------------------------------------------------------------------------------


# The host unit's providers: the backend of kernels/dispatch.py each times
HOST_PROVIDERS = {"triton": "triton", "reference": "torch"}


def host(ctx: Context) -> None:
    """Each model op call's host time through the Triton op and through the eager reference, forward and backward,
    beside the autograd floor's (profiling/host_time.py), on this machine's CPU with the launches real, Triton's
    launcher included: the least of HOST_REPEATS back-to-back calls, while the GPU runs the calls queued before (a
    call's host time is then its own)."""
    from profiling.host_time import call_host_seconds, prepare_call

    repeats = 1 if ctx.dry_run else HOST_REPEATS
    for call in ctx.calls():
        for provider, backend in HOST_PROVIDERS.items():
            what = {"op": "host_time", "subject": call.op, "case": call.case, "provider": provider,
                    "dtype": "bfloat16", "timer": f"least of {repeats} calls"}
            if ctx.seconds_left() < 0:
                ctx.emit({**what, "skipped": "budget"})
                continue

            def rows(call=call, backend=backend):
                prepared = prepare_call(call, ctx.device, DTYPE, backend)
                prepared.run_backward()  # every kernel of the call loaded before the timed calls
                _synchronize(ctx)
                times = call_host_seconds(prepared, repeats)
                _synchronize(ctx)
                for direction, (seconds, floor_seconds) in times.items():
                    yield {"mode": direction, "host_us": round(seconds * 1e6, 1),
                           "host_floor_us": round(floor_seconds * 1e6, 1), "calls_per_step": call.count}

            ctx.attempt(what, rows)
            _free(ctx)


# --- e: the training step ---------------------------------------------------------------------------------------------


def training_step(providers: tuple[str, ...]) -> Callable[[Context], None]:
    def run(ctx: Context) -> None:
        from bench.bench_model_step import measure_provider

        images, targets = ctx.batch()
        warmup, steps, profiled = (1, 2, 1) if ctx.dry_run else (STEP_WARMUP, STEP_TIMED, PROFILED_STEPS)
        for provider in providers:
            what = {"op": "training_step", "provider": provider}
            if ctx.dry_run and provider != "eager":
                ctx.emit({**what, "skipped": DRY_RUN_STEP})
                continue
            ctx.attempt(what, lambda provider=provider: [measure_provider(
                provider, images, targets, None if ctx.dry_run else "bf16", warmup, steps, profiled)])
            _free(ctx)

    return run


# --- f: profile -------------------------------------------------------------------------------------------------------


def profile(ctx: Context) -> None:
    """The Triton step's top 25 kernels by GPU time: the profiler's table to top_kernels.txt, a row per kernel."""
    from torch.profiler import ProfilerActivity

    from bench.bench_model_step import build_step, family, self_time_us
    from profiling.profile_step import profile_steps, top_table

    provider, cuda = ("eager", False) if ctx.dry_run else ("triton", True)
    steps = 1 if ctx.dry_run else PROFILED_STEPS

    def rows():
        step = build_step(provider, ctx.device, None if ctx.dry_run else DTYPE)
        images, targets = ctx.batch()
        activity = ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU  # kernels only: a quick key_averages
        prof = profile_steps(step, images, targets, warmup=1 if ctx.dry_run else 2, steps=steps, activities=[activity])
        averages = prof.key_averages()
        table = top_table(averages, 25, cuda)
        (ctx.out / TOP_KERNELS).write_text(table)
        print(table, flush=True)
        for rank, event in enumerate(sorted(averages, key=lambda e: -self_time_us(e, cuda))[:25], 1):
            yield {"case": event.key[:200], "rank": rank, "family": family(event.key),
                   "ms_per_step": self_time_us(event, cuda) / 1e3 / steps, "calls_per_step": event.count / steps}

    note = {"note": DRY_RUN_STEP + " (CPU operators, not kernels)"} if ctx.dry_run else {}
    ctx.attempt({"op": "top_kernels", "provider": provider, **note}, rows)


# ----------------------------------------------------------------------------------------------------------------------
# The session: units in their own processes, then plots, the summary and the record
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    step: str
    name: str
    budget: float  # seconds on the GPU
    dry_budget: float  # seconds on a 2-core CPU
    run: Callable[[Context], None]
    dry_skip: str | None = None  # why the dry run leaves the unit out
    environment: tuple = ()  # (name, value) pairs set in the unit's process


UNITS = (
    Unit("a", "environment", 20, 40, environment),
    Unit("a", "compile-cache", 40, 45, compile_cache, environment=(("TRITON_INTERPRET", "0"),)),
    Unit("b", "pytest", 80, 60, pytest_gpu),  # (b to f: their budgets without Triton's compiles, done in a)
    Unit("c", "graphs-ops", 25, 60, graphs_ops),
    Unit("c", "graphs-step", 25, 40, graphs_step),
    Unit("d", "host", 15, 30, host),
    Unit("d", "ops", 105, 90, ops),
    Unit("e", "step-eager-triton", 35, 40, training_step(("eager", "triton"))),
    Unit("e", "step-compile", 60, 0, training_step(("compile",)), "dry run: an inductor compile of the whole model"),
    Unit("e", "step-compile+triton", 45, 0, training_step(("compile+triton",)), "dry run: as step-compile"),
    Unit("f", "profile", 20, 40, profile),
)


def run_session(out: Path, steps: str, dry_run: bool) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    os.environ["TRITON_CACHE_DIR"] = str(cache_dir())  # for every unit: else Inductor moves it (see cache_dir)
    for name in (RESULTS, LOG, TOP_KERNELS, *(f"{op}.png" for op in (*OPS, "training_step"))):
        (out / name).unlink(missing_ok=True)
    os.environ.pop(CALLS_VARIABLE, None)
    with tempfile.TemporaryDirectory(prefix="gpu-session-") as holder:
        calls, begun = Path(holder) / "calls.pickle", time.time()
        recorded = model_calls(dry_run)
        calls.write_bytes(pickle.dumps(recorded))
        _progress(out, begun, f"the model's op calls recorded for the units: {len(recorded)}")
        os.environ[CALLS_VARIABLE] = str(calls)  # for every unit (`model_calls`)
        try:
            return _run_units(out, steps, dry_run)
        finally:
            del os.environ[CALLS_VARIABLE]


def _run_units(out: Path, steps: str, dry_run: bool) -> list[dict]:
    started, planned = time.time(), 0.0
    for unit in (u for u in UNITS if u.step in steps or u.step == "a"):  # every recorded row needs a's device
        planned += unit.dry_budget if dry_run else unit.budget
        if dry_run and unit.dry_skip:
            status = {"status": "skipped", "note": unit.dry_skip, "seconds": 0.0}
        else:
            timeout = started + planned - time.time()  # the unit's budget and what earlier units left unused
            _progress(out, started, f"{unit.step} {unit.name}: started, timeout {timeout:.0f} s")
            status = _run_unit(out, unit, timeout, dry_run)
        _append(out, {"op": "gpu_session", "step": unit.step, "unit": unit.name, **status,
                      **({"dry_run": True} if dry_run else {})})
        notes = ", ".join(f"{k} {status[k]}" for k in ("rows", "errors", "skipped") if status.get(k))
        _progress(out, started, f"{unit.step} {unit.name}: {status['status']} in {status['seconds']:.1f} s"
                  + (f" ({notes})" if notes else "") + (f": {status['error']}" if status.get("error") else ""))
    rows = _read_rows(out / RESULTS)
    _plots(out, rows, dry_run)
    _enforce_limits(out)
    return rows


def _run_unit(out: Path, unit: Unit, timeout: float, dry_run: bool) -> dict:
    """The unit in a child process (its own process group, killed whole at the timeout); its status from its exit and
    its rows."""
    log = out / LOG
    offset = log.stat().st_size if log.exists() else 0
    budget = unit.dry_budget if dry_run else unit.budget
    command = [sys.executable, str(Path(__file__).resolve()), "--unit", unit.name, "--out", str(out),
               "--budget", f"{min(budget, timeout):.1f}", *(["--dry-run"] if dry_run else [])]
    environ = {**os.environ, "PYTHONUNBUFFERED": "1",  # a killed unit's last lines reach the log
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               **dict(unit.environment)}
    begun, timed_out, entries = time.time(), False, cache_entries()
    with open(log, "a") as sink:
        sink.write(f"\n===== {unit.step} {unit.name} (timeout {timeout:.0f} s)\n")
        sink.flush()
        child = subprocess.Popen(command, cwd=ROOT, env=environ, stdout=sink, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        try:
            code = child.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # the child's group: torch.compile's workers too
            code, timed_out = child.wait(), True
    seconds = time.time() - begun
    mine = [r for r in _read_rows(out / RESULTS) if r.get("unit") == unit.name]
    status = {"seconds": round(seconds, 1), "timeout_s": round(timeout, 1), "rows": len(mine),
              "errors": sum("error" in r for r in mine), "skipped": sum("skipped" in r for r in mine),
              "triton_cache_added": cache_entries() - entries}
    if code == 0:
        return {**status, "status": "partial" if status["errors"] else "ok"}
    tail = log.read_bytes()[offset:].decode(errors="replace").strip().splitlines()[-25:]
    if timed_out:
        return {**status, "status": "timeout", "error": f"killed after {seconds:.0f} s", "log_tail": tail}
    return {**status, "status": "error", "error": (tail or ["no output"])[-1][:300], "exit_code": code,
            "log_tail": tail}


def _progress(out: Path, started: float, message: str) -> None:
    elapsed = time.time() - started
    line = f"[gpu-session {int(elapsed // 60)}:{int(elapsed % 60):02d}] {message}"
    print(line, flush=True)
    with open(out / LOG, "a") as f:
        f.write(line + "\n")


def _append(out: Path, row: dict) -> None:
    with open(out / RESULTS, "a") as f:
        f.write(json.dumps(row, default=str) + "\n")


def _read_rows(path: Path) -> list[dict]:
    """The rows of a results file; a line cut short by a killed unit is left out."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _plots(out: Path, rows: list[dict], dry_run: bool) -> None:
    """The op benchmarks' bar plots and the training step's family bars, from the rows that have times."""
    from bench._common import plot
    from bench.bench_model_step import plot as plot_steps

    suffix = " (dry run: not measurements)" if dry_run else ""
    for op in OPS:
        timed = [r for r in rows if r.get("op") == op and "ms" in r]
        if timed:
            plot(timed, out / f"{op}.png", op + suffix)
    steps = [r for r in rows if r.get("op") == "training_step" and "ms" in r]
    if steps:
        plot_steps(steps, out / "training_step.png")


def _enforce_limits(out: Path) -> None:
    """At most MAX_FILES files of at most MAX_FILE_BYTES each: the log keeps its end if it grew too long."""
    log = out / LOG
    if log.exists() and log.stat().st_size > MAX_FILE_BYTES:
        kept = log.read_bytes()[-(MAX_FILE_BYTES - 1024):]
        log.write_bytes(b"[log cut to its last 16 MB]\n" + kept)
    files = [p for p in out.iterdir() if p.is_file()]
    for path in files:
        if path.stat().st_size > MAX_FILE_BYTES:
            print(f"warning: {path} is over {MAX_FILE_BYTES >> 20} MB", flush=True)
    if len(files) > MAX_FILES:
        print(f"warning: {out} holds {len(files)} files, more than {MAX_FILES}", flush=True)


# --- the summary ------------------------------------------------------------------------------------------------------


def summary(rows: list[dict]) -> list[str]:
    """Unit statuses, the environment, tests and graphs in a line each, then a line per op and provider and one per
    training-step provider."""
    dry = any(r.get("dry_run") for r in rows)
    lines = ["", "== gpu session summary" + (" (DRY RUN: CPU, tiny shapes, one call per timing: not measurements)"
                                             if dry else "")]
    for r in (r for r in rows if r.get("op") == "gpu_session"):
        notes = ", ".join(f"{k} {r[k]}" for k in ("rows", "errors", "skipped") if r.get(k))
        if r.get("triton_cache_added"):
            notes += f"{', ' if notes else ''}Triton kernels compiled {r['triton_cache_added']}"
        lines.append(f"{r['step']} {r['unit']:<20} {r['status']:<8} {r['seconds']:6.1f} s  {notes}"
                     + (f"  {r.get('error') or r.get('note')}" if r.get("error") or r.get("note") else ""))
    lines += (_environment_lines(rows) + _compile_cache_lines(rows) + _test_lines(rows) + _graph_lines(rows)
              + _host_lines(rows))
    lines.append(f"{'op':<24} {'provider':<20} {'calls':>5} {'fwd ms':>8} {'bwd ms':>8} {'fwd+bwd':>8} {'speedup':>7}"
                 "  (ms per training step: each call x its calls per forward; speedup: the reference's fwd+bwd"
                 " over the provider's, same calls)")
    for op in OPS:
        lines += _op_lines(op, [r for r in rows if r.get("op") == op])
    lines.append(f"{'training step':<24} {'provider':<20} {'ms/step':>8} {'img/s':>8} {'peak GiB':>8}")
    for r in (r for r in rows if r.get("op") == "training_step"):
        if "ms" in r:
            peak = f"{r['peak_memory_bytes'] / 2**30:8.2f}" if r.get("peak_memory_bytes") else f"{'-':>8}"
            lines.append(f"{'training_step':<24} {r['provider']:<20} {r['ms']:8.1f} {r['images_per_s']:8.1f} {peak}")
        else:
            lines.append(f"{'training_step':<24} {r['provider']:<20} {r.get('error') or r.get('skipped')}"[:160])
    for r in (r for r in rows if r.get("op") == "gpu_session" and r["unit"].startswith("step-")):
        if r["status"] in ("timeout", "error", "skipped"):
            lines.append(f"{'training_step':<24} {r['unit'].removeprefix('step-'):<20} {r['status']}: "
                         f"{r.get('error') or r.get('note')}"[:160])
    return lines


def _environment_lines(rows: list[dict]) -> list[str]:
    device = next((r for r in rows if r.get("op") == "environment"), {})
    line = (f"device {device.get('device')}, {device.get('sm_count')} SMs, torch {device.get('torch')}, "
            f"triton {device.get('triton')}, cuDNN {device.get('cudnn')}") if device else "device: no environment row"
    for r in (r for r in rows if r.get("op") == "ceiling" and "ms" in r):
        rate = f"{r['gb_per_s']:.0f} GB/s" if "gb_per_s" in r else f"{r['tflop_per_s']:.0f} TFLOP/s"
        line += f"; {r['case']} {rate}"
    return [line]


def _compile_cache_lines(rows: list[dict]) -> list[str]:
    ahead = next((r for r in rows if r.get("op") == "compile_cache"), None)
    if ahead is None:
        return []
    later = sum(r.get("triton_cache_added", 0) for r in rows if r.get("op") == "gpu_session" and r["step"] != "a")
    return [f"Triton kernels compiled ahead: {ahead['compiled']} of {ahead['launches_captured']} launches captured "
            f"({' '.join(ahead['dtypes'])}) by {ahead['workers']} processes in {ahead['seconds']:.0f} s; compiled "
            f"later by the units b-f (Inductor's kernels included): {later}"]


def _test_lines(rows: list[dict]) -> list[str]:
    tests = [r for r in rows if r.get("op") == "pytest" and "outcome" in r]
    counts = {outcome: sum(r["outcome"] == outcome for r in tests) for outcome in ("passed", "failed", "error",
                                                                                      "skipped")}
    failing = [r["case"] for r in tests if r["outcome"] in ("failed", "error")]
    return ["pytest -m gpu: " + ", ".join(f"{n} {k}" for k, n in counts.items())
            + (f"; failing: {', '.join(failing[:8])}" + (" ..." if len(failing) > 8 else "") if failing else "")]


def _graph_lines(rows: list[dict]) -> list[str]:
    graphs = [r for r in rows if r.get("op") == "cuda_graph"]
    same = [r["case"] for r in graphs if r.get("bitwise_equal")]
    differ = [f"{r['case']} (max diff {r['max_abs_diff']:.3g})" for r in graphs if r.get("bitwise_equal") is False]
    failed = [f"{r['case']} ({r['error'][:60]})" for r in graphs if "error" in r]
    return [f"CUDA graphs: {len(same)} replays bitwise equal to eager, {len(differ)} differ"
            + (f" [{'; '.join(differ[:4])}]" if differ else "") + f", {len(failed)} failed"
            + (f" [{'; '.join(failed[:4])}]" if failed else "")]


def _host_lines(rows: list[dict]) -> list[str]:
    """Per op and provider: the largest host time per call of its forwards and backwards, and how many calls are
    within the goal."""
    from profiling.host_time import HOST_GOAL_US

    timed = [r for r in rows if r.get("op") == "host_time" and "host_us" in r]
    lines = []
    for op in OPS:
        for provider in HOST_PROVIDERS:
            mine = [r for r in timed if r["subject"] == op and r["provider"] == provider]
            if mine:
                worst = {d: max((r["host_us"] for r in mine if r["mode"] == d), default=0.0) for d in ("fwd", "bwd")}
                within = sum(r["host_us"] <= HOST_GOAL_US for r in mine)
                lines.append(f"host us per call, {op}, {provider}: forward up to {worst['fwd']:.1f}, backward up to "
                             f"{worst['bwd']:.1f}; {within} of {len(mine)} within {HOST_GOAL_US:.0f}")
    return lines


def _op_lines(op: str, rows: list[dict]) -> list[str]:
    """Per provider: calls measured of all, the per-step sums of each mode, the reference's forward+backward sum over
    the same calls divided by the provider's."""
    cases = list(dict.fromkeys(r["case"] for r in rows))
    providers = list(dict.fromkeys(r["provider"] for r in rows if "provider" in r))
    ms = {(r["provider"], r["case"], r["mode"]): r["ms"] * r.get("calls_per_step", 1) for r in rows if "ms" in r}
    lines = []
    for provider in providers:
        measured = [c for c in cases if (provider, c, "fwdbwd") in ms]
        sums = [sum(ms.get((provider, c, mode), 0.0) for c in measured) for mode in MODES]
        reference = providers[0]
        common = [c for c in measured if (reference, c, "fwdbwd") in ms]
        ratio = (sum(ms[(reference, c, "fwdbwd")] for c in common) / sum(ms[(provider, c, "fwdbwd")] for c in common)
                 if common else None)
        problems = sum(1 for r in rows if r.get("provider") == provider and ("error" in r or "skipped" in r))
        lines.append(f"{op:<24} {provider:<20} {len(measured):>2}/{len(cases):<2} "
                     + " ".join(f"{s:8.3f}" for s in sums) + (f" {ratio:6.2f}x" if ratio else f" {'-':>7}")
                     + (f"  ({problems} errors/skips)" if problems else ""))
    return lines


# --- the record -------------------------------------------------------------------------------------------------------


def record(out: Path) -> Path:
    """Append a real session's rows to bench/results/<device>.jsonl, each with the session's device, versions and
    date (measured there: this machine may have none), copy its plots beside them, regenerate the README's results
    section, and its static section and the static reports' .md files (the measured times beside the predictions)."""
    from bench import report
    from bench._common import RESULTS_DIR, git_commit, save
    from profiling.static_report import refresh_from_results

    rows = _read_rows(out / RESULTS)
    if not rows or any(r.get("dry_run") for r in rows):
        raise SystemExit(f"{out / RESULTS}: no rows, or a dry run's: nothing to record")
    environment_row = next((r for r in rows if r.get("op") == "environment"), None)
    if environment_row is None:
        raise SystemExit(f"{out / RESULTS}: no environment row (step a): which device measured these is unknown")
    meta = {key: environment_row.get(key) for key in ("device", "torch", "triton", "cudnn", "commit", "date")}
    if meta["commit"] is None:  # the GPU machine ran a copy of the working tree without git: this checkout's commit
        meta.update(commit=git_commit(), commit_source="recording checkout")
    kept = [{k: v for k, v in r.items() if k not in ("log_tail", "traceback")} for r in rows]
    path = save(kept, RESULTS_DIR, meta)
    for op in (*OPS, "training_step"):
        if (out / f"{op}.png").exists():
            shutil.copyfile(out / f"{op}.png", RESULTS_DIR / f"{path.stem}_{op}.png")
    report.main([])
    refresh_from_results(RESULTS_DIR, report.README)
    return path


# --- command line -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="the folder for the session's files")
    parser.add_argument("--steps", default="abcdef",
                        help="the steps to run, e.g. de (default: all, in order; a, the environment and the "
                             "compile cache, always runs)")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes: every unit's plumbing, no timing")
    parser.add_argument("--record", type=Path, metavar="DIR", help="record a real session's folder and stop")
    parser.add_argument("--unit", help=argparse.SUPPRESS)  # the session runs each unit as `--unit NAME`
    parser.add_argument("--budget", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.record:
        print(f"recorded in {record(args.record)}")
        return
    if args.out is None:
        parser.error("--out DIR is required")
    if args.unit:
        import kernels  # noqa: F401  (before anything imports triton: it sets the interpreter up without CUDA)

        if args.dry_run:
            torch.set_num_threads(1)  # a shared 2-core CI machine: two busy intra-op threads ran steps ~10x slower
        unit = next(u for u in UNITS if u.name == args.unit)
        unit.run(Context(args.out, unit.step, unit.name, args.dry_run, time.time() + args.budget - MARGIN_SECONDS))
        return
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_session: no CUDA device here; --dry-run checks the session's plumbing on the CPU")
    rows = run_session(args.out, args.steps, args.dry_run)
    if not args.dry_run:
        try:
            print(f"recorded in {record(args.out)}", flush=True)
        except SystemExit as error:  # (no environment row: the summary still comes)
            print(f"not recorded: {error}", flush=True)
    files = sorted(p.name for p in args.out.iterdir())
    print(f"files in {args.out} ({len(files)}): {', '.join(files)}")
    print("\n".join(summary(rows)), flush=True)


if __name__ == "__main__":
    main()
