"""Checkpoints that survive a crash mid-save and refuse to load when damaged, and the random state an exact resume
needs.

File layout: MAGIC, the SHA-256 of the payload in hex and a newline, then the payload (torch.save of the state
dict). A flipped byte anywhere in the payload changes its digest: the file is refused with its path instead of
loading damaged weights (and a resume writing them into a new, valid-looking checkpoint).
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

MAGIC = b"sca-mtl checkpoint 1\n"
DIGEST_BYTES = 64  # SHA-256 in hex
TEMPORARY = ".{name}.tmp-{pid}"  # beside the file it becomes


def atomic_save(obj: object, path: str | os.PathLike) -> None:
    """torch.save with a checksum (the module's layout) to a temporary file beside `path`, flushed to disk, then
    renamed over it: a crash at any point leaves either the previous file or the new one, never a truncated one."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getbuffer()
    digest = hashlib.sha256(payload).hexdigest().encode()

    def write(f):
        f.write(MAGIC + digest + b"\n")
        f.write(payload)

    _atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """`text` (UTF-8) written to `path` as `atomic_save` writes a checkpoint."""
    _atomic_write(path, lambda f: f.write(text.encode()))


def _atomic_write(path: str | os.PathLike, write) -> None:
    path = Path(path)
    tmp = path.with_name(TEMPORARY.format(name=path.name, pid=os.getpid()))
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_temporaries(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Delete the temporary files that a process killed mid-write left beside `names` in `folder`."""
    left = [path for name in names for path in Path(folder).glob(TEMPORARY.format(name=name, pid="*"))]
    for path in left:
        path.unlink(missing_ok=True)
    return left


def load_checkpoint(path: str | os.PathLike, required: Iterable[str] = ("model", "config", "step")) -> dict:
    """The state dict saved by `atomic_save` at `path`, its checksum verified; ValueError naming the path when the
    file is not such a checkpoint, is damaged, or lacks one of the `required` keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    header = len(MAGIC) + DIGEST_BYTES + 1
    if not data.startswith(MAGIC):
        raise ValueError(f"{path} is not a sca-mtl checkpoint (no checkpoint header)")
    payload = memoryview(data)[header:]
    if hashlib.sha256(payload).hexdigest().encode() != data[len(MAGIC):header - 1]:
        raise ValueError(f"checkpoint {path} is damaged: its checksum does not match its contents")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    except Exception as error:  # a valid checksum over a payload torch cannot read: say which file
        raise ValueError(f"cannot read checkpoint {path}: {error}") from error
    missing = [key for key in required if not isinstance(state, dict) or key not in state]
    if missing:
        raise ValueError(f"{path} is not a training checkpoint: it lacks {', '.join(missing)}")
    return state


def load_weights(model: torch.nn.Module, checkpoint: dict, path: str | os.PathLike) -> None:
    """The checkpoint's weights into `model`; ValueError on one line when they are another model's (another model,
    task set or class count) instead of load_state_dict's dump of every mismatch."""
    saved, expected = checkpoint["model"], model.state_dict()
    resized = [key for key in saved.keys() & expected.keys() if saved[key].shape != expected[key].shape]
    missing, unexpected = sorted(expected.keys() - saved.keys()), sorted(saved.keys() - expected.keys())
    if resized or missing or unexpected:
        config = checkpoint["config"]
        example = sorted(resized)[0] if resized else (missing or unexpected)[0]
        raise ValueError(
            f"checkpoint {path} holds another model ({config['model']['name']} for tasks {config['tasks']}): "
            f"{len(resized)} tensors of other shapes, {len(missing)} missing, {len(unexpected)} unexpected "
            f"(e.g. {example})"
        )
    model.load_state_dict(saved)


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
