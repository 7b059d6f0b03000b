"""Compile every configuration of the given Triton op modules for sm_90 and print one JSON report per line, in the
modules' order and each module's `aot_configs()` order.

Run by tests/kernels/test_compile.py in a fresh process with TRITON_INTERPRET=0:
    python -m tests.kernels.aot_report linear_attention window_attention

The compiles are independent and CPU-bound (Triton's passes and ptxas), so they run in worker processes, one per
core (halving this step on two cores), or per core left to this pytest-xdist worker when the suite runs in several.
"""

import dataclasses
import functools
import importlib
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

from kernels._aot import compile_for_hopper


@functools.cache
def _configs(module: str) -> list:
    return importlib.import_module(f"kernels.{module}").aot_configs()


def _report(job: tuple[str, int]) -> dict:
    """Compile configuration `index` of kernels.`module` (configurations hold kernels, which do not pickle: a worker
    lists them itself)."""
    module, index = job
    config = _configs(module)[index]
    report = compile_for_hopper(config)
    return {"module": module, "tensor_cores": config.tensor_cores, "num_warps": config.num_warps,
            "ctas_per_sm": config.ctas_per_sm, **dataclasses.asdict(report)}


def main(modules: list[str]) -> None:
    jobs = [(module, index) for module in modules for index in range(len(_configs(module)))]
    cores = len(os.sched_getaffinity(0)) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1))
    workers = max(1, min(cores, len(jobs)))
    # spawned, not forked: this process has imported torch, whose thread pools a fork would copy mid-state
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for report in pool.map(_report, jobs):
            print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
