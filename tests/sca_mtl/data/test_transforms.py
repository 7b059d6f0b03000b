"""The augmentation pipeline of MODEL_SPEC.md 6.3: geometric consistency between the image and every label map,
the ignore conventions, the tensor layouts and ImageNet normalisation, and reproducible randomness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from sca_mtl.data.transforms import (
    AddIgnoreRegions,
    Choice,
    FixedResize,
    RandomHorizontalFlip,
    ScaleNRotate,
    ToTensor,
    Uniform,
    scale_and_rotate,
    train_transform,
    val_transform,
)

H, W = 48, 64  # not square, so swapped axes show
MARK_CLASS, MARK_BRIGHT, BACKGROUND_GREY = 3, 220.0, 40.0
MARK_DEPTH, BACKGROUND_DEPTH = 2.0, 5.0
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def random_sample(seed: int = 0, h: int = H, w: int = W) -> dict:
    rng = np.random.default_rng(seed)
    normals = rng.normal(size=(h, w, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=2, keepdims=True)
    return {
        "image": rng.uniform(0, 255, (h, w, 3)).astype(np.float32),
        "semseg": rng.integers(0, 40, (h, w), dtype=np.uint8),
        "human_parts": rng.integers(0, 7, (h, w), dtype=np.uint8),
        "depth": rng.uniform(0.5, 10, (h, w)).astype(np.float32),
        "normals": normals,
        "sal": (rng.random((h, w)) < 0.5).astype(np.float32),
        "edge": (rng.random((h, w)) < 0.5).astype(np.float32),
        "meta": {"id": "x", "image_size": (h, w)},
    }


def marked_sample(row: int, col: int, half: int = 4, normal_xy: tuple[float, float] = (1.0, 0.0)) -> dict:
    """A scene with one square object centred at (row, col): bright in the image, class MARK_CLASS, nearer in depth.

    The normals are constant, with in-plane part 0.6 * normal_xy / |normal_xy| (x right, y down) and n_z = 0.8.
    """
    inside = np.zeros((H, W), bool)
    inside[row - half : row + half + 1, col - half : col + half + 1] = True
    image = np.full((H, W, 3), BACKGROUND_GREY, np.float32)
    image[inside] = MARK_BRIGHT
    normals = np.zeros((H, W, 3), np.float32)
    normals[:, :, :2] = 0.6 * np.asarray(normal_xy) / np.hypot(*normal_xy)
    normals[:, :, 2] = 0.8
    return {
        "image": image,
        "semseg": np.where(inside, MARK_CLASS, 1).astype(np.uint8),
        "depth": np.where(inside, MARK_DEPTH, BACKGROUND_DEPTH).astype(np.float32),
        "normals": normals,
        "meta": {"id": "mark", "image_size": (H, W)},
    }


def centroid(mask: np.ndarray) -> np.ndarray:
    """(x, y) in pixel coordinates."""
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean(), rows.mean()])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


CENTRE = np.array([W / 2, H / 2])  # OpenCV's rotation centre (w/2, h/2) in the released code


# ---------------------------------------------------------------- flip


def test_flip_mirrors_every_map_and_negates_normal_x():
    sample = random_sample()
    before = {k: v.copy() for k, v in sample.items() if k != "meta"}
    out = RandomHorizontalFlip(p=1.0)(sample)
    for key in ("image", "semseg", "human_parts", "depth", "sal", "edge"):
        np.testing.assert_array_equal(out[key], before[key][:, ::-1], err_msg=key)
    np.testing.assert_array_equal(out["normals"][:, :, 0], -before["normals"][:, ::-1, 0])
    np.testing.assert_array_equal(out["normals"][:, :, 1:], before["normals"][:, ::-1, 1:])
    assert out["meta"] == sample["meta"]
    for key, value in before.items():  # the input sample is left alone
        np.testing.assert_array_equal(sample[key], value, err_msg=key)


def test_flip_probability_and_reproducibility():
    sample = random_sample(h=2, w=3)

    def flips(seed: int, n: int = 400) -> list[bool]:
        flip = RandomHorizontalFlip(rng=np.random.default_rng(seed))
        return [not np.array_equal(flip(sample)["semseg"], sample["semseg"]) for _ in range(n)]

    first = flips(1)
    assert 0.42 < np.mean(first) < 0.58  # p = 0.5 (binomial sd 0.025)
    assert flips(1) == first
    assert flips(2) != first
    never = RandomHorizontalFlip(p=0.0, rng=np.random.default_rng(3))
    assert all(np.array_equal(never(sample)["image"], sample["image"]) for _ in range(20))


# ---------------------------------------------------------------- scale and rotate


def test_zoom_divides_depth_and_keeps_labels_on_the_image():
    scale = 1.5
    mark = np.array([W / 2 + 10, H / 2 - 6])  # (x, y)
    sample = marked_sample(row=int(mark[1]), col=int(mark[0]))
    out = scale_and_rotate(sample, 0.0, scale)

    label_mark = out["semseg"] == MARK_CLASS
    image_mark = out["image"][:, :, 0] > (MARK_BRIGHT + BACKGROUND_GREY) / 2
    # a point p moves to c + s (p - c): the zoom is about the centre
    np.testing.assert_allclose(centroid(label_mark), CENTRE + scale * (mark - CENTRE), atol=0.75)
    assert label_mark.sum() == pytest.approx(81 * scale**2, rel=0.15)
    assert iou(label_mark, image_mark) > 0.85
    # depth: divided by the scale, and the nearer object stays where its label is
    np.testing.assert_allclose(out["depth"][label_mark], MARK_DEPTH / scale, rtol=1e-6)
    np.testing.assert_allclose(out["depth"][~label_mark & (out["semseg"] == 1)], BACKGROUND_DEPTH / scale, rtol=1e-6)
    assert out["semseg"].dtype == np.uint8 and out["depth"].dtype == np.float32
    np.testing.assert_allclose(out["normals"], sample["normals"], atol=1e-5)  # no rotation: normals unchanged


@pytest.mark.parametrize("angle", [30.0, -20.0, 90.0])
def test_rotation_turns_normals_with_the_image_content(angle):
    offset = np.array([10.0, -7.0])  # the mark sits up-right of the centre, along the normals' in-plane direction
    mark = CENTRE + offset
    sample = marked_sample(row=int(mark[1]), col=int(mark[0]), normal_xy=tuple(offset))
    out = scale_and_rotate(sample, angle, 1.0)

    label_mark = out["semseg"] == MARK_CLASS
    image_mark = out["image"][:, :, 0] > (MARK_BRIGHT + BACKGROUND_GREY) / 2
    assert iou(label_mark, image_mark) > 0.8
    moved = centroid(label_mark) - CENTRE
    # positive angles turn the content counter-clockwise on screen (up is -y in pixel axes)
    theta = math.radians(angle)
    turn = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
    np.testing.assert_allclose(moved, turn @ offset, atol=0.75)

    # away from the zero-filled corners, the normals' in-plane part turned by the same angle as the content
    interior = np.zeros((H, W), bool)
    interior[H // 2 - 8 : H // 2 + 8, W // 2 - 8 : W // 2 + 8] = True
    normals = out["normals"][interior]
    content_angle = math.atan2(moved[1], moved[0])
    normal_angles = np.arctan2(normals[:, 1], normals[:, 0])
    np.testing.assert_allclose(normal_angles, content_angle, atol=0.06)
    np.testing.assert_allclose(np.hypot(normals[:, 0], normals[:, 1]), 0.6, atol=1e-4)  # in-plane: a pure rotation
    np.testing.assert_allclose(normals[:, 2], 0.8, atol=1e-5)  # n_z is untouched
    # corners rotate in from outside: zero fill, which AddIgnoreRegions turns into ignore
    assert not out["normals"][0, 0].any() and out["image"][0, 0].sum() == 0


def test_scale_n_rotate_draws_from_the_dataset_choices():
    sample = marked_sample(row=H // 2, col=W // 2)
    transform = ScaleNRotate(Choice((0.0,)), Choice((1.0, 1.2, 1.5)), rng=np.random.default_rng(0))
    ratios = {
        round(float(BACKGROUND_DEPTH / transform(sample)["depth"][H // 2 + 10, W // 2 + 20]), 6) for _ in range(60)
    }
    assert ratios == {1.0, 1.2, 1.5}


def test_scale_n_rotate_uniform_draws_stay_in_range():
    rng = np.random.default_rng(0)
    angles = [Uniform(-20.0, 20.0).sample(rng) for _ in range(2000)]
    assert -20 <= min(angles) < -19 and 19 < max(angles) <= 20
    scales = [Uniform(0.75, 1.25).sample(rng) for _ in range(2000)]
    assert 0.75 <= min(scales) < 0.76 and 1.24 < max(scales) <= 1.25


# ---------------------------------------------------------------- resize, ignore regions, tensors


def test_fixed_resize_sizes_interpolation_and_unit_normals():
    sample = random_sample()
    sample["normals"][5:9, 7:20] = 0.0  # an invalid block
    out = FixedResize((24, 40))(sample)
    for key in ("image", "semseg", "human_parts", "depth", "normals", "sal", "edge"):
        assert out[key].shape[:2] == (24, 40), key
    for key in ("semseg", "human_parts", "depth", "sal", "edge"):  # nearest: no new values
        assert np.isin(out[key], sample[key]).all(), key
    norm = np.linalg.norm(out["normals"], axis=2)
    np.testing.assert_allclose(norm[norm > 0], 1.0, atol=1e-5)
    assert (norm == 0).any()  # zero vectors stay zero, to be ignored
    # rows stay rows: a horizontal gradient is still horizontal
    ramp = {"image": np.repeat(np.tile(np.linspace(0, 255, W, dtype=np.float32), (H, 1))[:, :, None], 3, axis=2)}
    resized = FixedResize((24, 40))(ramp)["image"]
    assert np.ptp(resized[:, 10, 0]) < 1e-3 and np.ptp(resized[12, :, 0]) > 200


def test_fixed_resize_accepts_an_int_and_rejects_bad_sizes():
    assert FixedResize(16)(random_sample())["image"].shape == (16, 16, 3)
    for bad in [(0, 4), (4,), (4.0, 4), "44", -3]:
        with pytest.raises(ValueError, match="size"):
            FixedResize(bad)


def test_add_ignore_regions():
    sample = random_sample()
    sample["depth"][3, 4] = 0.0
    sample["normals"][5, 6] = 0.0
    sample["human_parts"][:] = 0
    out = AddIgnoreRegions()(sample)
    assert out["depth"][3, 4] == 255 and (out["depth"] == 255).sum() == 1
    np.testing.assert_array_equal(out["normals"][5, 6], [255, 255, 255])
    assert (out["normals"] == 255).all(axis=2).sum() == 1
    assert (out["human_parts"] == 255).all() and out["human_parts"].dtype == np.uint8
    np.testing.assert_array_equal(out["semseg"], sample["semseg"])
    assert sample["depth"][3, 4] == 0.0  # not in place

    with_person = random_sample()
    with_person["human_parts"][:] = 0
    with_person["human_parts"][2, 2] = 4
    np.testing.assert_array_equal(AddIgnoreRegions()(with_person)["human_parts"], with_person["human_parts"])


def test_to_tensor_layouts_dtypes_and_imagenet_normalisation():
    sample = random_sample()
    out = ToTensor()(sample)
    expected = {
        "image": (torch.float32, (3, H, W)),
        "semseg": (torch.int64, (H, W)),
        "human_parts": (torch.int64, (H, W)),
        "depth": (torch.float32, (1, H, W)),
        "normals": (torch.float32, (3, H, W)),
        "sal": (torch.float32, (1, H, W)),
        "edge": (torch.float32, (1, H, W)),
    }
    for key, (dtype, shape) in expected.items():
        assert out[key].dtype == dtype and tuple(out[key].shape) == shape, key
    np.testing.assert_array_equal(out["normals"].numpy(), sample["normals"].transpose(2, 0, 1))
    np.testing.assert_array_equal(out["depth"][0].numpy(), sample["depth"])
    assert out["meta"] is sample["meta"]

    # image: [0, 255] -> /255 -> (x - mean) / std per channel; values are truncated to integers as uint8
    image = np.zeros((2, 3, 3), np.float32)
    image[0, 0] = (0.0, 127.9, 255.0)
    image[0, 1] = (-10.0, 300.0, 64.0)  # cubic overshoot is clipped, not wrapped
    got = ToTensor()({"image": image})["image"].numpy()
    want = lambda rgb: (np.array(rgb, np.float32) / 255 - MEAN) / STD  # noqa: E731
    np.testing.assert_allclose(got[:, 0, 0], want((0, 127, 255)), rtol=1e-6)
    np.testing.assert_allclose(got[:, 0, 1], want((0, 255, 64)), rtol=1e-6)
    np.testing.assert_allclose(got[:, 1, 2], -MEAN / STD, rtol=1e-6)


def test_unknown_sample_key_is_an_error():
    with pytest.raises(ValueError, match="'bbox'"):
        FixedResize(8)({"image": np.zeros((4, 4, 3), np.float32), "bbox": np.zeros((4, 4))})
    with pytest.raises(ValueError, match="'bbox'"):
        ToTensor()({"bbox": np.zeros((4, 4))})


# ---------------------------------------------------------------- pipelines and randomness


def _tensors_equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a if k != "meta")


@pytest.mark.parametrize("dataset", ["nyud", "pascal_context"])
def test_train_pipeline_is_reproducible_for_a_seed(dataset):
    sample = random_sample()
    run = lambda seed: train_transform(dataset, (32, 48), rng=np.random.default_rng(seed))  # noqa: E731
    first, again = run(7), run(7)
    outs = [first(sample) for _ in range(4)]
    assert all(_tensors_equal(a, again(sample)) for a in outs)
    assert not all(_tensors_equal(outs[0], other) for other in outs[1:])  # the draws do change
    assert tuple(outs[0]["image"].shape) == (3, 32, 48) and outs[0]["semseg"].dtype == torch.int64


def test_train_pipeline_without_rng_follows_numpy_global_seed():
    sample = random_sample()
    transform = train_transform("pascal_context", (32, 48))
    # the default source is numpy's global RNG on purpose (torch seeds it in every DataLoader worker)
    np.random.seed(123)  # noqa: NPY002
    first = [transform(sample) for _ in range(3)]
    np.random.seed(123)  # noqa: NPY002
    assert all(_tensors_equal(a, transform(sample)) for a in first)
    np.random.seed(124)  # noqa: NPY002
    assert not all(_tensors_equal(a, transform(sample)) for a in first)


def test_val_pipeline_is_deterministic_and_marks_ignore():
    sample = random_sample()
    sample["depth"][:] = 0.0
    out = val_transform((H, W))(sample)
    assert _tensors_equal(out, val_transform((H, W))(sample))
    assert (out["depth"] == 255).all()
    np.testing.assert_array_equal(out["semseg"].numpy(), sample["semseg"])  # same size: nearest is the identity


def test_unknown_dataset_for_training_augmentation():
    with pytest.raises(ValueError, match="nyud, pascal_context"):
        train_transform("cityscapes", 32)


class _Rotated(Dataset):
    """The same small sample, randomly rotated with the default (global numpy) RNG; returns a checksum."""

    transform = ScaleNRotate(Uniform(-20.0, 20.0), Choice((1.0,)))

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> float:
        return float(self.transform(marked_sample(row=H // 2, col=W // 2 + 12))["image"].sum())


def test_default_rng_differs_between_workers_and_follows_the_torch_seed():
    def checksums() -> list[float]:
        torch.manual_seed(5)  # DataLoader derives each worker's numpy seed from it
        loader = DataLoader(_Rotated(), batch_size=1, num_workers=2, multiprocessing_context="fork")
        return [float(batch) for batch in loader]

    first = checksums()
    assert checksums() == first
    assert first[0] != first[1]  # items 0 and 1 come from different workers, which must not share a stream


def test_flip_only_augmentation_has_no_zoom():
    from sca_mtl.data.transforms import RandomHorizontalFlip, ScaleNRotate, train_transform

    full = [type(t) for t in train_transform("nyud", (32, 32)).transforms]
    flip = [type(t) for t in train_transform("nyud", (32, 32), augmentation="flip").transforms]
    assert ScaleNRotate in full and ScaleNRotate not in flip and RandomHorizontalFlip in flip
    with pytest.raises(ValueError, match="augmentation"):
        train_transform("nyud", (32, 32), augmentation="mixup")
