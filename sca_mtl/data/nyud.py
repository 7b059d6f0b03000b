"""NYUD-v2 in the NYUD_MT layout of MTI-Net / ASTMT (MODEL_SPEC.md 8); the synthetic scenes use the same layout.

Layout under `root`:
    gt_sets/<split>.txt       image ids, one per line
    images/<id>.jpg           RGB image
    segmentation/<id>.png     uint8 labels 0..num_classes; 0 = unlabelled
    depth/<id>.npy            float depth in metres (H, W); 0 = invalid
    normals/<id>.npy          float (H, W, 3) unit normals; zero vectors = invalid
    edge/<id>.npy             binary float (H, W): 0 / 1, anything else is an error

A sample before any transform (the released code's loader, with these dtypes):
    image    float32 (H, W, 3) RGB in [0, 255]
    semseg   uint8 (H, W): png - 1, so classes 0..num_classes-1; png 0 (unlabelled) -> IGNORE_LABEL (255)
    depth    float32 (H, W) metres as stored, 0 = invalid (AddIgnoreRegions turns it into 255)
    normals  float32 (H, W, 3) as stored; zero vectors are invalid (AddIgnoreRegions: 255 in all 3 channels)
    edge     float32 (H, W) as stored
    meta     {"id": str, "image_size": (H, W) of the image file}
A label map whose size differs from its image's is resized to it (as the released code does), with a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from sca_mtl.data._io import (
    DataFileError,
    check_finite,
    check_shape,
    fit_to_image,
    read_ids,
    read_npy,
    read_png,
    read_rgb,
    require_dir,
    require_file,
    select_tasks,
)
from sca_mtl.data.transforms import INTERPOLATION
from sca_mtl.tasks import IGNORE_LABEL

NUM_SEMSEG_CLASSES = 40
UNLABELLED = 0  # segmentation png value of unlabelled pixels; every other value v is class v - 1
NORMAL_CHANNELS = 3

# what -> (folder, file extension)
LAYOUT = {
    "image": ("images", ".jpg"),
    "semseg": ("segmentation", ".png"),
    "depth": ("depth", ".npy"),
    "normals": ("normals", ".npy"),
    "edge": ("edge", ".npy"),
}
SUPPORTED_TASKS = ("semseg", "depth", "normals", "edge")
SPLITS_DIR = "gt_sets"


class NYUD(Dataset):
    """NYUD-v2 multi-task samples (see the module docstring for the layout and the sample format).

    Args:
        root: the NYUD_MT folder.
        split: name of a file gt_sets/<split>.txt ("train" or "val" in NYUD_MT).
        tasks: task names among semseg, depth, normals, edge (a mapping task -> channels works too).
        transform: callable applied to the sample dict (see transforms.py).
        num_classes: number of semseg classes, 40 for NYUD-v2; fewer for a synthetic set in this layout.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        tasks: Iterable[str],
        *,
        transform: Callable[[dict], dict] | None = None,
        num_classes: int = NUM_SEMSEG_CLASSES,
    ):
        self.tasks = select_tasks(tasks, SUPPORTED_TASKS, "NYUD")
        if not 0 < num_classes < IGNORE_LABEL:
            raise ValueError(f"num_classes must be in [1, {IGNORE_LABEL - 1}], got {num_classes}")
        self.root = require_dir(Path(root), "NYUD root folder")
        self.split = split
        self.num_classes = num_classes
        self.transform = transform
        self.ids = read_ids(require_file(self.root / SPLITS_DIR / f"{split}.txt", f"NYUD split file {split!r}"))
        self.files = {what: [self._file(what, image_id) for image_id in self.ids] for what in ("image", *self.tasks)}

    def _file(self, what: str, image_id: str) -> Path:
        folder, extension = LAYOUT[what]
        return require_file(self.root / folder / f"{image_id}{extension}", f"NYUD {what} file")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        image = read_rgb(self.files["image"][index])
        sample = {"image": image}
        for task in self.tasks:
            path = self.files[task][index]
            sample[task] = fit_to_image(self._loaders[task](self, path), image.shape[:2], INTERPOLATION[task], path)
        sample["meta"] = {"id": self.ids[index], "image_size": image.shape[:2]}
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return f"NYUD(root={str(self.root)!r}, split={self.split!r}, tasks={self.tasks}, images={len(self)})"

    def _load_semseg(self, path: Path) -> np.ndarray:
        png = check_shape(read_png(path, "semseg png"), path, "semseg png")
        label = png.astype(np.int64) - 1
        label[png == UNLABELLED] = IGNORE_LABEL
        valid = label[label != IGNORE_LABEL]
        if valid.size and valid.max() >= self.num_classes:
            raise DataFileError(
                path, f"semseg png value {valid.max() + 1} is above num_classes={self.num_classes} (values 0..C)"
            )
        return label.astype(np.uint8)

    def _load_depth(self, path: Path) -> np.ndarray:
        return check_finite(check_shape(read_npy(path, "depth"), path, "depth"), path, "depth").astype(np.float32)

    def _load_normals(self, path: Path) -> np.ndarray:
        normals = check_shape(read_npy(path, "normals"), path, "normals", NORMAL_CHANNELS)
        return check_finite(normals, path, "normals").astype(np.float32)

    def _load_edge(self, path: Path) -> np.ndarray:
        edge = check_shape(read_npy(path, "edge"), path, "edge")
        if not np.isin(edge, (0, 1)).all():  # the boundary benchmark scores binary maps only
            raise DataFileError(path, f"edge must be 0 / 1, got {np.unique(edge[~np.isin(edge, (0, 1))])[:5].tolist()}")
        return edge.astype(np.float32)

    _loaders = {"semseg": _load_semseg, "depth": _load_depth, "normals": _load_normals, "edge": _load_edge}
