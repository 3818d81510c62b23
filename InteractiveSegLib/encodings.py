"""Guidance encodings: turn hint points into maps a network can read.

All functions take an array ``shape`` (2D or 3D) and points as array indices in the
same order (e.g. (row, col) on a slice), and return float32 maps in [0, 1] where
1 marks the hint.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage.graph import MCP_Geometric


def _point_image(shape: Sequence[int], points) -> np.ndarray:
    img = np.zeros(shape, np.float32)
    for p in points:
        p = tuple(int(round(c)) for c in p)
        if all(0 <= c < n for c, n in zip(p, shape, strict=False)):
            img[p] = 1.0
    return img


def gaussian_map(shape: Sequence[int], points, sigma: float = 2.0) -> np.ndarray:
    """Clicks smoothed with a Gaussian and normalised to [0, 1] (click-guidance paper, sigma 2)."""
    img = _point_image(shape, points)
    if not img.any():
        return img
    img = ndimage.gaussian_filter(img, sigma=sigma, mode="constant")
    return (img / img.max()).astype(np.float32)


def geodesic_distance(image: np.ndarray, points, lamb: float = 1.0) -> np.ndarray:
    """Geodesic distance from the points over the image (inf where no point is given).

    The local cost mixes Euclidean step length and intensity gradient
    (``sqrt(1 + (lamb * |grad I| / std(I))^2)``, as in DeepIGeoS); the minimal paths are
    found by scikit-image's MCP, not a hand-written Dijkstra.
    """
    image = np.asarray(image, np.float32)
    seeds = [tuple(int(round(c)) for c in p) for p in points]
    seeds = [p for p in seeds if all(0 <= c < n for c, n in zip(p, image.shape, strict=False))]
    if not seeds:
        return np.full(image.shape, np.inf, np.float32)
    grad = ndimage.gaussian_gradient_magnitude(image, sigma=1.0)
    grad = grad / (float(image.std()) + 1e-6)
    cost = np.sqrt(1.0 + (lamb * grad) ** 2)
    dist, _ = MCP_Geometric(cost).find_costs(seeds)
    return dist.astype(np.float32)


def geodesic_map(image: np.ndarray, points, lamb: float = 1.0, scale: float | None = None) -> np.ndarray:
    """exp(-d / scale) of the geodesic distance d: the exponentialized geodesic of MIDeepSeg."""
    dist = geodesic_distance(image, points, lamb)
    scale = scale if scale is not None else max(image.shape) / 8.0
    return np.exp(-dist / scale).astype(np.float32)


def linear_geodesic_map(image: np.ndarray, points, lamb: float = 1.0, scale: float | None = None) -> np.ndarray:
    """1 - d / scale of the geodesic distance, clipped to [0, 1]: DeepIGeoS's geodesic map
    turned so that 1 marks the hint, as the other encodings."""
    dist = geodesic_distance(image, points, lamb)
    scale = scale if scale is not None else float(max(image.shape))
    return np.clip(1.0 - dist / scale, 0.0, 1.0).astype(np.float32)
