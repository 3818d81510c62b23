"""Procedural label maps: shapes no atlas has, so that "segment what I clicked" is learnt as
such and not as brain or abdominal anatomy.

A map is a few large "tissue" regions (a partition of the field of view, as SynthSeg's full
label maps give every voxel a label) with objects on top: deformed blobs large and small,
tubes thick and thin, thin shells, objects of several components and objects with holes.
Each shape is an implicit function thresholded on the voxel grid; smooth noise deforms it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: The kinds of object and how often each is drawn.
OBJECT_KINDS = ("large_blob", "blob", "tube", "components", "holed", "shell")  # shells last: kept closed


def _smooth_noise(shape: tuple[int, int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-std smooth random field."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return (f - f.mean()) / (f.std() + 1e-6)


def _ellipsoid(grid: tuple[np.ndarray, ...], center: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Implicit ellipsoid: < 1 inside."""
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii, strict=True))


def _blob(grid, shape, noise, rng, scale: float) -> np.ndarray:
    center = rng.uniform(0.15, 0.85, 3) * np.asarray(shape)
    radii = np.maximum(rng.uniform(0.4, 1.0, 3) * scale * min(shape), 2.0)
    return _ellipsoid(grid, center, radii) + rng.uniform(0.2, 0.6) * noise < 1


def _tube(shape, rng) -> np.ndarray:
    """A smooth random curve (a smoothed random walk) dilated to a radius of 1 to 4 voxels.

    Rasterised through a distance transform of the curve's voxels: one call for any radius.
    """
    n = 400
    steps = ndimage.gaussian_filter1d(rng.standard_normal((n, 3)), 25, axis=0)
    steps /= np.linalg.norm(steps, axis=1, keepdims=True) + 1e-6
    path = rng.uniform(0.2, 0.8, 3) * np.asarray(shape) + np.cumsum(steps * 0.5, axis=0)
    idx = np.round(path).astype(int)
    idx = idx[np.all((idx >= 0) & (idx < np.asarray(shape)), axis=1)]
    line = np.zeros(shape, bool)
    line[tuple(idx.T)] = True
    if not line.any():
        return line
    return ndimage.distance_transform_edt(~line) <= rng.uniform(1.0, 4.0)


def procedural_labelmap(
    shape: tuple[int, int, int], rng: np.random.Generator, n_objects: int | None = None
) -> np.ndarray:
    """A label map of tissue regions with procedural objects on top.

    Args:
        shape: KJI size.
        rng: the source of every random draw.
        n_objects: objects on top of the tissue (default 4 to 8, of every kind in turn first).

    Returns:
        uint16 labels: 1..T tissue regions, T+1.. one value per object (a voxel belongs to
        the last object drawn over it).
    """
    grid = tuple(
        np.arange(n, dtype=np.float32).reshape([-1 if a == d else 1 for a in range(3)]) for d, n in enumerate(shape)
    )
    tissues = int(rng.integers(3, 7))
    fields = np.stack([_smooth_noise(shape, min(shape) / 6, rng) for _ in range(tissues)])
    labels = (np.argmax(fields, axis=0) + 1).astype(np.uint16)
    noise = _smooth_noise(shape, min(shape) / 12, rng)
    n = int(n_objects if n_objects is not None else rng.integers(4, 9))
    for i in range(n):
        kind = OBJECT_KINDS[i] if i < len(OBJECT_KINDS) else OBJECT_KINDS[int(rng.integers(len(OBJECT_KINDS)))]
        shifted = np.roll(noise, tuple(int(v) for v in rng.integers(0, min(shape), 3)), axis=(0, 1, 2))
        if kind == "blob":
            obj = _blob(grid, shape, shifted, rng, 0.12)
        elif kind == "large_blob":
            obj = _blob(grid, shape, shifted, rng, 0.4)
        elif kind == "tube":
            obj = _tube(shape, rng)
        elif kind == "shell":
            f = _ellipsoid(grid, rng.uniform(0.3, 0.7, 3) * np.asarray(shape), rng.uniform(0.15, 0.3, 3) * min(shape))
            obj = (f < 1) & (f > rng.uniform(0.6, 0.85))
        elif kind == "components":
            obj = np.zeros(shape, bool)
            for _ in range(int(rng.integers(2, 4))):
                obj |= _blob(grid, shape, shifted, rng, 0.07)
        else:  # holed: a blob with cavities cut out well inside it
            obj = _blob(grid, shape, shifted, rng, 0.25)
            depth = ndimage.distance_transform_edt(obj)
            for _ in range(int(rng.integers(1, 4))):
                radius = float(rng.uniform(2.0, 5.0))
                inside = np.argwhere(depth > radius + 2)
                if not len(inside):
                    break
                c = inside[int(rng.integers(len(inside)))]
                obj &= _ellipsoid(grid, c, np.full(3, radius)) >= 1
        labels[obj] = tissues + 1 + i
    return labels
