"""Synthetic indoor scenes: determinism, formats, and the geometry that the tasks share (labels, depth, normals, edges).

The geometric tests recompute the camera from the documented NYU intrinsics and conventions (x right, y down,
z forward; depth = z) rather than from the module's private helpers, so a drift between the docstring and the
renderer fails here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from sca_mtl.data import synthetic
from sca_mtl.data.synthetic import CLASSES, render_scene, write_synthetic_nyud

SMALL = (48, 64)
GEOMETRY = (72, 96)  # a little larger, so that floors and ceilings cover enough pixels to measure planes
N_SCENES = 12
LABEL = {name: index + 1 for index, name in enumerate(CLASSES)}
TASK_FOLDERS = {"depth": "depth", "normals": "normals", "edge": "edge"}


def _render(seed: int, index: int, size=SMALL) -> dict:
    return render_scene(np.random.default_rng(np.random.SeedSequence([seed, index])), *size)


@pytest.fixture(scope="module")
def scenes() -> list:
    return [_render(0, i, GEOMETRY) for i in range(N_SCENES)]


def _rays(height: int, width: int) -> np.ndarray:
    """(H, W, 3) camera rays (x, y, 1) from the NYU intrinsics scaled as the module docstring states."""
    sx, sy = width / synthetic.NYU_SIZE[1], height / synthetic.NYU_SIZE[0]
    fx, fy = synthetic.NYU_FX * sx, synthetic.NYU_FY * sy
    cx, cy = (synthetic.NYU_CX + 0.5) * sx - 0.5, (synthetic.NYU_CY + 0.5) * sy - 0.5
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1)


def _points(scene: dict) -> np.ndarray:
    """Back-projected camera-frame points (H, W, 3): depth is the z coordinate."""
    return scene["depth"].astype(np.float64)[..., None] * _rays(*scene["depth"].shape)


def _max_tilt_deg() -> float:
    """Largest angle between the camera's -y axis and the world up vector that the sampled pose allows."""
    pitch = max(abs(a) for a in synthetic.CAMERA_PITCH_RANGE_DEG)
    roll = max(abs(a) for a in synthetic.CAMERA_ROLL_RANGE_DEG)
    return pitch + roll


# --------------------------------------------------------------------------------------------------------------------
# Classes, formats, determinism
# --------------------------------------------------------------------------------------------------------------------


def test_classes_are_at_least_eight_distinct_names():
    assert isinstance(CLASSES, tuple)
    assert len(CLASSES) >= 8
    assert len(set(CLASSES)) == len(CLASSES)
    assert {"wall", "floor", "ceiling"} <= set(CLASSES)


def test_outputs_have_the_documented_dtypes_shapes_and_ranges(scenes):
    height, width = GEOMETRY
    for scene in scenes:
        assert set(scene) == {"image", "semseg", "depth", "normals", "edge"}
        assert scene["image"].dtype == np.uint8 and scene["image"].shape == (height, width, 3)
        assert scene["semseg"].dtype == np.uint8 and scene["semseg"].shape == (height, width)
        assert scene["semseg"].max() <= len(CLASSES)
        assert scene["depth"].dtype == np.float32 and scene["depth"].shape == (height, width)
        assert np.all(np.isfinite(scene["depth"])) and scene["depth"].min() >= 0
        assert scene["normals"].dtype == np.float32 and scene["normals"].shape == (height, width, 3)
        assert np.all(np.isfinite(scene["normals"]))
        assert scene["edge"].dtype == np.float32 and scene["edge"].shape == (height, width)
        assert set(np.unique(scene["edge"])) <= {0.0, 1.0}
        assert scene["image"].std() > 5, "the image should not be flat"


def test_odd_sizes_render():
    scene = _render(3, 0, (7, 13))
    assert scene["image"].shape == (7, 13, 3) and scene["depth"].shape == (7, 13)


@pytest.mark.parametrize("height, width", [(0, 64), (48, -1), (48.0, 64), (True, 64)])
def test_render_scene_rejects_bad_sizes(height, width):
    with pytest.raises(ValueError, match="height|width"):
        render_scene(np.random.default_rng(0), height, width)


def test_same_seed_and_index_give_identical_arrays():
    first, second = _render(7, 3), _render(7, 3)
    for key in first:
        assert np.array_equal(first[key], second[key]), key


def test_different_seeds_or_indices_give_different_scenes():
    base = _render(0, 0)
    for other in (_render(1, 0), _render(0, 1)):
        assert not np.array_equal(base["image"], other["image"])
        assert not np.array_equal(base["depth"], other["depth"])


# --------------------------------------------------------------------------------------------------------------------
# Depth and normals
# --------------------------------------------------------------------------------------------------------------------


def test_normals_are_unit_where_depth_is_valid_and_zero_where_invalid(scenes):
    invalid_fractions = []
    for scene in scenes:
        valid = scene["depth"] > 0
        norms = np.linalg.norm(scene["normals"], axis=-1)
        np.testing.assert_allclose(norms[valid], 1.0, atol=1e-5)
        assert np.all(scene["normals"][~valid] == 0)
        invalid_fractions.append(1 - valid.mean())
    # The ignore path must be exercised, but only for a small realistic fraction of the pixels.
    assert max(invalid_fractions) > 0
    assert np.mean(invalid_fractions) < 0.05


def test_depth_is_positive_and_within_the_room_where_valid(scenes):
    room_diagonal = math.hypot(
        synthetic.ROOM_SIZE_RANGE_M[1], synthetic.ROOM_SIZE_RANGE_M[1], synthetic.ROOM_HEIGHT_RANGE_M[1]
    )
    for scene in scenes:
        valid = scene["depth"][scene["depth"] > 0]
        assert valid.min() > 0.05
        assert valid.max() <= min(room_diagonal, synthetic.MAX_VALID_DEPTH_M)


def test_normals_face_the_camera(scenes):
    for scene in scenes:
        valid = scene["depth"] > 0
        facing = np.einsum("hwc,hwc->hw", scene["normals"].astype(np.float64), _rays(*scene["depth"].shape))
        assert np.all(facing[valid] < 0)


def test_floor_normals_point_up_and_ceiling_normals_down(scenes):
    cos_tilt = math.cos(math.radians(_max_tilt_deg()))
    seen = {"floor": 0, "ceiling": 0}
    for scene in scenes:
        valid = scene["depth"] > 0
        for name, sign in (("floor", -1.0), ("ceiling", 1.0)):
            mask = valid & (scene["semseg"] == LABEL[name])
            if mask.sum() < 10:
                continue
            seen[name] += 1
            n = scene["normals"][mask].astype(np.float64)
            # Up is -y in the camera frame (y points down); the floor's normal is "up", the ceiling's "down".
            assert np.all(sign * n[:, 1] >= cos_tilt - 1e-6), name
            # A plane has one normal: every floor (ceiling) pixel agrees with the first.
            np.testing.assert_allclose(n, np.broadcast_to(n[0], n.shape), atol=1e-5)
    assert seen["floor"] >= N_SCENES // 2 and seen["ceiling"] >= 2, f"too few scenes to test: {seen}"


def test_floor_and_ceiling_depth_are_consistent_with_camera_and_room_height(scenes):
    checked = 0
    for scene in scenes:
        valid = scene["depth"] > 0
        points = _points(scene)
        heights = {}
        for name in ("floor", "ceiling"):
            mask = valid & (scene["semseg"] == LABEL[name])
            if mask.sum() < 10:
                continue
            # Distance from the camera centre to the plane through the back-projected pixel with the given normal.
            distance = -np.einsum("ij,ij->i", points[mask], scene["normals"][mask].astype(np.float64))
            np.testing.assert_allclose(distance, np.median(distance), atol=1e-4, err_msg=name)
            heights[name] = float(np.median(distance))
        if "floor" in heights:
            low, high = synthetic.CAMERA_HEIGHT_RANGE_M
            assert low - 1e-4 <= heights["floor"] <= high + 1e-4
            checked += 1
        if len(heights) == 2:
            low, high = synthetic.ROOM_HEIGHT_RANGE_M
            assert low - 1e-4 <= heights["floor"] + heights["ceiling"] <= high + 1e-4
    assert checked >= N_SCENES // 2


def test_normals_agree_with_the_depth_gradient_on_planar_patches(scenes):
    cos_one_degree = math.cos(math.radians(1.0))
    checked = 0
    for scene in scenes:
        points, normals, labels = _points(scene), scene["normals"].astype(np.float64), scene["semseg"]
        valid, edge = scene["depth"] > 0, scene["edge"] > 0
        centre = (slice(1, -1), slice(1, -1))
        neighbours = [
            (slice(1, -1), slice(2, None)),
            (slice(1, -1), slice(None, -2)),
            (slice(2, None), slice(1, -1)),
            (slice(None, -2), slice(1, -1)),
        ]
        # Planar patch: the pixel and its 4 neighbours are valid, off edges, share the label and have one normal.
        planar = valid[centre] & ~edge[centre]
        for nb in neighbours:
            planar &= valid[nb] & ~edge[nb] & (labels[nb] == labels[centre])
            planar &= np.abs(normals[nb] - normals[centre]).max(axis=-1) < 1e-6
        # The normal of the surface through the back-projected neighbours (central differences of the depth map).
        du = points[neighbours[0]] - points[neighbours[1]]
        dv = points[neighbours[2]] - points[neighbours[3]]
        estimate = np.cross(du, dv)
        estimate /= np.linalg.norm(estimate, axis=-1, keepdims=True) + 1e-12
        agreement = np.abs(np.einsum("hwc,hwc->hw", estimate, normals[centre]))[planar]
        assert agreement.size > 100
        # Two parallel faces of one object (a table top and its inset leg) can sit a small, sub-edge step apart;
        # those rare patches aside, the normals are the depth map's own.
        assert np.mean(agreement > cos_one_degree) > 0.98
        assert np.median(agreement) > math.cos(math.radians(0.1))
        checked += agreement.size
    assert checked > 1000


# --------------------------------------------------------------------------------------------------------------------
# Semantics and edges
# --------------------------------------------------------------------------------------------------------------------


def test_several_classes_appear_and_every_room_has_walls(scenes):
    present = set()
    for scene in scenes:
        labels = set(np.unique(scene["semseg"]).tolist())
        assert LABEL["wall"] in labels
        present |= labels - {synthetic.UNLABELED}
    assert len(present) >= 6, sorted(CLASSES[k - 1] for k in present)
    furniture = present - {LABEL["wall"], LABEL["floor"], LABEL["ceiling"]}
    assert len(furniture) >= 3


def _pairs(array: np.ndarray):
    """Horizontally and vertically adjacent slices (first, second) of a 2D array."""
    return [(array[:, :-1], array[:, 1:]), (array[:-1, :], array[1:, :])]


def test_edges_mark_every_label_change(scenes):
    for scene in scenes:
        edge = scene["edge"] > 0
        for (l1, l2), (e1, e2) in zip(_pairs(scene["semseg"]), _pairs(edge)):
            change = l1 != l2
            assert change.any()
            assert np.all(e1[change] | e2[change])


def test_edges_mark_large_depth_jumps_on_the_nearer_pixel_even_within_one_class(scenes):
    # Between two valid pixels, a 20% depth jump cannot come from one surface, nor from a crease between two
    # (valid surfaces are seen at most ~84 degrees off their normal, which bounds the per-pixel change at this size).
    same_label_jumps = 0
    for scene in scenes:
        depth, edge = scene["depth"].astype(np.float64), scene["edge"] > 0
        for (d1, d2), (l1, l2), (e1, e2) in zip(_pairs(depth), _pairs(scene["semseg"]), _pairs(edge)):
            jump = (d1 > 0) & (d2 > 0) & (np.abs(d1 - d2) > 0.2 * np.minimum(d1, d2))
            # The occluding (nearer) pixel owns the contour.
            assert np.all(np.where(d1 < d2, e1, e2)[jump])
            same_label_jumps += int((jump & (l1 == l2)).sum())
    assert same_label_jumps > 0, "no occlusion inside one class in these scenes: the depth criterion went untested"


def test_edges_lie_on_discontinuities_and_are_one_pixel_thin(scenes):
    threshold = synthetic.DEPTH_EDGE_REL_JUMP
    marked, band = 0, 0
    for scene in scenes:
        edge, labels, depth = scene["edge"] > 0, scene["semseg"], scene["depth"].astype(np.float64)
        justified = np.zeros_like(edge)
        label_side = np.zeros_like(edge)  # pixels with a differently labelled 4-neighbour (both sides of a boundary)
        for axis in (0, 1):
            first = (slice(None, -1), slice(None)) if axis == 0 else (slice(None), slice(None, -1))
            second = (slice(1, None), slice(None)) if axis == 0 else (slice(None), slice(1, None))
            change = labels[first] != labels[second]
            d1, d2 = depth[first], depth[second]
            # Depth holes hide the jump that made an edge, so pairs with an invalid pixel count as justified.
            jump = (d1 == 0) | (d2 == 0) | (np.abs(d1 - d2) > threshold * np.minimum(d1, d2))
            for side in (first, second):
                justified[side] |= change | jump
                label_side[side] |= change
        assert np.all(justified[edge])
        marked += int(edge[label_side].sum())
        band += int(label_side.sum())
        assert edge.mean() < 0.2
    # One-sided marking covers about half of the two-sided boundary band (more only where objects are a pixel or
    # two wide); marking both sides would cover all of it.
    assert marked <= 0.75 * band


def test_image_gradients_concentrate_on_edges(scenes):
    """The appearance shares structure with the labels: colour changes are strongest at object boundaries."""
    on_edge, off_edge = [], []
    for scene in scenes:
        image = scene["image"].astype(np.float64)
        gy = np.abs(np.diff(image, axis=0)).sum(-1)[:, :-1]
        gx = np.abs(np.diff(image, axis=1)).sum(-1)[:-1, :]
        magnitude = gx + gy
        edge = scene["edge"][:-1, :-1] > 0
        on_edge.append(magnitude[edge])
        off_edge.append(magnitude[~edge])
    assert np.concatenate(on_edge).mean() > 2.0 * np.concatenate(off_edge).mean()


def test_unlabeled_pixels_use_zero_and_only_whole_objects(monkeypatch):
    # Force every movable object to be unlabeled: 0 must then appear, and only on those objects.
    monkeypatch.setattr(synthetic, "UNLABELED_OBJECT_PROB", 1.0)
    found = False
    for index in range(8):
        scene = _render(0, index, GEOMETRY)
        unlabeled = scene["semseg"] == synthetic.UNLABELED
        found |= bool(unlabeled.any())
        assert not np.any(np.isin(scene["semseg"], [LABEL["ball"], LABEL["stool"]]))
    assert found


# --------------------------------------------------------------------------------------------------------------------
# The NYUD_MT layout on disk
# --------------------------------------------------------------------------------------------------------------------


def _read_split(root, name: str) -> list:
    return (root / "gt_sets" / f"{name}.txt").read_text().split()


def test_write_synthetic_nyud_layout(tmp_path):
    n, size = 5, (240, 320)
    root = write_synthetic_nyud(tmp_path / "synthetic", n, size=size, seed=3, progress=False)
    assert root == tmp_path / "synthetic"
    train, val = _read_split(root, "train"), _read_split(root, "val")
    assert len(val) == round(n * 0.2) and len(train) == n - len(val)
    assert not set(train) & set(val)
    ids = sorted(train + val)
    assert ids == [f"synthetic_{i:06d}" for i in range(n)]
    for image_id in ids:
        with Image.open(root / "images" / f"{image_id}.jpg") as image:
            assert image.format == "JPEG" and image.mode == "RGB" and image.size == (size[1], size[0])
        with Image.open(root / "segmentation" / f"{image_id}.png") as seg:
            assert seg.format == "PNG" and seg.mode == "L"
            labels = np.asarray(seg)
        assert labels.shape == size and labels.max() <= len(CLASSES)
        depth = np.load(root / "depth" / f"{image_id}.npy")
        normals = np.load(root / "normals" / f"{image_id}.npy")
        edge = np.load(root / "edge" / f"{image_id}.npy")
        assert depth.shape == size and depth.dtype == np.float32
        assert normals.shape == (*size, 3) and normals.dtype == np.float32
        assert edge.shape == size and set(np.unique(edge)) <= {0.0, 1.0}
    # No temporary files left behind by the atomic writes.
    leftovers = [p.name for p in root.rglob("*") if p.is_file() and ".tmp" in p.name]
    assert leftovers == []


def test_written_files_equal_render_scene_and_do_not_depend_on_n(tmp_path):
    few = write_synthetic_nyud(tmp_path / "few", 2, size=SMALL, seed=11, progress=False)
    many = write_synthetic_nyud(tmp_path / "many", 4, size=SMALL, seed=11, progress=False)
    for index in range(2):
        image_id = f"synthetic_{index:06d}"
        expected = _render(11, index)
        for root in (few, many):
            with Image.open(root / "segmentation" / f"{image_id}.png") as seg:
                assert np.array_equal(np.asarray(seg), expected["semseg"])
            for task, folder in TASK_FOLDERS.items():
                assert np.array_equal(np.load(root / folder / f"{image_id}.npy"), expected[task]), task
        # Same pixels, same encoder settings: the JPEG files are byte-identical.
        jpg = f"images/{image_id}.jpg"
        assert (few / jpg).read_bytes() == (many / jpg).read_bytes()
        with Image.open(few / jpg) as image:  # lossy, but close to the rendered image
            assert np.abs(np.asarray(image, dtype=np.float64) - expected["image"]).mean() < 8


@pytest.mark.parametrize(
    "n, val_fraction, expected_val",
    [(1, 0.0, 0), (2, 0.0, 1), (3, 0.9, 2), (10, 0.2, 2), (10, 0.5, 5)],
)
def test_split_sizes(tmp_path, n, val_fraction, expected_val):
    root = write_synthetic_nyud(tmp_path, n, size=(8, 8), val_fraction=val_fraction, progress=False)
    train, val = _read_split(root, "train"), _read_split(root, "val")
    assert len(val) == expected_val and len(train) == n - expected_val
    assert sorted(train + val) == [f"synthetic_{i:06d}" for i in range(n)]


def test_a_finished_set_is_not_rewritten(tmp_path):
    write_synthetic_nyud(tmp_path, 3, size=(8, 8), seed=0, progress=False)
    files = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    with pytest.raises(ValueError, match="already holds a dataset"):
        write_synthetic_nyud(tmp_path, 4, size=(8, 8), seed=1, progress=False)
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == files


def test_an_interrupted_set_is_overwritten(tmp_path):
    write_synthetic_nyud(tmp_path, 3, size=(8, 8), seed=0, progress=False)
    before = np.load(tmp_path / "depth" / "synthetic_000000.npy")
    for split in ("train", "val"):  # as a run stopped before its split files
        (tmp_path / "gt_sets" / f"{split}.txt").unlink()
    write_synthetic_nyud(tmp_path, 3, size=(8, 8), seed=1, progress=False)
    assert not np.array_equal(before, np.load(tmp_path / "depth" / "synthetic_000000.npy"))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n": 0}, "n"),
        ({"n": 2.5}, "n"),
        ({"n": 1}, "n must be >= 2 for a validation split"),
        ({"size": (0, 8)}, "size"),
        ({"size": (8,)}, "size"),
        ({"size": (8.0, 8)}, "size"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"val_fraction": -0.1}, "val_fraction"),
        ({"seed": -1}, "seed"),
    ],
)
def test_write_synthetic_nyud_validates_arguments(tmp_path, kwargs, name):
    arguments = {"n": 2, "size": (8, 8), "progress": False, **kwargs}
    with pytest.raises(ValueError, match=name):
        write_synthetic_nyud(tmp_path / "out", **arguments)
    assert not (tmp_path / "out").exists(), "validation must happen before anything is written"
