"""The network's boundary moved onto the image's edges, at the volume's own resolution.

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

from InteractiveSegLib.hints import Click, Scribble, members
from InteractiveSegLib.methods.prompt3d.prompts import hint_points

#: how far the boundary may move, in multiples of the finest voxel side, and the snapped
#: mask's share of the result: the edges decide where the network's probability lies within
#: 0.5 +- WEIGHT / (2 (1 - WEIGHT)) (1/2 and more: the snapped mask alone). Chosen on the
#: calibration's held-out sessions (Resources/Models/prompt3d.md)
BAND = 10.0
WEIGHT = 0.3
#: the network's answer this sure is core wherever it lies
SURE = 0.95


def snap_to_edges(
    prob: np.ndarray,
    image: np.ndarray,
    spacing: Sequence[float],
    hints: Sequence,
    origin: Sequence[int],
    band: float = BAND,
    weight: float = WEIGHT,
) -> np.ndarray:
    """The network's probability with its boundary moved to the image's edges.

    Args:
        prob: the network's foreground probability over a region (KJI).
        image: the normalised image over the same region.
        spacing: KJI voxel size in mm.
        hints: the class's hints; the voxels of strokes and clicks stay on their side.
        origin: the region's first voxel in the volume (KJI), to place the hints.
        band: how far the boundary may move, in multiples of the finest voxel side.
        weight: the snapped mask's share of the result.
    Returns:
        ``(1 - weight) * prob + weight * snapped``, float32, ``prob``'s shape; ``prob``
        itself where the answer is empty, fills the region or has no core.
    """
    sp = np.asarray(spacing, np.float64)
    mask = prob > 0.5
    if not mask.any() or mask.all():
        return prob
    # edt's float32 distances land a hair above a whole number of voxel sides where scipy's
    # are exact: the tolerance keeps such a voxel in the band, as before
    reach = band * sp.min() * (1 + 1e-5)
    markers = np.zeros(mask.shape, np.int32)
    markers[distance(~mask, sp) > reach] = 2
    markers[(distance(mask, sp) > reach) | (prob > SURE)] = 1
    lo, n = np.asarray(origin), np.asarray(mask.shape)
    for h in (m for hint in hints for m in members(hint) if isinstance(m, (Scribble, Click))):
        k = hint_points([h]) - lo  # in the hints' order, so the newest wins
        markers[tuple(k[((k >= 0) & (k < n)).all(1)].T)] = 1 if h.positive else 2
    core = markers == 1
    if not core.any():
        return prob
    gradient = ndimage.gaussian_gradient_magnitude(image.astype(np.float32), sigma=sp.min() / sp)
    # only the band is flooded, from the markers that border it: the watershed queues every
    # marker voxel it is given, and on a whole brain those millions took 10 times the flood
    flooded = ndimage.binary_dilation(markers == 0)
    snapped = (watershed(gradient, np.where(flooded, markers, 0), mask=flooded) == 1) | core
    return ((1 - weight) * prob + weight * snapped).astype(np.float32)


def distance(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Each voxel's distance in mm to the nearest voxel outside ``mask`` (KJI ``spacing``):
    the ``edt`` library, several times scipy's speed, on torch's CPU threads."""
    return edt.edt(
        np.ascontiguousarray(mask), anisotropy=tuple(spacing), black_border=False, parallel=torch.get_num_threads()
    )
