"""The non-maximum suppression SEISM applies to a soft boundary map before thresholding it (its read_one_cont_png,
with Piotr Dollar's convTri, gradient2 and edgesNmsMex), so that a blurred band of responses becomes a ridge.

    S = triangle filter of radius 4 (1, 2, 3, 4, 5, 4, 3, 2, 1) / 25 along each axis of E, mirrored at the borders
    O = mod(atan(S_yy · sign(-S_xy) / (S_xx + 1e-5)), π)       the boundary's normal, from second derivatives of S
        (derivatives by central differences, one-sided at the borders, as MATLAB's gradient)
    E'(p) = 0  where 1.01 · E(p) < E(p ± (cos O, sin O))        (E bilinearly interpolated, positions clamped inside)
    E'(p) · min(1, d/5) for a pixel at d pixels from the nearest image border  (noisy estimates near the border)
with x the column and y the row. Everything in float32, as the MATLAB code runs it on im2single images.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

TRIANGLE_RADIUS = 4
TRIANGLE = np.concatenate([np.arange(1, TRIANGLE_RADIUS + 2), np.arange(TRIANGLE_RADIUS, 0, -1)]).astype(
    np.float32) / (TRIANGLE_RADIUS + 1) ** 2
ORIENTATION_EPS = 1e-5  # keeps S_xx + eps away from 0
NMS_RADIUS = 1  # neighbours compared along the normal, at distances 1..NMS_RADIUS on each side
NMS_MARGIN = 1.01  # a pixel survives unless a neighbour beats it by more than 1 %
BORDER = 5  # responses within this many pixels of the border fade linearly to 0


def _triangle_filter(image: np.ndarray) -> np.ndarray:
    # scipy's "reflect" repeats the border pixel (d c b a | a b c d): MATLAB's padarray 'symmetric'
    smooth = ndimage.convolve1d(image, TRIANGLE, axis=0, mode="reflect")
    return ndimage.convolve1d(smooth, TRIANGLE, axis=1, mode="reflect")


def _gradient(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d/dx, d/dy): along columns and rows."""
    if min(image.shape) < 2:
        return np.zeros_like(image), np.zeros_like(image)
    dy, dx = np.gradient(image)
    return dx, dy


def orientation(edges: np.ndarray) -> np.ndarray:
    """O in [0, π): the direction across the boundary at every pixel."""
    dx, dy = _gradient(_triangle_filter(edges))
    dxx, _ = _gradient(dx)
    dxy, dyy = _gradient(dy)
    return np.mod(np.arctan(dyy * np.sign(-dxy) / (dxx + np.float32(ORIENTATION_EPS))), np.float32(np.pi))


def _bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    height, width = image.shape
    # edgesNmsMex clamps to [0, size - 1.001] so that the right / lower neighbour always exists
    x = np.clip(x, 0, width - 1.001).astype(np.float32)
    y = np.clip(y, 0, height - 1.001).astype(np.float32)
    x0, y0 = x.astype(np.intp), y.astype(np.intp)
    fx, fy = x - x0, y - y0
    return (image[y0, x0] * (1 - fx) * (1 - fy) + image[y0, x0 + 1] * fx * (1 - fy)
            + image[y0 + 1, x0] * (1 - fx) * fy + image[y0 + 1, x0 + 1] * fx * fy)


def suppress_non_maxima(edges: np.ndarray, above: float = 0.0) -> np.ndarray:
    """E': the (H, W) float map in [0, 1] with every response that is not a ridge along its normal set to 0, and
    every response at most `above` too (a benchmark whose lowest threshold is `above` never counts those: a trained
    network's map is mostly below it, and comparing only the rest saves most of the interpolation)."""
    edges = np.asarray(edges, np.float32)
    height, width = edges.shape
    if height < 2 or width < 2:
        raise ValueError(f"a boundary map must be at least 2 x 2 pixels, got {height} x {width}")
    angle = orientation(edges)
    rows, cols = np.nonzero(edges > np.float32(above))
    strength = edges[rows, cols] * np.float32(NMS_MARGIN)
    cos, sin = np.cos(angle[rows, cols]), np.sin(angle[rows, cols])
    for distance in range(1, NMS_RADIUS + 1):
        for sign in (-1, 1):
            step = np.float32(sign * distance)
            keep = strength >= _bilinear(edges, cols + step * cos, rows + step * sin)
            # the next comparison only where every one so far kept the response
            rows, cols, strength, cos, sin = rows[keep], cols[keep], strength[keep], cos[keep], sin[keep]
    out = np.zeros_like(edges)
    out[rows, cols] = edges[rows, cols]
    border = min(BORDER, width // 2, height // 2)
    ramp = np.arange(border, dtype=np.float32) / border
    # the columns first, then the rows, each side multiplied: corners get both factors, as in edgesNmsMex
    out[:, :border] *= ramp
    out[:, width - border:] *= ramp[::-1]
    out[:border] *= ramp[:, None]
    out[height - border:] *= ramp[::-1, None]
    return out
