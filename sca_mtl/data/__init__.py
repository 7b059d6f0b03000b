"""Multi-task dense-prediction data: the NYUD-v2 and PASCAL-Context readers and their augmentation pipelines.

`build_dataset` is the one entry point the engine needs: a reader with the training or the validation pipeline
of MODEL_SPEC.md 6.3 attached. Samples are dicts {"image", <task>..., "meta"}; after the pipeline:
    image                float32 (3, H, W), ImageNet-normalised
    semseg, human_parts  int64 (H, W), 255 = ignore
    depth                float32 (1, H, W) metres, 255 = invalid
    normals              float32 (3, H, W) unit vectors, 255 in all 3 channels = invalid
    sal, edge            float32 (1, H, W) in {0, 1}
    meta                 {"id": str, "image_size": (H, W) of the original image}
The synthetic scenes are written in the NYUD layout and read with name "nyud" (and their number of classes).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sca_mtl.data._io import DataFileError
from sca_mtl.data.nyud import NUM_SEMSEG_CLASSES as NYUD_CLASSES
from sca_mtl.data.nyud import NYUD
from sca_mtl.data.pascal_context import PASCALContext
from sca_mtl.data.transforms import Size, train_transform, val_transform

DATASETS = ("nyud", "pascal_context")

__all__ = ["DATASETS", "NYUD", "DataFileError", "PASCALContext", "build_dataset", "train_transform", "val_transform"]


def build_dataset(
    name: str,
    root: str | Path,
    split: str,
    tasks: Iterable[str],
    *,
    train: bool,
    size: Size,
    num_classes: int | None = None,
    augmentation: str = "flip_scale_rotate",
) -> NYUD | PASCALContext:
    """A dataset reader with the training (`train=True`) or validation pipeline, ending at `size` (H, W).

    num_classes: semseg classes; None means the dataset's own (40 for NYUD, 21 for PASCAL-Context, which accepts
    no other value). augmentation: of the training pipeline (`transforms.train_transform`).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    transform = train_transform(name, size, augmentation=augmentation) if train else val_transform(size)
    if name == "nyud":
        classes = NYUD_CLASSES if num_classes is None else num_classes
        return NYUD(root, split, tasks, transform=transform, num_classes=classes)
    if num_classes not in (None, PASCALContext.num_classes):
        raise ValueError(
            f"PASCAL-Context has {PASCALContext.num_classes} semseg classes, got num_classes={num_classes}"
        )
    return PASCALContext(root, split, tasks, transform=transform)
