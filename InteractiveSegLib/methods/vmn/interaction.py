"""The 2D interaction network f_IN of the VMN paper (3.2) and its region of interest.

Input (4 channels): the slice image, the previous round's mask (0.5 everywhere in round
one), and the user's hint as two cue maps, positive and negative. The paper writes one
cue map; a corrective scribble that removes a false positive needs its sign, so the
cue is split in two as DeepIGeoS does. Cue encodings (4.5.6): ``geodesic`` (DeepIGeoS,
default), ``exp_geodesic`` (MIDeepSeg), ``gaussian``.

Hints: a scribble is its voxels (positive or negative); a box is its outline (a
negative cue: the structure lies inside); extreme points are four positive points; a
click is one point. One network serves every hint type (the paper's "shared" f_IN,
Table 6): the cue's shape tells them apart.

ROI (3.2): the bounding box of the hints (and of the previous mask on that slice, so a
small corrective scribble still sees the whole structure), widened by 10% per side for
boxes and extreme points (as the paper) and by 50% for scribbles and clicks (a short
stroke inside a structure says little about its extent), cropped and resized to
``size`` x ``size``; the result is resized back and pasted. For strokes and clicks the ROI
then zooms out (``ZOOM_STEPS``) while the predicted object touches its edge, so a short
stroke on a large structure sees all of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import torch

from InteractiveSegLib.encodings import gaussian_map, geodesic_map, linear_geodesic_map
from InteractiveSegLib.errors import ConfigError
from InteractiveSegLib.hints import Box, ExtremePoints, Interaction, slice_points
from InteractiveSegLib.methods.click.zoom import ZoomSettings, segment_zoomed, slice_spacing
from InteractiveSegLib.preprocessing import Roi, crop_resize, paste

ENCODINGS = ("geodesic", "exp_geodesic", "gaussian")
ROI_SIZE = 96


def to_roi(roi: Roi, points, size: int) -> np.ndarray:
    """Slice (row, col) points -> coordinates in the ROI resized to ``size`` x ``size``."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    scale = np.array([size / (roi.r1 - roi.r0), size / (roi.c1 - roi.c0)])
    return (p - [roi.r0, roi.c0] + 0.5) * scale - 0.5


def hint_roi(
    points: np.ndarray, shape: tuple[int, int], mask: np.ndarray | None = None, margin: float = 0.1, min_size: int = 24
) -> Roi:
    """Bounding box of the hint points (and of ``mask``), +``margin`` of its size per side,
    at least ``min_size`` pixels, clipped to the slice."""
    pts = np.asarray(points, np.int64).reshape(-1, 2)
    if mask is not None and mask.any():
        pts = np.concatenate([pts, np.argwhere(mask)])
    lo, hi = pts.min(0), pts.max(0) + 1
    ext = hi - lo
    pad = np.maximum(np.ceil(ext * margin), np.ceil((min_size - ext) / 2)).astype(int)
    lo = np.maximum(lo - np.maximum(pad, 0), 0)
    hi = np.minimum(hi + np.maximum(pad, 0), shape)
    return Roi(int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]))


def hint_cues(hint: Interaction, axis: int) -> tuple[list, list]:
    """(positive, negative) slice points of one hint (see the module docstring)."""
    pts = slice_points(hint.points, axis)
    if isinstance(hint, Box):
        (r0, c0), (r1, c1) = np.min(pts, 0), np.max(pts, 0)
        outline = [(r, c) for r in range(r0, r1 + 1) for c in (c0, c1)] + [
            (r, c) for c in range(c0, c1 + 1) for r in (r0, r1)
        ]
        return [], outline
    if isinstance(hint, ExtremePoints):
        return list(pts), []
    return (list(pts), []) if hint.positive else ([], list(pts))


def encode(image: np.ndarray, points: list, encoding: str) -> np.ndarray:
    """One cue map on an ROI image; zeros when there is no point."""
    if not len(points):
        return np.zeros(image.shape, np.float32)
    if encoding == "geodesic":
        return linear_geodesic_map(image, points)
    if encoding == "exp_geodesic":
        return geodesic_map(image, points)
    if encoding == "gaussian":
        return gaussian_map(image.shape, points, sigma=3.0)
    raise ConfigError(f"unknown cue encoding {encoding!r}; expected one of {ENCODINGS}")


def network_input(
    image2d: np.ndarray,
    previous: np.ndarray | None,
    positive: list,
    negative: list,
    roi: Roi,
    size: int = ROI_SIZE,
    encoding: str = "geodesic",
) -> np.ndarray:
    """(4, size, size) f_IN input: image, previous mask (0.5 if none), positive and negative cues."""
    img = crop_resize(image2d, roi, size)
    prev = (
        np.full((size, size), 0.5, np.float32)
        if previous is None
        else crop_resize(previous.astype(np.float32), roi, size)
    )
    clip = lambda p: np.clip(np.round(to_roi(roi, p, size)), 0, size - 1).astype(int).tolist() if len(p) else []  # noqa: E731
    pos, neg = clip(positive), clip(negative)
    return np.stack([img, prev, encode(img, pos, encoding), encode(img, neg, encoding)]).astype(np.float32)


#: ROI margin per side, as a fraction of the hint's box: the paper's 10% for boxes and
#: extreme points, which outline the structure; 50% for strokes and clicks, which lie inside
#: it (the robot's stroke is 5-30 voxels long, shorter than most structures)
MARGIN = {"outline": 0.1, "inside": 0.5}


def _cues(hints: Sequence[Interaction], axis: int) -> tuple[list, list, bool]:
    """(positive, negative) points of a slice's hints, and whether they all outline the structure."""
    positive, negative = [], []
    for h in hints:
        p, n = hint_cues(h, axis)
        positive += p
        negative += n
    return positive, negative, all(isinstance(h, (Box, ExtremePoints)) for h in hints)


def interaction_input(
    image2d: np.ndarray,
    previous: np.ndarray | None,
    hints: Sequence[Interaction],
    axis: int,
    size: int = ROI_SIZE,
    encoding: str = "geodesic",
) -> tuple[np.ndarray, Roi]:
    """f_IN input (4, size, size) for the hints of one slice, and the ROI it covers."""
    positive, negative, outline = _cues(hints, axis)
    roi = hint_roi(
        np.array(positive + negative),
        image2d.shape,
        previous,
        MARGIN["outline" if outline else "inside"],
        24 if outline else 32,
    )
    return network_input(image2d, previous, positive, negative, roi, size, encoding), roi


#: Times the ROI of a stroke or click may zoom out (x 1.6 at least each time) while the
#: predicted object touches its edge, as the click engine's window does.
ZOOM_STEPS = 3


def zoomed_roi(prob: np.ndarray, roi: Roi, shape: tuple[int, int], points: np.ndarray) -> Roi | None:
    """The next ROI when the prediction (``prob``, the ROI at the network's size) touches an
    edge of ``roi`` that is not the slice's: around the predicted object and the hint, with
    the stroke margin, and at least 1.6 times larger; None when the object lies inside."""
    mask = prob > 0.5
    touches = [
        bool(mask[0].any()) and roi.r0 > 0,
        bool(mask[-1].any()) and roi.r1 < shape[0],
        bool(mask[:, 0].any()) and roi.c0 > 0,
        bool(mask[:, -1].any()) and roi.c1 < shape[1],
    ]
    if not any(touches):
        return None
    rows, cols = np.nonzero(paste(prob, roi, shape) > 0.5)
    obj = np.concatenate([np.stack([rows, cols], 1), np.asarray(points, np.int64).reshape(-1, 2)])
    at_least = int(np.ceil(1.6 * max(roi.r1 - roi.r0, roi.c1 - roi.c0)))
    return hint_roi(obj, shape, None, MARGIN["inside"], at_least)


def probabilities(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """The network's foreground probabilities of a (B, C, H, W) batch as (B, H, W), computed
    on the device its weights are on (a CUDA engine's f_IN too) and handed back on the CPU."""
    device = next(net.parameters(), torch.empty(0)).device  # a network without weights runs on the CPU
    return torch.sigmoid(net(torch.from_numpy(x).to(device)))[:, 0].cpu().numpy()


@torch.no_grad()
def segment_slice(
    net: torch.nn.Module,
    image2d: np.ndarray,
    previous: np.ndarray | None,
    hints: Sequence[Interaction],
    axis: int,
    size: int = ROI_SIZE,
    encoding: str = "geodesic",
) -> tuple[np.ndarray, Roi]:
    """Run f_IN for the hints of one slice; returns the slice's probability and the ROI.

    Outside the ROI the previous mask stays (0 if there was none).
    """
    x, roi = interaction_input(image2d, previous, hints, axis, size, encoding)
    prob = probabilities(net, x[None])[0]
    positive, negative, outline = _cues(hints, axis)
    for _ in range(0 if outline else ZOOM_STEPS):  # a box or extreme points bound the structure
        grown = zoomed_roi(prob, roi, image2d.shape, np.array(positive + negative))
        if grown is None or grown == roi:
            break
        roi = grown
        x = network_input(image2d, previous, positive, negative, roi, size, encoding)
        prob = probabilities(net, x[None])[0]
    out = np.zeros(image2d.shape, np.float32) if previous is None else previous.astype(np.float32)
    out[roi.slices] = paste(prob, roi, image2d.shape)[roi.slices]
    return out, roi


def zoomed_cues(
    hints: Sequence[Interaction], axis: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int, int, int]]]:
    """(positive points, negative points, boxes) of a slice's hints for the zoomed f_IN: a
    scribble or a click is its points by sign, extreme points are positive points, a box is its
    corners (the network sees its outline as a negative line, ``zoom.outline_maps``)."""
    positive: list[tuple[int, int]] = []
    negative: list[tuple[int, int]] = []
    boxes: list[tuple[int, int, int, int]] = []
    for h in hints:
        pts = slice_points(h.points, axis)
        if isinstance(h, Box):
            (r0, c0), (r1, c1) = np.min(pts, 0), np.max(pts, 0)
            boxes.append((int(r0), int(c0), int(r1), int(c1)))
        elif isinstance(h, ExtremePoints) or h.positive:
            positive += pts
        else:
            negative += pts
    return positive, negative, boxes


@torch.no_grad()
def segment_slice_zoomed(
    net: torch.nn.Module,
    image2d: np.ndarray,
    previous: np.ndarray | None,
    hints: Sequence[Interaction],
    axis: int,
    spacing: tuple[float, float],
    settings: ZoomSettings,
) -> np.ndarray:
    """f_IN as the click engine's network (a ``click_fcnn`` checkpoint trained on every hint
    kind): the hints through a window in millimetres that zooms out while the object touches
    its edge (``zoom.segment_zoomed``). Returns the slice's probability; outside the window
    the previous mask stays (0 if there was none)."""

    before = np.zeros(image2d.shape, np.float32) if previous is None else previous.astype(np.float32)
    positive, negative, boxes = zoomed_cues(hints, axis)
    run = partial(probabilities, net)
    roi, prob = segment_zoomed(run, image2d, before > 0.5, positive, negative, spacing, settings, boxes)
    out = before.copy()
    out[roi.slices] = prob
    return out


def segment_volume_slice(
    net: torch.nn.Module,
    norm: np.ndarray,
    previous2d: np.ndarray | None,
    hints: Sequence[Interaction],
    axis: int,
    index: int,
    spacing_kji: Sequence[float],
    settings: ZoomSettings,
) -> np.ndarray:
    """``segment_slice_zoomed`` on slice ``index`` along ``axis`` of a normalised volume
    ``norm`` (KJI) of voxel size ``spacing_kji``: VMN's f_IN and the 3D prompt engine's outline
    read a slice alike. An empty ``previous2d`` (the structure's mask there) reads as none."""
    return segment_slice_zoomed(
        net,
        np.take(norm, index, axis=axis),
        previous2d if previous2d is not None and previous2d.any() else None,
        hints,
        axis,
        slice_spacing(spacing_kji, axis),
        settings,
    )
