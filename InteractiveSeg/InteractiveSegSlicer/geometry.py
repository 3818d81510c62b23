"""Volume geometry in Slicer: a scalar volume node as a library ``Volume``, world RAS <-> IJK,
and which array axis a slice view shows.

Why a separate, Qt-free module: every other piece of the Slicer glue (segment I/O, hints
from markups and gestures, slice views, the session store) needs the same checked view of
a volume node (single-component 3D scalars, extent from 0, IJK->RAS, parent transforms);
it lives here once and is tested with the ``slicer-core`` wheel on real nodes. Arrays go
through ``vtk.util.numpy_support``; no ``slicer.util`` helper that needs the application.
Every function checks its inputs and raises an ``InteractiveSegLib.errors`` exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from InteractiveSegLib.errors import ImageError, InteractionError
from InteractiveSegLib.hints import kji
from InteractiveSegLib.volume import Geometry, Volume


# ---------------------------------------------------------------------------------------
# small VTK helpers
# ---------------------------------------------------------------------------------------
def matrix_to_numpy(m: vtk.vtkMatrix4x4) -> np.ndarray:
    """A vtkMatrix4x4 as a 4 x 4 array."""
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def ijk_to_ras(volumeNode) -> np.ndarray:
    """The volume node's IJK -> RAS matrix (4 x 4; its parent transform not applied)."""
    m = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(m)
    return matrix_to_numpy(m)


def image_to_world(image) -> np.ndarray:
    """A vtkOrientedImageData's image -> world matrix (4 x 4)."""
    m = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(m)
    return matrix_to_numpy(m)


def node_name(node) -> str:
    """A node's name for messages (``(none)`` for no node)."""
    return node.GetName() if node is not None else "(none)"


def scalar_image(volumeNode):
    """The node's vtkImageData after the checks every caller needs (ImageError otherwise)."""
    if volumeNode is None:
        raise ImageError("no volume selected")
    if not volumeNode.IsA("vtkMRMLScalarVolumeNode"):
        raise ImageError(f"{node_name(volumeNode)}: {volumeNode.GetClassName()} is not a scalar volume")
    image = volumeNode.GetImageData()
    name = node_name(volumeNode)
    if image is None or image.GetPointData() is None or image.GetPointData().GetScalars() is None:
        raise ImageError(f"{name}: the volume has no voxel data")
    components = image.GetNumberOfScalarComponents()
    if components != 1:
        raise ImageError(
            f"{name}: has {components} components per voxel (RGB, vector or 4D/multi-volume); "
            "InteractiveSeg needs a single-component 3D volume (extract one component or frame first)"
        )
    extent = image.GetExtent()
    if extent[0::2] != (0, 0, 0):
        raise ImageError(f"{name}: image extent {extent} does not start at 0")
    dims = image.GetDimensions()
    if min(dims) < 2:
        raise ImageError(f"{name}: needs a 3D volume, got a single-slice/2D image of IJK size {tuple(dims)}")
    return image


# ---------------------------------------------------------------------------------------
# volumes, world <-> voxel
# ---------------------------------------------------------------------------------------
def volume_geometry(volumeNode) -> Geometry:
    """Geometry of the node's voxel grid in its own (untransformed) RAS frame."""
    return Geometry.from_ijk_to_ras(ijk_to_ras(volumeNode))


def volume_from_node(volumeNode) -> Volume:
    """Copy a scalar volume node into a ``Volume`` (KJI float32 array + geometry).

    Rejects (ImageError) a missing node or image, vector/RGB/4D volumes, single-slice
    images and NaN/inf voxels. Parent transforms are not applied: geometry is the
    node's IJK->RAS, and hints are mapped into that frame (``interactions_from_markups``).
    """
    image = scalar_image(volumeNode)
    i, j, k = image.GetDimensions()
    flat = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    # explicit copy: the Volume must not keep a view on memory that VTK may free or reuse
    array = np.array(flat.reshape(k, j, i), dtype=np.float32, copy=True)
    return Volume(array, volume_geometry(volumeNode), name=node_name(volumeNode))


def world_to_ijk(volumeNode, points_world: Iterable[Sequence[float]]) -> np.ndarray:
    """Continuous IJK of world RAS points, through the volume's parent transform(s), if any."""
    to_local = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(None, volumeNode.GetParentTransformNode(), to_local)
    ras_to_ijk = np.linalg.inv(ijk_to_ras(volumeNode))
    out = []
    for p in points_world:
        local = to_local.TransformPoint([float(c) for c in p])
        out.append((ras_to_ijk @ np.array([*local, 1.0]))[:3])
    return np.array(out, dtype=float).reshape(-1, 3)


def ijk_to_world(volumeNode, ijk: Sequence[float]) -> np.ndarray:
    """World RAS of a voxel, through the volume's parent transform(s), if any (inverse of world_to_ijk)."""
    local = (ijk_to_ras(volumeNode) @ np.array([*map(float, ijk), 1.0]))[:3]
    to_world = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(volumeNode.GetParentTransformNode(), None, to_world)
    return np.array(to_world.TransformPoint([float(c) for c in local]))


# ---------------------------------------------------------------------------------------
# slices and view orientations
# ---------------------------------------------------------------------------------------
#: Slice-view normal in RAS of each of Slicer's standard orientations.
ORIENTATION_NORMALS = {"Axial": (0.0, 0.0, 1.0), "Coronal": (0.0, 1.0, 0.0), "Sagittal": (1.0, 0.0, 0.0)}


def slice_index_at(volumeNode, ras: Sequence[float], axis: int) -> int:
    """Index along KJI ``axis`` of the volume slice through world point ``ras``."""
    ijk = tuple(int(round(c)) for c in world_to_ijk(volumeNode, [ras])[0])
    return kji(ijk)[axis]


def slice_center_world(volumeNode, axis: int, index: int) -> np.ndarray:
    """World (RAS) point at the centre of slice ``index`` along KJI ``axis``, for jumping views."""
    dims = volumeNode.GetImageData().GetDimensions()  # I, J, K
    centre_kji = [(dims[2] - 1) / 2, (dims[1] - 1) / 2, (dims[0] - 1) / 2]
    centre_kji[axis] = index
    return ijk_to_world(volumeNode, centre_kji[::-1])


def kji_axis_for_orientation(volumeNode, orientation: str = "Axial") -> int:
    """KJI array axis of the volume closest to a view's normal (an oblique or sagittally
    acquired volume has its "axial" slices along another array axis than 0)."""
    if orientation not in ORIENTATION_NORMALS:
        raise InteractionError(
            f"unknown slice orientation {orientation!r}; expected one of {sorted(ORIENTATION_NORMALS)}"
        )
    return kji_axis_for_normal(volumeNode, ORIENTATION_NORMALS[orientation])


def kji_axis_for_normal(volumeNode, normal_ras: Sequence[float], max_degrees: float | None = None) -> int:
    """KJI array axis of the volume whose slices a view with plane normal ``normal_ras`` shows.

    With ``max_degrees``, InteractionError if the view is more oblique than that to every
    voxel axis (a 2D engine works on array slices, so the user must rotate the view)."""
    n = np.asarray(normal_ras, float)
    n = n / np.linalg.norm(n)
    columns = ijk_to_ras(volumeNode)[:3, :3]
    cosines = np.abs(n @ (columns / np.linalg.norm(columns, axis=0)))
    ijk_index = int(np.argmax(cosines))
    angle = float(np.degrees(np.arccos(min(1.0, cosines[ijk_index]))))
    if max_degrees is not None and angle > max_degrees:
        raise InteractionError(
            f"the slice view is {angle:.0f} degrees oblique to the volume's voxel axes; "
            "rotate the view to the volume plane (slice view menu: 'Rotate to volume plane') first"
        )
    return 2 - ijk_index
