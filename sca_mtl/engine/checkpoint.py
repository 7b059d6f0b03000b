"""Checkpoints that survive a crash mid-save, and the random state an exact resume needs."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def atomic_save(obj: object, path: str | os.PathLike) -> None:
    """torch.save to a temporary file beside `path`, flushed to disk, then renamed over it: a crash at any point
    leaves either the previous file or the new one, never a truncated one."""
    _atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """`text` (UTF-8) written to `path` as `atomic_save` writes a checkpoint."""
    _atomic_write(path, lambda f: f.write(text.encode()))


def _atomic_write(path: str | os.PathLike, write) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a truncated or foreign file: say which one
        raise ValueError(f"cannot read checkpoint {path}: {error}") from error


def rng_state() -> dict:
    """Every random generator a training step draws from (python, numpy, torch CPU and CUDA). numpy's is the legacy
    global one because the data transforms draw from it, as the released code's do."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}  # noqa: NPY002
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
