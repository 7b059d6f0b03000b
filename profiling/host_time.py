"""An op call's host time: what one call of a Triton op costs the CPU, its launchers' Python, tables, allocations and
torch's dispatch, forward and backward, and the same for the autograd floor, an autograd.Function of the same
tensors that only allocates its output and gradients (what any op of these inputs costs before a launcher runs), and,
on a GPU, for the eager reference.

Two places time the same callables (`prepare_call`, `call_host_seconds`):
- the static report (profiling/static_report.py), on the CPU tensors of this machine with the torch glue's arithmetic
  between launches skipped (`glue_arithmetic_skipped`), twice: with every launch intercepted (our launchers alone),
  and with every launch going through Triton's own dispatch in its warm-up mode against `Sm90Driver` (nothing
  launched): the launchers' part and Triton's, on whatever CPU makes the report;
- the GPU session (bench/gpu_session.py, unit "host"), on CUDA tensors with the launches real, Triton's launcher
  included, while the GPU runs the calls queued before: the measurement the host goal is judged by.

Each figure is the least wall time over its repeats: interference from other processes on a shared CPU only adds
to it.
"""

from __future__ import annotations

import importlib
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

HOST_GOAL_US = 50.0  # issues 13 and 15: host time per op call at the model's shapes, at most


def leaf_tensors(args: tuple, kwargs: dict) -> list:
    """The distinct tensors of an op call's arguments (a repeated input once), in order."""
    return list({id(t): t for t in tensors_in([*args, *kwargs.values()])}.values())


def tensors_in(values) -> Iterator:
    """The tensors among `values`, inside lists, tuples and dicts too."""
    for value in values:
        if hasattr(value, "data_ptr"):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from tensors_in(value)
        elif isinstance(value, dict):
            yield from tensors_in(value.values())


@dataclass
class PreparedCall:
    """One op call through the Triton op, run once forward, and what timing it again needs."""

    run_forward: Callable[[], object]
    run_backward: Callable[[], object]  # its gradients by torch.autograd.grad: no copies into .grad
    leaves: list  # the call's distinct input tensors
    output: object
    upstream: object


def prepare_call(call, device="cpu", dtype=None, backend: str = "triton") -> PreparedCall:
    """`call` (bench/shapes.py) on tensors of `dtype` (default bf16, the model's under autocast) on `device`,
    through the op of `backend` (kernels/dispatch.py: the Triton op, or the eager reference), run forward once (its
    backward not yet)."""
    import torch

    import kernels
    from bench.shapes import make_args

    op = kernels.get_op(call.op, backend)
    args, kwargs = make_args(call, dtype or torch.bfloat16, device, requires_grad=True)
    if not takes_parts(call.op):
        args = tuple(torch.cat(a).detach().requires_grad_() if isinstance(a, list) else a for a in args)
    leaves = leaf_tensors(args, kwargs)
    out = op(*args, **kwargs)
    upstream = torch.ones_like(out)  # its values are no part of the host time: finite ones, no warnings

    def run_backward():
        return torch.autograd.grad(out, leaves, upstream, retain_graph=True)

    return PreparedCall(lambda: op(*args, **kwargs), run_backward, leaves, out, upstream)


def takes_parts(op_name: str) -> bool:
    """Whether the op takes its batched inputs as lists of parts (stacked in place). The static report's kept
    baseline's kernels (3d4e074) predate that: its model concatenated the parts first, so its calls get them
    concatenated."""
    return op_name != "linear_cross_attention" or hasattr(importlib.import_module("kernels.linear_attention"),
                                                            "Stacked")


def autograd_floor():
    """An autograd.Function of (output_like, *inputs) that allocates the output in its forward and every input's
    gradient in its backward, and does nothing else."""
    import torch

    class AutogradFloor(torch.autograd.Function):
        @staticmethod
        def forward(ctx, output_like, *inputs):
            ctx.shapes = [t.shape for t in inputs]
            return output_like.new_empty(output_like.shape)

        @staticmethod
        def backward(ctx, grad):
            return None, *(grad.new_empty(shape) for shape in ctx.shapes)

    return AutogradFloor


class Sm90Driver:
    """The driver calls `JITFunction.run` makes before it launches, answered as on an H100 (device 0, its default
    stream, target cuda sm_90): with it active, the JIT's own dispatch (argument binding, specialisation, the kernel
    cache's look-up, compiling on a miss) runs without a GPU, in its warm-up mode (no launch)."""

    def get_current_device(self):
        return 0

    def get_current_stream(self, device):
        return 0

    def get_current_target(self):
        from triton.backends.compiler import GPUTarget

        from kernels._aot import HOPPER

        return GPUTarget(*HOPPER)


@contextmanager
def sm90_driver() -> Iterator[None]:
    """`Sm90Driver` as Triton's active driver, the one before restored on exit (`reset_active` would create the
    default driver instead, which fails without a GPU)."""
    from triton.runtime.driver import driver

    previous = driver._active
    driver.set_active(Sm90Driver())
    try:
        yield
    finally:
        driver._active = previous


def host_seconds(fn: Callable[[], object], repeats: int) -> float:
    """The least wall time of `fn` over `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def call_host_seconds(prepared: PreparedCall, repeats: int) -> dict:
    """direction -> (the call's host seconds, the autograd floor's) for `prepared`, each the least of `repeats`."""
    import torch

    leaves, upstream = prepared.leaves, prepared.upstream
    floor, output_like = autograd_floor(), prepared.output.detach()
    floor_out = floor.apply(output_like, *leaves)
    return {
        "fwd": (host_seconds(prepared.run_forward, repeats),
                host_seconds(lambda: floor.apply(output_like, *leaves), repeats)),
        "bwd": (host_seconds(prepared.run_backward, repeats),
                host_seconds(lambda: torch.autograd.grad(floor_out, leaves, upstream, retain_graph=True), repeats)),
    }


@contextmanager
def glue_arithmetic_skipped() -> Iterator[None]:
    """The arithmetic torch runs between launches (zero fills, sums of partials, dtype copies: GLUE_ARITHMETIC)
    returns its result uninitialised instead of computing it on the CPU: on a GPU it is asynchronous kernels, while on
    this CPU it would take milliseconds and page faults. The operators' CPU kernels are overridden through
    torch.library and restored on exit; CUDA tensors are untouched."""
    import torch

    library = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Overriding a previously registered kernel": the point
        for name, kernel in GLUE_ARITHMETIC.items():
            library.impl(name, kernel, "CPU")
    try:
        yield
    finally:
        library._destroy()


def _sum_uncomputed(self, dim, keepdim=False, dtype=None):
    reduced = {d % self.dim() for d in dim} if dim else set(range(self.dim()))
    shape = [1 if i in reduced else size for i, size in enumerate(self.shape) if keepdim or i not in reduced]
    return self.new_empty(shape, dtype=dtype or self.dtype)


# The torch glue's arithmetic between launches (aten operator -> its result without the arithmetic).
GLUE_ARITHMETIC = {
    "fill_.Scalar": lambda self, value: self,
    "copy_": lambda self, src, non_blocking=False: self,
    "sum.dim_IntList": _sum_uncomputed,
}
