"""Where a slice the user should look at is shown: a highlight plane and the slice views.

Why a separate, Qt-free module: "Next slice" (VMN's worst-rated slice) and the online
learner's proposals both name a slice as (KJI axis, index) of the volume's own grid. On
an oblique or anisotropic volume that slice is not an axial/coronal/sagittal plane of
the world, so the highlight and the view must be built from the volume's IJK->RAS. Here
pytest checks that on real MRML nodes; the module panel and the Segment Editor effect
only pass their nodes in.
"""

from __future__ import annotations

import numpy as np

from InteractiveSegLib.errors import InteractionError

from . import geometry

#: The one highlight of "Next slice" (updated on each suggestion, hidden on the next hint).
SUGGESTED_SLICE = "InteractiveSeg suggested slice"
SUGGESTED_COLOR = (1.0, 0.8, 0.1)  # amber: not a segment colour, not a hint colour
#: Highlights of the online learner's proposals: this name + " 1", " 2", ...
PROPOSED_SLICE = "InteractiveSeg proposed slice"
PROPOSED_COLOR = (0.2, 0.75, 1.0)
#: The slice view of Slicer's standard layouts that shows each orientation.
VIEW_OF_ORIENTATION = {"Axial": "Red", "Coronal": "Green", "Sagittal": "Yellow"}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def slice_plane(volumeNode, axis: int, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    """(centre, in-plane x and y unit directions, size in mm) of slice ``index`` along KJI
    ``axis`` in the volume's own RAS frame: the rectangle covers the slice's voxels to their
    outer edges (IJK -0.5 to n - 0.5 along both in-plane axes)."""
    image = geometry.scalar_image(volumeNode)
    dims = image.GetDimensions()  # I, J, K
    normal_ijk = 2 - int(axis)
    if not 0 <= index < dims[normal_ijk]:
        raise InteractionError(
            f"slice {index} is outside the volume ({dims[normal_ijk]} slices along array axis {axis})"
        )
    a, b = (c for c in range(3) if c != normal_ijk)
    m = geometry.ijk_to_ras(volumeNode)
    centre_ijk = [(d - 1) / 2 for d in dims]
    centre_ijk[normal_ijk] = index
    centre = (m @ [*centre_ijk, 1.0])[:3]
    x = _unit(m[:3, a])
    y = _unit(m[:3, b] - (m[:3, b] @ x) * x)  # exact for Slicer's orthogonal grids; squared up if sheared
    size = (float(np.linalg.norm(m[:3, a]) * dims[a]), float(np.abs(m[:3, b] @ y) * dims[b]))
    return centre, x, y, size


def highlight_slice(volumeNode, axis: int, index: int, name: str = SUGGESTED_SLICE, color=SUGGESTED_COLOR):
    """Create or update the locked markups plane ``name`` lying exactly on slice ``index``
    along KJI ``axis`` (under the volume's parent transform, like the volume). Slice views
    crossing it show a coloured line where that slice is; views showing it show its outline."""
    centre, x, y, size = slice_plane(volumeNode, axis, index)
    scene = volumeNode.GetScene()
    node = scene.GetFirstNodeByName(name)
    if node is None or not node.IsA("vtkMRMLMarkupsPlaneNode"):
        node = scene.AddNewNodeByClass("vtkMRMLMarkupsPlaneNode", name)
        node.SaveWithSceneOff()  # a pointer for the session, not data
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        display.SetHandlesInteractive(False)
        display.SetPropertiesLabelVisibility(False)
        display.SetFillOpacity(0.15)
    node.SetLocked(True)
    transform = volumeNode.GetParentTransformNode()
    node.SetAndObserveTransformNodeID(transform.GetID() if transform is not None else None)
    wasModified = node.StartModify()
    try:
        node.SetSizeMode(node.SizeModeAbsolute)
        node.SetAxes(list(x), list(y), list(np.cross(x, y)))
        node.SetCenter(list(centre))
        node.SetSize(*size)
    finally:
        node.EndModify(wasModified)
    display = node.GetDisplayNode()
    display.SetColor(*color)
    display.SetSelectedColor(*color)
    display.SetVisibility(True)
    return node


def hide_highlights(scene, name: str = SUGGESTED_SLICE, exact: bool = False) -> int:
    """Hide every highlight whose name starts with ``name`` (``exact``: is ``name``); returns
    how many were shown."""
    hidden = 0
    nodes = scene.GetNodesByClass("vtkMRMLMarkupsPlaneNode")
    for n in range(nodes.GetNumberOfItems()):
        node = nodes.GetItemAsObject(n)
        display = node.GetDisplayNode()
        matches = node.GetName() == name if exact else node.GetName().startswith(name)
        if matches and display is not None and display.GetVisibility():
            display.SetVisibility(False)
            hidden += 1
    return hidden


def orientation_for_axis(volumeNode, axis: int) -> str:
    """The slice-view orientation (Axial, Coronal, Sagittal) that shows the volume's slices
    along KJI ``axis`` (the inverse of ``geometry.kji_axis_for_orientation``); for a volume so
    oblique that no orientation maps to that axis alone, the one closest to it."""
    names = [o for o in geometry.ORIENTATION_NORMALS if geometry.kji_axis_for_orientation(volumeNode, o) == axis]
    if len(names) == 1:
        return names[0]
    direction = _unit(geometry.ijk_to_ras(volumeNode)[:3, 2 - axis])
    return max(geometry.ORIENTATION_NORMALS, key=lambda o: abs(np.dot(geometry.ORIENTATION_NORMALS[o], direction)))


def _slice_to_ras(sliceNode) -> np.ndarray:
    return geometry.matrix_to_numpy(sliceNode.GetSliceToRAS())


def _world_axes(volumeNode) -> np.ndarray:
    """Unit world directions (columns) of the volume's I, J and K axes at its centre, parent
    transform applied."""
    dims = volumeNode.GetImageData().GetDimensions()
    centre = np.array([(d - 1) / 2 for d in dims])
    origin = geometry.ijk_to_world(volumeNode, centre)
    return np.stack([_unit(geometry.ijk_to_world(volumeNode, centre + e) - origin) for e in np.eye(3)], axis=1)


def show_slice(sliceNode, volumeNode, axis: int, index: int) -> str:
    """Aim a slice view (its ``vtkMRMLSliceNode``) at slice ``index`` along KJI ``axis``: the
    orientation that shows that axis, rotated onto the volume's own axes (as Slicer's "Rotate
    to volume plane", but always onto ``axis``, however oblique the volume), each screen
    direction kept closest to the orientation's; centred on the slice. Returns the orientation."""
    orientation = orientation_for_axis(volumeNode, axis)
    sliceNode.SetOrientation(orientation)
    preset = _slice_to_ras(sliceNode)[:3, :3]  # the orientation's screen right, up and normal
    world = _world_axes(volumeNode)
    x_col, y_col = sorted((c for c in range(3) if c != 2 - axis), key=lambda c: -abs(world[:, c] @ preset[:, 0]))

    def aligned(d, ref):
        return d if d @ ref >= 0 else -d

    x = aligned(world[:, x_col], preset[:, 0])
    y = aligned(world[:, y_col], preset[:, 1])
    y = _unit(y - (y @ x) * x)
    n = aligned(np.cross(x, y), preset[:, 2])
    matrix = sliceNode.GetSliceToRAS()
    for r in range(3):
        for c, d in enumerate((x, y, n)):
            matrix.SetElement(r, c, d[r])
    sliceNode.UpdateMatrices()
    sliceNode.JumpSliceByCentering(*geometry.slice_center_world(volumeNode, axis, index))
    return orientation


def view_slice(sliceNode, volumeNode) -> tuple[int, int]:
    """(KJI axis, index) of the volume slice a slice view shows; InteractionError for a view
    oblique to the volume (the user must rotate it to the volume plane)."""
    from .slice_hints import view_axis

    m = _slice_to_ras(sliceNode)
    axis = view_axis(volumeNode, m[:3, 2])
    return axis, geometry.slice_index_at(volumeNode, m[:3, 3], axis)
