"""Virtual users: the benchmark robot (deterministic) and the training click sampler.

Benchmark robot (../shared/BENCHMARK.md): click at the interior point, farthest from
the border, of the largest connected error region; positive on a false negative,
negative on a false positive. Training sampler (click-guidance paper, III-B): a click
drawn with probability proportional to exp(chamfer distance) - 1 inside the
false-negative or false-positive region, whichever is larger; this is MONAI deepgrow's
``AddRandomGuidanced``, which implements that paper, and we call it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cc3d
import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize


@dataclass
class RobotClick:
    """A click in array coordinates of the image it was computed on (2D or 3D)."""

    point: tuple[int, ...]
    positive: bool
    region_size: int


def _largest_component(mask: np.ndarray) -> tuple[np.ndarray, int]:
    if not mask.any():
        return mask, 0
    lab = cc3d.connected_components(mask.astype(np.uint8), connectivity=8 if mask.ndim == 2 else 26)
    counts = np.bincount(lab.ravel())
    counts[0] = 0
    best = int(np.argmax(counts))
    return lab == best, int(counts[best])


def robot_click(reference: np.ndarray, prediction: np.ndarray) -> RobotClick | None:
    """Next click of the standard protocol, or None if the prediction is perfect."""
    ref = reference.astype(bool)
    pred = prediction.astype(bool)
    fn, n_fn = _largest_component(ref & ~pred)
    fp, n_fp = _largest_component(pred & ~ref)
    if n_fn == 0 and n_fp == 0:
        return None
    region, positive, size = (fn, True, n_fn) if n_fn >= n_fp else (fp, False, n_fp)
    # Pad so the image border counts as region border, as it does for a person.
    dist = ndimage.distance_transform_edt(np.pad(region, 1))[(slice(1, -1),) * region.ndim]
    point = np.unravel_index(int(np.argmax(dist)), region.shape)
    return RobotClick(tuple(int(c) for c in point), positive, size)


def robot_scribble(
    reference: np.ndarray, prediction: np.ndarray, min_len: int = 5, max_len: int = 30
) -> tuple[list[tuple[int, int]], bool] | None:
    """A short stroke on a 2D slice: skeleton voxels of the largest error region near its centre."""
    click = robot_click(reference, prediction)
    if click is None:
        return None
    ref, pred = reference.astype(bool), prediction.astype(bool)
    err = (ref & ~pred) if click.positive else (pred & ~ref)
    region, _ = _largest_component(err)
    skel = skeletonize(region)
    pts = np.argwhere(skel)
    if len(pts) == 0:
        pts = np.argwhere(region)
    d = np.linalg.norm(pts - np.asarray(click.point), axis=1)
    order = np.argsort(d, kind="stable")
    n = int(np.clip(len(pts), 1, max_len))
    chosen = pts[order[:n]]
    if len(chosen) < min_len:  # thin or tiny region: add the interior voxels nearest the click
        inner = np.argwhere(region)
        di = np.linalg.norm(inner - np.asarray(click.point), axis=1)
        chosen = inner[np.argsort(di, kind="stable")[:min_len]]
    return cast(list[tuple[int, int]], [tuple(int(c) for c in p) for p in chosen]), click.positive


def robot_box(
    reference: np.ndarray, rng: np.random.Generator | None = None, jitter: int = 10
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Bounding box (min, max corners, inclusive) of a 2D reference, each corner coordinate
    jittered by up to ``jitter`` pixels (VMN 4.2) and clipped to the slice."""
    pts = np.argwhere(reference)
    if len(pts) == 0:
        return None
    lo, hi = pts.min(0), pts.max(0)
    if rng is not None and jitter:
        lo = lo + rng.integers(-jitter, jitter + 1, 2)
        hi = hi + rng.integers(-jitter, jitter + 1, 2)
    lo, hi = np.clip(lo, 0, np.array(reference.shape) - 1), np.clip(hi, 0, np.array(reference.shape) - 1)
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    return (int(lo[0]), int(lo[1])), (int(hi[0]), int(hi[1]))


def robot_extreme_points(
    reference: np.ndarray, rng: np.random.Generator | None = None, jitter: int = 10
) -> list[tuple[int, int]] | None:
    """Top, bottom, left and right-most pixels of a 2D reference (the median one where
    several tie), each jittered by up to ``jitter`` pixels (VMN 4.2), clipped to the slice."""
    pts = np.argwhere(reference)
    if len(pts) == 0:
        return None
    out = []
    for axis, pick in ((0, np.min), (0, np.max), (1, np.min), (1, np.max)):
        ext = pts[pts[:, axis] == pick(pts[:, axis])]
        p = ext[len(ext) // 2].copy()
        if rng is not None and jitter:
            p = p + rng.integers(-jitter, jitter + 1, 2)
        out.append(tuple(int(c) for c in np.clip(p, 0, np.array(reference.shape) - 1)))
    return cast(list[tuple[int, int]], out)


def robot_slice_hint(
    kind: str,
    reference: np.ndarray,
    current: np.ndarray | None,
    axis: int,
    index: int,
    rng: np.random.Generator | None = None,
):
    """The robot's hint of ``kind`` ("scribble", "box", "extreme", "drawn") on slice ``index`` along
    KJI ``axis``, as a library interaction: a stroke on the largest error of ``current`` (None:
    nothing segmented yet), a box / extreme points from the reference jittered as VMN 4.2, or the
    reference's cross-section drawn whole (Propagate in Slicer: the interaction network is left
    out, so only the propagation is measured; an empty one where the structure is not). A slice
    without the structure gets a (negative) stroke for every other kind. None: nothing to correct."""
    from InteractiveSegLib.hints import Box, DrawnSlice, ExtremePoints, Scribble
    from InteractiveSegLib.hints import ijk_from_slice_point as to_ijk

    lift = lambda pts: [to_ijk(p, axis, index) for p in pts]  # noqa: E731
    if kind == "drawn":  # the cross-section as it is; none where the structure is not
        if current is not None and np.array_equal(current, reference):
            return None
        return DrawnSlice(lift(np.argwhere(reference)), axis=axis, index=index)
    if kind == "scribble" or not reference.any():
        s = robot_scribble(reference, np.zeros_like(reference) if current is None else current)
        return None if s is None else Scribble(lift(s[0]), positive=s[1], axis=axis)
    if kind == "box":
        lo, hi = lift(robot_box(reference, rng))
        return Box(lo, hi, axis=axis)
    return ExtremePoints(lift(robot_extreme_points(reference, rng)), axis=axis)


class TrainingClickSampler:
    """Click sampler of the click-guidance paper, through MONAI deepgrow's transforms."""

    def __init__(self, seed: int = 4242) -> None:
        from monai.apps.deepgrow.transforms import AddRandomGuidanced, FindDiscrepancyRegionsd

        self._disparity = FindDiscrepancyRegionsd.disparity
        self._guidance = AddRandomGuidanced()
        self._guidance.set_random_state(seed)

    def __call__(self, reference: np.ndarray, prediction: np.ndarray) -> RobotClick | None:
        """Next click for a 2D slice; positive if the FN area exceeds the FP area."""
        pos, neg = self._disparity(reference[None].astype(np.float32), prediction[None].astype(np.float32))
        n_pos, n_neg = int(pos.sum()), int(neg.sum())
        if n_pos == 0 and n_neg == 0:
            return None
        positive = n_pos > n_neg
        g = self._guidance.find_guidance(pos if positive else neg)
        if g is None:
            return None
        # deepgrow's find_guidance returns [distance, *coords] for a channel-first map.
        return RobotClick(tuple(int(c) for c in g[1:]), positive, n_pos if positive else n_neg)
