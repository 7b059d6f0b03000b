"""Boundary maps from folders, for scoring predictions written by any code (`sca-mtl boundary`).

    predictions  <id>.png  8-bit grey, probability = value / 255 (what MTI-Net and its successors save for SEISM)
                 <id>.npy  float (H, W) in [0, 1]
    ground truth <id>.npy  (H, W) in {0, 1} (NYUD_MT's edge/<id>.npy)
                 <id>.png  nonzero = boundary
Every prediction needs the ground truth of the same id; ground truths without a prediction are an error too, so a
partly written prediction folder is not scored as if it were the whole set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data._io import DataFileError, read_npy, read_png, require_dir
from ..data.transforms import PIXEL_MAX

EXTENSIONS = (".png", ".npy")


def _files(folder: Path, what: str) -> dict[str, Path]:
    files = {}
    for path in sorted(require_dir(folder, what).iterdir()):
        if path.suffix in EXTENSIONS:
            if path.stem in files:
                raise ValueError(f"{what} {folder} has both {files[path.stem].name} and {path.name}")
            files[path.stem] = path
    if not files:
        raise ValueError(f"{what} {folder} holds no {' or '.join(EXTENSIONS)} file")
    return files


def paired_files(predictions: str | Path, truth: str | Path) -> list[tuple[str, Path, Path]]:
    """(id, prediction file, ground-truth file) for every id, sorted; ValueError naming the ids without a pair."""
    ours, theirs = _files(Path(predictions), "prediction folder"), _files(Path(truth), "ground-truth folder")
    for missing, where in ((sorted(set(ours) - set(theirs)), truth), (sorted(set(theirs) - set(ours)), predictions)):
        if missing:
            raise ValueError(f"{len(missing)} ids have no file in {where}, e.g. {', '.join(missing[:3])}")
    return [(image_id, ours[image_id], theirs[image_id]) for image_id in sorted(ours)]


def read_prediction(path: Path) -> np.ndarray:
    if path.suffix == ".png":
        image = read_png(path, "prediction png")
        if image.ndim != 2 or image.dtype != np.uint8:
            raise DataFileError(path, f"a prediction png must be 8-bit grey, got {image.dtype} {image.shape}")
        return image.astype(np.float32) / np.float32(PIXEL_MAX)
    return read_npy(path, "prediction npy")


def read_truth(path: Path) -> np.ndarray:
    if path.suffix == ".png":
        return (read_png(path, "ground-truth png") > 0).astype(np.uint8)
    return read_npy(path, "ground-truth npy")
