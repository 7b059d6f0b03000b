"""Run configuration: YAML files under sca_mtl/configs/ merged onto DEFAULTS, then `key.sub=value` overrides.

Every key a config or an override names must exist in DEFAULTS (a typo is an error, not a silently ignored
setting), except under the free-form mappings `tasks`, `auxiliary_tasks`, `loss_weights`, `loss_options` and
`model.options`, whose keys are checked by the task table, the loss and the model.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path

import yaml

CONFIG_DIR = Path(__file__).parent / "configs"

DEFAULTS: dict = {
    "model": {
        "name": "sca_mtl",
        "backbone": None,  # a timm name; null for the model's own (HRNet-18; ResNet-101 for densemtl)
        "pretrained": None,  # local timm checkpoint path, or true for timm's download
        "backbone_bn_momentum": 0.01,  # the released code's; short runs (the demo) evaluate better with 0.1
        "options": {},  # the model's own keyword arguments (e.g. qk_convs: 1)
    },
    "tasks": {},  # task name -> output channels
    # tasks predicted only at the initial (deep-supervision) stage and distilled into the others, trained but not
    # evaluated: MTI-Net's and PAD-Net's `auxilary_task_dictionary` beyond the main tasks (e.g. edge, normals)
    "auxiliary_tasks": {},
    "loss_weights": {},  # task name -> weight; a missing task takes the task table's default
    # task name -> {keyword: value} of its loss, over the task table's (e.g. edge: {pos_weight: 0.95})
    "loss_options": {},
    "data": {
        "dataset": "nyud",  # nyud | pascal_context (a synthetic set is written in the NYUD layout)
        "root": None,
        "train_split": "train",
        "val_split": "val",
        "size": [480, 640],  # (H, W) the images are resized to; multiples of 32
        "augmentation": "flip_scale_rotate",  # the released code's; or "flip" (data/transforms.py)
        "num_workers": 2,
    },
    "optim": {
        "optimizer": "adam",  # adam | sgd (MTI-Net's single-task PASCAL-Context recipe)
        "lr": 1.0e-4,
        "weight_decay": 1.0e-4,
        "momentum": 0.9,  # sgd only (without Nesterov, as MTI-Net's configs)
        "epochs": 100,
        "poly_power": 0.9,  # lr_e = lr * (1 - e / epochs) ** power, stepped per epoch as the released code does
    },
    "train": {
        "batch_size": 8,
        "amp": None,  # bf16 | fp16 | null
        "kernels": "auto",  # torch | triton | auto (triton on CUDA, torch otherwise)
        "compile": False,  # torch.compile the network for the training steps (evaluation runs it eagerly)
        "seed": 0,
        "max_steps": None,  # stop after this many optimiser steps (the schedule still assumes `epochs`)
        "log_every": 10,  # steps between metrics.jsonl records
        "eval_last_epochs": 10,  # evaluate after each of the last N epochs (the released code: 10)
    },
    "eval": {
        "batch_size": 8,
        "single_task_results": None,  # JSON {task: headline metric} of single-task models, for Δm
        "num_images": 4,  # rows of the prediction picture
        "boundary_workers": None,  # processes scoring boundaries (edge); null: the CPUs / the run's processes
    },
}

FREE_FORM = {("tasks",), ("auxiliary_tasks",), ("loss_weights",), ("loss_options",), ("model", "options")}

# The numbers a run needs: (bound, strict) means the value must be > bound when strict, >= bound otherwise, and an
# int where the bound is one; None is allowed only where the default is None.
BOUNDS = {
    ("model", "backbone_bn_momentum"): (0.0, False),
    ("data", "num_workers"): (0, False),
    ("optim", "lr"): (0.0, True),
    ("optim", "weight_decay"): (0.0, False),
    ("optim", "momentum"): (0.0, False),
    ("optim", "epochs"): (1, False),
    ("optim", "poly_power"): (0.0, False),
    ("train", "batch_size"): (1, False),
    ("train", "seed"): (0, False),
    ("train", "max_steps"): (1, False),
    ("train", "log_every"): (1, False),
    ("train", "eval_last_epochs"): (0, False),
    ("eval", "batch_size"): (1, False),
    ("eval", "num_images"): (0, False),
    ("eval", "boundary_workers"): (1, False),
}
CHOICES = {
    ("train", "amp"): (None, "bf16", "fp16"),
    ("train", "kernels"): ("torch", "triton", "auto"),
    ("optim", "optimizer"): ("adam", "sgd"),
}
SIZE_MULTIPLE = 32  # the models' coarsest stride: image sides are multiples of it (models/backbone.py checks images)


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says which and why."""


def config_path(name_or_path: str) -> Path:
    """A config file: a path, or the name of one under sca_mtl/configs/ (with or without .yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    named = CONFIG_DIR / (name_or_path if name_or_path.endswith(".yaml") else f"{name_or_path}.yaml")
    if named.is_file():
        return named
    known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise ConfigError(f"config not found: {name_or_path} (neither a file nor one of: {known})")


def _unknown(path: tuple, known: Iterable[str]) -> ConfigError:
    return ConfigError(f"unknown config key {'.'.join(path)!r}; known keys here: {', '.join(known)}")


def _merge(base: dict, update: object, where: tuple) -> None:
    """Update `base` (the mapping at `where`) key by key; a free-form mapping is replaced as a whole."""
    if not isinstance(update, dict):
        raise ConfigError(f"{'.'.join(where) or 'config'} must be a mapping, got {update!r}")
    for key, value in update.items():
        path = (*where, key)
        if key not in base:
            raise _unknown(path, base)
        if path in FREE_FORM:
            if not isinstance(value, dict):
                raise ConfigError(f"{'.'.join(path)} must be a mapping, got {value!r}")
            base[key] = dict(value)
        elif isinstance(base[key], dict):
            _merge(base[key], value, path)
        else:
            base[key] = _coerce(path, base[key], value)


def _coerce(path: tuple, default: object, value: object) -> object:
    """`value` with the type of the default it replaces (an int where a float is expected is fine; YAML reads
    1e-4 without a dot as a string, which becomes a float here)."""
    if default is None or value is None:
        return value
    if isinstance(default, float) and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    elif type(value) is type(default):
        return value
    raise ConfigError(f"{'.'.join(path)} must be of type {type(default).__name__}, got {value!r}")


def _set(config: dict, keys: tuple, value: object) -> None:
    """config[k1][k2]... = value for an override; inside a free-form mapping, a new key is allowed."""
    node, where = config, ()
    for key in keys[:-1]:
        if where in FREE_FORM:
            raise ConfigError(f"{'.'.join(keys)}: {'.'.join(where)} holds plain values, not mappings")
        if key not in node:
            raise _unknown((*where, key), node)
        node, where = node[key], (*where, key)
        if not isinstance(node, dict):
            raise ConfigError(f"{'.'.join(keys)}: {'.'.join(where)} is a value, not a mapping")
    last = keys[-1]
    if where in FREE_FORM:
        node[last] = value
    else:
        _merge(node, {last: value}, where)


def parse_override(text: str) -> tuple:
    """`a.b=value` -> (("a", "b"), value parsed as YAML: 1e-4 is a float, null is None, [1, 2] a list)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override must look like key.sub=value, got {text!r}")
    try:
        parsed = yaml.safe_load(value) if value else None
    except yaml.YAMLError as error:  # its message spans lines: keep the problem and where, on one line
        raise ConfigError(f"override {text!r}: value is not valid YAML ({' '.join(str(error).split())})") from None
    return tuple(key.split(".")), parsed


def from_mapping(mapping: dict) -> dict:
    """DEFAULTS updated by `mapping` (a loaded YAML file, or the config stored in a checkpoint), checked."""
    config = copy.deepcopy(DEFAULTS)
    _merge(config, mapping, ())
    return config


def apply_overrides(config: dict, overrides: Iterable[str]) -> dict:
    """A copy of `config` with each `key.sub=value` override applied in order, checked by `check_values`."""
    config = copy.deepcopy(config)
    for text in overrides:
        _set(config, *parse_override(text))
    check_values(config)
    return config


def check_values(config: dict) -> None:
    """ConfigError naming the first setting whose value no run can use (a batch size of 0, a missing seed, an
    unknown optimiser, an image size the backbone cannot take...)."""
    for path, (bound, strict) in BOUNDS.items():
        value = _get(config, path)
        if value is None and _get(DEFAULTS, path) is None:
            continue
        kinds = int if isinstance(bound, int) else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or value < bound or (strict and value == bound):
            what = "an integer" if kinds is int else "a number"
            raise ConfigError(f"{'.'.join(path)} must be {what} {'>' if strict else '>='} {bound}, got {value!r}")
    for path, choices in CHOICES.items():
        if _get(config, path) not in choices:
            names = ", ".join("null" if choice is None else choice for choice in choices)
            raise ConfigError(f"{'.'.join(path)} must be one of {names}, got {_get(config, path)!r}")
    backbone = config["model"]["backbone"]
    if backbone is not None and not isinstance(backbone, str):
        raise ConfigError(f"model.backbone must be a timm model name or null, got {backbone!r}")
    size = config["data"]["size"]
    if not (isinstance(size, list) and len(size) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 and n % SIZE_MULTIPLE == 0 for n in size)):
        raise ConfigError(f"data.size must be [H, W], positive multiples of {SIZE_MULTIPLE}, got {size!r}")


def _get(config: dict, path: tuple) -> object:
    for key in path:
        config = config[key]
    return config


def load_config(name_or_path: str | None = None, overrides: Iterable[str] = ()) -> dict:
    """DEFAULTS, updated by the config file (if any), then by each `key.sub=value` override in order."""
    loaded = {}
    if name_or_path is not None:
        path = config_path(name_or_path)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({error})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config file must hold a mapping, got {type(loaded).__name__}")
    return apply_overrides(from_mapping(loaded), overrides)
