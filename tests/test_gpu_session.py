"""The GPU session (bench/gpu_session.py) on the CPU: its dry run goes through every unit at tiny shapes, so that what
only the lent GPU machine runs, in one try, does not first break there; a unit past its timeout is killed and
recorded; a carried-back session is recorded with the device and versions that measured it."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import gpu_session  # noqa: E402
from profiling.static_report import GOALS_END, GOALS_START, README_END, README_START  # noqa: E402

# The dry run times itself: each unit is killed past its dry budget (a "timeout" status, which fails the status test
# below), so the whole run is bounded by their sum (445 s). This timeout only catches a hang outside the units (the
# parent's recording of the op calls, its plots), with a minute's margin. On this project's 2-core CPU the dry run took
# 75-120 s alone, and 189-204 s on 2026-12-07, a day that CPU ran the whole suite at half speed (34 instead of 17 min).
DRY_RUN_SECONDS = sum(unit.dry_budget for unit in gpu_session.UNITS) + 60


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-session")
    results = sorted((ROOT / "bench" / "results").glob("*"))
    env = {**os.environ, "TRITON_CACHE_DIR": str(tmp_path_factory.mktemp("triton-cache"))}  # empty: counts add up
    run = subprocess.run([sys.executable, "bench/gpu_session.py", "--out", str(out), "--dry-run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=DRY_RUN_SECONDS)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert sorted((ROOT / "bench" / "results").glob("*")) == results, "a dry run recorded results"
    rows = [json.loads(line) for line in (out / gpu_session.RESULTS).read_text().splitlines()]
    return out, rows, run.stdout


def test_files_fit_the_carry_back_limits(dry_run):
    out, _, _ = dry_run
    files = {path.name: path.stat().st_size for path in out.iterdir()}
    assert len(files) <= gpu_session.MAX_FILES and max(files.values()) <= gpu_session.MAX_FILE_BYTES
    plots = {f"{name}.png" for name in (*gpu_session.OPS, "training_step")}
    assert {gpu_session.RESULTS, gpu_session.LOG, gpu_session.TOP_KERNELS, *plots} <= set(files)


def test_every_unit_reports_a_status_and_no_row_claims_a_measurement(dry_run):
    _, rows, _ = dry_run
    statuses = {r["unit"]: r for r in rows if r.get("op") == "gpu_session"}
    assert list(statuses) == [unit.name for unit in gpu_session.UNITS]
    assert {r["step"] for r in statuses.values()} == set("abcdef")
    assert all(r["status"] in ("ok", "partial") for r in statuses.values() if r["unit"] not in ("step-compile",
                                                                                              "step-compile+triton"))
    assert all(r.get("dry_run") for r in rows)


def test_each_op_ran_every_mode_with_the_reference_and_triton(dry_run):
    _, rows, _ = dry_run
    for op in gpu_session.OPS:
        timed = {(r["provider"], r["mode"]) for r in rows if r.get("op") == op and "ms" in r}
        providers = {provider for provider, _ in timed}
        assert "triton" in providers and len(providers) >= 3, (op, providers)  # the reference, Triton, compile
        assert {mode for provider, mode in timed if provider == "triton"} == set(gpu_session.MODES)
    errors = [(r["op"], r["provider"]) for r in rows if "error" in r]
    assert errors == [("window_attention", "flex")], errors  # FlexAttention has no backward on the CPU


def test_the_compile_cache_unit_fills_the_cache_and_the_others_add_nothing(dry_run):
    _, rows, _ = dry_run
    (ahead,) = [r for r in rows if r.get("op") == "compile_cache"]
    assert ahead["compiled"] == gpu_session.DRY_COMPILES == ahead["cache_entries_added"] and ahead["errors"] == 0
    ran = [r for r in rows if r.get("op") == "gpu_session" and r["status"] != "skipped"]
    added = {r["unit"]: r["triton_cache_added"] for r in ran}
    assert added.pop("compile-cache") == gpu_session.DRY_COMPILES
    assert set(added.values()) == {0}  # the dry run's kernels are the interpreter's: nothing compiled


def test_graphs_tests_step_and_profile_rows(dry_run):
    _, rows, _ = dry_run
    graphs = [r for r in rows if r.get("op") == "cuda_graph"]
    assert {r["subject"] for r in graphs} == {*gpu_session.OPS, "training_step"}
    assert all(r["bitwise_equal"] for r in graphs)  # (in the dry run a second eager call stands in for the replay)
    assert any(r.get("op") == "pytest" and r.get("outcome") == "skipped" for r in rows)
    steps = [r for r in rows if r.get("op") == "training_step" and "ms" in r]
    assert [r["provider"] for r in steps] == ["eager"] and steps[0]["family_ms"]
    assert len([r for r in rows if r.get("op") == "top_kernels"]) == 25


def test_host_times_of_each_op_forward_and_backward(dry_run):
    """The host unit times each op's call through the Triton op and the eager reference, forward and backward, beside
    the autograd floor."""
    _, rows, stdout = dry_run
    host = [r for r in rows if r.get("op") == "host_time"]
    assert sorted((r["subject"], r["provider"], r["mode"]) for r in host) == sorted(
        (op, provider, direction) for op in gpu_session.OPS for provider in ("triton", "reference")
        for direction in ("fwd", "bwd"))
    assert all(r["host_us"] > 0 and r["host_floor_us"] > 0 for r in host)
    assert all(any(line.startswith(f"host us per call, {op}, {provider}:") for line in stdout.splitlines())
               for op in gpu_session.OPS for provider in ("triton", "reference"))


def test_units_read_the_op_calls_the_session_recorded(tmp_path, monkeypatch):
    """A unit takes the model's op calls from the file the session names, and builds no model for them."""
    import pickle

    recorded = ["the session's calls"]
    (tmp_path / "calls.pickle").write_bytes(pickle.dumps(recorded))
    monkeypatch.setenv(gpu_session.CALLS_VARIABLE, str(tmp_path / "calls.pickle"))
    assert gpu_session.model_calls(True) == gpu_session.model_calls(False) == recorded


def test_the_summary_is_printed_last(dry_run):
    _, _, stdout = dry_run
    lines = stdout.rstrip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("== gpu session summary"))
    assert "DRY RUN" in lines[start]
    assert all(line.startswith("training_step") for line in lines[-4:])
    assert any(line.startswith("window_attention ") and " sdpa " in line for line in lines[start:])


def test_compiled_providers_only_run_while_the_budget_lasts(tmp_path):
    gpu_session.ops(gpu_session.Context(tmp_path, "d", "ops", dry_run=True, deadline=time.time()))
    rows = [json.loads(line) for line in (tmp_path / gpu_session.RESULTS).read_text().splitlines()]
    skipped = {(r["op"], r["provider"]) for r in rows if r.get("skipped") == "budget"}
    assert skipped == {("linear_cross_attention", "torch_compile"), ("window_attention", "reference_compiled"),
                       ("window_attention", "flex"), ("concat_conv1x1", "compile")}
    assert {r["op"] for r in rows if r.get("provider") == "triton" and "ms" in r} == set(gpu_session.OPS)


def test_a_unit_past_its_timeout_is_killed_and_recorded(tmp_path):
    unit = next(u for u in gpu_session.UNITS if u.name == "environment")
    status = gpu_session._run_unit(tmp_path, unit, timeout=0.5, dry_run=True)
    assert status["status"] == "timeout" and status["seconds"] < 30


def test_a_carried_back_session_is_recorded_with_its_own_device(dry_run, tmp_path, monkeypatch):
    from bench import _common, report

    out, rows, _ = dry_run
    with pytest.raises(SystemExit, match="dry run"):
        gpu_session.record(out)
    real = tmp_path / "session"
    real.mkdir()
    for row in rows:
        row.pop("dry_run")
    environment = next(row for row in rows if row["op"] == "environment")
    environment.update(device="NVIDIA H200", commit=None)  # as a GPU machine's copy of the tree without git says
    measured = dict(op="window_attention", case="window_attention/120x160-c18-h6", mode="fwd", dtype="bfloat16")
    rows += [dict(measured, provider="triton", ms=0.125), dict(measured, provider="reference", ms=1.5),
             dict(op="host_time", subject="window_attention", case=measured["case"], mode="fwd", provider="triton",
                  host_us=12.0, host_floor_us=3.0)]
    (real / gpu_session.RESULTS).write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "results" / "static").mkdir(parents=True)
    for name in ("triton-3.8.0.jsonl", "baseline-triton-3.8.0.jsonl"):
        shutil.copyfile(ROOT / "bench" / "results" / "static" / name, tmp_path / "results" / "static" / name)
    (tmp_path / "README.md").write_text(
        "\n".join((report.START, report.END, README_START, README_END, GOALS_START, GOALS_END)) + "\n")
    for module in (_common, report):
        monkeypatch.setattr(module, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(report, "README", tmp_path / "README.md")
    path = gpu_session.record(real)
    assert path.name == "nvidia-h200.jsonl"
    recorded = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(recorded) == len(rows) and all(r["device"] == "NVIDIA H200" for r in recorded)
    assert all(r["commit_source"] == "recording checkout" for r in recorded)
    assert "**window_attention** on NVIDIA H200" in (tmp_path / "README.md").read_text()
    # the static report's tables set the measured times beside the predictions; the README's step totals only where
    # every call of an op and direction was measured
    table = (tmp_path / "results" / "static" / "triton-3.8.0.md").read_text()
    (row,) = [line for line in table.splitlines() if line.startswith("| window_attention/120x160-c18-h6 | fwd |")]
    assert "| 125.0 |" in row and "| 1,500.0 |" in row and row.endswith("| 12.0 |")
    readme = (tmp_path / "README.md").read_text()
    (row,) = [line for line in readme.splitlines() if line.startswith("| window_attention | fwd |")]
    assert row.split("|")[5].strip() == "-" and "triton-3.8.0.md" in readme
    # and the goals section's host table, the measured host time beside the one taken here
    (row,) = [line for line in readme.splitlines() if line.startswith("| window attention |")]
    assert [cell.strip() for cell in row.split("|")][4:6] == ["12", "-"]
