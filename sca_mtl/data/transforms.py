"""Augmentation and tensor conversion of multi-task samples (MODEL_SPEC.md 6.3), as MTI-Net's custom_transforms.py.

A sample is a dict: "image" float32 (H, W, 3) RGB in [0, 255], one numpy array per task (layouts in nyud.py and
pascal_context.py) and "meta", which every transform passes through untouched. Each transform takes a sample and
returns a new dict; the arrays of the input are never modified.

Training pipeline: RandomHorizontalFlip -> ScaleNRotate -> FixedResize -> AddIgnoreRegions -> ToTensor.
Validation pipeline: FixedResize -> AddIgnoreRegions -> ToTensor.

Conventions (those of the released code unless stated):
- Geometry uses OpenCV as the released code does: `cv2.getRotationMatrix2D` about (w/2, h/2), `cv2.warpAffine` to
  the same size with a constant 0 border, `cv2.resize`; the interpolation of each key is `INTERPOLATION`.
- The 0 border is a real class for semseg (wall on NYUD, background on PASCAL) and human_parts (background); that is
  the released code's behaviour. NYUD never gets a border (scale >= 1, no rotation). For depth and normals 0 means
  invalid, so AddIgnoreRegions turns the border into ignore.
- Normals: flipping negates n_x. A rotation by `angle` degrees (counter-clockwise on screen, OpenCV's sign) turns
  (n_x, n_y) with the same 2x2 rotation that moves the image content, i.e. as a vector in pixel axes (x right,
  y down); n_z is unchanged. This is the released code's atan2/sin/cos formula written as a matrix.
- Depth is divided by the zoom factor: zooming in by s brings the scene s times closer.
- FixedResize renormalises normals as n / (|n| + eps) with eps = float32 machine epsilon, so unit length where
  non-zero and zero vectors stay zero.
- AddIgnoreRegions: depth 0 -> 255; zero-norm normals -> 255 in all 3 channels; an all-zero human_parts map (no person,
  or no person left in the crop) -> all 255 (`sca_mtl.tasks.IGNORE_LABEL`, the ignore value of every task).
- ToTensor: image clipped to [0, 255], cast to uint8 (truncation, as the released code), / 255, then ImageNet
  normalisation; CHW float32. The released code casts without clipping, so the few cubic overshoots (< 0 or > 255)
  wrap around in numpy's float -> uint8 cast; clipping is the well-defined version of the same quantisation.
  Segmentation tasks become int64 (H, W), normals float32 (3, H, W), depth / sal / edge float32 (1, H, W).

Randomness: every random transform draws uniform numbers in [0, 1) with `.random()` from its `rng`: pass a
`numpy.random.Generator` for an explicit, reproducible stream. Without one (the default) it draws from numpy's global
RNG, as the released code does. torch's DataLoader seeds that RNG in every worker from its base seed and the worker
id, so workers never share a stream and a run is reproducible for a given torch seed. With num_workers=0 the caller
seeds it (`numpy.random.seed`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import torch

from sca_mtl.tasks import IGNORE_LABEL, TASKS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PIXEL_MAX = 255.0
FLIP_PROBABILITY = 0.5

# cv2 interpolation per sample key, for ScaleNRotate and FixedResize (MTI-Net's FLAGVALS)
INTERPOLATION = {
    "image": cv2.INTER_CUBIC,
    "normals": cv2.INTER_CUBIC,
    "semseg": cv2.INTER_NEAREST,
    "human_parts": cv2.INTER_NEAREST,
    "depth": cv2.INTER_NEAREST,
    "edge": cv2.INTER_NEAREST,
    "sal": cv2.INTER_NEAREST,
}

Sample = dict
Size = int | Sequence[int]


class RandomSource(Protocol):
    """What the random transforms draw from: a numpy Generator, or the `numpy.random` module (the global RNG)."""

    def random(self) -> float: ...


def _source(rng: RandomSource | None) -> RandomSource:
    return np.random if rng is None else rng


@dataclass(frozen=True)
class Uniform:
    """A value drawn uniformly from [low, high)."""

    low: float
    high: float

    def sample(self, rng: RandomSource) -> float:
        return self.low + (self.high - self.low) * float(rng.random())


@dataclass(frozen=True)
class Choice:
    """A value drawn uniformly from a fixed list."""

    values: tuple[float, ...]

    def sample(self, rng: RandomSource) -> float:
        # random() < 1, so the index is below len(values)
        return float(self.values[int(rng.random() * len(self.values))])


# ScaleNRotate per dataset: (rotation in degrees, scale factor), MTI-Net's get_transformations
TRAIN_AUGMENTATION = {
    "nyud": (Choice((0.0,)), Choice((1.0, 1.2, 1.5))),
    "pascal_context": (Uniform(-20.0, 20.0), Uniform(0.75, 1.25)),
}


def _maps(sample: Sample) -> Iterator[tuple[str, np.ndarray]]:
    """The (key, array) pairs of a sample that geometry applies to: everything but "meta"."""
    for key, value in sample.items():
        if key == "meta":
            continue
        if key not in INTERPOLATION:
            raise ValueError(f"sample key {key!r} has no interpolation rule; known keys: {', '.join(INTERPOLATION)}")
        yield key, value


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[Sample], Sample]]):
        self.transforms = tuple(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for transform in self.transforms:
            sample = transform(sample)
        return sample

    def __repr__(self) -> str:
        return f"Compose({', '.join(map(repr, self.transforms))})"


class RandomHorizontalFlip:
    """Mirror every map left-right with probability p; the normals' x component changes sign."""

    def __init__(self, p: float = FLIP_PROBABILITY, *, rng: RandomSource | None = None):
        self.p = p
        self.rng = rng

    def __call__(self, sample: Sample) -> Sample:
        if _source(self.rng).random() >= self.p:
            return dict(sample)
        return hflip(sample)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


def hflip(sample: Sample) -> Sample:
    out = dict(sample)
    for key, value in _maps(sample):
        flipped = value[:, ::-1].copy()
        if key == "normals":
            flipped[:, :, 0] *= -1
        out[key] = flipped
    return out


class ScaleNRotate:
    """Rotate by a random angle (degrees) and zoom by a random factor about the centre, keeping the size."""

    def __init__(
        self,
        rotation: Uniform | Choice,
        scale: Uniform | Choice,
        *,
        rng: RandomSource | None = None,
    ):
        self.rotation = rotation
        self.scale = scale
        self.rng = rng

    def __call__(self, sample: Sample) -> Sample:
        rng = _source(self.rng)
        angle = self.rotation.sample(rng)
        return scale_and_rotate(sample, angle, self.scale.sample(rng))

    def __repr__(self) -> str:
        return f"ScaleNRotate(rotation={self.rotation}, scale={self.scale})"


def scale_and_rotate(sample: Sample, angle: float, scale: float) -> Sample:
    """The deterministic part of ScaleNRotate: one warp per map, normals turned and depth divided by the scale."""
    out = dict(sample)
    for key, value in _maps(sample):
        h, w = value.shape[:2]
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        if key == "normals":
            value = rotate_normals(value, angle)
        warped = cv2.warpAffine(
            value, matrix, (w, h), flags=INTERPOLATION[key], borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        if key == "depth":
            warped = warped / np.float32(scale)
        out[key] = warped
    return out


def rotate_normals(normals: np.ndarray, angle: float) -> np.ndarray:
    """Turn (n_x, n_y) by the rotation cv2.getRotationMatrix2D(., angle, .) applies to pixel offsets."""
    theta = np.deg2rad(angle)
    cos, sin = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    nx, ny = normals[:, :, 0], normals[:, :, 1]
    out = normals.copy()
    out[:, :, 0] = cos * nx + sin * ny
    out[:, :, 1] = cos * ny - sin * nx
    return out


class FixedResize:
    """Resize every map to size (H, W); normals are renormalised afterwards."""

    def __init__(self, size: Size):
        self.size = _check_size(size)

    def __call__(self, sample: Sample) -> Sample:
        h, w = self.size
        out = dict(sample)
        for key, value in _maps(sample):
            resized = cv2.resize(value, (w, h), interpolation=INTERPOLATION[key])
            if key == "normals":
                resized = resized / (np.linalg.norm(resized, axis=2, keepdims=True) + np.finfo(np.float32).eps)
            out[key] = resized
        return out

    def __repr__(self) -> str:
        return f"FixedResize(size={self.size})"


class AddIgnoreRegions:
    """Mark invalid pixels with IGNORE_LABEL: depth 0, zero normals, human_parts maps without any part."""

    def __call__(self, sample: Sample) -> Sample:
        out = dict(sample)
        if "depth" in sample:
            depth = sample["depth"]
            out["depth"] = np.where(depth == 0, np.asarray(IGNORE_LABEL, depth.dtype), depth)
        if "normals" in sample:
            normals = sample["normals"]
            invalid = np.linalg.norm(normals, axis=2, keepdims=True) == 0
            out["normals"] = np.where(invalid, np.asarray(IGNORE_LABEL, normals.dtype), normals)
        if "human_parts" in sample and not sample["human_parts"].any():
            out["human_parts"] = np.full_like(sample["human_parts"], IGNORE_LABEL)
        return out

    def __repr__(self) -> str:
        return "AddIgnoreRegions()"


class ToTensor:
    """Numpy maps to torch tensors in the model's layouts; the image is normalised with ImageNet statistics."""

    def __call__(self, sample: Sample) -> Sample:
        out = {}
        for key, value in sample.items():
            if key == "meta":
                out[key] = value
            elif key == "image":
                out[key] = image_to_tensor(value)
            else:
                out[key] = _label_to_tensor(key, value)
        return out

    def __repr__(self) -> str:
        return "ToTensor()"


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) in [0, 255] -> normalised float32 (3, H, W)."""
    quantised = np.clip(image, 0, PIXEL_MAX).astype(np.uint8)
    scaled = quantised.astype(np.float32) / np.float32(PIXEL_MAX)
    normalised = (scaled - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))


def _label_to_tensor(task: str, label: np.ndarray) -> torch.Tensor:
    if task not in TASKS:
        raise ValueError(f"sample key {task!r} is neither 'image', 'meta' nor a task; tasks: {', '.join(TASKS)}")
    kind = TASKS[task].kind
    if kind == "segmentation":
        return torch.from_numpy(label.astype(np.int64))
    if kind == "normals":
        return torch.from_numpy(np.ascontiguousarray(label.transpose(2, 0, 1), dtype=np.float32))
    return torch.from_numpy(label[np.newaxis].astype(np.float32))


def _check_size(size: Size) -> tuple[int, int]:
    """(H, W) from an int (square) or a pair of positive ints."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in hw):
        raise ValueError(f"size must be a positive int or a pair (H, W) of positive ints, got {size!r}")
    return int(hw[0]), int(hw[1])


AUGMENTATIONS = ("flip_scale_rotate", "flip")


def train_transform(
    dataset: str, size: Size, *, augmentation: str = "flip_scale_rotate", rng: RandomSource | None = None
) -> Compose:
    """The training pipeline of `dataset` ("nyud" or "pascal_context") ending at size (H, W).

    augmentation: "flip_scale_rotate", the released code's (flip, then the dataset's scale/rotation); or "flip" only,
    for short runs, where a zoom that divides depth biases the depth a barely trained model predicts.
    """
    if dataset not in TRAIN_AUGMENTATION:
        raise ValueError(f"no training augmentation for dataset {dataset!r}; known: {', '.join(TRAIN_AUGMENTATION)}")
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {', '.join(AUGMENTATIONS)}, got {augmentation!r}")
    geometry = [RandomHorizontalFlip(rng=rng)]
    if augmentation == "flip_scale_rotate":
        geometry.append(ScaleNRotate(*TRAIN_AUGMENTATION[dataset], rng=rng))
    return Compose([*geometry, FixedResize(size), AddIgnoreRegions(), ToTensor()])


def val_transform(size: Size) -> Compose:
    """The evaluation pipeline: resize to (H, W), mark ignore regions, convert."""
    return Compose([FixedResize(size), AddIgnoreRegions(), ToTensor()])
