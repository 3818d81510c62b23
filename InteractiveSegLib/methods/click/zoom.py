"""The click engine's view of a slice: a square window in millimetres, resampled to the
network's working size (adaptive zoom, as nnInteractive's AutoZoom).

A window is square in patient space, so anisotropic pixels (a 0.8 x 6.5 mm coronal slice
of an axial MRI) reach the network with the shape they have in the body; a whole-brain
mask and a caudate both arrive at the same working size, so a click costs the same. The
training code cuts its samples through the same functions, so what the network learns is
exactly what the engine shows it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from InteractiveSegLib.preprocessing import Roi


@dataclass(frozen=True)
class Window:
    """A square of ``side_mm`` centred at ``center`` (row, col in pixel units, pixel ``i``
    covering [i, i + 1)), on a slice whose pixels measure ``spacing`` (row, col) mm."""

    center: tuple[float, float]
    side_mm: float
    spacing: tuple[float, float]

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(row0, row1, col0, col1) in continuous pixel units."""
        hr, hc = self.side_mm / 2 / self.spacing[0], self.side_mm / 2 / self.spacing[1]
        return self.center[0] - hr, self.center[0] + hr, self.center[1] - hc, self.center[1] + hc

    def roi(self, shape: tuple[int, int]) -> Roi:
        """The pixels of a ``shape`` slice that the window touches."""
        r0, r1, c0, c1 = self.extent
        return Roi(
            max(int(np.floor(r0)), 0),
            min(int(np.ceil(r1)), shape[0]),
            max(int(np.floor(c0)), 0),
            min(int(np.ceil(c1)), shape[1]),
        )

    def to_working(self, points: np.ndarray, size: int) -> np.ndarray:
        """(N, 2) pixel (row, col) -> continuous working-grid (row, col) of pixel centres."""
        r0, r1, c0, c1 = self.extent
        p = np.asarray(points, np.float64).reshape(-1, 2) + 0.5
        return np.stack([(p[:, 0] - r0) / (r1 - r0) * size, (p[:, 1] - c0) / (c1 - c0) * size], axis=1) - 0.5

    def covers(self, shape: tuple[int, int]) -> tuple[bool, bool, bool, bool]:
        """Whether the window already reaches past the slice's top, bottom, left, right edge."""
        r0, r1, c0, c1 = self.extent
        return r0 <= 0, r1 >= shape[0], c0 <= 0, c1 >= shape[1]


def slice_spacing(spacing_kji: tuple[float, float, float], axis: int) -> tuple[float, float]:
    """(row, col) pixel size in mm of a slice across KJI ``axis`` of a volume with voxel size
    ``spacing_kji`` (k, j, i)."""
    others = [a for a in range(3) if a != axis]
    return float(spacing_kji[others[0]]), float(spacing_kji[others[1]])


def window_around(
    rows: np.ndarray,
    cols: np.ndarray,
    spacing: tuple[float, float],
    context: float,
    min_side_mm: float,
) -> Window:
    """The square window holding pixels (rows, cols) with ``context`` x their extent on each side.

    Args:
        rows, cols: pixel coordinates the window must hold (clicks, the current mask).
        spacing: (row, col) pixel size in mm.
        context: margin on each side, as a fraction of the larger extent.
        min_side_mm: the smallest window (a first click says nothing of the size).

    Returns:
        The window, centred on the points' box.
    """
    r0, r1 = float(np.min(rows)), float(np.max(rows)) + 1
    c0, c1 = float(np.min(cols)), float(np.max(cols)) + 1
    extent = max((r1 - r0) * spacing[0], (c1 - c0) * spacing[1])
    side = max(extent * (1 + 2 * context), min_side_mm)
    return Window(((r0 + r1) / 2, (c0 + c1) / 2), side, spacing)


def _grid(window: Window, shape: tuple[int, int], size: int) -> torch.Tensor:
    """grid_sample coordinates (align_corners=False) of the working pixels' centres."""
    r0, r1, c0, c1 = window.extent
    u = (np.arange(size) + 0.5) / size
    rows = (r0 + u * (r1 - r0)) / shape[0] * 2 - 1
    cols = (c0 + u * (c1 - c0)) / shape[1] * 2 - 1
    gy, gx = np.meshgrid(rows, cols, indexing="ij")
    return torch.from_numpy(np.stack([gx, gy], axis=-1)[None].astype(np.float32))


def sample(channels: np.ndarray, window: Window, size: int, mode: str = "bilinear") -> np.ndarray:
    """(C, H, W) slice channels seen through ``window`` at ``size`` x ``size``.

    Outside the slice the edge value repeats (an image does not end in black). When the
    window holds more than two pixels per working pixel, the slice is first averaged over
    blocks of that many pixels: bilinear sampling alone would alias thin structures away.
    """
    x = torch.from_numpy(np.ascontiguousarray(channels, np.float32))[None]
    shape = channels.shape[-2:]
    r0, r1, c0, c1 = window.extent
    factor = (int((r1 - r0) / size), int((c1 - c0) / size))
    if mode == "bilinear" and max(factor) >= 2:
        k = (max(factor[0], 1), max(factor[1], 1))
        x = F.avg_pool2d(x, k, ceil_mode=True)
        # the pooled grid is the same continuous frame, coarser: sample it in normalised units
        # of the original slice rounded up to whole blocks
        padded = (-(-shape[0] // k[0]) * k[0], -(-shape[1] // k[1]) * k[1])
        grid = _grid(window, padded, size)
    else:
        grid = _grid(window, shape, size)
    out = F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)
    return out[0].numpy()


def paste_back(prob: np.ndarray, window: Window, shape: tuple[int, int]) -> tuple[Roi, np.ndarray]:
    """The working-size probability resampled onto the slice pixels the window touches.

    Returns:
        The ROI of the slice and the probability over it (0 outside the window).
    """
    roi = window.roi(shape)
    size = prob.shape[-1]
    rows, cols = np.mgrid[roi.r0 : roi.r1, roi.c0 : roi.c1]
    w = window.to_working(np.stack([rows.ravel(), cols.ravel()], axis=1), size)
    grid = (w[:, ::-1] + 0.5) / size * 2 - 1  # (x, y) normalised, align_corners=False
    g = torch.from_numpy(grid.reshape(1, roi.r1 - roi.r0, roi.c1 - roi.c0, 2).astype(np.float32))
    t = torch.from_numpy(np.ascontiguousarray(prob, np.float32))[None, None]
    out = F.grid_sample(t, g, mode="bilinear", padding_mode="zeros", align_corners=False)
    return roi, out[0, 0].numpy()


def click_maps(points: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """Gaussian click maps at (fractional) working positions, max over clicks, in [0, 1].

    Written out rather than through ``encodings.gaussian_map``: zoomed clicks fall between
    working pixels, and rounding them would move a click by up to half a pixel of a large
    window.
    """
    out = np.zeros((size, size), np.float32)
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if not len(pts):
        return out
    yy = np.arange(size)[:, None, None]
    xx = np.arange(size)[None, :, None]
    d2 = (yy - pts[None, None, :, 0]) ** 2 + (xx - pts[None, None, :, 1]) ** 2
    return np.exp(-d2 / (2 * sigma**2)).max(axis=-1).astype(np.float32)


def network_input(
    image2d: np.ndarray,
    previous2d: np.ndarray,
    positive: list[tuple[int, int]],
    negative: list[tuple[int, int]],
    window: Window,
    size: int,
    sigma: float,
) -> np.ndarray:
    """(4, size, size): image, positive clicks, negative clicks, previous mask, through ``window``."""
    img, prev = sample(np.stack([image2d, previous2d.astype(np.float32)]), window, size)
    pos = click_maps(window.to_working(np.array(positive, float).reshape(-1, 2), size), size, sigma)
    neg = click_maps(window.to_working(np.array(negative, float).reshape(-1, 2), size), size, sigma)
    return np.stack([img, pos, neg, prev]).astype(np.float32)


def touched_sides(mask: np.ndarray, margin: int = 2) -> tuple[bool, bool, bool, bool]:
    """Whether a working-size mask reaches within ``margin`` pixels of top, bottom, left, right."""
    return (
        bool(mask[:margin].any()),
        bool(mask[-margin:].any()),
        bool(mask[:, :margin].any()),
        bool(mask[:, -margin:].any()),
    )
