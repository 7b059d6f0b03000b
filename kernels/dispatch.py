"""The backend switch: which implementation (`torch` reference or `triton` kernel) an op call runs.

The process default comes from the environment variable ``SCA_MTL_KERNELS`` ("torch" when unset) and changes with
`set_backend` or, for a block of code, `use_backend`. Layers resolve their backend once, at construction
(`resolve_backend` + `get_op`), so a model keeps the kernels it was built with whatever the default does later.

The Triton modules are imported lazily, on first use: `import kernels` and the torch backend need no Triton and no
GPU. Without CUDA the Triton kernels run through Triton's interpreter, which is for checking, not for speed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
from collections.abc import Callable, Iterator

from ._interpret import use_interpreter_without_cuda

BACKENDS = ("torch", "triton")
ENV_VAR = "SCA_MTL_KERNELS"

# op name -> module name, the same under kernels/reference/ (function `<op>_ref`) and kernels/ (function `<op>`).
OP_MODULES = {
    "linear_cross_attention": "linear_attention",
    "window_attention": "window_attention",
    "concat_conv1x1": "concat_conv",
}


def _check_backend(name: object, what: str = "backend") -> str:
    if name not in BACKENDS:
        raise ValueError(f"{what} must be one of {BACKENDS}, got {name!r}")
    return name  # type: ignore[return-value]


_backend = _check_backend(os.environ.get(ENV_VAR, "torch"), what=f"environment variable {ENV_VAR}")


def get_backend() -> str:
    """The process-wide default backend."""
    return _backend


def set_backend(name: str) -> None:
    """Set the process-wide default backend ("torch" or "triton")."""
    global _backend
    _backend = _check_backend(name)


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Run a block with another default backend; the previous one comes back on exit, also on error."""
    previous = get_backend()
    set_backend(name)
    try:
        yield name
    finally:
        set_backend(previous)


def resolve_backend(name: str | None) -> str:
    """`name` checked, or the current default when it is None (what a layer freezes at construction)."""
    return get_backend() if name is None else _check_backend(name)


def get_op(op: str, backend: str | None = None) -> Callable:
    """The implementation of `op` for `backend` (default: the current one)."""
    if op not in OP_MODULES:
        raise ValueError(f"op must be one of {tuple(OP_MODULES)}, got {op!r}")
    backend = resolve_backend(backend)
    module = OP_MODULES[op]
    if backend == "torch":
        return getattr(importlib.import_module(f"kernels.reference.{module}"), f"{op}_ref")
    return getattr(_import_triton_module(op, module), op)


def has_triton_kernel(op: str) -> bool:
    """Whether this install has the Triton implementation of `op` (they land op by op)."""
    return importlib.util.find_spec(f"kernels.{OP_MODULES[op]}") is not None


def _import_triton_module(op: str, module: str):
    if not has_triton_kernel(op):
        raise NotImplementedError(
            f"the triton backend of kernels.{op} is not implemented yet (kernels/{module}.py does not exist); "
            f"use the 'torch' backend for it"
        )
    if importlib.util.find_spec("triton") is None:
        raise ImportError(f"the triton backend of kernels.{op} needs the `triton` package: pip install triton")
    use_interpreter_without_cuda()
    return importlib.import_module(f"kernels.{module}")
