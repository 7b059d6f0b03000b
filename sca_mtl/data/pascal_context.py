"""PASCAL-Context in the PASCAL_MT layout of MTI-Net / ASTMT (MODEL_SPEC.md 8), read as MTI-Net's pascal_context.py.

Layout under `root` (only the files of the requested tasks are needed):
    ImageSets/Context/<split>.txt        image ids, one per line
    JPEGImages/<id>.jpg                  RGB image
    semseg/VOC12/<id>.png, else semseg/pascal-context/<id>.png
                                         uint8, 21 classes (0 background, 1..20 VOC), 255 ignore; no offset
    human_parts/<id>.mat                 PASCAL-Part annotation: struct 'anno' with fields imname and objects;
                                         objects(i) has class, class_ind (15 = person), mask, and parts, a struct
                                         array of (part_name, mask), or [] when the object has no part annotation
    normals_distill/<id>.png             RGB uint8 pseudo-labels, n = 2 v / 255 - 1
    pascal-context/trainval/<id>.mat     'LabelMap', the 459-class PASCAL-Context labels (masks the normals)
    sal_distill/<id>.png                 uint8 pseudo-labels

A sample before any transform:
    image        float32 (H, W, 3) RGB in [0, 255]
    semseg       uint8 (H, W) as stored
    human_parts  uint8 (H, W): 0 background, 1 head, 2 torso, 3 upper arms, 4 lower arms + hands, 5 upper legs,
                 6 lower legs + feet, painted from the part masks of every person object that has parts (later
                 parts overwrite earlier ones). An image without such a person gives all zeros, which
                 AddIgnoreRegions (in both pipelines) turns into all 255. The released code does the same:
                 a 255 map here would get 0 (background) borders from ScaleNRotate.
    normals      float32 (H, W, 3): the decoded png where the LabelMap class is an NYU class (context_classes.json
                 names also in nyu_classes.json, except 'unknown') or 'tvmonitor'; 0 elsewhere (-> ignore)
    sal          float32 (H, W): 1 where v / 255 > 0.5, else 0
    edge         float32 (H, W) in {0, 1}: thin(|Laplacian(LabelMap)| > 0), the released code's boundaries (OpenCV's
                 3 x 3 Laplacian, mirrored borders; thin = bwmorph's thinning, which scikit-image's `thin` also is)
    meta         {"id": str, "image_size": (H, W) of the image file}
When human_parts is the only task, images without a person (an object of class 15 with a non-empty mask) are
left out, as in the released code, which reads every .mat file once at construction. Nothing is written to `root`:
no part cache file, unlike the released code.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from torch.utils.data import Dataset

from sca_mtl.boundary import thin
from sca_mtl.data._io import (
    DataFileError,
    check_shape,
    fit_to_image,
    read_ids,
    read_mat,
    read_png,
    read_rgb,
    require_dir,
    require_file,
    select_tasks,
)
from sca_mtl.data.transforms import INTERPOLATION, PIXEL_MAX
from sca_mtl.tasks import IGNORE_LABEL

NUM_SEMSEG_CLASSES = 21
SUPPORTED_TASKS = ("semseg", "human_parts", "normals", "sal", "edge")
PERSON_CLASS = 15  # class_ind of 'person' in PASCAL-Part (VOC class order)
SALIENCY_THRESHOLD = 0.5
NORMAL_CHANNELS = 3

# PASCAL-Part person part name -> one of the 6 part classes (MTI-Net's HUMAN_PART[6]); 0 is background
HUMAN_PART_CLASSES = {
    **dict.fromkeys(("hair", "head", "lear", "rear", "lebrow", "rebrow", "leye", "reye", "nose", "mouth"), 1),
    **dict.fromkeys(("neck", "torso"), 2),
    **dict.fromkeys(("luarm", "ruarm"), 3),
    **dict.fromkeys(("llarm", "rlarm", "lhand", "rhand"), 4),
    **dict.fromkeys(("luleg", "ruleg"), 5),
    **dict.fromkeys(("llleg", "rlleg", "lfoot", "rfoot"), 6),
}
NUM_HUMAN_PART_CLASSES = 7

# db_info/{nyu,context}_classes.json: class name -> id tables copied verbatim from MTI-Net's data/db_info
DB_INFO = Path(__file__).parent / "db_info"
NORMALS_EXTRA_CLASSES = ("tvmonitor",)  # not an NYU class name, but MTI-Net keeps its normals too
NYU_UNKNOWN_CLASS = "unknown"

SPLITS_DIR = Path("ImageSets", "Context")
IMAGE_DIR = "JPEGImages"
SEMSEG_DIRS = (Path("semseg", "VOC12"), Path("semseg", "pascal-context"))  # the first one that has the file wins
LAYOUT = {  # what -> (folder, file extension), for everything but semseg
    "human_parts": ("human_parts", ".mat"),
    "normals": ("normals_distill", ".png"),
    "label_map": (Path("pascal-context", "trainval"), ".mat"),
    "sal": ("sal_distill", ".png"),
    "edge": (Path("pascal-context", "trainval"), ".mat"),  # derived from the LabelMap
}
UNSUPPORTED_TASKS = {  # known tasks this reader leaves out on purpose -> why
    "depth": "PASCAL-Context has no depth labels",
}


@functools.cache
def normals_valid_classes() -> np.ndarray:
    """LabelMap class ids whose distilled normals are kept: the PASCAL-Context classes that are NYU classes."""
    context = json.loads((DB_INFO / "context_classes.json").read_text(encoding="utf-8"))
    nyu = json.loads((DB_INFO / "nyu_classes.json").read_text(encoding="utf-8"))
    names = [name for name in nyu if name in context and name != NYU_UNKNOWN_CLASS] + list(NORMALS_EXTRA_CLASSES)
    return np.array(sorted(context[name] for name in names))


class PASCALContext(Dataset):
    """PASCAL-Context multi-task samples (see the module docstring for the layout and the sample format).

    Args:
        root: the PASCAL_MT folder.
        split: name of a file ImageSets/Context/<split>.txt ("train" or "val").
        tasks: task names among semseg, human_parts, normals, sal, edge (a mapping task -> channels works too).
        transform: callable applied to the sample dict (see transforms.py).
    """

    num_classes = NUM_SEMSEG_CLASSES

    def __init__(
        self,
        root: str | Path,
        split: str,
        tasks: Iterable[str],
        *,
        transform: Callable[[dict], dict] | None = None,
    ):
        self.tasks = select_tasks(tasks, SUPPORTED_TASKS, "PASCALContext", UNSUPPORTED_TASKS)
        self.root = require_dir(Path(root), "PASCAL-Context root folder")
        self.split = split
        self.transform = transform
        ids = read_ids(require_file(self.root / SPLITS_DIR / f"{split}.txt", f"PASCAL-Context split file {split!r}"))
        needed = ["image", *self.tasks] + (["label_map"] if "normals" in self.tasks else [])
        files = {what: [self._file(what, image_id) for image_id in ids] for what in needed}
        if self.tasks == ("human_parts",):
            keep = [i for i, path in enumerate(files["human_parts"]) if _has_person(_read_anno(path), path)]
            ids = [ids[i] for i in keep]
            files = {what: [paths[i] for i in keep] for what, paths in files.items()}
            if not ids:
                raise ValueError(f"PASCALContext: no image of split {split!r} under {self.root} contains a person")
        self.ids = ids
        self.files = files

    def _file(self, what: str, image_id: str) -> Path:
        if what == "image":
            return require_file(self.root / IMAGE_DIR / f"{image_id}.jpg", "PASCAL-Context image file")
        if what == "semseg":
            candidates = [self.root / folder / f"{image_id}.png" for folder in SEMSEG_DIRS]
            for path in candidates:
                if path.is_file():
                    return path
            raise FileNotFoundError(f"PASCAL-Context semseg file not found: {' nor '.join(map(str, candidates))}")
        folder, extension = LAYOUT[what]
        return require_file(self.root / folder / f"{image_id}{extension}", f"PASCAL-Context {what} file")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        image = read_rgb(self.files["image"][index])
        hw = image.shape[:2]
        sample = {"image": image}
        for task in self.tasks:
            path = self.files[task][index]
            label = self._loaders[task](self, index, hw)
            sample[task] = fit_to_image(label, hw, INTERPOLATION[task], path)
        sample["meta"] = {"id": self.ids[index], "image_size": hw}
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return f"PASCALContext(root={str(self.root)!r}, split={self.split!r}, tasks={self.tasks}, images={len(self)})"

    def _load_semseg(self, index: int, hw: tuple[int, int]) -> np.ndarray:
        path = self.files["semseg"][index]
        label = check_shape(read_png(path, "semseg png"), path, "semseg png")
        bad = (label >= NUM_SEMSEG_CLASSES) & (label != IGNORE_LABEL)
        if bad.any():
            raise DataFileError(path, f"semseg png value {label[bad].max()} is not a class (0..20) nor 255")
        return label.astype(np.uint8)

    def _load_human_parts(self, index: int, hw: tuple[int, int]) -> np.ndarray:
        path = self.files["human_parts"][index]
        target = None
        for obj in _parse_anno(_read_anno(path), path):
            if obj.class_ind != PERSON_CLASS or not obj.parts:
                continue
            if target is None:
                target = np.zeros(obj.mask.shape, np.uint8)
            for name, mask in obj.parts:
                if name not in HUMAN_PART_CLASSES:
                    raise DataFileError(path, f"unknown person part {name!r}; known: {', '.join(HUMAN_PART_CLASSES)}")
                if mask.shape != target.shape:
                    raise DataFileError(path, f"mask of part {name!r} is {mask.shape}, the annotation's {target.shape}")
                target[mask] = HUMAN_PART_CLASSES[name]
        return np.zeros(hw, np.uint8) if target is None else target

    def _load_normals(self, index: int, hw: tuple[int, int]) -> np.ndarray:
        path, label_path = self.files["normals"][index], self.files["label_map"][index]
        png = check_shape(read_png(path, "normals png"), path, "normals png", NORMAL_CHANNELS)
        label_map = _read_label_map(label_path)
        if label_map.shape != png.shape[:2]:
            raise DataFileError(path, f"size {png.shape[:2]} differs from {label_path}'s LabelMap {label_map.shape}")
        normals = 2.0 * png.astype(np.float32) / np.float32(PIXEL_MAX) - 1.0
        keep = np.isin(label_map, normals_valid_classes())
        return np.where(keep[:, :, np.newaxis], normals, np.float32(0))

    def _load_sal(self, index: int, hw: tuple[int, int]) -> np.ndarray:
        path = self.files["sal"][index]
        png = check_shape(read_png(path, "saliency png"), path, "saliency png")
        return (png.astype(np.float32) / np.float32(PIXEL_MAX) > SALIENCY_THRESHOLD).astype(np.float32)

    def _load_edge(self, index: int, hw: tuple[int, int]) -> np.ndarray:
        laplacian = cv2.Laplacian(_read_label_map(self.files["edge"][index]).astype(np.float64), cv2.CV_64F)
        return thin(np.abs(laplacian) > 0).astype(np.float32)

    _loaders = {
        "semseg": _load_semseg,
        "human_parts": _load_human_parts,
        "normals": _load_normals,
        "sal": _load_sal,
        "edge": _load_edge,
    }


def _read_label_map(path: Path) -> np.ndarray:
    return check_shape(read_mat(path, "LabelMap", "PASCAL-Context label map"), path, "LabelMap")


def _read_anno(path: Path) -> np.ndarray:
    return read_mat(path, "anno", "PASCAL-Part annotation")


class _PartObject(NamedTuple):
    class_ind: int
    mask: np.ndarray  # (H, W) silhouette
    parts: list[tuple[str, np.ndarray]]  # (part_name, (H, W) bool mask) per annotated part


def _struct_items(array: np.ndarray) -> np.ndarray:
    """The elements of a loaded MATLAB struct array; MATLAB's [] (no struct at all) gives none."""
    return array.ravel() if array.dtype.names else array.ravel()[:0]


def _parse_anno(anno: np.ndarray, path: Path) -> list[_PartObject]:
    """The objects of a loaded PASCAL-Part 'anno' struct, by field name."""
    try:
        return [
            _PartObject(
                int(np.ravel(obj["class_ind"])[0]),
                np.asarray(obj["mask"]),
                [
                    (str(np.ravel(part["part_name"])[0]), np.asarray(part["mask"], bool))
                    for part in _struct_items(obj["parts"])
                ],
            )
            for obj in _struct_items(anno.ravel()[0]["objects"])
        ]
    except (IndexError, KeyError, ValueError, TypeError) as exc:
        raise DataFileError(path, f"not a PASCAL-Part 'anno' struct: {type(exc).__name__}: {exc}") from exc


def _has_person(anno: np.ndarray, path: Path) -> bool:
    """Whether the annotation has a person with a non-empty mask (MTI-Net's image-level test, area threshold 0)."""
    return any(obj.class_ind == PERSON_CLASS and obj.mask.any() for obj in _parse_anno(anno, path))
