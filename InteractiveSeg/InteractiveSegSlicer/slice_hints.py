"""Hints from slice views: gestures (click, drag stroke, drag box, extreme points) and the
module panel's markups point lists (one click per placed point).

Why a separate, Qt-free module: the Segment Editor effect only turns mouse events into
continuous IJK points (``xyToIjk``) and the panel only names its point lists; everything
that decides what a gesture or a placed point means (which array axis the view shows,
which voxels a stroke crosses, which voxel a point falls in through the transforms, what
lies outside the image) is here, where pytest can check it on real volume nodes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from InteractiveSegLib.errors import InteractionError
from InteractiveSegLib.hints import Box, Click, ExtremePoints, Interaction, Scribble, kji

from .geometry import kji_axis_for_normal, node_name, scalar_image, world_to_ijk

#: Gestures the effect offers, in the order of its buttons.
KINDS = ("click", "scribble", "box", "extreme")
#: A view this far (degrees) from every volume axis is oblique: a slice hint would be ambiguous.
MAX_OBLIQUE_DEGREES = 20.0


def view_axis(volumeNode, normal_ras: Sequence[float]) -> int:
    """KJI axis shown by a slice view with this plane normal; refuses views oblique to the volume."""
    return kji_axis_for_normal(volumeNode, normal_ras, MAX_OBLIQUE_DEGREES)


def _voxels_on_slice(points_ijk: Sequence[Sequence[float]], axis: int, index: int) -> np.ndarray:
    """Rounded IJK of the points, the slice coordinate forced to ``index`` (the view's depth)."""
    p = np.floor(np.asarray(points_ijk, float).reshape(-1, 3) + 0.5).astype(int)
    p[:, 2 - axis] = index
    return p


def _stroke(voxels: np.ndarray) -> np.ndarray:
    """Connected voxel path through successive points (a fast drag skips voxels)."""
    out = [voxels[0]]
    for a, b in zip(voxels[:-1], voxels[1:], strict=False):
        n = int(np.abs(b - a).max())
        for t in range(1, n + 1):
            out.append(np.floor(a + (b - a) * t / n + 0.5).astype(int))
    path = np.array(out)
    _, first = np.unique(path, axis=0, return_index=True)
    return path[np.sort(first)]


def _inside(voxels: np.ndarray, shape_kji: Sequence[int]) -> np.ndarray:
    size = np.array(shape_kji[::-1])
    return np.all((voxels >= 0) & (voxels < size), axis=1)


def _outside_error(voxel, shape_kji) -> InteractionError:
    return InteractionError(
        f"the hint at voxel IJK {tuple(int(c) for c in voxel)} is outside the image "
        f"(IJK size {tuple(shape_kji[::-1])}); nothing was changed"
    )


def hint_from_gesture(
    kind: str,
    points_ijk: Sequence[Sequence[float]],
    shape_kji: Sequence[int],
    axis: int,
    label: int = 1,
    positive: bool = True,
) -> Interaction:
    """The library hint for a finished gesture on one slice view.

    ``points_ijk``: continuous IJK of the mouse positions (press, moves, release; for
    ``extreme`` the four clicks). The slice is the one under the first point. A click,
    box corner or extreme point outside the image is refused (InteractionError); a
    stroke keeps its voxels inside the image and is refused only if none are.
    """
    if kind not in KINDS:
        raise InteractionError(f"unknown gesture {kind!r}; expected one of {KINDS}")
    if len(points_ijk) == 0:
        raise InteractionError("the gesture has no points")
    first = np.floor(np.asarray(points_ijk[0], float) + 0.5).astype(int)
    index = int(kji(first)[axis])
    if not 0 <= index < shape_kji[axis]:
        raise _outside_error(first, shape_kji)
    voxels = _voxels_on_slice(points_ijk, axis, index)
    common = dict(label=int(label), positive=bool(positive), axis=int(axis))
    if kind == "scribble":
        path = _stroke(voxels)
        path = path[_inside(path, shape_kji)]
        if len(path) == 0:
            raise _outside_error(voxels[0], shape_kji)
        return Scribble([tuple(int(c) for c in v) for v in path], **common)
    chosen = {"click": voxels[-1:], "box": voxels[[0, -1]], "extreme": voxels}[kind]
    outside = ~_inside(chosen, shape_kji)
    if outside.any():
        raise _outside_error(chosen[np.argmax(outside)], shape_kji)
    as_tuples = [tuple(int(c) for c in v) for v in chosen]
    if kind == "click":
        return Click(as_tuples[0], **common)
    if kind == "box":
        return Box(as_tuples[0], as_tuples[1], **common)
    return ExtremePoints(as_tuples, **common)


def interactions_from_markups(
    pointListNode, volumeNode, label: int = 1, positive: bool = True, axis: int = 0
) -> list[Click]:
    """One ``Click`` per defined control point of a markups point list.

    World positions (markups transforms applied) are mapped through the volume's parent
    transform and RAS->IJK, then rounded to the nearest voxel. A point outside the
    volume raises InteractionError naming it. Points still being placed are skipped.
    """
    if pointListNode is None:
        return []
    image = scalar_image(volumeNode)
    size = image.GetDimensions()
    names, world = [], []
    for n in range(pointListNode.GetNumberOfControlPoints()):
        if pointListNode.GetNthControlPointPositionStatus(n) != pointListNode.PositionDefined:
            continue
        p = [0.0, 0.0, 0.0]
        pointListNode.GetNthControlPointPositionWorld(n, p)
        names.append(pointListNode.GetNthControlPointLabel(n) or f"#{n + 1}")
        world.append(p)
    if not world:
        return []
    clicks = []
    for name, p, ijk in zip(names, world, world_to_ijk(volumeNode, world), strict=False):
        voxel = tuple(int(math.floor(c + 0.5)) for c in ijk)
        if any(v < 0 or v >= s for v, s in zip(voxel, size, strict=False)):
            raise InteractionError(
                f"point {name!r} of {node_name(pointListNode)} at RAS ({p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f}) "
                f"is outside volume {node_name(volumeNode)!r} "
                f"(IJK ({', '.join(f'{c:.1f}' for c in ijk)}), size {tuple(size)})"
            )
        clicks.append(Click(voxel, label=int(label), positive=bool(positive), axis=int(axis)))
    return clicks
