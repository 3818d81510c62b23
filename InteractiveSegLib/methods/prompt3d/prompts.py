"""The 3D network's region and input channels, shared by the engine and its trainer.

The region (``Region3``, KJI, end exclusive) comes from the object: the box of the hints and
of the class's current mask, widened by ``CONTEXT`` of its size per side. A first hint on one
slice says nothing of the depth, nor do strokes and clicks on the slices of one axis in later
rounds, so the region then reaches at least as far through those slices as the box reaches
across them, in millimetres (most structures are not flat; ``as_deep_as_wide``). The engine
then zooms out (``grow_to_object``) while the prediction touches a face of the region.

The region is resampled to the network's fixed grid, and each hint is painted as the grid
cells its voxels cover, so a stroke stays unbroken when a small region is enlarged and
stays present when a large one is shrunk. A last channel says how much each cell looks like
what the positive hints cover (``likeness``): the image cue Grow from seeds lives on, handed
to the network so that a CPU-sized one learns to follow boundaries, not only a blob prior.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from InteractiveSegLib.changes import bounding_region
from InteractiveSegLib.hints import (
    Box,
    Click,
    DrawnSlice,
    ExtremePoints,
    Scribble,
    kji,
    members,
    slice_index,
    slice_points,
)
from InteractiveSegLib.preprocessing import resample

#: input channels, in order
CHANNELS = ("image", "previous", "positive", "negative", "box", "likeness")
#: the narrowest intensity spread ``likeness`` allows (normalised image units)
MIN_SPREAD = 0.02
#: widening of the object's box per side, as a share of its size
CONTEXT = 0.25
#: the smallest side of a region, in finest voxel sides (a click or a short stroke); a
#: distance in mm, so a thick-slice axis is not given 24 thick slices (Resources/Models/prompt3d.md)
MIN_SIDE = 24

Region3 = tuple[tuple[int, int, int], tuple[int, int, int]]  # (lo, hi) KJI, hi exclusive


def hint_points(hints: Sequence) -> np.ndarray:
    """KJI points of every hint (a box's corners, a drawn slice's voxels), (N, 3)."""
    pts = [kji(p) for h in hints for m in members(h) for p in m.points]
    return np.array(pts, np.int64).reshape(-1, 3)


def object_region(
    hints: Sequence,
    current: np.ndarray | None,
    spacing_kji: Sequence[float],
    shape: Sequence[int],
    context: float = CONTEXT,
    min_side: int = MIN_SIDE,
    outline: Region3 | None = None,
) -> Region3:
    """The region a prediction runs in: the box of ``hints``, of ``current`` (the class's mask,
    KJI) and of ``outline``, as deep as it is wide when every hint is on the slices of one
    axis and it is the first hint or they are all strokes and clicks (``as_deep_as_wide``),
    widened by ``context`` per side and at least ``min_side`` finest voxel sides a side (in
    mm), inside ``shape``.

    Args:
        hints: the class's hints (library interactions).
        current: the class's current mask, or None / empty on the first hint.
        spacing_kji: voxel size along K, J, I in mm.
        shape: the volume's KJI shape.
        outline: the box of the object on the newest stroke's or click's slice as a 2D
            network sees it (``outline.SliceOutliner``), or None.
    Returns:
        (lo, hi) KJI, hi exclusive.
    """
    pts = hint_points(hints)
    sp = np.asarray(spacing_kji, np.float64)
    lo = pts.min(0).astype(np.float64) if len(pts) else np.zeros(3)
    hi = pts.max(0).astype(np.float64) + 1 if len(pts) else np.asarray(shape, np.float64)
    box = None if current is None else mask_box(current)
    for seen in (box, outline):
        if seen is not None:
            lo, hi = np.minimum(lo, seen[0]), np.maximum(hi, seen[1])
    axes = {h.axis for h in hints}
    # boxes and extreme points span the structure on their slices, and later ones on other
    # slices show its depth; strokes and clicks show neither (the calibration's held-out
    # sessions: extreme points lost 0.017 when deepened too, Resources/Models/prompt3d.md)
    if len(axes) == 1 and (box is None or all(isinstance(m, (Scribble, Click)) for h in hints for m in members(h))):
        lo, hi = as_deep_as_wide(lo, hi, axes.pop(), sp)
    size = hi - lo
    lo, hi = lo - context * size, hi + context * size
    short = np.maximum(min_side * sp.min() / sp - (hi - lo), 0) / 2
    return inside(lo - short, hi + short, shape)


def as_deep_as_wide(
    lo: np.ndarray, hi: np.ndarray, axis: int, spacing_kji: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The box [``lo``, ``hi``) made at least as deep along ``axis``, in mm, as it is wide
    across it, about its centre. Hints on one axis's slices show the structure across those
    slices only: a first hint's box is one slice deep, and a later round's is as deep as the
    current mask, which a network answering short of a large structure leaves thin round
    after round (the whole brain's strokes, Resources/Models/prompt3d-history.md).

    Args:
        lo, hi: the box's KJI corners (float voxels, ``hi`` exclusive).
        axis: the KJI axis of the hints' slices.
        spacing_kji: voxel size along K, J, I in mm.
    Returns:
        (lo, hi), new arrays.
    """
    lo, hi = lo.astype(np.float64), hi.astype(np.float64)
    reach = max((hi[b] - lo[b]) * spacing_kji[b] for b in range(3) if b != axis) / spacing_kji[axis]
    if hi[axis] - lo[axis] < reach:
        centre = (lo[axis] + hi[axis]) / 2
        lo[axis], hi[axis] = centre - reach / 2, centre + reach / 2
    return lo, hi


def inside(lo: np.ndarray, hi: np.ndarray, shape: Sequence[int]) -> Region3:
    """The whole voxels of the KJI box [``lo``, ``hi``) that lie in ``shape``, at least one a side."""
    n = np.asarray(shape)
    lo_i = np.clip(np.floor(lo), 0, n - 1).astype(int)
    hi_i = np.clip(np.ceil(hi), lo_i + 1, n).astype(int)
    return (tuple(int(x) for x in lo_i), tuple(int(x) for x in hi_i))  # type: ignore[return-value]


def region_cut(region: Region3) -> tuple[slice, slice, slice]:
    """The slices that cut ``region`` out of a volume (KJI)."""
    (k0, j0, i0), (k1, j1, i1) = region
    return slice(k0, k1), slice(j0, j1), slice(i0, i1)


def mask_box(mask: np.ndarray) -> Region3 | None:
    """The box of a mask's voxels as (lo, hi) KJI (``changes.bounding_region``); None when empty."""
    whole = tuple(slice(0, n) for n in mask.shape)
    box = bounding_region(mask.shape, (whole, mask))  # type: ignore[arg-type]
    if box is None:
        return None
    return tuple(b.start for b in box), tuple(b.stop for b in box)


def touching_faces(mask: np.ndarray, region: Region3, shape: Sequence[int]) -> list[tuple[int, int]]:
    """(axis, side) of the region's faces that ``mask`` (the region's result) touches and
    that are not the volume's own border (side -1: the low face, +1: the high face)."""
    lo, hi = region
    out = []
    for a in range(3):
        if lo[a] > 0 and np.take(mask, 0, axis=a).any():
            out.append((a, -1))
        if hi[a] < shape[a] and np.take(mask, -1, axis=a).any():
            out.append((a, 1))
    return out


def grow_to_object(region: Region3, faces: list[tuple[int, int]], shape: Sequence[int], factor: float = 0.5) -> Region3:
    """The region moved out by ``factor`` of its size (at least 8 voxels) across each touched face."""
    lo, hi = list(region[0]), list(region[1])
    for a, side in faces:
        step = max(8, int(round(factor * (region[1][a] - region[0][a]))))
        if side < 0:
            lo[a] = max(0, lo[a] - step)
        else:
            hi[a] = min(int(shape[a]), hi[a] + step)
    return (tuple(lo), tuple(hi))  # type: ignore[return-value]


def _cells(v: np.ndarray, lo: np.ndarray, extent: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid cells [start, stop) that voxels at KJI ``v`` cover when ``extent`` voxels from
    ``lo`` are resampled to ``size`` cells."""
    scale = size / extent
    start = np.floor((v - lo) * scale).astype(int)
    stop = np.maximum(start + 1, np.ceil((v - lo + 1) * scale).astype(int))
    return np.clip(start, 0, size - 1), np.clip(stop, 1, size)


def hinted_planes(hints: Sequence, region: Region3, size: int) -> np.ndarray:
    """The grid cells of the slices the hints were given on (each hint's plane, across the
    region), bool (size, size, size): where a user looks at the answer first.

    Args:
        hints: the class's hints; those whose slice is outside the region are left out.
        region: (lo, hi) KJI.
        size: the network's grid side.
    Returns:
        True on every cell of a hinted slice's plane.
    """
    lo, hi = np.asarray(region[0]), np.asarray(region[1])
    planes = np.zeros((size, size, size), bool)
    for h in hints:
        a, k = h.axis, slice_index(h)
        if not lo[a] <= k < hi[a]:
            continue
        planes[_plane(a, k, lo, hi, size)] = True
    return planes


def _plane(axis: int, index: int, lo: np.ndarray, hi: np.ndarray, size: int) -> tuple[slice, ...]:
    """The grid cells slice ``index`` along ``axis`` covers, across the region (``lo``, ``hi``)."""
    s, e = _cells(np.array([index]), np.array([lo[axis]]), np.array([hi[axis] - lo[axis]]), size)
    at: list[slice] = [slice(None)] * 3
    at[axis] = slice(int(s[0]), int(e[0]))
    return tuple(at)


def to_region(grid: torch.Tensor, region: Region3) -> torch.Tensor:
    """The network's output (N, C, size^3) resized to ``region``'s own shape (trilinear)."""
    shape = tuple(b - a for a, b in zip(*region, strict=True))
    return F.interpolate(grid, size=shape, mode="trilinear", align_corners=False)


def encode(image: np.ndarray, previous: np.ndarray | None, hints: Sequence, region: Region3, size: int) -> np.ndarray:
    """The network's input (len(CHANNELS), size, size, size) for ``region`` of a volume.

    Args:
        image: the normalised volume (KJI).
        previous: the class's current mask (KJI, whole volume) or None.
        hints: the class's hints; those outside the region are left out.
        region: (lo, hi) KJI.
        size: the network's grid side.
    Returns:
        float32 channels: image, previous mask, positive hints, negative hints, boxes, likeness.
    """
    lo, hi = np.asarray(region[0]), np.asarray(region[1])
    cut = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    extent = hi - lo
    x = np.zeros((len(CHANNELS), size, size, size), np.float32)
    x[0] = resample(image[cut], size)
    if previous is not None:
        x[1] = resample(previous[cut].astype(np.float32), size)
    spans = np.zeros((size, size, size), bool)  # what positive boxes and extreme points enclose
    edges = np.zeros((size, size, size), bool)  # extreme points: on the boundary, not inside
    for h in (m for hint in hints for m in members(hint)):
        if isinstance(h, DrawnSlice):
            _paint_drawn(x, h, lo, hi, size)
            continue
        pts = np.array([kji(p) for p in h.points], np.int64).reshape(-1, 3)
        if isinstance(h, Box):
            a, b = _cells(pts.min(0), lo, extent, size)[0], _cells(pts.max(0), lo, extent, size)[1]
            if np.all(pts.max(0) >= lo) and np.all(pts.min(0) < hi):
                x[4 if h.positive else 3][a[0] : b[0], a[1] : b[1], a[2] : b[2]] = 1.0
                if h.positive:
                    spans[a[0] : b[0], a[1] : b[1], a[2] : b[2]] = True
            continue
        assert isinstance(h, (Click, Scribble, ExtremePoints))
        inside = np.all((pts >= lo) & (pts < hi), axis=1)
        start, stop = _cells(pts[inside], lo, extent, size)
        channel = x[2 if h.positive else 3]
        enclosing = isinstance(h, ExtremePoints) and h.positive and bool(inside.all())
        for s, e in zip(start, stop, strict=True):
            channel[s[0] : e[0], s[1] : e[1], s[2] : e[2]] = 1.0
            if enclosing:
                edges[s[0] : e[0], s[1] : e[1], s[2] : e[2]] = True
        if enclosing:
            a, b = start.min(0), stop.max(0)
            spans[a[0] : b[0], a[1] : b[1], a[2] : b[2]] = True
    x[5] = likeness(x[0], (x[2] > 0) & ~edges, spans)
    return x


def likeness(image: np.ndarray, marked: np.ndarray, spans: np.ndarray | None = None) -> np.ndarray:
    """How much each cell looks like the structure the positive hints show: a Gaussian of the
    (lightly smoothed) intensity around the hints' weighted median, twice their weighted
    robust spread (MAD) wide. Written by hand: a robust intensity model; no library gives it
    for a grid.

    Strokes, clicks and drawn cross-sections mark the structure itself (weight 1 per cell). A
    box or extreme points only enclose it, with background around it: each cell they span is
    weighed by how much more common its intensity is there than in a ring around them
    (``excess``). Before, a box's plain median stood for the structure, so a small lesion in
    a loose box took the background's intensity.

    Args:
        image: the image channel on the grid.
        marked: cells the structure certainly covers (strokes, clicks, drawn cross-sections).
        spans: cells positive boxes and extreme points enclose (None: none).
    Returns:
        float32 in [0, 1], the image's shape; zeros when nothing is marked.
    """
    spans = np.zeros_like(marked) if spans is None else spans
    if not marked.any() and not spans.any():
        return np.zeros_like(image)
    smooth = ndimage.gaussian_filter(image, 1.0)
    values = np.concatenate([smooth[marked], smooth[spans]])
    weights = np.concatenate([np.ones(int(marked.sum())), excess(smooth, spans)])
    centre = _weighted_median(values, weights)
    spread = max(1.4826 * _weighted_median(np.abs(values - centre), weights), MIN_SPREAD)
    return np.exp(-0.5 * ((smooth - centre) / (2 * spread)) ** 2).astype(np.float32)


def excess(smooth: np.ndarray, spans: np.ndarray, bins: int = 24, least: float = 0.05) -> np.ndarray:
    """Per spanned cell, the share of its intensity's density inside ``spans`` that a ring
    around them (a quarter of their largest side wide) does not explain: 1 - ring / inside,
    clipped to [0, 1]. Where less than ``least`` of the span is in excess (a box on a
    structure no brighter or darker than its surroundings), every cell weighs 1, as the
    box's median did. Written by hand: a two-histogram likelihood ratio."""
    inside = smooth[spans]
    if not len(inside):
        return inside
    cells = np.nonzero(spans)
    side = max(2, round(0.25 * max(int(np.ptp(c)) + 1 for c in cells)))
    ring = smooth[ndimage.binary_dilation(spans, iterations=side) & ~spans]
    lo, hi = np.percentile(np.concatenate([inside, ring]), [1, 99])
    edges = np.linspace(lo, hi + 1e-6, bins + 1)
    density_in = np.histogram(np.clip(inside, lo, hi), edges)[0] / len(inside)
    density_ring = np.histogram(np.clip(ring, lo, hi), edges)[0] / max(len(ring), 1)
    share = np.clip(1 - density_ring / np.maximum(density_in, 1e-9), 0, 1)
    weights = share[np.clip(np.digitize(inside, edges) - 1, 0, bins - 1)]
    return weights if weights.sum() >= least * len(inside) else np.ones(len(inside))


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The smallest value holding half the total weight. Written by hand: numpy's weighted
    quantile needs numpy 2, and the library supports numpy 1.24 (Slicer's own Python)."""
    order = np.argsort(values)
    total = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(total, total[-1] / 2)])


def _paint_drawn(x: np.ndarray, h: DrawnSlice, lo: np.ndarray, hi: np.ndarray, size: int) -> None:
    """A drawn slice: its cross-section positive and the rest of its plane negative (an
    empty one: the whole plane negative)."""
    a = h.axis
    assert h.index is not None
    if not lo[a] <= h.index < hi[a]:
        return
    t = torch.from_numpy(drawn_plane(h, (tuple(lo), tuple(hi))))[None, None]
    on = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy() > 0.5
    at = _plane(a, h.index, lo, hi, size)
    pos, neg = np.moveaxis(x[2][at], a, 0), np.moveaxis(x[3][at], a, 0)
    pos[:, on] = 1.0
    neg[:, ~on] = 1.0


def drawn_plane(h: DrawnSlice, region: Region3) -> np.ndarray:
    """A drawn slice's cross-section on its plane, cropped to ``region`` (float32, 1 inside)."""
    lo, hi = region
    others = [b for b in range(3) if b != h.axis]
    plane = np.zeros((hi[others[0]] - lo[others[0]], hi[others[1]] - lo[others[1]]), np.float32)
    if h.voxels:
        rows, cols = np.array(slice_points(h.voxels, h.axis)).T
        r, c = rows - lo[others[0]], cols - lo[others[1]]
        keep = (r >= 0) & (r < plane.shape[0]) & (c >= 0) & (c < plane.shape[1])
        plane[r[keep], c[keep]] = 1.0
    return plane


def drawn_plane_at(h: DrawnSlice, region: Region3) -> tuple[tuple[int | slice, ...], np.ndarray] | None:
    """Where a drawn slice lies in ``region`` (an index into the region's array) and its
    cross-section there (``drawn_plane``), or None when its slice is outside the region."""
    lo, hi = region
    if h.index is None or not lo[h.axis] <= h.index < hi[h.axis]:
        return None
    at: list[int | slice] = [slice(None)] * 3
    at[h.axis] = h.index - lo[h.axis]
    return tuple(at), drawn_plane(h, region)
