"""The benchmark and profiling scripts run (on the CPU: the dry run of the training-step benchmark, and a profile of
a tiny training step), so that what only a GPU machine times does not first break there."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pytest import approx

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_training_step_benchmark_dry_run():
    assert "dry run eager: one step" in _run("bench/bench_model_step.py", "--dry-run", "--providers", "eager")


def test_training_step_benchmark_without_cuda_says_so():
    assert "no CUDA device" in _run("bench/bench_model_step.py")


@pytest.mark.slow
def test_profile_step_on_the_cpu(tmp_path):
    out = _run("profiling/profile_step.py", "--kernels", "torch", "--batch", "2", "--size", "32", "32",
               "--amp", "none", "--warmup", "1", "--steps", "1", "--out", str(tmp_path))
    assert "Self CPU" in out and (tmp_path / "trace_sca_mtl_torch.json").stat().st_size > 0
    assert (tmp_path / "top_kernels.txt").exists()


def _row(provider, ms, **extra):
    return {"device": "NVIDIA H100 80GB HBM3", "torch": "2.11", "triton": "3.6", "commit": "abc1234",
            "date": "2026-11-21T10:00:00+00:00", "op": "linear_cross_attention", "case": "self_19200x36",
            "dtype": "bfloat16", "mode": "fwdbwd", "provider": provider, "ms": ms, "ms_p20": ms, "ms_p80": ms,
            "peak_memory_bytes": 2**30, **extra}


def test_results_report(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT))
    from bench import report

    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    assert report.section() == report.NO_RESULTS
    rows = [_row("torch", 0.9), _row("torch_compile", 0.45),
            _row("triton", 0.3, gb_per_s=2400.0, bandwidth_share=0.716)]
    (tmp_path / "nvidia-h100.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    expected = "| self_19200x36 | bfloat16 | fwdbwd | 0.900 | 0.450 | 0.300 | 3.00x | 1.50x | 2400 GB/s (72% of HBM)"
    assert expected in report.section()


def test_measured_rows_carry_throughput_and_shares(monkeypatch):
    """The rows every benchmark writes, from a stand-in timer: bytes and FLOPs over the median, shares of the
    device's limits, peak memory on forward+backward (the GPU parts patched out)."""
    import torch

    sys.path.insert(0, str(ROOT))
    from bench import _common

    monkeypatch.setattr(_common, "device_limits", lambda: _common.DEVICE_LIMITS["H100"])
    monkeypatch.setattr(_common, "peak_memory_bytes", lambda fn: 5)
    case = _common.Case(op="op", name="case", dtype=torch.bfloat16, bytes={"fwd": 6e9, "fwdbwd": 9e9},
                        flops={"fwd": 2e12}, params={"batch": 8})
    calls = {mode: (lambda: None, None) for mode in ("fwd", "fwdbwd")}
    timer = lambda fn, grads: {"ms": 2.0, "ms_p20": 1.5, "ms_p80": 3.0}  # noqa: E731
    fwd, fwdbwd = _common.measure_calls(case, "triton", calls, timer=timer)
    assert (fwd["provider"], fwd["mode"], fwd["dtype"], fwd["batch"], fwd["ms"]) == ("triton", "fwd", "bfloat16", 8, 2)
    assert (fwd["gb_per_s"], fwd["bandwidth_share"], fwd["measured_bandwidth_share"]) == approx((3000, 3 / 3.35, 1))
    assert (fwd["tflop_per_s"], fwd["flops_share"]) == approx((1000, 1000 / 989)) and "peak_memory_bytes" not in fwd
    assert fwdbwd["gb_per_s"] == approx(4500) and "tflop_per_s" not in fwdbwd and fwdbwd["peak_memory_bytes"] == 5
