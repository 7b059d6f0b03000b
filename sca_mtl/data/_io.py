"""File-level helpers shared by the dataset readers: existence checks, readers that name the failing file.

Conventions:
- Datasets check at construction that every file they will read exists, and raise `FileNotFoundError` naming the
  exact path of the first one missing; nothing is skipped silently.
- A file that exists but cannot be read (truncated, wrong format, unreadable) or whose content breaks the documented
  format raises `DataFileError` when it is loaded. Its message starts with the path; the reader's own exception is
  chained as `__cause__`.
- Readers return numpy arrays exactly as stored; the dataset modules apply the label conventions.
- Nothing is ever written: dataset folders may be read-only.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import scipy.io
from PIL import Image

T = TypeVar("T")


class DataFileError(OSError):
    """A dataset file that exists but cannot be read, or whose content does not follow the documented format.

    Raised as DataFileError(path, reason); `path` is then the file. A single argument is a whole message: that is
    how pickling and DataLoader workers re-create the exception in the main process, and `path` is None there.
    """

    def __init__(self, path: Path | str, reason: str | None = None):
        super().__init__(str(path) if reason is None else f"{path}: {reason}")
        self.path = None if reason is None else Path(path)


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def select_tasks(
    tasks: Iterable[str], supported: Sequence[str], dataset: str, why_not: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The requested task names in order (a {task: channels} mapping gives its keys), each one supported.

    why_not: for known tasks the dataset deliberately lacks, the reason that goes into the error message.
    """
    if isinstance(tasks, str):
        raise ValueError(f"tasks must be a collection of task names, not the single string {tasks!r}")
    names = tuple(tasks)
    if not names:
        raise ValueError(f"{dataset}: tasks must name at least one task; supported tasks: {', '.join(supported)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{dataset}: tasks must not repeat a task, got {list(names)}")
    for name in names:
        if name not in supported:
            reason = f" ({why_not[name]})" if why_not and name in why_not else ""
            raise ValueError(
                f"task {name!r} is not supported by {dataset}{reason}; supported tasks: {', '.join(supported)}"
            )
    return names


def read_ids(split_file: Path) -> list[str]:
    """Image ids of a split file, one per line; blank lines are ignored."""
    text = _read(split_file, "split file", lambda p: p.read_text(encoding="utf-8"))
    ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise DataFileError(split_file, "split file lists no image ids")
    return ids


def read_rgb(path: Path) -> np.ndarray:
    """An image as float32 (H, W, 3) RGB in [0, 255] (grey or palette images are converted, as PIL does)."""

    def reader(p: Path) -> np.ndarray:
        with Image.open(p) as image:
            return np.asarray(image.convert("RGB"), dtype=np.float32)

    return _read(path, "image", reader)


def read_png(path: Path, what: str) -> np.ndarray:
    """The stored values of a PNG: palette indices for mode 'P', raw values otherwise (no colour conversion)."""

    def reader(p: Path) -> np.ndarray:
        with Image.open(p) as image:
            return np.array(image)

    return _read(path, what, reader)


def read_npy(path: Path, what: str) -> np.ndarray:
    # allow_pickle=False: a dataset file must never be able to run code
    return _read(path, what, lambda p: np.load(p, allow_pickle=False))


def read_mat(path: Path, variable: str, what: str) -> np.ndarray:
    """One variable of a MATLAB .mat file, as scipy.io.loadmat returns it (structs as numpy record arrays)."""
    contents = _read(path, what, scipy.io.loadmat)
    if variable not in contents:
        raise DataFileError(path, f"{what} has no variable {variable!r}")
    return contents[variable]


def check_finite(array: np.ndarray, path: Path, what: str) -> np.ndarray:
    """`array`, refused with its file's name if it holds NaN or an infinity (a target that would make the loss NaN)."""
    bad = np.count_nonzero(~np.isfinite(array)) if np.issubdtype(array.dtype, np.floating) else 0
    if bad:
        raise DataFileError(path, f"{what} holds {bad} NaN or infinite values")
    return array


def check_shape(array: np.ndarray, path: Path, what: str, channels: int | None = None) -> np.ndarray:
    """`array` as (H, W) (channels None; a trailing axis of 1 is dropped) or (H, W, channels)."""
    if channels is None and array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    expected = 2 if channels is None else 3
    if array.ndim != expected or (channels is not None and array.shape[2] != channels):
        layout = "(H, W)" if channels is None else f"(H, W, {channels})"
        raise DataFileError(path, f"{what} must be {layout}, got shape {array.shape}")
    return array


def fit_to_image(label: np.ndarray, image_hw: tuple[int, int], interpolation: int, path: Path) -> np.ndarray:
    """Resize a label map whose size differs from its image's, as the released code does, and warn about it."""
    if label.shape[:2] == tuple(image_hw):
        return label
    warnings.warn(
        f"{path}: size {label.shape[:2]} differs from the image's {tuple(image_hw)}; resized to the image size",
        stacklevel=3,
    )
    return cv2.resize(label, (image_hw[1], image_hw[0]), interpolation=interpolation)


def _read(path: Path, what: str, reader: Callable[[Path], T]) -> T:
    try:
        return reader(path)
    except Exception as exc:  # whatever the library raises (truncated, not an image, ...), name the file
        raise DataFileError(path, f"cannot read {what}: {type(exc).__name__}: {exc}") from exc
