"""Triton's on-disk kernel cache filled ahead of a GPU run, in parallel, without a GPU.

Cold, the JIT compiles each kernel at its first launch, one at a time: the model's op calls in bf16, fp16 and fp32
(what `pytest -m gpu` checks) are ~230 distinct launches, ~90 s of compiling on one core (AMD EPYC, triton 3.8).
Here every launch of those calls is captured on CPU tensors as the static cost report captures it
(profiling/static_report.py: the JIT's own binder and argument packing, profiling/_sass.py), and each distinct one is
compiled for sm_90 by `triton.compile` in a pool of processes as soon as it is captured. That is the call and the
arguments the JIT's compile makes (source, specialisation, options, target), so on an H100/H200 its first launch
finds the same cache key and loads the cubin. The GPU session (bench/gpu_session.py) runs this first; its units then
count the entries they still add to the cache (the launches this could not foresee).

    PYTHONPATH=. python -m profiling.compile_cache [--dtypes bf16 fp16 fp32] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from pathlib import Path

DTYPES = ("bf16", "fp16", "fp32")  # the gpu tests' dtypes, bf16 (the benchmarks' and the step's) first
_TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
_specialiser = None  # one per compiling process


def cache_dir() -> Path:
    """Triton's kernel cache folder: TRITON_CACHE_DIR, else triton's own default ~/.triton/cache (TRITON_HOME moves
    it). Inductor sets TRITON_CACHE_DIR to a folder of its own in a process where it is unset, after which the JIT's
    kernels there look in that folder: a run that relies on this fill pins it first (bench/gpu_session.py)."""
    home = os.environ.get("TRITON_HOME", os.path.expanduser("~"))
    return Path(os.environ.get("TRITON_CACHE_DIR") or os.path.join(home, ".triton", "cache"))


def cache_entries() -> int:
    """Entries in Triton's kernel cache folder, one per compiled kernel."""
    folder = cache_dir()
    return sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0


def distinct_launches(calls: Sequence, dtypes: Sequence[str]) -> Iterator:
    """Each distinct launch (a profiling._sass.Specialisation) of `calls`' forward and backward on CPU tensors of each
    of `dtypes`, as it is first captured."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("TRITON_INTERPRET=1: the kernels are the interpreter's, not JIT functions; set "
                           "TRITON_INTERPRET=0 before triton is imported (the compiling processes inherit it)")
    import torch

    from profiling import _sass
    from profiling.static_report import Interceptor, bypass_device_checks, record_call

    interceptor = Interceptor(_sass.Specialiser())
    bypass_device_checks()
    seen = set()
    with interceptor.active():
        for dtype in dtypes:
            for call in calls:
                recorded = record_call(call, interceptor, getattr(torch, _TORCH_DTYPES[dtype]))
                for spec in (*recorded.forward, *recorded.backward):
                    if spec.key() not in seen:
                        seen.add(spec.key())
                        yield spec
                del recorded  # its CPU tensors (up to a few GB at the model's size) before the next call's


def fill(calls: Sequence, dtypes: Sequence[str] = DTYPES, workers: int | None = None, deadline: float | None = None,
         limit: int | None = None) -> dict:
    """Compile the distinct launches of `calls` in `dtypes` into Triton's cache with `workers` processes (default:
    one per CPU but this one, which captures), starting none after `deadline` (time.time()) and at most `limit`.
    Returns what it did: launches captured (and the capture's error, if it stopped on one), compiled, not compiled (by
    the deadline or `limit`), compile errors, and the seconds taken."""
    started = time.time()
    workers = workers or max(1, (os.cpu_count() or 2) - 1)
    entries_before = cache_entries()
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no CUDA or triton state inherited
    futures: list[Future] = []
    captured, capture_error = 0, None
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        try:
            for spec in distinct_launches(calls, dtypes):
                captured += 1
                if (deadline is not None and time.time() > deadline) or (limit is not None and len(futures) >= limit):
                    break
                futures.append(pool.submit(_compile, spec))
        except Exception as error:  # the launches captured so far still compile
            capture_error = f"{type(error).__name__}: {error}"[:300]
        capture_seconds = time.time() - started
        wait(futures, timeout=None if deadline is None else max(deadline - time.time(), 0))
        pool.shutdown(wait=True, cancel_futures=True)  # those not started are cancelled, the running ones finish
    done = [f for f in futures if not f.cancelled()]
    errors = [str(f.exception())[:300] for f in done if f.exception() is not None]
    return {"dtypes": list(dtypes), "calls": len(calls), "workers": workers, "launches_captured": captured,
            "compiled": len(done) - len(errors), "not_compiled": captured - len(done),
            "errors": len(errors), "first_error": errors[0] if errors else None, "capture_error": capture_error,
            "compile_seconds": round(sum(f.result() for f in done if f.exception() is None), 1),
            "capture_seconds": round(capture_seconds, 1), "seconds": round(time.time() - started, 1),
            "cache_entries_added": cache_entries() - entries_before}


def _compile(spec) -> float:
    """In a pool process: `spec` compiled for sm_90 (into Triton's cache); its seconds."""
    global _specialiser
    from profiling import _sass

    if _specialiser is None:
        _specialiser = _sass.Specialiser()
    started = time.perf_counter()
    _specialiser.compile(spec)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    parser.add_argument("--workers", type=int, default=None, help="compiling processes (default: CPUs - 1)")
    args = parser.parse_args(argv)
    os.environ["TRITON_INTERPRET"] = "0"  # before anything imports triton
    from bench.shapes import model_op_calls

    print(json.dumps(fill(model_op_calls(), args.dtypes, args.workers)))


if __name__ == "__main__":
    main()
