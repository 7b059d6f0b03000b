"""profiling/compile_cache.py: the kernels it compiles ahead are the ones the JIT then looks for. Each op's call of a
tiny model is compiled into an empty cache, then run through `JITFunction.run` itself on an sm_90 target (its
warm-up mode: tests/profiling/jit_cache_check.py), which must add nothing to the cache; without the compile ahead
(the control) it adds an entry per kernel."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ("64", "96", "1")  # the model at 64 x 96, batch 1
CASES = ["window_attention/16x24-c18-h6-shift3", "linear_cross_attention/b6-d36-384",
         "concat_conv1x1/1in-16x24-1080to3"]


def _check(case: str, tmp_path: Path, *flags: str) -> dict:
    cache = tmp_path / ("cold" if flags else "ahead")
    cache.mkdir()
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_CACHE_DIR": str(cache)}
    result = subprocess.run([sys.executable, "-m", "tests.profiling.jit_cache_check", case, *TINY, *flags], cwd=ROOT,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.split("/")[0])
def test_the_jit_finds_the_kernels_compiled_ahead(case, tmp_path):
    ahead = _check(case, tmp_path)
    assert ahead["ahead"]["errors"] == 0 and ahead["ahead"]["not_compiled"] == 0
    assert ahead["ahead"]["cache_entries_added"] == ahead["ahead"]["compiled"] == ahead["ahead"]["launches_captured"]
    assert ahead["jit_kernels"] and ahead["jit_entries_added"] == 0
    cold = _check(case, tmp_path, "--cold")
    assert cold["jit_kernels"] == ahead["jit_kernels"]
    assert cold["jit_entries_added"] == ahead["ahead"]["compiled"]  # one entry per distinct launch
