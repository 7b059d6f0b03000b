"""The NYUD_MT reader on tiny folders in the real on-disk format: label conventions, dtypes, and that every missing
or broken file is reported by its path."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch

from sca_mtl.data import DataFileError, build_dataset
from sca_mtl.data.nyud import NYUD
from tests.sca_mtl.data import fixtures

ALL_TASKS = ("semseg", "depth", "normals", "edge")
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


@pytest.fixture
def nyud(tmp_path):
    root = tmp_path / "NYUD_MT"
    return root, fixtures.write_nyud(root)


def test_sample_format_and_label_conventions(nyud):
    root, written = nyud
    dataset = NYUD(root, "train", ALL_TASKS)
    assert len(dataset) == 2 and dataset.ids == ["0001", "0002"]
    sample = dataset[1]
    truth = written["0002"]
    h, w = fixtures.NYUD_SIZE

    assert set(sample) == {"image", *ALL_TASKS, "meta"}
    assert sample["meta"] == {"id": "0002", "image_size": (h, w)}
    assert sample["image"].dtype == np.float32 and sample["image"].shape == (h, w, 3)
    np.testing.assert_array_equal(sample["image"], fixtures.read_jpeg(root / "images" / "0002.jpg"))

    # semseg: png - 1, with the unlabelled 0 -> 255
    png = truth["segmentation"].astype(int)
    assert sample["semseg"].dtype == np.uint8 and sample["semseg"].shape == (h, w)
    np.testing.assert_array_equal(sample["semseg"], np.where(png == 0, 255, png - 1))
    assert sample["semseg"][0, 0] == 255 and sample["semseg"][0, 1] == fixtures.NYUD_CLASSES - 1

    for key in ("depth", "normals", "edge"):  # as stored, float32; invalid depth / normals are still 0 here
        assert sample[key].dtype == np.float32, key
        np.testing.assert_array_equal(sample[key], truth[key], err_msg=key)
    assert sample["depth"].shape == (h, w) and sample["normals"].shape == (h, w, 3)


def test_only_the_requested_tasks_are_read_and_required(nyud):
    root, _ = nyud
    for folder in ("segmentation", "normals", "edge"):
        for path in (root / folder).iterdir():
            path.unlink()
    sample = NYUD(root, "val", {"depth": 1})[0]  # a {task: channels} mapping works too
    assert set(sample) == {"image", "depth", "meta"}


def test_validation_pipeline_marks_invalid_pixels(nyud):
    root, written = nyud
    h, w = fixtures.NYUD_SIZE
    sample = build_dataset("nyud", root, "val", ALL_TASKS, train=False, size=(h, w))[0]
    truth = written["0003"]
    # same size: the resize is the identity, so the ignore positions are exactly the written invalid pixels
    assert sample["semseg"].dtype == torch.int64 and tuple(sample["semseg"].shape) == (h, w)
    depth = sample["depth"][0].numpy()
    np.testing.assert_array_equal(depth == 255, truth["depth"] == 0)
    np.testing.assert_allclose(depth[truth["depth"] > 0], truth["depth"][truth["depth"] > 0])
    normals = sample["normals"].numpy().transpose(1, 2, 0)
    invalid = np.linalg.norm(truth["normals"], axis=2) == 0
    assert (normals[invalid] == 255).all() and not (normals[~invalid] == 255).any()
    image = fixtures.read_jpeg(root / "images" / "0003.jpg").astype(np.float32)
    np.testing.assert_allclose(sample["image"].numpy().transpose(1, 2, 0), (image / 255 - MEAN) / STD, atol=1e-6)


def test_training_pipeline_output(nyud):
    root, _ = nyud
    dataset = build_dataset("nyud", root, "train", ALL_TASKS, train=True, size=(24, 32))
    sample = dataset[0]
    assert tuple(sample["image"].shape) == (3, 24, 32)
    assert tuple(sample["depth"].shape) == (1, 24, 32) and tuple(sample["normals"].shape) == (3, 24, 32)
    valid = sample["semseg"][sample["semseg"] != 255]
    assert valid.min() >= 0 and valid.max() < fixtures.NYUD_CLASSES
    assert sample["meta"]["image_size"] == fixtures.NYUD_SIZE


def test_number_of_classes(tmp_path):
    root = tmp_path / "synthetic"
    fixtures.write_nyud(root, {"train": ["a"]}, num_classes=5)
    dataset = build_dataset("nyud", root, "train", ["semseg"], train=False, size=8, num_classes=5)
    assert int(dataset[0]["semseg"][dataset[0]["semseg"] != 255].max()) <= 4
    with pytest.raises(DataFileError, match=r"segmentation/a\.png.*num_classes=4"):
        NYUD(root, "train", ["semseg"], num_classes=4)[0]


def test_missing_root_split_and_files_name_the_path(nyud, tmp_path):
    root, _ = nyud
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere"))):
        NYUD(tmp_path / "nowhere", "train", ["semseg"])
    with pytest.raises(FileNotFoundError, match=re.escape(str(root / "gt_sets" / "test.txt"))):
        NYUD(root, "test", ["semseg"])

    (root / "images" / "0002.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(root / "images" / "0002.jpg"))):
        NYUD(root, "train", ["semseg"])
    NYUD(root, "val", ["semseg"])  # other splits are unaffected

    (root / "depth" / "0003.npy").unlink()
    NYUD(root, "val", ["semseg", "normals"])  # depth is not requested
    with pytest.raises(FileNotFoundError, match=re.escape(str(root / "depth" / "0003.npy"))):
        NYUD(root, "val", ["semseg", "depth"])


def test_corrupt_files_are_reported_by_path_when_loaded(nyud):
    root, _ = nyud
    image = root / "images" / "0001.jpg"
    image.write_bytes(image.read_bytes()[:40])  # truncated JPEG
    dataset = NYUD(root, "train", ["depth"])  # construction only checks existence
    with pytest.raises(DataFileError, match=re.escape(str(image))) as error:
        dataset[0]
    assert error.value.path == image and error.value.__cause__ is not None

    # DataLoader workers and pickling re-create an exception from its message alone: it must survive that
    copy = pickle.loads(pickle.dumps(error.value))
    assert type(copy) is DataFileError and str(copy) == str(error.value)

    depth = root / "depth" / "0002.npy"
    depth.write_bytes(b"not a numpy file")
    with pytest.raises(DataFileError, match=re.escape(str(depth))):
        dataset[1]

    normals = root / "normals" / "0003.npy"
    np.save(normals, np.zeros((4, 4), np.float32))  # readable, but not (H, W, 3)
    with pytest.raises(DataFileError, match=re.escape(f"{normals}: normals must be (H, W, 3)")):
        NYUD(root, "val", ["normals"])[0]

    edge = root / "edge" / "0003.npy"
    np.save(edge, np.full(fixtures.NYUD_SIZE, 0.5, np.float32))  # readable, but not a boundary map
    with pytest.raises(DataFileError, match=re.escape(f"{edge}: edge must be 0 / 1, got [0.5]")):
        NYUD(root, "val", ["edge"])[0]


def test_label_of_another_size_is_resized_to_the_image(nyud):
    root, _ = nyud
    np.save(root / "depth" / "0003.npy", np.full((6, 8), 2.0, np.float32))
    with pytest.warns(UserWarning, match="0003.npy"):
        depth = NYUD(root, "val", ["depth"])[0]["depth"]
    assert depth.shape == fixtures.NYUD_SIZE and (depth == 2.0).all()


@pytest.mark.parametrize("task", ["human_parts", "sal", "segmentation"])
def test_unsupported_task(nyud, task):
    root, _ = nyud
    with pytest.raises(ValueError, match=rf"'{task}'.*semseg, depth, normals, edge"):
        NYUD(root, "train", ["semseg", task])


def test_bad_task_lists(nyud):
    root, _ = nyud
    for tasks in ("semseg", [], ["depth", "depth"]):
        with pytest.raises(ValueError, match="tasks"):
            NYUD(root, "train", tasks)


def test_build_dataset_rejects_unknown_names(nyud):
    root, _ = nyud
    with pytest.raises(ValueError, match="nyud, pascal_context"):
        build_dataset("cityscapes", root, "train", ["semseg"], train=True, size=32)
