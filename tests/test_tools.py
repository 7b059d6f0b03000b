"""The benchmark and profiling scripts run (on the CPU: the dry run of the training-step benchmark, and a profile of
a tiny training step), so that what only a GPU machine times does not first break there."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_training_step_benchmark_dry_run():
    assert "dry run eager: one step" in _run("bench/bench_model_step.py", "--dry-run", "--providers", "eager")


def test_training_step_benchmark_without_cuda_says_so():
    assert "no CUDA device" in _run("bench/bench_model_step.py")


def test_profile_step_on_the_cpu(tmp_path):
    out = _run("profiling/profile_step.py", "--kernels", "torch", "--batch", "2", "--size", "32", "32",
               "--amp", "none", "--warmup", "1", "--steps", "1", "--out", str(tmp_path))
    assert "Self CPU" in out and (tmp_path / "trace_torch.json").stat().st_size > 0
    assert (tmp_path / "top_kernels.txt").exists()
