"""The PASCAL_MT reader on tiny folders in the real on-disk format: semseg without offset, human parts from the
PASCAL-Part .mat structs, normals masked by the PASCAL-Context LabelMap, binarised saliency, and error reporting."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.io
import torch

from sca_mtl.data import DataFileError, build_dataset
from sca_mtl.data.pascal_context import PASCALContext, normals_valid_classes
from tests.sca_mtl.data import fixtures
from tests.sca_mtl.data.fixtures import PartObject

ALL_TASKS = ("semseg", "human_parts", "normals", "sal")
WITH_PERSON, WITHOUT_PERSON = "2008_000001", "2008_000002"

# MODEL_SPEC.md 8: 1 head (hair, head, ears, eyebrows, eyes, nose, mouth), 2 torso (torso, neck), 3 upper arms,
# 4 lower arms + hands, 5 upper legs, 6 lower legs + feet; written out per PASCAL-Part part name
PART_CLASS = {
    "hair": 1, "head": 1, "lear": 1, "rear": 1, "lebrow": 1, "rebrow": 1, "leye": 1, "reye": 1, "nose": 1, "mouth": 1,
    "torso": 2, "neck": 2,
    "luarm": 3, "ruarm": 3,
    "llarm": 4, "rlarm": 4, "lhand": 4, "rhand": 4,
    "luleg": 5, "ruleg": 5,
    "llleg": 6, "rlleg": 6, "lfoot": 6, "rfoot": 6,
}  # fmt: skip


@pytest.fixture
def pascal(tmp_path):
    root = tmp_path / "PASCAL_MT"
    return root, fixtures.write_pascal(root)


def test_sample_format_semseg_normals_and_saliency(pascal):
    root, written = pascal
    dataset = PASCALContext(root, "train", ALL_TASKS)
    assert len(dataset) == 2
    sample = dataset[0]
    truth = written[WITH_PERSON]
    h, w = fixtures.PASCAL_SIZE

    assert set(sample) == {"image", *ALL_TASKS, "meta"}
    assert sample["meta"] == {"id": WITH_PERSON, "image_size": (h, w)}
    np.testing.assert_array_equal(sample["image"], fixtures.read_jpeg(root / "JPEGImages" / f"{WITH_PERSON}.jpg"))
    assert sample["image"].dtype == np.float32

    # semseg: no offset, 0 = background is a class, 255 stays ignore
    assert sample["semseg"].dtype == np.uint8
    np.testing.assert_array_equal(sample["semseg"], truth["semseg"])
    assert (sample["semseg"][0] == 255).all()

    # normals: 2 v / 255 - 1 where the LabelMap class is an NYU class (wall) or tvmonitor, 0 elsewhere (sky)
    decoded = 2 * truth["normals_png"].astype(np.float32) / 255 - 1
    keep = np.isin(truth["label_map"], [fixtures.WALL, fixtures.TVMONITOR])
    assert sample["normals"].dtype == np.float32 and sample["normals"].shape == (h, w, 3)
    np.testing.assert_allclose(sample["normals"][keep], decoded[keep], atol=1e-6)
    assert not sample["normals"][~keep].any() and (truth["label_map"] == fixtures.SKY).any()

    # saliency: 1 where v / 255 > 0.5, i.e. v >= 128
    assert sample["sal"].dtype == np.float32
    np.testing.assert_array_equal(sample["sal"], (truth["sal_png"] >= 128).astype(np.float32))


def test_saliency_threshold_is_strict_at_one_half(tmp_path):
    root = tmp_path / "PASCAL_MT"
    fixtures.write_pascal(root, {"val": ["a"]})
    fixtures.write_png(root / "sal_distill" / "a.png", np.tile(np.array([127, 128], np.uint8), (14, 5)))
    sal = PASCALContext(root, "val", ["sal"])[0]["sal"]
    np.testing.assert_array_equal(sal[:, 0::2], 0.0)
    np.testing.assert_array_equal(sal[:, 1::2], 1.0)


def test_normals_classes_are_the_nyu_classes_plus_tvmonitor():
    valid = set(normals_valid_classes().tolist())
    # context_classes.json ids: wall, floor, chair, table, tvmonitor kept; sky, grass, aeroplane, 'unknown' not
    assert {440, 158, 72, 397, 427} <= valid
    assert not {360, 187, 2, 431} & valid
    assert len(valid) == 170  # 169 class names shared with NYU (without 'unknown') + tvmonitor


def test_human_parts_of_a_person_and_other_objects_ignored(pascal):
    root, _ = pascal
    parts = PASCALContext(root, "train", ["human_parts"])
    sample = parts[0]
    _, masks = fixtures.person_with_parts(fixtures.PASCAL_SIZE)
    expected = np.zeros(fixtures.PASCAL_SIZE, np.uint8)
    for name, mask in masks.items():
        expected[mask] = PART_CLASS[name]
    assert sample["human_parts"].dtype == np.uint8
    np.testing.assert_array_equal(sample["human_parts"], expected)  # the dog's head (rows 0-1) stays background
    assert set(np.unique(expected)) == set(range(7))


def test_every_person_part_name_maps_to_its_class(tmp_path):
    root = tmp_path / "PASCAL_MT"
    fixtures.write_pascal(root, {"val": ["a"]}, persons=())
    size = (len(PART_CLASS), 3)
    masks = {}
    for row, name in enumerate(PART_CLASS):
        masks[name] = np.zeros(size, bool)
        masks[name][row] = True
    body = np.ones(size, bool)
    fixtures.write_human_parts_mat(root / "human_parts" / "a.mat", "a", [PartObject("person", 15, body, masks)])
    fixtures.write_jpeg(root / "JPEGImages" / "a.jpg", np.zeros((*size, 3), np.uint8))
    target = PASCALContext(root, "val", ["human_parts"])[0]["human_parts"]
    np.testing.assert_array_equal(target[:, 0], list(PART_CLASS.values()))


def test_images_without_a_person_get_an_all_ignore_target(pascal):
    root, _ = pascal
    raw = PASCALContext(root, "train", ALL_TASKS)[1]["human_parts"]
    assert raw.shape == fixtures.PASCAL_SIZE and not raw.any()  # the released code's zeros, before the pipeline
    for train in (False, True):
        dataset = build_dataset("pascal_context", root, "train", ALL_TASKS, train=train, size=(16, 16))
        assert (dataset[1]["human_parts"] == 255).all()
        with_person = dataset[0]["human_parts"]
        assert with_person.dtype == torch.int64 and set(with_person.unique().tolist()) <= {*range(7), 255}


def test_a_person_without_part_annotation_is_ignored_too(tmp_path):
    root = tmp_path / "PASCAL_MT"
    fixtures.write_pascal(root, {"val": ["a"]}, persons=())
    body = np.ones(fixtures.PASCAL_SIZE, bool)
    fixtures.write_human_parts_mat(root / "human_parts" / "a.mat", "a", [PartObject("person", 15, body)])
    sample = build_dataset("pascal_context", root, "val", ["semseg", "human_parts"], train=False, size=8)[0]
    assert (sample["human_parts"] == 255).all()


def test_human_parts_alone_keeps_only_images_with_a_person(pascal):
    root, _ = pascal
    assert PASCALContext(root, "train", ["human_parts"]).ids == [WITH_PERSON]
    assert PASCALContext(root, "train", ["semseg", "human_parts"]).ids == [WITH_PERSON, WITHOUT_PERSON]
    with pytest.raises(ValueError, match="contains a person"):
        PASCALContext(root, "val", ["human_parts"])


def test_reading_writes_nothing_into_the_dataset(pascal):
    root, _ = pascal

    def snapshot() -> dict:
        return {path: path.stat().st_mtime_ns for path in root.rglob("*")}

    before = snapshot()
    for tasks in (ALL_TASKS, ["human_parts"]):
        dataset = PASCALContext(root, "train", tasks)
        [dataset[i] for i in range(len(dataset))]
    assert snapshot() == before


def test_semseg_prefers_voc12_then_pascal_context(pascal):
    root, written = pascal
    voc = np.full(fixtures.PASCAL_SIZE, 7, np.uint8)
    fixtures.write_png(root / "semseg" / "VOC12" / f"{WITH_PERSON}.png", voc)
    dataset = PASCALContext(root, "train", ["semseg"])
    np.testing.assert_array_equal(dataset[0]["semseg"], voc)
    np.testing.assert_array_equal(dataset[1]["semseg"], written[WITHOUT_PERSON]["semseg"])

    for folder in ("VOC12", "pascal-context"):
        (root / "semseg" / folder / f"{WITH_PERSON}.png").unlink()
    candidates = [root / "semseg" / folder / f"{WITH_PERSON}.png" for folder in ("VOC12", "pascal-context")]
    with pytest.raises(FileNotFoundError, match=re.escape(f"{candidates[0]} nor {candidates[1]}")):
        PASCALContext(root, "train", ["semseg"])


@pytest.mark.parametrize(
    "task, missing",
    [
        ("semseg", "JPEGImages/2008_000003.jpg"),
        ("human_parts", "human_parts/2008_000003.mat"),
        ("normals", "normals_distill/2008_000003.png"),
        ("normals", "pascal-context/trainval/2008_000003.mat"),
        ("sal", "sal_distill/2008_000003.png"),
    ],
)
def test_missing_files_name_the_path(pascal, task, missing):
    root, _ = pascal
    (root / missing).unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(root / missing))):
        PASCALContext(root, "val", [task])


def test_missing_root_and_split_name_the_path(pascal, tmp_path):
    root, _ = pascal
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere"))):
        PASCALContext(tmp_path / "nowhere", "val", ["semseg"])
    with pytest.raises(FileNotFoundError, match=re.escape(str(root / "ImageSets" / "Context" / "test.txt"))):
        PASCALContext(root, "test", ["semseg"])


def test_broken_files_are_reported_by_path_when_loaded(pascal):
    root, _ = pascal
    mat = root / "human_parts" / f"{WITHOUT_PERSON}.mat"
    mat.write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    dataset = PASCALContext(root, "train", ["semseg", "human_parts"])
    with pytest.raises(DataFileError, match=re.escape(str(mat))) as error:
        dataset[1]
    assert error.value.__cause__ is not None

    label_map = root / "pascal-context" / "trainval" / f"{WITH_PERSON}.mat"
    scipy.io.savemat(label_map, {"Labels": np.zeros((2, 2))})
    with pytest.raises(DataFileError, match=re.escape(f"{label_map}: PASCAL-Context label map has no variable")):
        PASCALContext(root, "train", ["normals"])[0]

    image = root / "JPEGImages" / f"{WITH_PERSON}.jpg"
    image.write_text("not a jpeg")
    with pytest.raises(DataFileError, match=re.escape(str(image))):
        dataset[0]


def test_unknown_part_name_and_bad_semseg_values_are_reported(pascal):
    root, _ = pascal
    mat = root / "human_parts" / f"{WITH_PERSON}.mat"
    body = np.ones(fixtures.PASCAL_SIZE, bool)
    fixtures.write_human_parts_mat(mat, WITH_PERSON, [PartObject("person", 15, body, {"tail": body})])
    with pytest.raises(DataFileError, match=re.escape(f"{mat}: unknown person part 'tail'")):
        PASCALContext(root, "train", ["human_parts"])[0]

    png = root / "semseg" / "pascal-context" / f"{WITH_PERSON}.png"
    fixtures.write_png(png, np.full(fixtures.PASCAL_SIZE, 21, np.uint8))
    with pytest.raises(DataFileError, match=re.escape(str(png))):
        PASCALContext(root, "train", ["semseg"])[0]


def test_edges_are_the_thinned_label_map_laplacian(pascal):
    """The fixture's LabelMap: wall on the left half, sky on the right, a tvmonitor strip along the bottom right. The
    Laplacian marks both pixels of every label change; thinning keeps one line of them."""
    root, written = pascal
    edge = PASCALContext(root, "train", ["edge"])[0]["edge"]
    label_map = written[PASCALContext(root, "train", ["edge"]).ids[0]]["label_map"]
    h, w = label_map.shape
    assert edge.dtype == np.float32 and set(np.unique(edge)) == {0.0, 1.0}
    changes = np.zeros((h, w), bool)  # pixels with a 4-neighbour of another label: the band thinning starts from
    changes[:, 1:] |= label_map[:, 1:] != label_map[:, :-1]
    changes[:, :-1] |= label_map[:, 1:] != label_map[:, :-1]
    changes[1:] |= label_map[1:] != label_map[:-1]
    changes[:-1] |= label_map[1:] != label_map[:-1]
    assert (edge <= changes).all()
    # one pixel per row along the vertical wall | sky boundary, above the strip (but the top row: thinning takes a
    # pixel off the end of a line)
    assert (edge[1 : h - 4, w // 2 - 1 : w // 2 + 1].sum(axis=1) == 1).all()


def test_depth_is_not_supported(pascal):
    root, _ = pascal
    with pytest.raises(ValueError, match="'depth'.*semseg, human_parts, normals, sal, edge"):
        PASCALContext(root, "train", ["depth"])


def test_build_dataset_fixes_the_number_of_classes(pascal):
    root, _ = pascal
    assert build_dataset("pascal_context", root, "val", ["semseg"], train=False, size=8, num_classes=21)
    with pytest.raises(ValueError, match="21 semseg classes"):
        build_dataset("pascal_context", root, "val", ["semseg"], train=False, size=8, num_classes=40)
