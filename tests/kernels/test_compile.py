"""Every kernel configuration a launcher can pick compiles for Hopper ahead of time, without register spills, within
the shared memory of one block, with tensor-core instructions where it multiplies matrices (KERNELS.md,
"Working without a GPU"), and with at least the residency (CTAs per SM) its launcher sizes the grid by. The
interpreter checks the math; this checks what the compiler makes of it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernels import dispatch
from kernels._aot import HOPPER_SHARED_MEMORY, MAX_REGISTERS
from profiling.cost_model import ctas_per_sm

ROOT = Path(__file__).resolve().parents[2]
MODULES = [module for op, module in dispatch.OP_MODULES.items() if dispatch.has_triton_kernel(op)]


@pytest.fixture(scope="module")
def reports():
    if not MODULES:
        pytest.skip("no Triton op module yet")
    env = {**os.environ, "TRITON_INTERPRET": "0"}  # compile for real: the interpreter would replace the kernels
    result = subprocess.run([sys.executable, "-m", "tests.kernels.aot_report", *MODULES], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("module", MODULES or ["none"])
def test_every_configuration_compiles_for_hopper(reports, module):
    mine = [r for r in reports if r["module"] == module]
    assert mine, f"kernels.{module}.aot_configs() lists no configuration"
    problems = []
    for r in mine:
        if r["spill_stores"] or r["spill_loads"]:
            problems.append(f"{r['name']}: spills {r['spill_stores']} B stored / {r['spill_loads']} B loaded")
        if r["registers"] > MAX_REGISTERS:
            problems.append(f"{r['name']}: {r['registers']} registers")
        if r["shared_bytes"] > HOPPER_SHARED_MEMORY:
            problems.append(f"{r['name']}: {r['shared_bytes']} B of shared memory")
        if r["tensor_cores"] and not r["mma"]:
            problems.append(f"{r['name']}: no tensor-core (wgmma/mma) instruction")
        resident = ctas_per_sm(r["registers"], r["shared_bytes"], r["num_warps"])
        if resident < r["ctas_per_sm"]:
            problems.append(f"{r['name']}: {resident} CTAs per SM ({r['registers']} registers, {r['shared_bytes']} B "
                            f"of shared memory), its launcher sizes the grid for {r['ctas_per_sm']}")
    assert not problems, "\n".join(problems)
