"""Writers of tiny dataset folders in the exact on-disk formats of NYUD_MT and PASCAL_MT (MODEL_SPEC.md 8).

Images are JPEG (Pillow), labels PNG / .npy, and the PASCAL-Part annotations are MATLAB structs written with
scipy.io.savemat in the layout of the real files: anno.imname, anno.objects(i).{class, class_ind, mask, parts}, with
parts(j).{part_name, mask}, or parts = [] for an object without part annotation. Every writer returns what it wrote,
so tests compare the readers' output with known values rather than with themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

NYUD_SIZE = (12, 16)  # (H, W): small, not square, so transposed axes show
PASCAL_SIZE = (14, 10)
NYUD_CLASSES = 40
PERSON = 15
DOG = 12
# PASCAL-Context LabelMap ids (context_classes.json): NYU classes keep their normals, others lose them
WALL, TVMONITOR, SKY = 440, 427, 360


@dataclass
class PartObject:
    """One object of a PASCAL-Part annotation."""

    class_name: str
    class_ind: int
    mask: np.ndarray
    parts: dict[str, np.ndarray] = field(default_factory=dict)  # part name -> mask; empty means parts = []


def read_jpeg(path: Path) -> np.ndarray:
    """The decoded pixels of a written JPEG (what the reader must return, as float)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def write_split(path: Path, ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{image_id}\n" for image_id in ids))


def write_jpeg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, quality=95)


def write_png(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values).save(path)


def write_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def write_nyud(
    root: Path,
    splits: dict[str, list[str]] | None = None,
    *,
    size: tuple[int, int] = NYUD_SIZE,
    num_classes: int = NYUD_CLASSES,
    seed: int = 0,
) -> dict[str, dict[str, np.ndarray]]:
    """A NYUD_MT folder; returns {id: {"image", "segmentation", "depth", "normals", "edge"}} as written.

    Every label map has invalid pixels: segmentation 0 (unlabelled), depth 0, zero normal vectors.
    """
    splits = splits or {"train": ["0001", "0002"], "val": ["0003"]}
    rng = np.random.default_rng(seed)
    h, w = size
    written = {}
    for split, ids in splits.items():
        write_split(root / "gt_sets" / f"{split}.txt", ids)
        for image_id in ids:
            segmentation = rng.integers(0, num_classes + 1, size, dtype=np.uint8)
            segmentation[0, :2] = (0, num_classes)  # the unlabelled value and the last class, always present
            depth = rng.uniform(0.5, 10.0, size).astype(np.float32)
            depth[1, :3] = 0.0
            normals = rng.normal(size=(h, w, 3)).astype(np.float32)
            normals /= np.linalg.norm(normals, axis=2, keepdims=True)
            normals[2, :2] = 0.0
            files = {
                "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                "segmentation": segmentation,
                "depth": depth,
                "normals": normals,
                "edge": (rng.random(size) < 0.2).astype(np.float32),
            }
            write_jpeg(root / "images" / f"{image_id}.jpg", files["image"])
            write_png(root / "segmentation" / f"{image_id}.png", segmentation)
            for what in ("depth", "normals", "edge"):
                write_npy(root / what / f"{image_id}.npy", files[what])
            written[image_id] = files
    return written


def write_human_parts_mat(path: Path, imname: str, objects: list[PartObject]) -> None:
    """A PASCAL-Part annotation file with the real struct layout."""
    fields = [("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")]
    records = np.zeros((1, len(objects)), dtype=fields) if objects else np.zeros((0, 0))
    for i, obj in enumerate(objects):
        if obj.parts:
            parts = np.zeros((1, len(obj.parts)), dtype=[("part_name", "O"), ("mask", "O")])
            for j, (name, mask) in enumerate(obj.parts.items()):
                parts[0, j] = (name, mask.astype(np.uint8))
        else:
            parts = np.zeros((0, 0))  # MATLAB's [] for an object without part annotation
        records[0, i] = (obj.class_name, float(obj.class_ind), obj.mask.astype(np.uint8), parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"anno": {"imname": imname, "objects": records}})


def write_label_map(path: Path, label_map: np.ndarray) -> None:
    """A PASCAL-Context pascal-context/trainval/<id>.mat (459-class 'LabelMap', uint16 as in the release)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"LabelMap": label_map.astype(np.uint16)})


def person_with_parts(size: tuple[int, int]) -> tuple[PartObject, dict[str, np.ndarray]]:
    """A person whose rows are covered by 6 named parts, one of each part class; returns it and the part masks."""
    h, w = size
    body = np.zeros(size, bool)
    body[2:, 2 : w - 2] = True
    names = ("hair", "neck", "ruarm", "lhand", "luleg", "rfoot")
    bands = np.array_split(np.arange(2, h), len(names))
    parts = {}
    for name, rows in zip(names, bands):
        mask = np.zeros(size, bool)
        mask[rows[0] : rows[-1] + 1, 2 : w - 2] = True
        parts[name] = mask
    return PartObject("person", PERSON, body, parts), parts


def write_pascal(
    root: Path,
    splits: dict[str, list[str]] | None = None,
    *,
    persons: tuple[str, ...] = ("2008_000001",),
    size: tuple[int, int] = PASCAL_SIZE,
    semseg_dir: str = "pascal-context",
    seed: int = 0,
) -> dict[str, dict[str, object]]:
    """A PASCAL_MT folder; ids in `persons` have a person with parts, the others only a dog with a head part.

    Returns {id: {"image", "semseg", "objects", "label_map", "normals_png", "sal_png"}} as written.
    """
    splits = splits or {"train": ["2008_000001", "2008_000002"], "val": ["2008_000003"]}
    rng = np.random.default_rng(seed)
    h, w = size
    written = {}
    for split, ids in splits.items():
        write_split(root / "ImageSets" / "Context" / f"{split}.txt", ids)
        for image_id in ids:
            semseg = rng.integers(0, 21, size, dtype=np.uint8)
            semseg[0, :] = 255  # VOC's void boundary
            dog_mask = np.zeros(size, bool)
            dog_mask[:2, :3] = True
            objects = [PartObject("dog", DOG, dog_mask, {"head": dog_mask})]
            if image_id in persons:
                objects.append(person_with_parts(size)[0])
            label_map = np.full(size, SKY, np.uint16)
            label_map[:, : w // 2] = WALL
            label_map[h - 3 :, w // 2 :] = TVMONITOR
            files = {
                "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                "semseg": semseg,
                "objects": objects,
                "label_map": label_map,
                "normals_png": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                "sal_png": rng.integers(0, 256, size, dtype=np.uint8),
            }
            write_jpeg(root / "JPEGImages" / f"{image_id}.jpg", files["image"])
            write_png(root / "semseg" / semseg_dir / f"{image_id}.png", semseg)
            write_human_parts_mat(root / "human_parts" / f"{image_id}.mat", image_id, objects)
            write_label_map(root / "pascal-context" / "trainval" / f"{image_id}.mat", label_map)
            write_png(root / "normals_distill" / f"{image_id}.png", files["normals_png"])
            write_png(root / "sal_distill" / f"{image_id}.png", files["sal_png"])
            written[image_id] = files
    return written
