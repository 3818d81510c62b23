"""What one step changed in a labelmap, kept small enough that undo history is bounded by
memory: only the tightest box of changed voxels, before and after, zlib-compressed
(labelmaps are long runs of a few values, so a liver's box of megabytes keeps kilobytes).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

Region = tuple[slice, slice, slice]
_ORIGIN: Region = (slice(0, None), slice(0, None), slice(0, None))


@dataclass(frozen=True)
class Change:
    """The labelmap content a step replaced (``before``) and wrote (``after``) in ``box``,
    absolute KJI slices; ``box`` is None when the step changed nothing."""

    box: Region | None
    shape: tuple[int, ...]
    dtype: str
    before_z: bytes
    after_z: bytes

    @classmethod
    def between(cls, region: Region, before: np.ndarray, after: np.ndarray) -> Change:
        """The change from ``before`` to ``after``, two arrays of the labelmap's ``region``."""
        inner = bounding_region(before.shape, (_ORIGIN, before != after))  # in the region's own frame
        if inner is None:
            return cls(None, (), str(before.dtype), b"", b"")
        box = tuple(
            slice((r.start or 0) + i.start, (r.start or 0) + i.stop) for r, i in zip(region, inner, strict=True)
        )
        b, a = before[inner], after[inner]
        return cls(box, b.shape, str(b.dtype), _pack(b), _pack(a))  # type: ignore[arg-type]

    @property
    def nbytes(self) -> int:
        return len(self.before_z) + len(self.after_z)

    def before(self) -> np.ndarray:
        return _unpack(self.before_z, self.shape, self.dtype)

    def after(self) -> np.ndarray:
        return _unpack(self.after_z, self.shape, self.dtype)

    def undo(self, labelmap: np.ndarray) -> None:
        if self.box is not None:
            labelmap[self.box] = self.before()

    def redo(self, labelmap: np.ndarray) -> None:
        if self.box is not None:
            labelmap[self.box] = self.after()


def _pack(a: np.ndarray) -> bytes:
    return zlib.compress(np.ascontiguousarray(a).tobytes(), 1)


def _unpack(data: bytes, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(data), dtype=dtype).reshape(shape).copy()


def bounding_region(shape: tuple[int, ...], *masks: tuple[Region, np.ndarray]) -> Region | None:
    """The smallest box of a volume of ``shape`` holding every True voxel of the given
    (region, mask) pairs; None when all are empty."""
    lo = np.full(len(shape), np.iinfo(np.int64).max)
    hi = np.full(len(shape), -1)
    for region, mask in masks:
        if not mask.any():
            continue
        for axis in range(mask.ndim):
            hit = np.nonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))[0]
            start = region[axis].start or 0
            lo[axis] = min(lo[axis], start + hit[0])
            hi[axis] = max(hi[axis], start + hit[-1] + 1)
    if (hi < 0).any():
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]
