"""The static cost report (profiling/static_report.py): a few launches of a tiny model captured, compiled for sm_90 and
priced in a fresh process (TRITON_INTERPRET=0 there: the interpreter would replace the kernels); the model's pure
parts on known inputs; and the kept baselines cover every op call of the step."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.costs import call_costs
from bench.eager_trace import KernelTrace, eager_kernels
from bench.shapes import model_op_calls
from profiling import _sass, cost_model
from profiling.static_report import (
    DIRECTIONS,
    EAGER_PROVIDERS,
    OUT_DIR,
    README,
    README_END,
    README_START,
    call_table,
    measured_host_us,
    measured_us,
    read_report,
    readme_section,
    refresh_markdown,
)

ROOT = Path(__file__).resolve().parents[2]
# One window attention (one kernel per direction) and one linear attention (five kernels) of a 64 x 96 model.
TINY_CASES = ["window_attention/16x24-c18-h6-shift3", "linear_cross_attention/b6-d36-384"]
TINY = ["--size", "64", "96", "--batch", "1", "--repeats", "1", "--cases", *TINY_CASES]
BASELINE_COMMIT = "3d4e074"
FIELDS = ("op", "kernel", "case", "direction", "grid", "num_warps", "num_stages", "registers", "spill_bytes",
          "shared_bytes", "ctas_per_sm", "waves", "tensor_core_ops", "async_copies", "vector_loads", "scalar_loads",
          "mufu", "sass_instructions", "loop_instructions", "unknown_trip_loops", "decided_branches",
          "branch_shares", "heaviest_program", "bytes", "flops", "floor_us", "predicted_us", "host_us", "host_floor_us",
          "host_dispatch_us")


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("static")
    result = subprocess.run([sys.executable, "-m", "profiling.static_report", "--out", str(out), *TINY], cwd=ROOT,
                            env={**os.environ, "TRITON_INTERPRET": "0"}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    (path,) = out.glob("triton-*.jsonl")
    return path


def test_tiny_report_has_every_field_of_every_launch(tiny_report):
    head, records = read_report(tiny_report)
    assert "not measurements" in head["what"] and head["kernels_commit"]
    assert {(r["case"], r["direction"]) for r in records} == {(c, d) for c in TINY_CASES for d in DIRECTIONS}
    for r in records:
        assert all(r[field] is not None for field in FIELDS), r
        assert 0 < r["registers"] <= cost_model.MAX_REGISTERS and r["ctas_per_sm"] >= 1 and r["sass_instructions"]
        assert r["ctas_per_sm"] == cost_model.ctas_per_sm(r["registers"], r["shared_bytes"], r["num_warps"])
        assert r["waves"] == pytest.approx(math.prod(r["grid"]) / (cost_model.SMS * r["ctas_per_sm"]), abs=1e-3)
    products = [r for r in records if r["kernel"] in ("_window_attention_fwd_kernel", "_window_attention_bwd_kernel")]
    assert len(products) == 2 and all(r["tensor_core_ops"] and r["tensor_flops"] for r in products)
    # the linear attention's state pass branches on its program id: counted along program 0's path, a second compile
    (state,) = [r for r in records if r["kernel"] == "_linear_cross_attention_state_kernel"]
    assert state["decided_branches"] and state["issued_instructions"] and state["trips_matched"]
    # the window attention backward masks only the windows that cross the shifted image's border (3 x 4 windows:
    # the last row and column): its branch weighted by the share of windows that take it, from a third compile
    (backward,) = [r for r in records if r["kernel"] == "_window_attention_bwd_kernel"]
    assert len(backward["branch_shares"]) == 1 and 0 < backward["branch_shares"][0] < 1
    assert all(r["branch_shares"] == [] for r in records if r is not backward)
    markdown = tiny_report.with_suffix(".md").read_text()
    assert "not measurements" in markdown and all(r["kernel"] in markdown for r in records)
    # a launch with a loop counted once, its trips unknown (nests that disagree leave some), is marked as low
    for r in records:
        (row,) = [line for line in markdown.splitlines() if line.startswith(f"| {r['kernel']} | {r['case']} | ")
                  and f"| {r['direction']} |" in line]
        assert ("(?)" in row) == (not r["trips_matched"] or r["unknown_trip_loops"] > 0), row


def test_predictions_are_the_cost_model_of_the_records_fields(tiny_report):
    """What the model guarantees: the stored prediction is today's function of the record, at least the launch cost
    plus each of its terms, and never below the time its DRAM bytes take at full bandwidth."""
    _, records = read_report(tiny_report)
    for r in records:
        assert r["predicted_us"] == pytest.approx(cost_model.predicted_us(r), abs=0.01)
        terms = cost_model.terms_us(r)
        assert r["predicted_us"] >= cost_model.LAUNCH_US + max(terms.values()) - 0.01
        assert r["predicted_us"] >= cost_model.LAUNCH_US + r["dram_bytes"] / cost_model.BANDWIDTH * 1e6 - 0.01
        assert r["floor_us"] == pytest.approx(cost_model.floor_us(r["bytes"], r["flops"]), abs=0.01)


def test_measured_times_stand_beside_the_predictions(tiny_report, tmp_path):
    """GPU rows in bf16 (the newest per call and mode; a dry run's never) join the table: the Triton provider's beside
    our prediction, the eager reference's (whatever each op benchmark names it; not the channels-last eager run)
    beside the eager prediction, the GPU session's host time beside the one taken here."""
    _, records = read_report(tiny_report)
    case = records[0]["case"]
    rows = [dict(op="x", case=case, provider="triton", mode="fwd", dtype="bfloat16", ms=0.5, date="2026-12-01"),
            dict(op="x", case=case, provider="triton", mode="fwd", dtype="bfloat16", ms=0.25, date="2026-12-02"),
            dict(op="x", case=case, provider="reference", mode="fwd", dtype="bfloat16", ms=1.5, date="2026-12-02"),
            dict(op="x", case=case, provider="torch", mode="bwd", dtype="bfloat16", ms=9.0, date="2026-12-02"),
            dict(op="x", case=case, provider="eager_cl", mode="bwd", dtype="bfloat16", ms=8.0, date="2026-12-03"),
            dict(op="x", case=case, provider="triton", mode="bwd", dtype="bfloat16", ms=7.0, dry_run=True)]
    host = dict(op="host_time", subject="x", case=case, provider="triton", dtype="bfloat16", date="2026-12-02")
    rows += [dict(host, mode="fwd", host_us=41.5, host_floor_us=9.0), dict(host, mode="bwd", host_us=1.0, dry_run=True),
             dict(host, mode="bwd", host_us=2.0, provider="reference")]
    (tmp_path / "device.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    measured, eager = measured_us(tmp_path), measured_us(tmp_path, providers=EAGER_PROVIDERS)
    assert measured == {(case, "fwd"): 250.0} and eager == {(case, "fwd"): 1500.0, (case, "bwd"): 9000.0}
    assert measured_host_us(tmp_path) == {(case, "fwd"): 41.5}
    header, _, *lines = call_table(records, None, measured, eager, measured_host_us(tmp_path))
    row = next(line for line in lines if f"| {case} | fwd |" in line)
    columns = [cell.strip() for cell in header.split("|")]
    cells = [cell.strip() for cell in row.split("|")]
    assert cells[columns.index("measured us")] == "250.0" and cells[columns.index("eager measured us")] == "1,500.0"
    assert cells[columns.index("measured host us")] == "41.5"


def test_the_host_is_timed_with_and_without_tritons_dispatch(monkeypatch):
    """While recording, a launch is specialised and recorded; while timing our launchers alone, it does nothing; while
    timing with Triton's dispatch, it goes through the JIT's own `run` in its warm-up mode (no launch)."""
    from triton.runtime.jit import JITFunction

    from profiling.static_report import Interceptor

    runs = []
    monkeypatch.setattr(JITFunction, "run", lambda kernel, *args, grid, warmup, **kwargs: runs.append(warmup))
    kernel = _jit_kernel()
    interceptor = Interceptor(lambda kernel, grid, args, kwargs: (kernel, grid))
    with interceptor.active():
        kernel[(3,)](1)
        interceptor.recording = False
        kernel[(3,)](1)
        interceptor.dispatching = True
        kernel[(3,)](1)
    assert interceptor.take() == [(kernel, (3,))] and runs == [True]


def _one_argument_kernel(x):
    pass


def _jit_kernel():
    """A JIT function whatever TRITON_INTERPRET says (under it, `triton.jit` gives the interpreter's)."""
    from triton.runtime.jit import JITFunction

    return JITFunction(_one_argument_kernel)


def test_residency_limits():
    assert cost_model.ctas_per_sm(255, 0, 8) == 1  # 8 warps x 8192 registers: one CTA's registers fill the SM
    assert cost_model.ctas_per_sm(128, 0, 4) == 4  # registers allow 4 CTAs of 4 warps
    assert cost_model.ctas_per_sm(32, 0, 4) == 16  # warps: 64 per SM
    assert cost_model.ctas_per_sm(32, 100 * 1024, 4) == 2  # shared memory, 1 KB reserved per CTA
    assert cost_model.ctas_per_sm(32, 228 * 1024, 4) == 0  # over the 227 KB a block may use


def test_floors_of_the_model_calls_quoted_by_the_kernel_issues():
    """The op calls' minimal bytes/FLOPs (bench/costs.py) give the floors the kernel issues were filed with."""
    floors = {(c.case, d): cost_model.floor_us(*call_costs(c)[d]) for c in model_op_calls() for d in DIRECTIONS}
    assert floors["concat_conv1x1/13in-120x160+60x80+30x40+15x20-1080to1080", "fwd"] == pytest.approx(134, abs=1)
    assert floors["linear_cross_attention/b48-d36-19200", "fwd"] == pytest.approx(88, abs=1)
    assert floors["linear_cross_attention/b48-d36-19200", "bwd"] == pytest.approx(155, abs=1)
    assert floors["window_attention/120x160-c18-h6-shift3", "fwd"] == pytest.approx(7.4, abs=0.1)


def test_eager_runs_traced_from_the_references():
    """The references' eager runs, traced on meta tensors (bench/eager_trace.py), each kernel at its roofline. The
    aggregation: forward an interpolation per low-resolution segment (7), the concatenation and the 358 GFLOP
    convolution; backward the convolution's input, weight and bias gradients, 7 interpolation gradients and 3
    accumulations of the repeated F1 (x3) and F2 (x2): 795 us forward and 1,176 us backward, as counted by hand
    before the trace. The window attention's traced matrix products are the FLOPs bench/costs.py counts (4 N^2 d per
    window and head forward, 8 backward), and so are the linear attention's forward ones."""
    calls = model_op_calls()
    aggregation = next(c for c in calls if c.case.startswith("concat_conv1x1/13in"))
    kernels = eager_kernels(aggregation)
    assert len(kernels["fwd"]) == 7 + 2 and kernels["fwd"][-1][1] == 2 * 1080 * 1080 * 8 * 120 * 160
    assert len(kernels["bwd"]) == 3 + 7 + 3
    assert cost_model.eager_us(kernels["fwd"]) == pytest.approx(795, abs=1)
    assert cost_model.eager_us(kernels["bwd"]) == pytest.approx(1176, abs=1)
    products_counted = {"window_attention": DIRECTIONS, "linear_cross_attention": ("fwd",)}
    for call in calls:
        kernels, costs = eager_kernels(call), call_costs(call)
        for direction in products_counted.get(call.op, ()):
            assert sum(flops for _, flops in kernels[direction]) == costs[direction][1], (call.case, direction)


def test_the_trace_records_kernels_not_views():
    """A transpose (a view), its contiguous copy, a broadcast add and a matrix product: three kernels, the broadcast
    row read once; a batched product of 4-d tensors, reshaped to 3-d and back (matmul's views): one; a convolution's
    backward, one ATen operation, as its input, weight and bias gradient kernels."""
    x = torch.empty(64, 32, device="meta")
    with KernelTrace() as trace:
        y = x.t().contiguous() + torch.empty(1, 64, device="meta")
        y @ x
        torch.empty(2, 3, 64, 32, device="meta") @ torch.empty(2, 3, 32, 8, device="meta")
    assert trace.kernels == [(2 * 4 * 64 * 32, 0), (4 * (2 * 64 * 32 + 64), 0),
                             (4 * (2 * 64 * 32 + 32 * 32), 2 * 32 * 64 * 32),
                             (4 * 6 * (64 * 32 + 32 * 8 + 64 * 8), 2 * 6 * 64 * 32 * 8)]
    image = torch.empty(2, 8, 5, 5, device="meta", requires_grad=True)
    weight, bias = (torch.empty(shape, device="meta", requires_grad=True) for shape in ((4, 8, 1, 1), (4,)))
    out = torch.nn.functional.conv2d(image, weight, bias)
    with KernelTrace() as trace:
        torch.autograd.grad(out, (image, weight, bias), torch.empty_like(out))
    grad_out, flops = 4 * out.numel(), 2 * out.numel() * 8
    assert trace.kernels == [(grad_out + 4 * (weight.numel() + image.numel()), flops),
                             (grad_out + 4 * (image.numel() + weight.numel()), flops), (grad_out + 4 * 4, 0)]


def test_loop_trips_and_memory_from_the_ir():
    """Bounds from arguments, constants and program 0; a loop of one trip flattened, as the backend compiles it; bytes
    per pointer argument weighted by trips, none in a branch known not taken."""
    loops, traffic, _ = _sass.read_ttir(TTIR, (None, 100), (8, 1, 1))
    assert [(loop.trips, [child.trips for child in loop.children]) for loop in loops] == [(13, [4]), (1, [100])]
    assert traffic == {0: 13 * 4 * 32 * 2}
    sass = [_sass.Loop(0x100, 0x400, [_sass.Loop(0x200, 0x300, [])]), _sass.Loop(0x500, 0x600, [])]
    assert _sass.assign_trips(sass, loops)
    assert (sass[0].trips, sass[0].children[0].trips, sass[1].trips) == (13, 4, 100)
    assert _sass.dram_bytes(traffic, ((0x1000, 1000), None), programs=8) == 1000  # at most the tensor's extent


def test_loop_trips_per_program_and_the_programs_sampled():
    """The loop from the program id to n = 100 by the program count runs 13 trips in programs 0-3 of 8 and 12 in
    programs 4-7, and the bytes follow; the loop that only program 0 enters runs in no other (nor its inner loop,
    counted 0 there). A grid of fewer programs than SAMPLED_PROGRAMS is sampled whole; a large one is not sampled
    along a stride of its own (the aggregation's 9 channel tiles per pixel tile: the samples fall on many pixel
    tiles)."""
    for program, trips in ((0, 13), (3, 13), (4, 12), (7, 12)):
        loops, traffic, _ = _sass.read_ttir(TTIR, (None, 100), (8, 1, 1), program=(program, 0, 0))
        assert [(loop.trips, [c.trips for c in loop.children]) for loop in loops] == \
            [(trips, [4]), (1, [100]) if program == 0 else (0, [0])]
        assert traffic == {0: trips * 4 * 32 * 2}
    assert _sass.sampled_programs((8, 1, 1)) == tuple((p, 0, 0) for p in range(8))
    sample = _sass.sampled_programs((10800, 1, 1))
    assert len(sample) == _sass.SAMPLED_PROGRAMS and sample[0] == (0, 0, 0)
    assert len({x // 9 for x, _, _ in sample}) == _sass.SAMPLED_PROGRAMS


def test_the_main_loop_and_the_work_are_the_sampled_programs_mean():
    """TTIR's kernel as SASS: the loop nest over windows (13 trips in programs 0-3 of 8, 12 in 4-7, an inner loop of
    4) and the loop of n = 100 trips that only program 0 runs. The main loop is program 0's heaviest (100 trips of 2
    instructions); its trips and the instructions issued are the mean over the 8 programs, not program 0's; the
    heaviest program is program 0."""
    def ins(address, opcode="IADD3", target=None):
        return _sass.Instruction(address, opcode, (), target)

    listing = (ins(0x00), ins(0x10), ins(0x20), ins(0x30, "BRA", 0x20), ins(0x40, "BRA", 0x10),  # windows, k
               ins(0x50), ins(0x60, "BRA", 0x50), ins(0x70, "EXIT"))  # the loop of program 0
    code = _sass.KernelCode("k", {}, 0, listing, TTIR)
    spec = _sass.Specialisation(kernel=None, signature={}, constexprs={}, attrs={},
                                options=type("Options", (), {"num_warps": 4})(), scalars=(None, 100),
                                tensors=((0x1000, 10**6), None), grid=(8, 1, 1))
    counts = _sass.dynamic_counts(code, spec)
    assert (counts["loop_instructions"], counts["loop_trips"]) == (2, 100 / 8)
    # per program and warp: 0x00 and 0x70 once, 0x10 and 0x40 per window, 0x20 and 0x30 per window and k step, 0x50
    # and 0x60 per trip of the loop program 0 runs
    windows = {p: 13 if p < 4 else 12 for p in range(8)}
    issued = {p: 2 + 2 * windows[p] + 2 * 4 * windows[p] + (2 * 100 if p == 0 else 0) for p in range(8)}
    assert counts["issued_instructions"] == round(sum(issued.values()) / 8 * 8 * 4)
    assert counts["heaviest_program"]["issued_instructions"] == issued[0] * 4


def test_an_uneven_launch_takes_at_least_its_heaviest_program():
    """Two programs on two SMs, one doing all the work: the mean over the launch would halve the time; the heaviest
    program's own issue time bounds it (one resident program per SM). Many waves of even work: the launch's share
    decides."""
    work = dict(issued_instructions=8e6, requested_bytes=0, tensor_flops={}, mufu_ops=0)
    record = dict(grid=(2, 1, 1), num_warps=8, ctas_per_sm=1, dram_bytes=0, **work, heaviest_program=work)
    issue = cost_model.terms_us(record)["issue"]
    per_sm = work["issued_instructions"] / (cost_model.ISSUE_PER_CLOCK * cost_model.CLOCK_HZ) * 1e6
    assert issue == pytest.approx(per_sm * cost_model.LATENCY_WARPS / 8)
    assert cost_model.terms_us({**record, "heaviest_program": None})["issue"] == pytest.approx(issue / 2)
    even = dict(record, grid=(cost_model.SMS * 10, 1, 1), issued_instructions=8e6 * cost_model.SMS * 10,
                heaviest_program=dict(work, issued_instructions=8e6))
    assert cost_model.terms_us(even)["issue"] == pytest.approx(10 * per_sm * cost_model.LATENCY_WARPS / 8)


# A loop over rows that stores a source row (lo = y / 3, carried from trip to trip) when the row moves past it, and
# loads one otherwise; and stores once more on the last row.
CARRIED_TTIR = """
  tt.func public @k(%x_ptr: !tt.ptr<bf16> loc("x"), %n: i32 loc("n")) attributes {} {
    %c0_i32 = arith.constant 0 : i32 loc(#loc)
    %c1_i32 = arith.constant 1 : i32 loc(#loc)
    %c3_i32 = arith.constant 3 : i32 loc(#loc)
    %c11_i32 = arith.constant 11 : i32 loc(#loc)
    %ptrs = tt.splat %x_ptr : !tt.ptr<bf16> -> tensor<32x!tt.ptr<bf16>> loc(#loc)
    %rows = scf.for %y = %c0_i32 to %n step %c1_i32 iter_args(%row = %c0_i32) -> (i32)  : i32 {
      %lo = arith.divsi %y, %c3_i32 : i32 loc(#loc)
      %moved = arith.cmpi ne, %lo, %row : i32 loc(#loc)
      scf.if %moved {
        tt.store %ptrs, %v : tensor<32x!tt.ptr<bf16>> loc(#loc)
      } else {
        %w = tt.load %ptrs : tensor<32x!tt.ptr<bf16>> loc(#loc)
      } loc(#loc)
      %last = arith.cmpi eq, %y, %c11_i32 : i32 loc(#loc)
      scf.if %last {
        tt.store %ptrs, %v : tensor<32x!tt.ptr<bf16>> loc(#loc)
      } loc(#loc)
      scf.yield %lo : i32 loc(#loc)
    } loc(#loc)
  } loc(#loc)"""


def test_a_branch_on_a_carried_value_counts_at_the_share_that_takes_it():
    """Rows y = 0..11 read source rows 0, 0, 0, 1, 1, 1, ...: the row moves past the carried one at y = 3, 6, 9, a
    share of 1/4 (the first trip compares with the initial 0). The store counts at that share, the load in the other
    arm at the rest, the last row's store once; without n the loop's trips and the shares are unknown and every arm
    counts in full."""
    loops, traffic, taken = _sass.read_ttir(CARRIED_TTIR, (None, 12), (1, 1, 1))
    assert [loop.trips for loop in loops] == [12]
    assert taken == {"%moved": (0.25, True), "%last": (pytest.approx(1 / 12), False)}  # (share, has an else arm)
    assert traffic == {0: 12 * 64 // 4 + 12 * 64 * 3 // 4 + 64}
    loops, traffic, taken = _sass.read_ttir(CARRIED_TTIR, (None, None), (1, 1, 1))
    assert [loop.trips for loop in loops] == [None] and taken == {} and traffic == {0: 3 * 64}


def test_an_arm_run_on_a_share_of_the_trips_is_weighted_by_it():
    """The SASS counts the arms' instructions (two of the row store, one of the load in its else arm, one of the last
    row's store) on every one of the 12 trips; a compile with a condition constant tells what the arm it drops adds,
    of which its share runs (each arm against the kernel's full count, not against what is left after another's).
    The last row's branch has no else arm: no compile with its condition true is asked for. Without those compiles
    the arms count in full."""
    def ins(address, opcode="IADD3", target=None):
        return _sass.Instruction(address, opcode, (), target)

    row_store, row_load, last_store = (ins(0x20), ins(0x30)), (ins(0x38),), (ins(0x48),)
    loop = (ins(0x10), *row_store, *row_load, ins(0x40), *last_store, ins(0x50, "BRA", 0x10))

    def kernel(constants, dropped=()):
        return _sass.KernelCode("k", {}, 0, (ins(0x00), *(i for i in loop if i not in dropped), ins(0x60, "EXIT")),
                                _sass.program_zero_path(CARRIED_TTIR, constants))

    fixed = {("%moved", False): kernel({"%moved": False}, row_store),
             ("%moved", True): kernel({"%moved": True}, row_load),
             ("%last", False): kernel({"%last": False}, last_store)}
    spec = _sass.Specialisation(kernel=None, signature={}, constexprs={}, attrs={},
                                options=type("Options", (), {"num_warps": 4})(), scalars=(None, 12),
                                tensors=((0x1000, 10**6), None), grid=(1, 1, 1))
    counts = _sass.dynamic_counts(kernel({}), spec, lambda condition, value: fixed[condition, value])
    assert counts["branch_shares"] == [0.25, 0.083] and counts["trips_matched"]
    assert counts["issued_instructions"] == (2 + 3 * 12 + 2 * 12 // 4 + 12 * 3 // 4 + 1) * 4
    assert _sass.dynamic_counts(kernel({}), spec)["issued_instructions"] == (2 + 7 * 12) * 4


# A loop over 3 groups whose inner loop runs over a group size loaded from a table argument, and a loop over its rows
# whose inner loop's bound depends on the row (a triangle).
TABLE_TTIR = """
  tt.func public @k(%x_ptr: !tt.ptr<bf16> loc("x"), %sizes_ptr: !tt.ptr<i64> loc("sizes")) attributes {} {
    %c0_i32 = arith.constant 0 : i32 loc(#loc)
    %c1_i32 = arith.constant 1 : i32 loc(#loc)
    %c3_i32 = arith.constant 3 : i32 loc(#loc)
    %ptrs = tt.splat %x_ptr : !tt.ptr<bf16> -> tensor<32x!tt.ptr<bf16>> loc(#loc)
    scf.for %g = %c0_i32 to %c3_i32 step %c1_i32  : i32 {
      %size_ptr = tt.addptr %sizes_ptr, %g : !tt.ptr<i64>, i32 loc(#loc)
      %size_64 = tt.load %size_ptr : !tt.ptr<i64> loc(#loc)
      %size = arith.trunci %size_64 : i64 to i32 loc(#loc)
      scf.for %r = %c0_i32 to %size step %c1_i32  : i32 {
        %end = arith.addi %r, %c1_i32 : i32 loc(#loc)
        scf.for %c = %c0_i32 to %end step %c1_i32  : i32 {
          %v = tt.load %ptrs : tensor<32x!tt.ptr<bf16>> loc(#loc)
        } loc(#loc)
      } loc(#loc)
    } loc(#loc)
  } loc(#loc)"""


def test_loop_trips_from_tables_and_enclosing_induction_variables(monkeypatch):
    """Group sizes 2, 4, 3 loaded from the table: 9 rows over 3 groups (3 per group on average) and 3 + 10 + 6 = 19
    triangle cells over 9 rows: the product of the averages is the innermost body's count, which the bytes follow.
    Without the table (or past the iteration budget) the inner loops stay unknown."""
    loops, traffic, _ = _sass.read_ttir(TABLE_TTIR, (None, None), (1, 1, 1), (None, (2, 4, 3)))
    (group,) = loops
    (row,) = group.children
    (cell,) = row.children
    assert (group.trips, row.trips, cell.trips) == (3, 3, pytest.approx(19 / 9))
    assert traffic == {0: 19 * 32 * 2, 1: 3 * 8}  # the tiles, and the three sizes
    for table, budget in ((None, _sass.MAX_EVALUATED_ITERATIONS), ((2, 4, 3), 2)):
        monkeypatch.setattr(_sass, "MAX_EVALUATED_ITERATIONS", budget)
        loops, _, _ = _sass.read_ttir(TABLE_TTIR, (None, None), (1, 1, 1), (None, table))
        assert (loops[0].trips, loops[0].children[0].trips, loops[0].children[0].children[0].trips) == (3, None, None)


def test_program_zero_path_makes_the_decided_conditions_constants():
    """The branch on n == 0 is decided by n's value (not taken for n = 100, taken for n = 0) and undecided without
    it; the path's TTIR branches on a constant defined at the top of the function, and nothing else changes."""
    assert _sass.decided_branches(TTIR, (None, 100), (8, 1, 1)) == {"%empty": False}
    assert _sass.decided_branches(TTIR, (None, 0), (8, 1, 1)) == {"%empty": True}
    assert _sass.decided_branches(TTIR, (None, None), (8, 1, 1)) == {}
    path = _sass.program_zero_path(TTIR, {"%empty": False})
    lines = path.splitlines()
    opening = next(i for i, line in enumerate(lines) if "tt.func public" in line)
    assert lines[opening + 1:opening + 3] == ["    %program_zero_true = arith.constant true",
                                              "    %program_zero_false = arith.constant false"]
    assert "scf.if %program_zero_false {" in path and "scf.if %empty" not in path
    restored = "\n".join(lines[:opening + 1] + lines[opening + 3:])
    assert restored.replace("scf.if %program_zero_false", "scf.if %empty") == TTIR


# A kernel's TTIR as Triton prints it: two loop nests (the second of one trip) and a branch on an argument.
TTIR = """
  tt.func public @k(%x_ptr: !tt.ptr<bf16> {tt.divisibility = 16 : i32} loc("x"), %n: i32 loc("n")) attributes {} {
    %c0_i32 = arith.constant 0 : i32 loc(#loc)
    %c1_i32 = arith.constant 1 : i32 loc(#loc)
    %c32_i32 = arith.constant 32 : i32 loc(#loc)
    %pid = tt.get_program_id x : i32 loc(#loc)
    %programs = tt.get_num_programs x : i32 loc(#loc)
    %empty = arith.cmpi eq, %n, %c0_i32 : i32 loc(#loc)
    %ptrs = tt.splat %x_ptr : !tt.ptr<bf16> -> tensor<32x!tt.ptr<bf16>> loc(#loc)
    scf.for %w = %pid to %n step %programs  : i32 {
      scf.for %k = %c0_i32 to %n step %c32_i32  : i32 {
        %v = tt.load %ptrs : tensor<32x!tt.ptr<bf16>> loc(#loc)
      } loc(#loc)
    } loc(#loc)
    scf.for %once = %pid to %c1_i32 step %programs  : i32 {
      scf.for %t = %c0_i32 to %n step %c1_i32  : i32 {
      } loc(#loc)
    } loc(#loc)
    scf.if %empty {
      tt.store %ptrs, %v : tensor<32x!tt.ptr<bf16>> loc(#loc)
    } loc(#loc)
  } loc(#loc)"""


def test_sass_widths_and_tensor_core_work():
    def ins(opcode, *modifiers):
        return _sass.Instruction(0, opcode, modifiers, None)

    assert [_sass.width_bytes(ins("LDG", *m)) for m in (("E", "128"), ("E", "64"), ("E",), ("E", "U16"))] == \
        [16, 8, 4, 2]
    assert _sass.mma_flops(ins("HGMMA", "64x128x16", "F32", "BF16")) == ("BF16", 2 * 64 * 128 * 16 // 4)
    assert _sass.mma_flops(ins("HMMA", "16816", "F32", "BF16")) == ("BF16", 2 * 16 * 8 * 16)


@pytest.mark.parametrize("path", sorted(OUT_DIR.glob("baseline-triton-*.jsonl")), ids=lambda p: p.stem)
def test_kept_baseline_covers_every_op_call_of_the_step(path):
    head, records = read_report(path)
    assert head["kernels_commit"].startswith(BASELINE_COMMIT)
    calls = {c.case: c.count for c in model_op_calls()}
    assert {(r["case"], r["direction"]) for r in records} == {(c, d) for c in calls for d in DIRECTIONS}
    assert all(r["calls_per_step"] == calls[r["case"]] and r["launches"] >= 1 for r in records)


def test_every_report_has_its_kept_baseline():
    versions = {json.loads(p.read_text().splitlines()[0])["triton"] for p in OUT_DIR.glob("triton-*.jsonl")}
    assert versions, "no static report committed"
    assert all((OUT_DIR / f"baseline-triton-{v}.jsonl").exists() for v in versions)


def test_readme_section_is_generated_from_the_committed_reports():
    text = README.read_text()
    section = text[text.index(README_START) + len(README_START):text.index(README_END)]
    assert section.strip() == readme_section().strip(), "run `make static-report` (or --readme) to regenerate it"


def test_markdown_is_generated_from_the_committed_reports(tmp_path):
    """Each committed .md is what its .jsonl and the committed GPU times give (`refresh_markdown`, which
    bench/gpu_session.py's --record runs)."""
    for path in OUT_DIR.glob("*triton-*.jsonl"):
        shutil.copyfile(path, tmp_path / path.name)
    written = refresh_markdown(tmp_path)
    assert len(written) == len(list(OUT_DIR.glob("*triton-*.md"))) >= 2
    for path in written:
        assert path.read_text() == (OUT_DIR / path.name).read_text(), f"run --markdown to regenerate {path.name}"


def test_the_readme_section_totals_the_measured_times_where_every_call_has_one(tiny_report, tmp_path):
    """The window attention's forward measured (its one call in the tiny report): its step total is the measured time
    (one call per step); the linear attention has none, so no total."""
    case = TINY_CASES[0]
    row = dict(op="window_attention", case=case, provider="triton", mode="fwd", dtype="bfloat16", ms=0.05)
    (tmp_path / "device.jsonl").write_text(json.dumps(row))
    section = readme_section(tiny_report.parent, tmp_path).splitlines()
    header = next(line for line in section if line.startswith("| op |"))
    column = [cell.strip() for cell in header.split("|")].index("measured")
    measured = {tuple(cell.strip() for cell in line.split("|")[1:3]): line.split("|")[column].strip()
                for line in section if line.startswith("| window_attention |") or line.startswith("| linear_")}
    assert measured[("window_attention", "fwd")] == "50.0"
    assert measured[("window_attention", "bwd")] == measured[("linear_cross_attention", "fwd")] == "-"
