"""The model zoo: `build_model(name, tasks, ...)` builds any model of the registry (sca_mtl/models/registry.py);
each model's file registers itself and is imported here."""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from torch import nn

from kernels.dispatch import resolve_backend

from ..tasks import check_tasks
from .atrc import ATRCGlobal
from .backbone import BACKBONE_BN_MOMENTUM, build_backbone
from .densemtl import DenseMTL
from .mti_net import MTINet
from .mtl_baseline import MTLBaseline
from .pad_net import PADNet
from .registry import MODELS, check_task_count, register_model
from .sca_mtl import SCAMTL
from .single_task import SingleTask

__all__ = [
    "MODELS", "ATRCGlobal", "DenseMTL", "MTINet", "MTLBaseline", "PADNet", "SCAMTL", "SingleTask", "build_backbone",
    "build_model", "register_model",
]


DEFAULT_BACKBONE = "hrnet_w18_small_v2"  # the released code's HRNet-18 (timm's name), the paper's backbone


def build_model(
    name: str,
    tasks: Mapping[str, int],
    *,
    backbone: str | None = None,
    pretrained: None | bool | str = None,
    kernels: str | None = None,
    backbone_bn_momentum: float = BACKBONE_BN_MOMENTUM,
    auxiliary_tasks: Mapping[str, int] | None = None,
    **options,
) -> nn.Module:
    """Build model `name` for `tasks` ({task name: output channels}, e.g. {"semseg": 40, "depth": 1}).

    backbone: a timm HRNet or ResNet name; None for the model's own (`backbone_name`, HRNet-18 by default);
    pretrained: None, a local checkpoint path, or True (timm download);
    backbone_bn_momentum: of the backbone's BatchNorms (0.01 in the released code);
    kernels: "torch" or "triton" for every op-calling layer, None for the process default (`kernels.get_backend()`);
    auxiliary_tasks: {task name: output channels} predicted only as deep supervision (models that take them);
    options: the model's own keyword arguments (e.g. `qk_convs=1` for the paper's query/key projections).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    tasks = check_tasks(tasks)
    check_task_count(name, tasks)
    if auxiliary_tasks:
        auxiliary_tasks = check_tasks(auxiliary_tasks)
        both = sorted(set(tasks) & set(auxiliary_tasks))
        if both:
            raise ValueError(f"tasks {both} are both main and auxiliary tasks")
        options["auxiliary_tasks"] = auxiliary_tasks
    _check_options(name, options)
    backend = resolve_backend(kernels)
    own = getattr(MODELS[name], "backbone_name", DEFAULT_BACKBONE)
    backbone = backbone or own
    family = own.rstrip("0123456789").split("_")[0]  # "hrnet" or "resnet": the layouts the models are built for
    if not backbone.startswith(family):
        raise ValueError(f"model {name!r} runs on a timm {family} backbone (e.g. {own!r}), got {backbone!r}")
    backbone_module = build_backbone(backbone, pretrained, bn_momentum=backbone_bn_momentum)
    return MODELS[name](tasks, backbone_module, backend=backend, **options)


def _check_options(name: str, options: Mapping[str, object]) -> None:
    """ValueError naming the options model `name` takes, for any other."""
    parameters = inspect.signature(MODELS[name]).parameters
    accepted = [p for p, spec in parameters.items() if spec.kind is inspect.Parameter.KEYWORD_ONLY and p != "backend"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        what = "auxiliary tasks" if unknown == ["auxiliary_tasks"] else f"the options {unknown}"
        takes = f"its options are {', '.join(accepted)}" if accepted else "it takes no options"
        raise ValueError(f"model {name!r} does not take {what}: {takes}")
