"""The model registry: each model's file registers its class under a name with `@register_model`, and
`build_model(name, ...)` (sca_mtl/models/__init__.py) builds any of them. A registered class is constructed as
`cls(tasks, backbone, *, backend, **options)`: tasks {name: output channels}, the HRNet backbone module, the kernels'
backend ("torch" or "triton"), and the model's own keyword options. A class serving at least or at most n tasks says
so in a `min_tasks` or `max_tasks` attribute: `build_model` checks them, and the generic tests build each model with
as many tasks as it serves."""

from __future__ import annotations

from collections.abc import Callable, Sized

from torch import nn

MODELS: dict[str, type[nn.Module]] = {}


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: registers the model class under `name` (once)."""

    def register(cls: type[nn.Module]) -> type[nn.Module]:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice: {MODELS[name].__qualname__} and {cls.__qualname__}")
        MODELS[name] = cls
        return cls

    return register


def task_range(cls: type[nn.Module]) -> tuple[int, int | None]:
    """(fewest, most) tasks the model class serves; most is None for no limit."""
    return getattr(cls, "min_tasks", 1), getattr(cls, "max_tasks", None)


def check_task_count(name: str, tasks: Sized) -> None:
    """ValueError unless model `name` serves as many tasks as `tasks` names."""
    fewest, most = task_range(MODELS[name])
    if fewest <= len(tasks) and (most is None or len(tasks) <= most):
        return
    if most == fewest:
        serves = f"exactly {most}"
    elif most is None:
        serves = f"at least {fewest}"
    else:
        serves = f"{fewest} to {most}"
    advice = " (train one model per task: `sca-mtl single-task`)" if most == 1 else ""
    raise ValueError(f"model {name!r} serves {serves} task{'s' * (most != 1)}, got {len(tasks)} "
                     f"({', '.join(tasks)}){advice}")
