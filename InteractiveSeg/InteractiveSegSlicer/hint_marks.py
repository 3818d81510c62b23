"""What the user placed, drawn in every view: the hints (green inside, red outside) and the
stroke or box while the button is down.

Why markups nodes (Qt-free): Slicer's displayable managers draw them in the slice and 3D
views of Slicer and of the web app alike, so both front ends show the same thing with the
same code.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from InteractiveSegLib.hints import Interaction

from . import geometry

POSITIVE_COLOR, NEGATIVE_COLOR = (0.2, 0.85, 0.3), (0.95, 0.25, 0.2)
HINTS_NODE = "InteractiveSeg hints"
STROKE_NODE = "InteractiveSeg stroke"
MAX_MARKS_PER_HINT = 8  # a long stroke is shown by a few of its points


def _node(scene, cls: str, name: str, color: Sequence[float]):
    node = scene.GetFirstNodeByName(name)
    if node is None:
        node = scene.AddNewNodeByClass(cls, name)
        node.CreateDefaultDisplayNodes()
        node.SetLocked(True)
        node.SetMarkupLabelFormat("")
        display = node.GetDisplayNode()
        display.SetSelectedColor(*color)
        display.SetColor(*color)
        display.SetGlyphScale(1.5)
        display.SetPropertiesLabelVisibility(False)
    return node


def show_hint(volumeNode, hint: Interaction) -> int:
    """Add the hint's points (at most ``MAX_MARKS_PER_HINT``) to the locked markups of its sign.

    Args:
        volumeNode: the volume the hint's voxel indices belong to.
        hint: a library hint (its ``points``, KJI voxel indices).
    Returns: the points added."""
    scene = volumeNode.GetScene()
    sign = "+" if hint.positive else "-"
    node = _node(
        scene, "vtkMRMLMarkupsFiducialNode", f"{HINTS_NODE} {sign}", POSITIVE_COLOR if hint.positive else NEGATIVE_COLOR
    )
    points = list(hint.points)
    points = points if len(points) <= MAX_MARKS_PER_HINT else points[:: max(1, len(points) // MAX_MARKS_PER_HINT)]
    for ijk in points:
        node.AddControlPointWorld(*(float(c) for c in geometry.ijk_to_world(volumeNode, ijk)))
    return len(points)


def clear_hints(scene) -> None:
    """Remove every placed hint mark (a new segment, a reset)."""
    for sign in "+-":
        node = scene.GetFirstNodeByName(f"{HINTS_NODE} {sign}")
        if node is not None:
            node.RemoveAllControlPoints()


def outline(kind: str, points_ras: Sequence[Sequence[float]], slice_to_ras: np.ndarray) -> list[np.ndarray]:
    """The world points to draw for a stroke (as drawn) or a box (its four corners, closed),
    in the plane of a slice view.

    Args:
        kind: ``scribble`` or ``box`` (a box uses the first and last points as corners).
        points_ras: the gesture's world points so far.
        slice_to_ras: the view's 4x4 SliceToRAS matrix (its columns 0 and 1: screen x and y).
    Returns: the points of the line to draw."""
    pts = [np.asarray(p, float) for p in points_ras]
    if kind != "box" or len(pts) < 2:
        return pts
    a, b = pts[0], pts[-1]
    x, y = np.asarray(slice_to_ras)[:3, 0], np.asarray(slice_to_ras)[:3, 1]
    along_x = a + float((b - a) @ x) * x
    along_y = a + float((b - a) @ y) * y
    return [a, along_x, b, along_y, a]


def show_stroke(scene, points_ras: Sequence[Sequence[float]], positive: bool = True) -> None:
    """Draw (or with no points, hide) the gesture in progress as a locked open curve."""
    node = scene.GetFirstNodeByName(STROKE_NODE)
    if node is None and not points_ras:
        return
    color = POSITIVE_COLOR if positive else NEGATIVE_COLOR
    node = node or _node(scene, "vtkMRMLMarkupsCurveNode", STROKE_NODE, color)
    node.GetDisplayNode().SetSelectedColor(*color)
    node.GetDisplayNode().SetColor(*color)
    node.RemoveAllControlPoints()
    for p in points_ras:
        node.AddControlPointWorld(*(float(c) for c in p))
    node.GetDisplayNode().SetVisibility(bool(points_ras))
