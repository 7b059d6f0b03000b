"""The model registry: each model's file registers its class under a name with `@register_model`, and
`build_model(name, ...)` (sca_mtl/models/__init__.py) builds any of them. A registered class is constructed as
`cls(tasks, backbone, *, backend, **options)`: tasks {name: output channels}, the HRNet backbone module, the kernels'
backend ("torch" or "triton"), and the model's own keyword options. A class serving at most n tasks says so in a
`max_tasks` attribute (the generic tests build it with that many)."""

from __future__ import annotations

from collections.abc import Callable

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
