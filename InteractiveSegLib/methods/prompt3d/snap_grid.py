"""The grid the edge rules (``edges``) work on: the region itself, or a coarser copy of a
large one.

Why: the snap and the negative flood cost time in proportion to the region's voxels, while
the network answers on 64 cells a side whatever the region. A whole brain at 1 mm, or a liver
in a thin-slice CT, spans ten million voxels or more, and most of a round went to the snap.
Above ``SNAP_VOXELS`` the rules run on a copy whose voxels are as near to cubes as the scan
allows (a thick-slice axis is thinned last; a cube-shaped region keeps 128 voxels a side,
twice the network's cells), and the snapped mask and the negative side come back to the
region's voxels where their trilinear share passes 1/2. Below it nothing is resampled: the
answer is the one the region's own voxels give. The cost: a ribbon a few voxels thick, the
cortex's grey matter, loses some of its shape on the copy (Resources/Models/prompt3d-history.md,
twenty-fourth session).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from InteractiveSegLib.preprocessing import resample

#: the most voxels the edge rules work on (128 cubed)
SNAP_VOXELS = 128**3


@dataclass(frozen=True)
class SnapGrid:
    """A region's shape and voxel size (KJI, mm), and the working copy's."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    work: tuple[int, int, int]

    @classmethod
    def for_region(cls, shape: Sequence[int], spacing: Sequence[float], most: int = SNAP_VOXELS) -> SnapGrid:
        """The working copy of a region of ``shape`` voxels of ``spacing`` mm: the region
        itself up to ``most`` voxels; else voxels of side max(spacing, t) per axis, with the
        smallest t (found by bisection) that keeps it within ``most``.

        Args:
            shape: the region's voxels along K, J, I.
            spacing: their size in mm along K, J, I.
            most: the working copy's largest number of voxels.
        """
        n, sp = np.asarray(shape, np.int64), np.asarray(spacing, np.float64)
        if int(np.prod(n)) <= most:
            return cls(_ints(n), _floats(sp), _ints(n))

        def cells(t: float) -> np.ndarray:
            return np.maximum(1, np.ceil(n * sp / np.maximum(sp, t))).astype(np.int64)

        lo, hi = float(sp.min()), float((n * sp).max())
        for _ in range(40):  # written by hand: a bisection on one number, no solver needed
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if int(np.prod(cells(mid))) <= most else (mid, hi)
        return cls(_ints(n), _floats(sp), _ints(cells(hi)))

    @property
    def coarser(self) -> bool:
        """Whether the rules work on a coarser copy than the region."""
        return self.work != self.shape

    @property
    def work_spacing(self) -> tuple[float, float, float]:
        """The working copy's voxel size in mm along K, J, I (the region's own, as given, when
        it is not coarser)."""
        if not self.coarser:
            return self.spacing
        return _floats([s * n / w for s, n, w in zip(self.spacing, self.shape, self.work, strict=True)])

    @property
    def band_scale(self) -> float:
        """The region's finest voxel side over the working copy's: a band of the region's
        finest sides, counted in the copy's."""
        if not self.coarser:
            return 1.0
        return min(self.spacing) / min(self.work_spacing)

    def down(self, block: np.ndarray) -> np.ndarray:
        """A region-shaped float array on the working copy (each cell the mean of what it covers)."""
        return resample(block, self.work, "area")

    def down_marks(self, marks: np.ndarray) -> np.ndarray:
        """``edges.hint_markers`` on the working copy: a cell takes a mark any of its voxels
        has, so a one-voxel stroke is never lost; where both meet, the structure's (1): a
        drawn cross-section of a ribbon is thinner than a cell, and the rest of its plane,
        marked "not it" (2), holds many cells of its own."""
        out = np.zeros(self.work, marks.dtype)
        for value in (2, 1):
            k = np.argwhere(marks == value)
            if len(k):
                cells = (k * np.asarray(self.work)) // np.asarray(self.shape)
                out[tuple(cells.T)] = value
        return out

    def up_mask(self, mask: np.ndarray) -> np.ndarray:
        """A working-copy mask back on the region: the mask itself when the copy is the
        region, else where its trilinear share passes 1/2 (a boundary between cell centres)."""
        return resample(mask, self.shape) > 0.5 if self.coarser else mask


def _ints(values: Iterable) -> tuple[int, int, int]:
    k, j, i = (int(v) for v in values)
    return k, j, i


def _floats(values: Iterable) -> tuple[float, float, float]:
    k, j, i = (float(v) for v in values)
    return k, j, i
