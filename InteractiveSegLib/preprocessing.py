"""Shared preprocessing of the engines: intensity scaling, 2D regions of interest, padding,
resizing and one-hot labels. Kept apart from any engine so models, tasks and training code
do not import an engine for a helper."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from InteractiveSegLib.intensity import with_width


def normalize_intensity(array: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Robust [0, 1] scaling by percentiles of the non-zero voxels (MRI and CT alike).

    A large volume (over ``LARGE_VOLUME`` voxels) takes its percentiles from an evenly
    strided sample and is scaled in place of one float32 output: the exact way needs five
    volume-sized temporaries (4 GB for a 512 x 512 x 600 CT).
    """
    a = np.asarray(array, np.float32)
    if a.size > LARGE_VOLUME:
        sample = a.ravel()[:: a.size // LARGE_VOLUME + 1]
        fg = sample[sample != 0]
        lo, hi = with_width(*np.percentile(fg if fg.size >= 16 else sample, [low, high]))
        out = np.subtract(a, np.float32(lo), dtype=np.float32)
        out /= np.float32(hi - lo)
        return np.clip(out, 0.0, 1.0, out=out)
    fg = a[a != 0]
    if fg.size < 16:
        fg = a.ravel()
    lo, hi = with_width(*np.percentile(fg, [low, high]))
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


#: Voxels above which ``normalize_intensity`` samples (a 1 mm brain has 7 million).
LARGE_VOLUME = 16_000_000


@dataclass
class Roi:
    r0: int
    r1: int
    c0: int
    c1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.r0, self.r1), slice(self.c0, self.c1)


def roi_around(
    points: list[tuple[int, int]], mask: np.ndarray | None, shape: tuple[int, int], margin: int, min_size: int
) -> Roi:
    """Bounding box of points and mask, grown by ``margin`` and to at least ``min_size``, clipped."""
    coords = [np.asarray(points, int).reshape(-1, 2)]
    if mask is not None and mask.any():
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        coords.append(np.array([[rows[0], cols[0]], [rows[-1], cols[-1]]]))
    c = np.concatenate(coords)
    lo, hi = c.min(axis=0) - margin, c.max(axis=0) + margin + 1
    for d in range(2):
        short = min_size - (hi[d] - lo[d])
        if short > 0:
            lo[d] -= short // 2
            hi[d] += short - short // 2
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, shape)
    return Roi(int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]))


def padded_size(n: int, multiple: int = 16) -> int:
    """``n`` rounded up to a multiple of ``multiple`` (the networks' down-sampling)."""
    return n + (-n) % multiple


def pad_to(x: torch.Tensor, multiple: int = 16) -> tuple[torch.Tensor, tuple[int, int]]:
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, multiple) - h, padded_size(w, multiple) - w
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph))
    return x, (h, w)


def resize_stack(stack: np.ndarray, shape: tuple[int, int], area_when_shrinking: bool = True) -> np.ndarray:
    """(K, H, W) -> (K, h, w) float32 by bilinear interpolation, or by area averaging when
    shrinking both sides (``area_when_shrinking``); a copy when the size already matches."""
    if tuple(stack.shape[1:]) == tuple(shape):
        return np.array(stack, np.float32)
    t = torch.from_numpy(np.ascontiguousarray(stack, np.float32))[:, None]
    if area_when_shrinking and shape[0] <= stack.shape[1] and shape[1] <= stack.shape[2]:
        return F.interpolate(t, size=tuple(shape), mode="area")[:, 0].numpy()
    return F.interpolate(t, size=tuple(shape), mode="bilinear", align_corners=False)[:, 0].numpy()


def resample(block: np.ndarray, size: int | Sequence[int], mode: str = "trilinear") -> np.ndarray:
    """A 3D block resized to ``size``^3, or to the shape ``size`` (trilinear: the cells'
    centres; "area": each cell the mean of what it covers; "nearest")."""
    shape = (size, size, size) if isinstance(size, int) else tuple(int(n) for n in size)
    t = torch.from_numpy(np.ascontiguousarray(block, np.float32))[None, None]
    options = {"align_corners": False} if mode == "trilinear" else {}
    return F.interpolate(t, size=shape, mode=mode, **options)[0, 0].numpy()


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return resize_stack(array[None], size, area_when_shrinking=False)[0]


def crop_resize(array: np.ndarray, roi: Roi, size: int) -> np.ndarray:
    """The ROI of a 2D array, bilinearly resized to ``size`` x ``size``."""
    return _resize(array[roi.slices], (size, size))


def paste(small: np.ndarray, roi: Roi, shape: tuple[int, int], fill: float = 0.0) -> np.ndarray:
    """Inverse of :func:`crop_resize`: resize back to the ROI and place it in a slice of ``fill``."""
    out = np.full(shape, fill, np.float32)
    out[roi.slices] = _resize(small, (roi.r1 - roi.r0, roi.c1 - roi.c0))
    return out


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(H, W) class indices -> (N, H, W) bool."""
    return np.stack([labels == c for c in range(num_classes)])
