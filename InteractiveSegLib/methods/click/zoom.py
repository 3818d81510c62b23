"""The click engine's view of a slice: a square window in millimetres, resampled to the
network's working size (adaptive zoom, as nnInteractive's AutoZoom).

A window is square in patient space, so anisotropic pixels (a 0.8 x 6.5 mm coronal slice
of an axial MRI) reach the network with the shape they have in the body; a whole-brain
mask and a caudate both arrive at the same working size, so a click costs the same. The
training code cuts its samples through the same functions, so what the network learns is
exactly what the engine shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def slice_spacing(spacing_kji: Sequence[float], axis: int) -> tuple[float, float]:
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


def outline_maps(boxes: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """Gaussian of the distance to the outline of each box (rows: row0, col0, row1, col1 in
    working coordinates, corners inclusive), max over boxes, in [0, 1]: a box drawn as a line
    of negative clicks around the structure, computed in closed form (a 500-pixel box would be
    2,000 clicks)."""
    out = np.zeros((size, size), np.float32)
    yy = np.arange(size, dtype=np.float64)[:, None]
    xx = np.arange(size, dtype=np.float64)[None, :]
    for r0, c0, r1, c1 in np.asarray(boxes, np.float64).reshape(-1, 4):
        # distance to the nearest side, each side a segment
        dr = np.maximum(np.maximum(r0 - yy, yy - r1), 0.0)  # outside the rows' span
        dc = np.maximum(np.maximum(c0 - xx, xx - c1), 0.0)
        to_rows = np.minimum(np.abs(yy - r0), np.abs(yy - r1))  # to the top or bottom line
        to_cols = np.minimum(np.abs(xx - c0), np.abs(xx - c1))
        d2 = np.minimum(to_rows**2 + dc**2, to_cols**2 + dr**2)
        out = np.maximum(out, np.exp(-d2 / (2 * sigma**2)).astype(np.float32))
    return out


def working_boxes(boxes: list[tuple[int, int, int, int]], window: Window, size: int) -> np.ndarray:
    """(N, 4) pixel boxes (row0, col0, row1, col1, inclusive) -> working coordinates."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    lo = window.to_working(b[:, :2], size)
    hi = window.to_working(b[:, 2:], size)
    return np.concatenate([lo, hi], axis=1)


def negative_map(points: np.ndarray, boxes: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """The negative channel, in working coordinates: negative clicks and box outlines (a box
    says the structure lies inside it), drawn alike for training and inference."""
    neg = click_maps(np.asarray(points, float).reshape(-1, 2), size, sigma)
    if len(boxes):
        neg = np.maximum(neg, outline_maps(boxes, size, sigma))
    return neg


def network_input(
    image2d: np.ndarray,
    previous2d: np.ndarray,
    positive: list[tuple[int, int]],
    negative: list[tuple[int, int]],
    window: Window,
    size: int,
    sigma: float,
    boxes: list[tuple[int, int, int, int]] | None = None,
) -> np.ndarray:
    """(4, size, size): image, positive clicks, negative clicks (and box outlines), previous
    mask, through ``window``."""
    img, prev = sample(np.stack([image2d, previous2d.astype(np.float32)]), window, size)
    pos = click_maps(window.to_working(np.array(positive, float).reshape(-1, 2), size), size, sigma)
    neg = negative_map(
        window.to_working(np.array(negative, float).reshape(-1, 2), size),
        working_boxes(boxes or [], window, size),
        size,
        sigma,
    )
    return np.stack([img, pos, neg, prev]).astype(np.float32)


def touched_sides(mask: np.ndarray, margin: int = 2) -> tuple[bool, bool, bool, bool]:
    """Whether a working-size mask reaches within ``margin`` pixels of top, bottom, left, right."""
    return (
        bool(mask[:margin].any()),
        bool(mask[-margin:].any()),
        bool(mask[:, :margin].any()),
        bool(mask[:, -margin:].any()),
    )


@dataclass(frozen=True)
class ZoomSettings:
    """How a checkpoint's windows were cut (its ``config``): working size, click sigma, the
    margin around the known object, the first window's smallest side, the zoom-outs allowed."""

    size: int = 128
    sigma: float = 3.0
    context: float = 0.4
    min_side_px: float = 64
    zoom_steps: int = 3

    @classmethod
    def from_config(cls, config: dict) -> ZoomSettings:
        return cls(
            int(config.get("size", 128)),
            float(config.get("sigma", 3.0)),
            float(config.get("context", 0.4)),
            float(config.get("min_side_px", 64)),
            int(config.get("zoom_steps", 3)),
        )


def segment_zoomed(
    run: Callable[[np.ndarray], np.ndarray],
    image2d: np.ndarray,
    previous: np.ndarray,
    positive: list[tuple[int, int]],
    negative: list[tuple[int, int]],
    spacing: tuple[float, float],
    settings: ZoomSettings,
    boxes: list[tuple[int, int, int, int]] | None = None,
) -> tuple[Roi, np.ndarray]:
    """A slice's probability from its hints, through a window that starts around the hints
    and the current mask and grows (x 1.6 at least) while the prediction touches its edge.

    Args:
        run: the network, (B, 4, size, size) input -> (B, size, size) probabilities.
        image2d: the normalised slice.
        previous: the structure's current mask on the slice (zeros when none).
        positive, negative: (row, col) hint points.
        spacing: (row, col) pixel size in mm.
        settings: the checkpoint's window settings.
        boxes: boxes (row0, col0, row1, col1, inclusive) around the structure.

    Returns:
        The ROI the last window touches and the probability over it.
    """
    pts = np.array(positive or negative, float).reshape(-1, 2)  # negatives only: correct around them
    corners = np.asarray(boxes or [], float).reshape(-1, 4)
    pts = np.concatenate([pts, corners[:, :2], corners[:, 2:]])
    rows, cols = np.nonzero(previous)
    min_side = settings.min_side_px * min(spacing)
    window = window_around(
        np.concatenate([pts[:, 0], rows]), np.concatenate([pts[:, 1], cols]), spacing, settings.context, min_side
    )
    shape = image2d.shape
    for step in range(settings.zoom_steps + 1):
        x = network_input(image2d, previous, positive, negative, window, settings.size, settings.sigma, boxes)
        prob = run(x[None])[0]
        grow = [t and not c for t, c in zip(touched_sides(prob > 0.5), window.covers(shape), strict=True)]
        if step == settings.zoom_steps or not any(grow):
            break
        # around the object predicted so far and the positive hints, at least 1.6 times larger
        roi, full = paste_back(prob, window, shape)
        r, c = np.nonzero(full > 0.5)
        keep = np.array(positive, float).reshape(-1, 2)
        window = window_around(
            np.concatenate([keep[:, 0], r + roi.r0]),
            np.concatenate([keep[:, 1], c + roi.c0]),
            spacing,
            settings.context,
            1.6 * window.side_mm,
        )
    return paste_back(prob, window, shape)
