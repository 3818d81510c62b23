"""The network's boundary moved onto the image's edges, at the volume's own resolution,
and a "not here" hint given what lies on its side of them.

The 3D network answers on a 64-cell grid: a large region is shrunk two or three times, and
a structure it never saw is answered short of, or past, its boundary. Grow from seeds wins
there because it lets the image draw the boundary. Here the answer keeps its core and its
surround, and a marker watershed on the gradient magnitude (scikit-image) decides the band
between them: the boundary moves to the strongest edge within ``band`` finest voxel sides
(a distance in mm, the same on thick slices) of where the network put it, and never
further, so a weak or absent edge cannot leak the answer away. With a ``weight`` under 1/2
the edges only decide where the network is unsure.
"""

from __future__ import annotations

from collections.abc import Sequence

import edt
import numpy as np
import torch
from scipy import ndimage
from skimage.segmentation import watershed

from InteractiveSegLib.hints import Click, DrawnSlice, Scribble, members
from InteractiveSegLib.methods.prompt3d.prompts import Region3, drawn_plane_at, hint_points

#: how far the boundary may move, in multiples of the finest voxel side, and the snapped
#: mask's share of the result: the edges decide where the network's probability lies within
#: 0.5 +- WEIGHT / (2 (1 - WEIGHT)) (1/2 and more: the snapped mask alone). Chosen on the
#: calibration's held-out sessions (Resources/Models/prompt3d.md)
BAND = 10.0
WEIGHT = 0.3
#: the share by modality: a CT's intensities are physical units and an organ's boundary is an
#: edge, where an MRI's atlas parcels have none; the calibration's CT sessions rose from 0.449
#: to 0.474 (two draws: 0.476 to 0.494) at 0.4 (Resources/Models/prompt3d-history.md, twenty-third session)
WEIGHTS = {"ct": 0.4, "mr": WEIGHT}
#: a snapped boundary lies on an edge where the mean edge strength on it is more than this
#: times the band's median; a heavier modality weight holds only there, else WEIGHT does: in
#: an even interior (a liver, a ball) the band holds only noise, and the heavier snap held a
#: small answer back (Resources/Models/prompt3d-history.md, twenty-third session)
EDGE_CONTRAST = 1.5
#: where the region's largest side is more than COARSE times the network's grid side, the
#: grid's cells are coarser than the volume's voxels and the network's boundary is blocky:
#: there an answer thicker than the band is snapped with COARSE_WEIGHT (the snapped mask
#: alone). On the calibration's held-out sessions a tie (0.4467 both); on the whole brain, box
#: round 6 0.593 to 0.881 (Resources/Models/prompt3d-history.md, twenty-third session)
COARSE = 1.5
COARSE_WEIGHT = 0.5
#: the network's answer this sure is core wherever it lies
SURE = 0.95
#: what a negative stroke's side of the answer keeps of its probability (``negative_side``):
#: only what the network is surer of than 0.5 / FADE stays; chosen on the calibration's held-out
#: sessions (Resources/Models/prompt3d-history.md, twenty-second session)
FADE = 0.6


def edge_strength(image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """The gradient magnitude of the normalised image, smoothed over the finest voxel side
    (``spacing`` KJI in mm): what both rules below flood across."""
    sp = np.asarray(spacing, np.float64)
    return ndimage.gaussian_gradient_magnitude(image.astype(np.float32), sigma=sp.min() / sp)


def hint_markers(hints: Sequence, region: Region3) -> np.ndarray:
    """The voxels of ``region`` the class's hints speak for: 1 where they mark the structure
    (positive strokes and clicks, a drawn slice's cross-section), 2 where they mark what is not
    it (negative strokes and clicks, the rest of a drawn slice's plane), 0 elsewhere. The newest
    hint wins a voxel two of them share.

    Args:
        hints: the class's hints, oldest first.
        region: (lo, hi) KJI in the volume, hi exclusive.
    Returns:
        int32 of the region's shape.
    """
    lo, n = np.asarray(region[0]), np.asarray(region[1]) - np.asarray(region[0])
    markers = np.zeros(tuple(n), np.int32)
    for h in (m for hint in hints for m in members(hint)):
        if isinstance(h, (Scribble, Click)):
            k = hint_points([h]) - lo
            markers[tuple(k[((k >= 0) & (k < n)).all(1)].T)] = 1 if h.positive else 2
        elif isinstance(h, DrawnSlice) and (placed := drawn_plane_at(h, region)) is not None:
            markers[placed[0]] = np.where(placed[1] > 0, 1, 2)
    return markers


def snap_to_edges(
    prob: np.ndarray,
    gradient: np.ndarray,
    spacing: Sequence[float],
    marks: np.ndarray,
    band: float = BAND,
    weight: float = WEIGHT,
    thick_weight: float | None = None,
    edgeless_weight: float | None = None,
) -> tuple[np.ndarray, float] | None:
    """The network's answer with its boundary moved to the image's edges, and the share of
    the result it takes: the engine's result is ``(1 - share) * prob + share * snapped``, on
    the region's own voxels also when the snap ran on a coarser copy of a large region
    (``snap_grid``).

    Args:
        prob: the network's foreground probability over a region (KJI).
        gradient: ``edge_strength`` of the image over the same region.
        spacing: KJI voxel size in mm.
        marks: ``hint_markers`` of the class's hints over the region: their voxels stay on
            their side.
        band: how far the boundary may move, in multiples of the finest voxel side.
        weight: the snapped mask's share of the result.
        thick_weight: the share instead of ``weight`` when the answer is thicker than the
            band somewhere (None: ``weight``); a thin answer, a ribbon of cortex, keeps
            ``weight`` (the engine passes ``COARSE_WEIGHT`` on a coarse grid).
        edgeless_weight: the share instead of ``weight`` when the snapped boundary lies on
            no edge (``EDGE_CONTRAST``) and the answer is not thick (None: ``weight``).
    Returns:
        (the snapped mask, its share), or None where the answer is empty, fills the region
        or has no core (the answer stays as it is).
    """
    sp = np.asarray(spacing, np.float64)
    mask = prob > 0.5
    if not mask.any() or mask.all():
        return None
    # edt's float32 distances land a hair above a whole number of voxel sides where scipy's
    # are exact: the tolerance keeps such a voxel in the band, as before
    reach = band * sp.min() * (1 + 1e-5)
    inner, outer = distance(mask, sp), distance(~mask, sp)
    deep = inner > reach
    if thick_weight is not None and deep.any():  # a thick answer on a coarse grid: the edge gate is not asked
        weight, edgeless_weight = thick_weight, None
    markers = np.zeros(mask.shape, np.int32)
    markers[outer > reach] = 2
    markers[deep | (prob > SURE)] = 1
    markers = np.where(marks > 0, marks, markers)
    core = markers == 1
    if not core.any():
        return None
    # only the band is flooded, from the markers that border it: the watershed queues every
    # marker voxel it is given, and on a whole brain those millions took 10 times the flood
    flooded = ndimage.binary_dilation(markers == 0)
    snapped = (watershed(gradient, np.where(flooded, markers, 0), mask=flooded) == 1) | core
    if edgeless_weight is not None:
        band_voxels = (inner <= reach) & (outer <= reach)
        if not on_an_edge(snapped, gradient, band_voxels):
            weight = edgeless_weight
    return snapped, weight


def on_an_edge(snapped: np.ndarray, gradient: np.ndarray, band: np.ndarray) -> bool:
    """Whether the snapped mask's boundary within the band runs along an edge: its mean edge
    strength over the band's median is above ``EDGE_CONTRAST``. Written by hand: a two-number
    contrast test."""
    line = snapped & ~ndimage.binary_erosion(snapped) & band
    if not line.any():
        return False
    return bool(gradient[line].mean() > EDGE_CONTRAST * max(float(np.median(gradient[band])), 1e-6))


def negative_side(prob: np.ndarray, gradient: np.ndarray, marks: np.ndarray) -> np.ndarray | None:
    """The part of the answer a "not here" hint claims: the answer's voxels (probability over
    0.5) that a marker watershed on the edge strength, within the answer and the marked
    voxels, floods from what the hints mark as not the structure (negative strokes and
    clicks, a drawn slice's empty part) before what they mark as it (``hint_markers``). The
    engine keeps ``FADE`` of their probability, so only what the network is sure of stays.

    Why: the network answers past a structure's end, and a negative stroke or an empty drawn
    slice there moves little of the answer (Resources/Models/prompt3d.md); Grow from seeds
    gives such a hint what lies on its side of the image's edges. Faded, not cut: without a
    positive mark (a box's session) a negative one would flood the whole answer.

    Args:
        prob: the answer's foreground probability over a region (KJI).
        gradient: ``edge_strength`` of the image over the same region.
        marks: ``hint_markers`` of the class's hints over the region.
    Returns:
        bool of ``prob``'s shape, or None without a negative mark in the region.
    """
    if not (marks == 2).any():
        return None
    answer = prob > 0.5
    return (watershed(gradient, marks, mask=answer | (marks > 0)) == 2) & answer


def distance(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Each voxel's distance in mm to the nearest voxel outside ``mask`` (KJI ``spacing``):
    the ``edt`` library, several times scipy's speed, on torch's CPU threads."""
    return edt.edt(
        np.ascontiguousarray(mask), anisotropy=tuple(spacing), black_border=False, parallel=torch.get_num_threads()
    )
