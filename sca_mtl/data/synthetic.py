"""Procedurally generated indoor scenes, ray-cast in vectorised numpy, with exact dense labels for every task.

Each scene is a closed box-shaped room (floor, ceiling, four walls) holding furniture-like primitives: boxes
rotated about the vertical axis and resting on the floor (cabinets, beds, tables made of a top and four legs),
thin boxes hanging on the walls (pictures), spheres (balls, on the floor or on a table/cabinet/bed top) and
vertical capped cylinders (floor-to-ceiling pillars, stools).  Every surface gets a random colour pair and a
random procedural texture (flat, stripes, checks, value-noise fBm, wood-like grain), and the scene is lit by a
hemispherical ambient term plus one or two point or directional lights with Lambertian shading (no shadows).
The appearance therefore follows the geometry (shading from the normals, texture scale from the distance,
colour changes at object boundaries) without being a fixed function of it (colours/textures are random per object).

Conventions
-----------
- World frame: x, y horizontal, z up; the room is [0, Lx] x [0, Ly] x [0, Lz], floor at z = 0.
- Camera frame (OpenCV): x right, y down, z forward.  A pinhole camera with the NYU-v2 Kinect intrinsics
  (fx=518.86, fy=519.47, cx=325.58, cy=253.74 at 480 x 640) scaled to the requested size
  (fx' = fx * W / 640, cx' = (cx + 0.5) * W / 640 - 0.5, likewise in y; pixel centres at integer coordinates).
  The camera sits 1.0-1.8 m above the floor, looks roughly horizontally (random yaw, pitch in [-20, 5] degrees,
  positive = looking up, roll in [-4, 4] degrees).  The ray of pixel (v, u) is d = R ((u - cx) / fx, (v - cy) / fy, 1),
  so its ray parameter t at a hit is exactly the z-depth along the optical axis.
- `depth`: float32 (H, W), metric z-depth (not the ray length, as a Kinect measures it); 0 = invalid.
- `normals`: float32 (H, W, 3), unit surface normals in the camera frame, facing the camera (n . ray < 0);
  a floor seen by a level camera has n ~ (0, -1, 0).  Zero vectors exactly where depth is invalid.
- `semseg`: uint8 (H, W), NYUD_MT convention: 0 = unlabeled, 1..K = `CLASSES[label - 1]`.  A small fraction of
  movable objects is left unlabeled, as NYU annotators leave clutter unlabeled.
- `edge`: float32 (H, W) in {0, 1}: 1 on semantic-label discontinuities and on depth discontinuities: two
  4-neighbours on different surfaces whose depths jump by more than `DEPTH_EDGE_REL_JUMP` of the nearer depth beyond
  what the surfaces' own slopes explain (inverse depth is affine in the pixel on a plane), so a steep crease such as
  a room corner is not an edge but an occluding contour is.  Of each pair of 4-neighbours across a discontinuity
  only the nearer pixel is marked, so edges are one pixel thick.  Edges come from the clean geometry, before the
  depth holes below.
- Invalid depth (like a Kinect): surfaces seen more obliquely than `MIN_VALID_COS_INCIDENCE`, farther than
  `MAX_VALID_DEPTH_M`, a thin band left of foreground objects (the IR projector's shadow) and a few small
  blob-shaped dropouts.  Image and labels stay defined there.

Determinism: `render_scene` draws everything from the generator it is given; `write_synthetic_nyud` gives image i
the generator `numpy.random.default_rng(numpy.random.SeedSequence([seed, i]))`, so image i depends only on
(seed, i), never on n, the generation order or the process that renders it.
"""

from __future__ import annotations

import colorsys
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image
from tqdm import tqdm

CLASSES: tuple[str, ...] = (
    "wall",
    "floor",
    "ceiling",
    "cabinet",
    "table",
    "bed",
    "ball",
    "pillar",
    "stool",
    "picture",
)
UNLABELED = 0
_LABEL = {name: index + 1 for index, name in enumerate(CLASSES)}  # NYUD_MT: the loader subtracts 1

# --- camera: the NYU-v2 Kinect colour intrinsics at their native 480 x 640 ---
NYU_SIZE = (480, 640)
NYU_FX, NYU_FY, NYU_CX, NYU_CY = 518.86, 519.47, 325.58, 253.74
CAMERA_HEIGHT_RANGE_M = (1.0, 1.8)  # hand-held / tripod Kinect
CAMERA_PITCH_RANGE_DEG = (-20.0, 5.0)  # mostly looking slightly down into the room, as in NYU
CAMERA_ROLL_RANGE_DEG = (-4.0, 4.0)
CAMERA_YAW_JITTER_DEG = 70.0  # yaw = towards the room centre +- this, so views look into the room, not at a wall
CAMERA_WALL_MARGIN_M = 0.4
CAMERA_CLEARANCE_M = 0.6  # no object footprint closer than this to the camera (objects would fill the view)

# --- room and furniture sizes (metres) ---
ROOM_SIZE_RANGE_M = (3.0, 7.0)  # Lx and Ly, drawn independently
ROOM_HEIGHT_RANGE_M = (2.4, 3.2)
OBJECT_COUNT_RANGE = (5, 12)  # furniture-like objects per room (pictures included), inclusive
IN_VIEW_PROB = 0.5  # probability that a free-standing object is placed in front of the camera
IN_VIEW_HALF_ANGLE_DEG = 25.0
IN_VIEW_MEAN_DISTANCE_M = 1.2  # beyond the clearance; exponential
UNLABELED_OBJECT_PROB = 0.05  # a ball or stool is left unlabeled with this probability (NYU-like clutter)
PLACEMENT_TRIES = 30
WALL_GAP_M = 0.01  # furniture pushed against a wall keeps this gap (no coplanar z-fighting)

# --- depth sensor model ---
MIN_VALID_COS_INCIDENCE = 0.1  # the Kinect loses surfaces seen at more than ~84 degrees from their normal
MAX_VALID_DEPTH_M = 10.0
SHADOW_WIDTH_FRAC = 0.006  # projector shadow width as a fraction of the image width (~4 px at 640)
DEPTH_HOLES_MEAN = 1.5  # Poisson mean of small blob-shaped dropouts per image
DEPTH_HOLE_RADIUS_FRAC = (0.01, 0.04)  # of min(H, W)

# --- edges ---
DEPTH_EDGE_REL_JUMP = 0.03  # a depth edge: the depth jumps by this fraction of the nearer depth (see _depth_jumps)

# --- appearance ---
TEXTURES = ("flat", "stripes", "checks", "noise", "grain")
TEXTURE_SCALE_RANGE_M = (0.05, 0.6)
NOISE_LATTICE = 32  # value-noise lattice side (periodic, a power of two); its values are drawn per scene
NOISE_OCTAVES = 3
AMBIENT_RANGE = (0.15, 0.4)
POINT_LIGHT_POWER_RANGE = (2.0, 7.0)  # irradiance = power * cos / distance^2
DIRECTIONAL_LIGHT_RANGE = (0.3, 0.9)
EXPOSURE_PERCENTILE = 97.0  # auto-exposure maps this percentile of the linear luminance to EXPOSURE_TARGET
EXPOSURE_TARGET = 0.8
SENSOR_NOISE_RANGE = (0.5, 2.5)  # Gaussian noise std, in 8-bit levels
GAMMA = 2.2

_EPS = 1e-6  # minimum ray parameter of a hit; also guards divisions by ray components
_JPEG_QUALITY = 95

_PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------------------------------------
# Scene description
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Material:
    colour_a: np.ndarray  # (3,) linear RGB albedo where the texture value is 0
    colour_b: np.ndarray  # (3,) where it is 1
    texture: str  # one of TEXTURES
    scale: float  # metres per texture period
    direction: np.ndarray  # (3,) unit vector: stripe / grain direction
    offset: np.ndarray  # (3,) shifts the pattern so texture cells never align with the room's planes


@dataclass(frozen=True)
class _Box:
    centre: np.ndarray  # (3,) world centre
    half: np.ndarray  # (3,) half extents in the box frame
    yaw: float  # rotation about the world z axis, radians
    label: int
    material: _Material

    def _rotation(self) -> np.ndarray:
        """World -> box frame rotation (about z by -yaw)."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])

    def bounds(self) -> tuple[np.ndarray, float]:
        return self.centre, float(np.linalg.norm(self.half))

    def intersect(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        rot = self._rotation()
        o_local = rot @ (origin - self.centre)
        d_local = _safe(_transform(dirs, rot))
        # Slab method, one axis at a time ((N,) arrays are much faster than reductions over a length-3 axis).
        t_near = np.full(len(dirs), -np.inf)
        t_far = np.full(len(dirs), np.inf)
        for axis in range(3):
            t1 = (-self.half[axis] - o_local[axis]) / d_local[:, axis]
            t2 = (self.half[axis] - o_local[axis]) / d_local[:, axis]
            t_near = np.maximum(t_near, np.minimum(t1, t2))
            t_far = np.minimum(t_far, np.maximum(t1, t2))
        return np.where((t_near <= t_far) & (t_near > _EPS), t_near, np.inf)

    def local(self, points: np.ndarray) -> np.ndarray:
        return _transform(points - self.centre, self._rotation())

    def normals(self, points: np.ndarray) -> np.ndarray:
        rot = self._rotation()
        q = _transform(points - self.centre, rot)
        # The face hit is the one whose slab boundary the point lies on: the largest |q| / half.
        axis = np.argmax(np.abs(q) / self.half, axis=1)
        n_local = np.zeros_like(q)
        rows = np.arange(len(q))
        n_local[rows, axis] = np.sign(q[rows, axis])
        return n_local @ rot


@dataclass(frozen=True)
class _Sphere:
    centre: np.ndarray
    radius: float
    label: int
    material: _Material

    def bounds(self) -> tuple[np.ndarray, float]:
        return self.centre, self.radius

    def intersect(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        oc = origin - self.centre
        a = _dot_rows(dirs, dirs)
        b = _dot(dirs, oc)
        disc = b * b - a * (oc @ oc - self.radius**2)
        with np.errstate(invalid="ignore"):
            t = (-b - np.sqrt(disc)) / a  # the camera is outside: the smaller root is the entry
        return np.where((disc >= 0) & (t > _EPS), t, np.inf)

    def local(self, points: np.ndarray) -> np.ndarray:
        return points - self.centre

    def normals(self, points: np.ndarray) -> np.ndarray:
        return (points - self.centre) / self.radius


@dataclass(frozen=True)
class _Cylinder:
    base: np.ndarray  # (3,) centre of the bottom cap
    radius: float
    height: float
    label: int
    material: _Material

    def bounds(self) -> tuple[np.ndarray, float]:
        return self.base + np.array([0.0, 0.0, self.height / 2]), math.hypot(self.radius, self.height / 2)

    def intersect(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        oc = origin - self.base
        dxy = dirs[:, :2]
        a = _safe(dxy[:, 0] * dxy[:, 0] + dxy[:, 1] * dxy[:, 1])
        b = dxy[:, 0] * oc[0] + dxy[:, 1] * oc[1]
        disc = b * b - a * (oc[:2] @ oc[:2] - self.radius**2)
        with np.errstate(invalid="ignore"):
            t_side = (-b - np.sqrt(disc)) / a
        z_side = oc[2] + t_side * dirs[:, 2]
        side_ok = (disc >= 0) & (t_side > _EPS) & (z_side >= 0) & (z_side <= self.height)
        best = np.where(side_ok, t_side, np.inf)
        dz = _safe(dirs[:, 2])
        for cap_z in (0.0, self.height):
            t_cap = (cap_z - oc[2]) / dz
            x, y = oc[0] + t_cap * dxy[:, 0], oc[1] + t_cap * dxy[:, 1]
            cap_ok = (t_cap > _EPS) & (x * x + y * y <= self.radius**2)
            best = np.minimum(best, np.where(cap_ok, t_cap, np.inf))
        return best

    def local(self, points: np.ndarray) -> np.ndarray:
        return points - self.base

    def normals(self, points: np.ndarray) -> np.ndarray:
        q = points - self.base
        rho = np.hypot(q[:, 0], q[:, 1])
        # Nearest of the three surfaces (side, bottom cap, top cap) is the one the hit lies on.
        dist = np.stack([np.abs(rho - self.radius), np.abs(q[:, 2]), np.abs(q[:, 2] - self.height)], axis=1)
        which = np.argmin(dist, axis=1)
        n = np.zeros_like(q)
        radial = q[:, :2] / np.maximum(rho, _EPS)[:, None]
        n[which == 0, :2] = radial[which == 0]
        n[which == 1, 2] = -1.0
        n[which == 2, 2] = 1.0
        return n


_Primitive = _Box | _Sphere | _Cylinder


@dataclass(frozen=True)
class _Light:
    kind: str  # "point" or "directional"
    vector: np.ndarray  # point: world position; directional: unit direction *towards* the light
    colour: np.ndarray  # (3,) linear RGB power (point) or irradiance (directional)


@dataclass(frozen=True)
class _Scene:
    room: np.ndarray  # (3,) Lx, Ly, Lz
    origin: np.ndarray  # (3,) camera centre in the world
    rotation: np.ndarray  # (3, 3) camera -> world; columns are the camera's x (right), y (down), z (forward)
    room_materials: tuple[_Material, _Material, _Material]  # walls, floor, ceiling
    primitives: tuple[_Primitive, ...]
    ambient: np.ndarray  # (3,) linear RGB
    lights: tuple[_Light, ...]
    lattice: np.ndarray  # (NOISE_LATTICE ** 3,) value-noise lattice


# Room faces are surfaces 0..5 (x = 0, x = Lx, y = 0, y = Ly, floor, ceiling); primitive k is surface 6 + k.
_ROOM_FACES = 6
_ROOM_FACE_LABELS = (_LABEL["wall"],) * 4 + (_LABEL["floor"], _LABEL["ceiling"])
_ROOM_FACE_NORMALS = np.array(  # pointing into the room, i.e. towards the camera
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64
)


def _transform(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Rows of x (N, 3) mapped by matrix (3, 3), i.e. x @ matrix.T.

    The contiguous copy matters: numpy's matmul takes a slow generic loop (~70x slower) for a transposed operand.
    """
    return x @ np.ascontiguousarray(matrix.T)


def _dot(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """x (N, 3) . v (3,) -> (N,), unrolled (faster than matmul/einsum on a length-3 inner axis)."""
    return x[:, 0] * v[0] + x[:, 1] * v[1] + x[:, 2] * v[2]


def _dot_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of a and b (N, 3) -> (N,)."""
    return a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1] + a[:, 2] * b[:, 2]


def _safe(x: np.ndarray) -> np.ndarray:
    """x with entries of magnitude below _EPS**2 moved to +-_EPS**2, so divisions give huge but finite values."""
    tiny = _EPS * _EPS
    return np.where(np.abs(x) < tiny, np.where(x < 0, -tiny, tiny), x)


# --------------------------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------------------------


def _uniform(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _hsv(rng: np.random.Generator, sat: Sequence[float], val: Sequence[float], hue: float | None = None):
    """A linear-RGB albedo from an sRGB colour drawn in HSV (designers pick colours in sRGB, lighting is linear)."""
    h = rng.random() if hue is None else hue % 1.0
    srgb = np.array(colorsys.hsv_to_rgb(h, _uniform(rng, sat), _uniform(rng, val)))
    return srgb**GAMMA


def _sample_material(rng: np.random.Generator, label: int) -> _Material:
    name = CLASSES[label - 1] if label != UNLABELED else "clutter"
    # Class-dependent colour statistics (walls pale, ceilings near white) like real rooms, but random per object,
    # so colour alone never determines the class.
    if name == "wall":
        sat, val, textures = (0.0, 0.35), (0.55, 0.95), ("flat", "flat", "noise", "stripes")
    elif name == "ceiling":
        sat, val, textures = (0.0, 0.1), (0.75, 0.95), ("flat", "noise")
    elif name == "floor":
        sat, val, textures = (0.1, 0.6), (0.25, 0.8), ("grain", "checks", "noise", "flat")
    else:
        sat, val, textures = (0.1, 0.9), (0.2, 0.9), TEXTURES
    hue = rng.random()
    colour_a = _hsv(rng, sat, val, hue)
    # The second colour: a nearby hue (wood, fabric) or, sometimes, a contrasting one (tiles, posters).
    hue_b = hue + (rng.uniform(-0.08, 0.08) if rng.random() < 0.7 else rng.random())
    colour_b = _hsv(rng, sat, val, hue_b)
    direction = rng.normal(size=3)
    return _Material(
        colour_a=colour_a,
        colour_b=colour_b,
        texture=str(rng.choice(textures)),
        scale=math.exp(rng.uniform(*np.log(TEXTURE_SCALE_RANGE_M))),
        direction=direction / np.linalg.norm(direction),
        offset=rng.uniform(0.0, NOISE_LATTICE, size=3),
    )


def _sample_camera(rng: np.random.Generator, room: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera centre and camera -> world rotation (columns: right, down, forward in world coordinates)."""
    xy = rng.uniform(CAMERA_WALL_MARGIN_M, room[:2] - CAMERA_WALL_MARGIN_M)
    origin = np.array([xy[0], xy[1], _uniform(rng, CAMERA_HEIGHT_RANGE_M)])
    to_centre = room[:2] / 2 - xy
    yaw = math.atan2(to_centre[1], to_centre[0]) + math.radians(rng.uniform(-1, 1) * CAMERA_YAW_JITTER_DEG)
    pitch = math.radians(_uniform(rng, CAMERA_PITCH_RANGE_DEG))
    roll = math.radians(_uniform(rng, CAMERA_ROLL_RANGE_DEG))
    forward = np.array([math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch), math.sin(pitch)])
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])  # horizontal: no roll yet
    down = np.cross(forward, right)
    # Roll: rotate right and down about the forward axis.
    c, s = math.cos(roll), math.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    return origin, np.stack([right, down, forward], axis=1)


class _Placer:
    """Rejection-samples non-overlapping circular footprints inside the room, away from the camera."""

    def __init__(self, room: np.ndarray, camera_xy: np.ndarray, camera_yaw: float):
        self.room = room
        self.camera_xy = camera_xy
        self.camera_yaw = camera_yaw
        self.taken: list[tuple[np.ndarray, float]] = [(camera_xy, CAMERA_CLEARANCE_M)]

    def _free_standing_xy(self, rng: np.random.Generator, radius: float) -> np.ndarray:
        if rng.random() < IN_VIEW_PROB:
            # In front of the camera, so that most scenes show several objects rather than bare walls.
            bearing = self.camera_yaw + math.radians(rng.uniform(-1, 1) * IN_VIEW_HALF_ANGLE_DEG)
            distance = CAMERA_CLEARANCE_M + radius + rng.exponential(IN_VIEW_MEAN_DISTANCE_M)
            xy = self.camera_xy + distance * np.array([math.cos(bearing), math.sin(bearing)])
            return np.clip(xy, radius, self.room - radius)
        return rng.uniform(radius, self.room - radius)

    def free(self, xy: np.ndarray, radius: float) -> bool:
        return all(np.linalg.norm(xy - other) >= radius + r for other, r in self.taken)

    def place(self, rng: np.random.Generator, half_w: float, half_d: float, against_wall: bool):
        """((x, y), yaw) for a footprint of half extents (half_w, half_d), or None when no free spot was found."""
        radius = math.hypot(half_w, half_d)
        for _ in range(PLACEMENT_TRIES):
            if against_wall:
                wall = int(rng.integers(4))
                axis = wall // 2  # 0: the wall is x = const, 1: y = const
                along = 1 - axis
                # The box's +y (depth) axis, (-sin yaw, cos yaw) in the world, points at the wall, so that a bed's
                # headboard (at its +y end) stands against it.
                towards = np.zeros(2)
                towards[axis] = -1.0 if wall % 2 == 0 else 1.0
                yaw = math.atan2(-towards[0], towards[1])
                if self.room[along] <= 2 * half_w:
                    continue
                xy = np.empty(2)
                xy[along] = rng.uniform(half_w, self.room[along] - half_w)
                xy[axis] = half_d + WALL_GAP_M if wall % 2 == 0 else self.room[axis] - half_d - WALL_GAP_M
            else:
                if np.any(self.room <= 2 * radius):
                    continue
                xy = self._free_standing_xy(rng, radius)
                yaw = rng.uniform(0, math.pi)
            if self.free(xy, radius):
                self.taken.append((xy, radius))
                return xy, yaw
        return None


def _sample_objects(rng: np.random.Generator, room: np.ndarray, origin: np.ndarray, rotation: np.ndarray):
    """The furniture of one room, as a list of primitives (a table or a bed is several)."""
    forward = rotation[:, 2]
    placer = _Placer(room[:2], origin[:2], math.atan2(forward[1], forward[0]))
    primitives: list[_Primitive] = []
    tops: list[_Box] = []  # horizontal top faces that can carry a ball
    kinds = ("cabinet", "table", "bed", "ball", "pillar", "stool", "picture")
    weights = np.array([4, 2, 1, 3, 1, 2, 2], dtype=np.float64)
    count = int(rng.integers(OBJECT_COUNT_RANGE[0], OBJECT_COUNT_RANGE[1] + 1))
    for kind in rng.choice(kinds, size=count, p=weights / weights.sum()):
        _ADD_OBJECT[str(kind)](rng, room, placer, primitives, tops)
    return primitives


def _add_cabinet(rng, room, placer, primitives, tops) -> None:
    half = np.array([rng.uniform(0.2, 0.9), rng.uniform(0.18, 0.3), rng.uniform(0.25, 1.0)])
    spot = placer.place(rng, half[0], half[1], against_wall=rng.random() < 0.7)
    if spot is None:
        return
    xy, yaw = spot
    material = _sample_material(rng, _LABEL["cabinet"])
    box = _Box(np.array([xy[0], xy[1], half[2]]), half, yaw, _LABEL["cabinet"], material)
    primitives.append(box)
    tops.append(box)


def _add_bed(rng, room, placer, primitives, tops) -> None:
    half = np.array([rng.uniform(0.45, 0.9), rng.uniform(0.7, 1.05), rng.uniform(0.2, 0.3)])
    spot = placer.place(rng, half[0], half[1], against_wall=rng.random() < 0.6)
    if spot is None:
        return
    xy, yaw = spot
    material = _sample_material(rng, _LABEL["bed"])
    mattress = _Box(np.array([xy[0], xy[1], half[2]]), half, yaw, _LABEL["bed"], material)
    primitives.append(mattress)
    tops.append(mattress)
    # A headboard: a thin tall slab across one end of the bed, same material.
    board_half = np.array([half[0], 0.03, rng.uniform(0.4, 0.6)])
    end = half[1] - board_half[1]
    c, s = math.cos(yaw), math.sin(yaw)
    board_xy = xy + end * np.array([-s, c])  # box +y axis in world coordinates
    primitives.append(_Box(np.array([*board_xy, board_half[2]]), board_half, yaw, _LABEL["bed"], material))


def _add_table(rng, room, placer, primitives, tops) -> None:
    half_w, half_d = rng.uniform(0.3, 0.8), rng.uniform(0.25, 0.5)
    spot = placer.place(rng, half_w, half_d, against_wall=False)
    if spot is None:
        return
    xy, yaw = spot
    material = _sample_material(rng, _LABEL["table"])
    height, thick, leg = rng.uniform(0.6, 0.8), rng.uniform(0.025, 0.05), rng.uniform(0.02, 0.035)
    top = _Box(
        np.array([xy[0], xy[1], height - thick / 2]),
        np.array([half_w, half_d, thick / 2]),
        yaw,
        _LABEL["table"],
        material,
    )
    primitives.append(top)
    tops.append(top)
    c, s = math.cos(yaw), math.sin(yaw)
    leg_half = np.array([leg, leg, (height - thick) / 2])
    for sx in (-1, 1):
        for sy in (-1, 1):
            lx, ly = sx * (half_w - 2 * leg), sy * (half_d - 2 * leg)
            leg_xy = xy + np.array([c * lx - s * ly, s * lx + c * ly])
            primitives.append(_Box(np.array([*leg_xy, leg_half[2]]), leg_half, yaw, _LABEL["table"], material))


def _movable_label(rng: np.random.Generator, name: str) -> int:
    return UNLABELED if rng.random() < UNLABELED_OBJECT_PROB else _LABEL[name]


def _add_ball(rng, room, placer, primitives, tops) -> None:
    label = _movable_label(rng, "ball")
    material = _sample_material(rng, label)
    if tops and rng.random() < 0.4:
        support = tops[int(rng.integers(len(tops)))]
        radius = rng.uniform(0.06, min(0.2, *support.half[:2]))
        # A random spot on the support's top face, in its own frame, rotated back to the world.
        local = rng.uniform(-1, 1, size=2) * (support.half[:2] - radius)
        c, s = math.cos(support.yaw), math.sin(support.yaw)
        xy = support.centre[:2] + np.array([c * local[0] - s * local[1], s * local[0] + c * local[1]])
        top_z = support.centre[2] + support.half[2]
        primitives.append(_Sphere(np.array([xy[0], xy[1], top_z + radius]), radius, label, material))
        return
    radius = rng.uniform(0.1, 0.35)
    spot = placer.place(rng, radius / math.sqrt(2), radius / math.sqrt(2), against_wall=False)
    if spot is not None:
        primitives.append(_Sphere(np.array([spot[0][0], spot[0][1], radius]), radius, label, material))


def _add_pillar(rng, room, placer, primitives, tops) -> None:
    radius = rng.uniform(0.1, 0.3)
    spot = placer.place(rng, radius / math.sqrt(2), radius / math.sqrt(2), against_wall=False)
    if spot is not None:
        base = np.array([spot[0][0], spot[0][1], 0.0])
        primitives.append(_Cylinder(base, radius, room[2], _LABEL["pillar"], _sample_material(rng, _LABEL["pillar"])))


def _add_stool(rng, room, placer, primitives, tops) -> None:
    radius, height = rng.uniform(0.15, 0.25), rng.uniform(0.4, 0.75)
    spot = placer.place(rng, radius / math.sqrt(2), radius / math.sqrt(2), against_wall=False)
    if spot is not None:
        label = _movable_label(rng, "stool")
        base = np.array([spot[0][0], spot[0][1], 0.0])
        primitives.append(_Cylinder(base, radius, height, label, _sample_material(rng, label)))


def _add_picture(rng, room, placer, primitives, tops) -> None:
    # Pictures hang on a wall (not on the floor), so they skip the footprint placer.
    half = np.array([rng.uniform(0.15, 0.6), rng.uniform(0.01, 0.025), rng.uniform(0.15, 0.45)])
    wall = int(rng.integers(4))
    axis, along = wall // 2, 1 - wall // 2
    if room[along] <= 2 * half[0] + 0.2:
        return
    centre = np.empty(3)
    centre[along] = rng.uniform(half[0] + 0.1, room[along] - half[0] - 0.1)
    centre[axis] = half[1] if wall % 2 == 0 else room[axis] - half[1]
    centre[2] = min(rng.uniform(1.1, 2.0), room[2] - half[2] - 0.1)
    yaw = math.pi / 2 if axis == 0 else 0.0
    primitives.append(_Box(centre, half, yaw, _LABEL["picture"], _sample_material(rng, _LABEL["picture"])))


_ADD_OBJECT = {
    "cabinet": _add_cabinet,
    "table": _add_table,
    "bed": _add_bed,
    "ball": _add_ball,
    "pillar": _add_pillar,
    "stool": _add_stool,
    "picture": _add_picture,
}


def _sample_lights(rng: np.random.Generator, room: np.ndarray) -> tuple[np.ndarray, tuple[_Light, ...]]:
    def tint() -> np.ndarray:  # warm to cool white
        return np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.15, 0.15) * np.array([1.0, 0.0, -1.0])

    ambient = _uniform(rng, AMBIENT_RANGE) * tint()
    lights = []
    for _ in range(int(rng.integers(1, 3))):
        if rng.random() < 0.7:  # ceiling lamp
            position = np.array([*rng.uniform(0.2 * room[:2], 0.8 * room[:2]), room[2] - rng.uniform(0.1, 0.5)])
            lights.append(_Light("point", position, _uniform(rng, POINT_LIGHT_POWER_RANGE) * tint()))
        else:  # daylight through a window: from above, any azimuth
            azimuth, elevation = rng.uniform(0, 2 * math.pi), rng.uniform(0.3, 1.3)
            towards = np.array(
                [math.cos(azimuth) * math.cos(elevation), math.sin(azimuth) * math.cos(elevation), math.sin(elevation)]
            )
            lights.append(_Light("directional", towards, _uniform(rng, DIRECTIONAL_LIGHT_RANGE) * tint()))
    return ambient, tuple(lights)


def _sample_scene(rng: np.random.Generator) -> _Scene:
    room = np.array(
        [_uniform(rng, ROOM_SIZE_RANGE_M), _uniform(rng, ROOM_SIZE_RANGE_M), _uniform(rng, ROOM_HEIGHT_RANGE_M)]
    )
    origin, rotation = _sample_camera(rng, room)
    room_materials = (
        _sample_material(rng, _LABEL["wall"]),
        _sample_material(rng, _LABEL["floor"]),
        _sample_material(rng, _LABEL["ceiling"]),
    )
    primitives = tuple(_sample_objects(rng, room, origin, rotation))
    ambient, lights = _sample_lights(rng, room)
    lattice = rng.random(NOISE_LATTICE**3)
    return _Scene(room, origin, rotation, room_materials, primitives, ambient, lights, lattice)


# --------------------------------------------------------------------------------------------------------------------
# Ray casting
# --------------------------------------------------------------------------------------------------------------------


def _intrinsics(height: int, width: int) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of the NYU Kinect scaled to height x width (pixel centres at integer coordinates)."""
    sx, sy = width / NYU_SIZE[1], height / NYU_SIZE[0]
    return NYU_FX * sx, NYU_FY * sy, (NYU_CX + 0.5) * sx - 0.5, (NYU_CY + 0.5) * sy - 0.5


def _camera_rays(height: int, width: int) -> np.ndarray:
    """(H * W, 3) camera-frame rays (x, y, 1) of the pixel centres, row-major."""
    fx, fy, cx, cy = _intrinsics(height, width)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1)
    return rays.reshape(-1, 3)


def _cast_room(room: np.ndarray, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exit distance of every ray from the room box (the camera is inside) and the face (0..5) it leaves through."""
    t = np.full(len(dirs), np.inf)
    face = np.zeros(len(dirs), dtype=np.int16)
    for axis in range(3):
        d = _safe(dirs[:, axis])
        # Moving up this axis, the ray leaves through the upper plane (face 2 * axis + 1), else the lower one.
        upward = d > 0
        t_axis = (np.where(upward, room[axis], 0.0) - origin[axis]) / d
        first = t_axis < t
        t = np.where(first, t_axis, t)
        face = np.where(first, 2 * axis + upward, face).astype(np.int16)
    return t, face


_CUBE_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)


def _candidate_rays(scene: _Scene, centre: np.ndarray, radius: float, height: int, width: int) -> np.ndarray:
    """Row-major indices of the pixels whose rays may meet the ball (centre, radius).

    The projection of a convex body lying in front of the camera is contained in the convex hull of the projections
    of the vertices of any polytope around it; with the ball's bounding cube, that is a pixel rectangle.  When the cube
    reaches behind the image plane, every pixel is a candidate.
    """
    cam = (centre + radius * _CUBE_CORNERS - scene.origin) @ scene.rotation
    if np.any(cam[:, 2] <= _EPS):
        return np.arange(height * width)
    fx, fy, cx, cy = _intrinsics(height, width)
    u = fx * cam[:, 0] / cam[:, 2] + cx
    v = fy * cam[:, 1] / cam[:, 2] + cy
    u0, u1 = max(0, math.floor(u.min())), min(width, math.ceil(u.max()) + 1)
    v0, v1 = max(0, math.floor(v.min())), min(height, math.ceil(v.max()) + 1)
    if u0 >= u1 or v0 >= v1:
        return np.empty(0, dtype=np.int64)
    return (np.arange(v0, v1)[:, None] * width + np.arange(u0, u1)).ravel()


def _cast(scene: _Scene, dirs: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit of every ray: ray parameter t (= z-depth) and surface index (see _ROOM_FACES)."""
    t, surface = _cast_room(scene.room, scene.origin, dirs)
    for index, primitive in enumerate(scene.primitives):
        # Cull twice before the exact test: to the image rectangle around the primitive's bounding ball, then to the
        # rays that enter that ball before their current hit.  Most primitives cover a small part of the image.
        centre, radius = primitive.bounds()
        rays = _candidate_rays(scene, centre, radius, height, width)
        d = dirs[rays]
        oc = scene.origin - centre
        d_sq = _dot_rows(d, d)
        b = _dot(d, oc)
        disc = b * b - d_sq * (oc @ oc - radius**2)
        with np.errstate(invalid="ignore"):
            t_enter = (-b - np.sqrt(disc)) / d_sq
        keep = (disc >= 0) & (t_enter < t[rays])
        rays, d = rays[keep], d[keep]
        if len(rays) == 0:
            continue
        t_hit = primitive.intersect(scene.origin, d)
        closer = t_hit < t[rays]
        t[rays[closer]] = t_hit[closer]
        surface[rays[closer]] = _ROOM_FACES + index
    return t, surface


# --------------------------------------------------------------------------------------------------------------------
# Shading
# --------------------------------------------------------------------------------------------------------------------


def _value_noise(p: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Smooth value noise in [0, 1] at points p (M, 3), trilinear with smoothstep weights on a periodic lattice."""
    n = NOISE_LATTICE
    cell = np.floor(p)
    frac = p - cell
    w = frac * frac * (3.0 - 2.0 * frac)
    lo = cell.astype(np.int64) & (n - 1)  # n is a power of two: the mask wraps negative cells too
    hi = (lo + 1) & (n - 1)
    x0, x1 = lo[:, 0] * (n * n), hi[:, 0] * (n * n)
    y0, y1 = lo[:, 1] * n, hi[:, 1] * n
    z0, z1 = lo[:, 2], hi[:, 2]
    wx, wy, wz = w[:, 0], w[:, 1], w[:, 2]

    def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
        return a + t * (b - a)

    def along_z(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return lerp(lattice[x + y + z0], lattice[x + y + z1], wz)

    return lerp(lerp(along_z(x0, y0), along_z(x0, y1), wy), lerp(along_z(x1, y0), along_z(x1, y1), wy), wx)


def _fbm(p: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Fractal sum of NOISE_OCTAVES octaves of value noise, normalised to [0, 1]."""
    total, norm = np.zeros(len(p)), 0.0
    for octave in range(NOISE_OCTAVES):
        amplitude = 0.5**octave
        total += amplitude * _value_noise(p * 2.0**octave, lattice)
        norm += amplitude
    return total / norm


def _texture(material: _Material, local: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Texture value in [0, 1] at surface points given in the object's own frame (M, 3), in metres."""
    p = local / material.scale + material.offset
    kind = material.texture
    if kind == "flat":
        return np.zeros(len(p))
    if kind == "stripes":
        return (np.mod(_dot(p, material.direction), 1.0) < 0.5).astype(np.float64)
    if kind == "checks":
        return np.mod(np.floor(p).sum(axis=1), 2.0)
    if kind == "noise":
        return _fbm(p, lattice)
    if kind == "grain":  # wood-like: stripes along one direction, warped by low-frequency noise
        phase = _dot(p, material.direction) + 2.0 * _fbm(p * 0.25, lattice)
        return 0.5 + 0.5 * np.sin(2 * math.pi * phase)
    raise ValueError(f"unknown texture {kind!r}")


def _surface_properties(scene: _Scene, surface: np.ndarray, points: np.ndarray):
    """Per-hit world normals (M, 3), labels (M,) and linear albedo (M, 3), computed one surface at a time."""
    # Sorting the hits by surface turns every surface's pixels into one contiguous slice (no per-surface masks).
    order = np.argsort(surface, kind="stable")
    sorted_surface = surface[order]
    cuts = np.flatnonzero(np.diff(sorted_surface)) + 1
    starts, ends = np.concatenate([[0], cuts]), np.concatenate([cuts, [len(surface)]])
    p_sorted = points[order]
    normals = np.empty_like(p_sorted)
    labels = np.empty(len(p_sorted), dtype=np.uint8)
    albedo = np.empty_like(p_sorted)
    for start, end in zip(starts, ends):
        index = int(sorted_surface[start])
        p = p_sorted[start:end]
        if index < _ROOM_FACES:
            normals[start:end] = _ROOM_FACE_NORMALS[index]
            labels[start:end] = _ROOM_FACE_LABELS[index]
            material = scene.room_materials[min(index // 2, 2)]  # the four walls share one paint
            local = p
        else:
            primitive = scene.primitives[index - _ROOM_FACES]
            normals[start:end] = primitive.normals(p)
            labels[start:end] = primitive.label
            material = primitive.material
            local = primitive.local(p)
        tex = _texture(material, local, scene.lattice)[:, None]
        albedo[start:end] = material.colour_a + tex * (material.colour_b - material.colour_a)
    unsorted = np.empty_like(order)
    unsorted[order] = np.arange(len(order))
    return normals[unsorted], labels[unsorted], albedo[unsorted]


def _irradiance(scene: _Scene, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Lambertian irradiance (M, 3): hemispherical ambient (brighter facing up) plus the lights, no shadows."""
    # Indirect light in a room mostly comes from above; scaling ambient by the normal's z keeps shading informative
    # even on surfaces the direct lights do not reach.
    out = scene.ambient * (0.75 + 0.25 * normals[:, 2:3])
    for light in scene.lights:
        if light.kind == "point":
            to_light = light.vector - points
            dist2 = _dot_rows(to_light, to_light)
            cos = _dot_rows(normals, to_light) / np.sqrt(dist2)
            out = out + light.colour * (np.maximum(cos, 0.0) / np.maximum(dist2, 0.25))[:, None]
        else:
            cos = _dot(normals, light.vector)
            out = out + light.colour * np.maximum(cos, 0.0)[:, None]
    return out


def _to_uint8_image(rng: np.random.Generator, radiance: np.ndarray) -> np.ndarray:
    """Auto-exposure, gamma encoding and sensor noise: linear radiance (..., 3) -> uint8 sRGB-like."""
    radiance = radiance.astype(np.float32)  # 8-bit output: float32 is plenty, and faster
    luminance = (radiance @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)).ravel()
    rank = int(EXPOSURE_PERCENTILE / 100 * (luminance.size - 1))
    exposure = EXPOSURE_TARGET / max(float(np.partition(luminance, rank)[rank]), 1e-6)
    exposure *= rng.uniform(0.8, 1.1)  # cameras do not expose perfectly
    encoded = np.clip(radiance * np.float32(exposure), 0.0, 1.0) ** np.float32(1.0 / GAMMA) * np.float32(255.0)
    noise = rng.standard_normal(size=encoded.shape, dtype=np.float32)
    encoded += np.float32(_uniform(rng, SENSOR_NOISE_RANGE)) * noise
    return np.clip(np.rint(encoded), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------------------
# Labels derived from the geometry
# --------------------------------------------------------------------------------------------------------------------


def _inverse_depth_slopes(
    normals_cam: np.ndarray, rays_cam: np.ndarray, depth: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Change of 1/z per pixel step in u and in v (each (H, W)) predicted by every pixel's own tangent plane.

    On the plane n . X = c through X = z r, with r = ((u - cx) / fx, (v - cy) / fy, 1): 1/z = (n . r) / c, an affine
    function of the pixel, so d(1/z)/du = n_x / (fx c) and d(1/z)/dv = n_y / (fy c), with c = z (n . r).
    """
    fx, fy, _, _ = _intrinsics(height, width)
    offset = depth.ravel() * _dot_rows(normals_cam, rays_cam)
    # Surfaces seen edge-on (c -> 0) get huge slopes: depth there is ambiguous, never a discontinuity.
    offset = np.where(np.abs(offset) < _EPS, -_EPS, offset)
    slope_u = normals_cam[:, 0] / (fx * offset)
    slope_v = normals_cam[:, 1] / (fy * offset)
    return np.abs(slope_u).reshape(height, width), np.abs(slope_v).reshape(height, width)


def _neighbour_pairs(axis: int):
    """Index pairs (first, second) of the 4-neighbours along axis 0 (vertical) or 1 (horizontal)."""
    if axis == 0:
        return (slice(None, -1), slice(None)), (slice(1, None), slice(None))
    return (slice(None), slice(None, -1)), (slice(None), slice(1, None))


def _depth_jumps(surface: np.ndarray, depth: np.ndarray, slopes: tuple[np.ndarray, np.ndarray]) -> list:
    """Per axis (vertical, horizontal), which neighbour pairs straddle a depth discontinuity.

    A pair on two different surfaces is a discontinuity when its inverse depths differ by more than the two
    surfaces' own slopes explain (a crease, such as a room corner, is continuous however steep), by a margin of
    DEPTH_EDGE_REL_JUMP of the farther inverse depth; i.e. the depth jumps by that fraction of the nearer depth.
    """
    inverse = 1.0 / depth
    jumps = []
    for axis, slope in zip((0, 1), (slopes[1], slopes[0])):  # moving along axis 0 changes v, along axis 1 changes u
        first, second = _neighbour_pairs(axis)
        i1, i2 = inverse[first], inverse[second]
        explained = np.maximum(slope[first], slope[second])
        unexplained = np.abs(i1 - i2) - explained
        jumps.append((surface[first] != surface[second]) & (unexplained > DEPTH_EDGE_REL_JUMP * np.minimum(i1, i2)))
    return jumps


def _edges(labels: np.ndarray, depth: np.ndarray, jumps: list) -> np.ndarray:
    """Thin binary edges (H, W): label changes and depth discontinuities, marked on the nearer pixel of each pair."""
    edge = np.zeros(labels.shape, dtype=bool)
    for axis in (0, 1):
        first, second = _neighbour_pairs(axis)
        discontinuity = (labels[first] != labels[second]) | jumps[axis]
        first_nearer = depth[first] <= depth[second]
        edge[first] |= discontinuity & first_nearer
        edge[second] |= discontinuity & ~first_nearer
    return edge


def _projector_shadow(depth: np.ndarray, horizontal_jumps: np.ndarray, width_px: int) -> np.ndarray:
    """Pixels a Kinect loses left of a foreground object: its IR projector, beside the camera, cannot light them."""
    occluded = np.zeros(depth.shape, dtype=bool)
    # A far pixel directly left of a depth discontinuity starts a shadow that extends width_px to the left.
    occluded[:, :-1] = horizontal_jumps & (depth[:, :-1] > depth[:, 1:])
    shadow = occluded.copy()
    for shift in range(1, width_px):
        shadow[:, :-shift] |= occluded[:, shift:]
    return shadow


def _dropouts(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A few small blob-shaped holes (specular or dark surfaces the sensor misses)."""
    holes = np.zeros((height, width), dtype=bool)
    for _ in range(int(rng.poisson(DEPTH_HOLES_MEAN))):
        cv, cu = rng.uniform(0, height), rng.uniform(0, width)
        rv, ru = np.maximum(rng.uniform(*DEPTH_HOLE_RADIUS_FRAC, size=2) * min(height, width), 1.0)
        lobes, phase, wobble = int(rng.integers(2, 6)), rng.uniform(0, 2 * math.pi), rng.uniform(0.0, 0.4)
        # Only the bounding window of the blob is evaluated; its radius wobbles with the angle (irregular outline).
        reach = (1 + wobble) * max(rv, ru)
        v0, v1 = max(0, int(cv - reach)), min(height, int(cv + reach) + 2)
        u0, u1 = max(0, int(cu - reach)), min(width, int(cu + reach) + 2)
        if v0 >= v1 or u0 >= u1:
            continue
        v, u = np.ogrid[v0:v1, u0:u1]
        dv, du = (v - cv) / rv, (u - cu) / ru
        bound = 1 + wobble * np.sin(lobes * np.arctan2(dv, du) + phase)
        holes[v0:v1, u0:u1] |= dv * dv + du * du <= bound * bound
    return holes


# --------------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------------


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def render_scene(rng: np.random.Generator, height: int, width: int) -> dict:
    """Sample a random room with `rng` and render it at height x width.

    Returns {"image": uint8 (H, W, 3), "semseg": uint8 (H, W) with 0 = unlabeled and 1..len(CLASSES),
    "depth": float32 (H, W) metres with 0 = invalid, "normals": float32 (H, W, 3) unit camera-frame normals with
    zero vectors where depth is invalid, "edge": float32 (H, W) in {0, 1}}; conventions in the module docstring.
    """
    height = _check_positive_int("height", height)
    width = _check_positive_int("width", width)
    scene = _sample_scene(rng)

    rays_cam = _camera_rays(height, width)
    dirs = _transform(rays_cam, scene.rotation)
    t, surface = _cast(scene, dirs, height, width)
    points = scene.origin + t[:, None] * dirs
    normals_world, labels, albedo = _surface_properties(scene, surface, points)
    image = _to_uint8_image(rng, (albedo * _irradiance(scene, points, normals_world)).reshape(height, width, 3))

    normals_cam = normals_world @ scene.rotation
    # Normals face the camera by construction (inside the room, outside every object); the flip only guards the
    # rare grazing hit at an edge where float error picks the back-facing face.
    facing = _dot_rows(normals_cam, rays_cam)
    normals_cam[facing > 0] *= -1
    cos_incidence = np.abs(facing) / np.sqrt(_dot_rows(rays_cam, rays_cam))

    depth = t.reshape(height, width)
    surface = surface.reshape(height, width)
    labels = labels.reshape(height, width)
    jumps = _depth_jumps(surface, depth, _inverse_depth_slopes(normals_cam, rays_cam, depth, height, width))
    edge = _edges(labels, depth, jumps)

    shadow_px = max(1, round(SHADOW_WIDTH_FRAC * width))
    invalid = (
        (cos_incidence.reshape(height, width) < MIN_VALID_COS_INCIDENCE)
        | (depth > MAX_VALID_DEPTH_M)
        | _projector_shadow(depth, jumps[1], shadow_px)
        | _dropouts(rng, height, width)
    )
    depth_out = np.where(invalid, 0.0, depth).astype(np.float32)
    normals_out = normals_cam.reshape(height, width, 3).astype(np.float32)
    normals_out /= np.maximum(np.sqrt((normals_out * normals_out).sum(axis=-1, keepdims=True)), np.float32(_EPS))
    normals_out[invalid] = 0.0
    return {
        "image": image,
        "semseg": labels,
        "depth": depth_out,
        "normals": normals_out,
        "edge": edge.astype(np.float32),
    }


def _image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image `index` of the set with `seed`: a function of (seed, index) only."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def _image_id(index: int, n: int) -> str:
    return f"synthetic_{index:0{max(6, len(str(n - 1)))}d}"


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a temporary file in the same folder, then rename: readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def _write_sample(root: Path, image_id: str, sample: dict) -> None:
    _atomic_write(
        root / "images" / f"{image_id}.jpg",
        lambda fh: Image.fromarray(sample["image"]).save(fh, format="JPEG", quality=_JPEG_QUALITY),
    )
    _atomic_write(
        root / "segmentation" / f"{image_id}.png", lambda fh: Image.fromarray(sample["semseg"]).save(fh, format="PNG")
    )
    for task in ("depth", "normals", "edge"):
        _atomic_write(root / task / f"{image_id}.npy", lambda fh, task=task: np.save(fh, sample[task]))


def _split_sizes(n: int, val_fraction: float) -> tuple[int, int]:
    """(train, val) counts: val = round(n * val_fraction), at least 1 when n >= 2, and train keeps at least 1."""
    n_val = round(n * val_fraction)
    if n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    else:
        n_val = 0
    return n - n_val, n_val


def write_synthetic_nyud(
    out_dir: _PathLike,
    n: int,
    size: tuple[int, int] = (240, 320),
    seed: int = 0,
    val_fraction: float = 0.2,
    progress: bool = True,
) -> Path:
    """Render n scenes of size (height, width) and write them in the NYUD_MT layout under out_dir; returns out_dir.

    Layout: images/<id>.jpg, segmentation/<id>.png, depth/<id>.npy, normals/<id>.npy, edge/<id>.npy and
    gt_sets/{train,val}.txt, ids `synthetic_000000`, ...; the last round(n * val_fraction) ids form val.
    The split files are written last, so an interrupted run never lists an image that was not written, and a folder
    that holds them (a finished set) is refused rather than mixed with a new one; an interrupted run's files are
    overwritten.
    """
    n = _check_positive_int("n", n)
    if val_fraction > 0 and n < 2:
        raise ValueError(f"n must be >= 2 for a validation split (val_fraction {val_fraction}), got {n}")
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in size)
    ):
        raise ValueError(f"size must be a pair of positive ints (height, width), got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    height, width = int(size[0]), int(size[1])

    root = Path(out_dir)
    finished = [root / "gt_sets" / f"{split}.txt" for split in ("train", "val")]
    if any(path.exists() for path in finished):
        raise ValueError(f"{root} already holds a dataset ({root / 'gt_sets'}): write to another folder or remove it")
    for folder in ("images", "segmentation", "depth", "normals", "edge", "gt_sets"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    ids = [_image_id(i, n) for i in range(n)]
    for i in tqdm(range(n), desc="synthetic NYUD", unit="img", disable=not progress):
        _write_sample(root, ids[i], render_scene(_image_rng(int(seed), i), height, width))

    n_train, _ = _split_sizes(n, val_fraction)
    for name, split in (("train", ids[:n_train]), ("val", ids[n_train:])):
        text = "".join(f"{image_id}\n" for image_id in split)
        _atomic_write(root / "gt_sets" / f"{name}.txt", lambda fh, text=text: fh.write(text.encode()))
    return root
