"""Procedural label maps: shapes no atlas has, so that "segment what I clicked" is learnt as
such and not as brain or abdominal anatomy.

A map is a partition of the field of view into a few large "tissue" regions (SynthSeg's full
label maps give every voxel a label, so the synthesised image has textured surroundings)
with objects on top: deformed ellipsoids large and small, objects of several components,
objects with cavities, tori, tubes thick and thin (branching, with varying radius) and thin
closed shells. Each shape is an implicit function thresholded on the voxel grid (rotated,
and deformed by smooth noise), or a distance transform of a curve: array code throughout.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

#: The kinds of object, in the order they are painted: big ones first so that small ones stay
#: visible, thin ones last so that nothing cuts them (and shells stay closed).
OBJECT_KINDS = ("large_blob", "holed", "blob", "components", "torus", "tube", "vessel", "shell")

Grid = tuple[np.ndarray, np.ndarray, np.ndarray]


def _smooth_noise(shape: tuple[int, int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-std random field smooth over ``sigma`` voxels, periodic (so that rolling it
    gives another field without a seam).

    Drawn on a grid ``sigma / 2`` times coarser and interpolated: the same kind of field as
    filtering full-resolution noise, without a kernel that spans the volume (10x faster at 96^3).
    """
    step = max(1.0, sigma / 2)
    coarse = tuple(max(2, int(np.ceil(n / step))) for n in shape)
    f = ndimage.gaussian_filter(rng.standard_normal(coarse, dtype=np.float32), sigma / step, mode="wrap")
    zoom = [n / c for n, c in zip(shape, coarse, strict=True)]
    f = ndimage.zoom(f, zoom, order=1, mode="grid-wrap", grid_mode=True)
    return (f - f.mean()) / (f.std() + 1e-6)


def _grid(shape: tuple[int, int, int]) -> Grid:
    """Broadcastable voxel coordinates along each axis."""
    k, j, i = (
        np.arange(n, dtype=np.float32).reshape([-1 if a == d else 1 for a in range(3)]) for d, n in enumerate(shape)
    )
    return k, j, i


def _frame(grid: Grid, center: np.ndarray, rng: np.random.Generator) -> Grid:
    """Coordinates relative to ``center`` in a random rotated frame (shapes are not axis-aligned)."""
    r = Rotation.random(random_state=rng).as_matrix().astype(np.float32)
    d = [g - c for g, c in zip(grid, center.astype(np.float32), strict=True)]
    u = tuple(r[a, 0] * d[0] + r[a, 1] * d[1] + r[a, 2] * d[2] for a in range(3))
    return u[0], u[1], u[2]


def _ellipsoid(u: Grid, radii: np.ndarray) -> np.ndarray:
    """Implicit ellipsoid in frame ``u``: < 1 inside."""
    return (u[0] / radii[0]) ** 2 + (u[1] / radii[1]) ** 2 + (u[2] / radii[2]) ** 2


def _center(shape: tuple[int, int, int], rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    return rng.uniform(lo, hi, 3) * np.asarray(shape)


def _blob(
    grid: Grid,
    shape: tuple[int, int, int],
    noise: np.ndarray,
    rng: np.random.Generator,
    radii: np.ndarray,
    wobble: tuple[float, float] = (0.2, 0.6),
) -> np.ndarray:
    """A rotated ellipsoid whose surface smooth noise (of amplitude within ``wobble``) pushes in and out."""
    u = _frame(grid, _center(shape, rng, 0.15, 0.85), rng)
    return _ellipsoid(u, np.maximum(radii, 1.5)) + rng.uniform(*wobble) * noise < 1


def _box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """The bounding box of ``mask`` grown by ``margin`` voxels (distance transforms run on it only)."""
    hits = np.argwhere(mask)
    lo = np.maximum(hits.min(axis=0) - margin, 0)
    hi = np.minimum(hits.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def _curve(start: np.ndarray, length: int, smooth: float, rng: np.random.Generator) -> np.ndarray:
    """Points half a voxel apart along a smooth random curve (a smoothed random walk of directions)."""
    steps = ndimage.gaussian_filter1d(rng.standard_normal((length, 3)), smooth, axis=0)
    steps /= np.linalg.norm(steps, axis=1, keepdims=True) + 1e-6
    return start + np.cumsum(steps * 0.5, axis=0)


def _tube(shape: tuple[int, int, int], rng: np.random.Generator, radius: tuple[float, float]) -> np.ndarray:
    """A smooth random curve with 0 to 2 branches, dilated to a radius that varies along it.

    Every curve point carries its radius; a voxel is inside when its distance to the nearest
    curve point is at most that point's radius: one distance transform (with nearest-point
    indices) for any mix of radii, where dilating by balls would take one pass per radius.
    """
    smooth = max(5.0, min(shape) / 4)
    length = 4 * max(shape)
    r0 = rng.uniform(*radius)
    curves = [_curve(_center(shape, rng, 0.2, 0.8), length, smooth, rng)]
    radii = [r0 * np.exp(0.5 * ndimage.gaussian_filter1d(rng.standard_normal(length), smooth) * np.sqrt(smooth))]
    for _ in range(int(rng.integers(0, 3))):  # branches leave the trunk thinner than it
        at = int(rng.integers(length // 4, 3 * length // 4))
        curves.append(_curve(curves[0][at], length // 2, smooth, rng))
        radii.append(np.full(length // 2, 0.7 * radii[0][at]))
    line = np.zeros(shape, bool)
    rad = np.zeros(shape, np.float32)
    for points, r in zip(curves, radii, strict=True):
        idx = np.round(points).astype(int)
        keep = np.all((idx >= 0) & (idx < np.asarray(shape)), axis=1)
        line[tuple(idx[keep].T)] = True
        rad[tuple(idx[keep].T)] = np.clip(r[keep], 1.0, 8.0)  # >= 1: face-connected
    if not line.any():
        return line
    box = _box(line, int(np.ceil(rad.max())) + 1)
    dist, nearest = ndimage.distance_transform_edt(~line[box], return_indices=True)
    out = np.zeros(shape, bool)
    out[box] = dist <= rad[box][tuple(nearest)]
    return out


def _holed(grid: Grid, shape: tuple[int, int, int], noise: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A blob with 1 to 4 closed cavities cut out well inside it."""
    obj = _blob(grid, shape, noise, rng, rng.uniform(0.15, 0.3, 3) * min(shape), wobble=(0.1, 0.3))
    if not obj.any():
        return obj
    box = _box(obj, 1)
    # depth from the field's edge too (padded with background), so that cavities stay closed there
    depth = ndimage.distance_transform_edt(np.pad(obj[box], 1))[1:-1, 1:-1, 1:-1]
    for _ in range(int(rng.integers(1, 5))):
        radius = float(rng.uniform(0.3, 0.6) * depth.max())
        inside = np.argwhere(depth > radius + 1.5)
        if not len(inside):
            break
        c = inside[int(rng.integers(len(inside)))] + np.array([s.start for s in box])
        obj &= _ellipsoid(_frame(grid, c, rng), radius * rng.uniform(0.6, 1.0, 3)) >= 1
    return obj


def _object(
    kind: str, grid: Grid, shape: tuple[int, int, int], noise: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One object of ``kind`` (see ``OBJECT_KINDS``) as a boolean mask."""
    m = min(shape)
    if kind == "large_blob":  # spans most of the field on every axis
        return _blob(grid, shape, noise, rng, rng.uniform(0.3, 0.45, 3) * np.asarray(shape))
    if kind == "blob":
        return _blob(grid, shape, noise, rng, rng.uniform(0.04, 0.15, 3) * m)
    if kind == "components":
        obj = np.zeros(shape, bool)
        for _ in range(int(rng.integers(2, 5))):
            obj |= _blob(grid, shape, noise, rng, rng.uniform(0.03, 0.08, 3) * m)
        return obj
    if kind == "holed":
        return _holed(grid, shape, noise, rng)
    if kind == "torus":  # a hole through it
        u = _frame(grid, _center(shape, rng, 0.3, 0.7), rng)
        big = rng.uniform(0.1, 0.2) * m
        small = max(rng.uniform(0.25, 0.5) * big, 1.5)
        return (np.sqrt(u[0] ** 2 + u[1] ** 2) - big) ** 2 + u[2] ** 2 < small**2 * (1 + 0.2 * noise)
    if kind == "tube":
        return _tube(shape, rng, (1.5, 4.0))
    if kind == "vessel":  # thin: about three voxels across
        return _tube(shape, rng, (1.0, 1.5))
    if kind == "shell":  # hollow ellipsoid 1.5 to 4 voxels thick, inside the field so that it stays closed
        radii = rng.uniform(0.12, 0.25, 3) * m
        thickness = rng.uniform(1.5, 4.0)
        f = _ellipsoid(_frame(grid, _center(shape, rng, 0.35, 0.65), rng), radii) * (1 + 0.05 * noise)
        return (f < 1) & (f > (1 - thickness / radii.min()) ** 2)
    raise ValueError(f"unknown object kind {kind!r}")  # a programming error: kinds come from OBJECT_KINDS


def procedural_labelmap(
    shape: tuple[int, int, int], rng: np.random.Generator, n_objects: int | None = None
) -> np.ndarray:
    """A label map of tissue regions with procedural objects on top.

    Args:
        shape: KJI size.
        rng: the source of every random draw (a seed reproduces a map).
        n_objects: objects on top of the tissue; default 6 to 11. From ``len(OBJECT_KINDS)`` on,
            every kind is present; fewer take distinct kinds at random.

    Returns:
        uint16 labels, every voxel labelled: 0 background, 1..n_objects the objects (in
        painting order; a voxel belongs to the last object drawn over it, so an object may be
        partly or wholly hidden), n_objects+1.. the 2 to 5 other tissue regions.
    """
    grid = _grid(shape)
    n = int(n_objects if n_objects is not None else rng.integers(6, 12))
    k = len(OBJECT_KINDS)
    picked = list(OBJECT_KINDS) * (n // k) + list(rng.choice(OBJECT_KINDS, n % k, replace=False))
    kinds = sorted(picked, key=OBJECT_KINDS.index)
    # tissue: the argmax of smooth random fields, a partition into large irregular regions
    tissues = int(rng.integers(3, 7))
    fields = np.stack([_smooth_noise(shape, min(shape) / 6, rng) for _ in range(tissues)])
    region = np.argmax(fields, axis=0)
    labels = np.where(region == 0, 0, region + n).astype(np.uint16)
    noise = _smooth_noise(shape, min(shape) / 12, rng)
    for value, kind in enumerate(kinds, start=1):
        shifted = np.roll(noise, tuple(int(v) for v in rng.integers(0, min(shape), 3)), axis=(0, 1, 2))
        labels[_object(kind, grid, shape, shifted, rng)] = value
    return labels
