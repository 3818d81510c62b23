"""MRML glue: the only place where InteractiveSegLib data meets Slicer nodes.

Runs inside Slicer and in plain Python with the ``slicer-core`` wheel (no Qt, no
``slicer.util`` helpers that need ``slicer.mrmlScene`` or ``slicer.modules``): nodes
are passed in, arrays go through ``vtk.util.numpy_support`` and segment edits through
the static ``vtkSlicerSegmentationsModuleLogic`` functions, which Slicer's own effects use.

Every function checks its inputs first and raises an ``InteractiveSegLib.errors``
exception before it changes anything in the scene.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from InteractiveSegLib.errors import GeometryError, ImageError, InteractionError, InteractiveSegError
from InteractiveSegLib.hints import Click, Interaction, SliceAuto, from_dict, from_json, kji, validate
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.volume import Geometry, Volume

BINARY_LABELMAP = "Binary labelmap"
#: Segment tag that remembers which class (label value) a segment holds.
LABEL_TAG = "InteractiveSeg.LabelValue"
#: World-space tolerance (mm) when comparing voxel grids.
GEOMETRY_TOLERANCE = 1e-3

Region = tuple  # tuple of 3 KJI slices, as InteractiveSegLib.engines.base.Region


# ---------------------------------------------------------------------------------------
# small VTK helpers
# ---------------------------------------------------------------------------------------
def _matrix_to_numpy(m: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def _ijk_to_ras(volumeNode) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(m)
    return _matrix_to_numpy(m)


def _image_to_world(image) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(m)
    return _matrix_to_numpy(m)


def _extent_empty(extent: Sequence[int]) -> bool:
    return extent[0] > extent[1] or extent[2] > extent[3] or extent[4] > extent[5]


def _same_node(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a.GetID() == b.GetID())


def _node_name(node) -> str:
    return node.GetName() if node is not None else "(none)"


def _scalar_image(volumeNode):
    """The node's vtkImageData after the checks every caller needs (ImageError otherwise)."""
    if volumeNode is None:
        raise ImageError("no volume selected")
    if not volumeNode.IsA("vtkMRMLScalarVolumeNode"):
        raise ImageError(f"{_node_name(volumeNode)}: {volumeNode.GetClassName()} is not a scalar volume")
    image = volumeNode.GetImageData()
    name = _node_name(volumeNode)
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


def _geometry_image(volumeNode):
    """An empty vtkOrientedImageData with the volume's voxel grid (origin, spacing, directions, extent)."""
    image = slicer.vtkOrientedImageData()
    m = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(m)
    image.SetImageToWorldMatrix(m)
    image.SetExtent(volumeNode.GetImageData().GetExtent())
    return image


# ---------------------------------------------------------------------------------------
# volumes and markups
# ---------------------------------------------------------------------------------------
def volume_geometry(volumeNode) -> Geometry:
    """Geometry of the node's voxel grid in its own (untransformed) RAS frame."""
    return Geometry.from_ijk_to_ras(_ijk_to_ras(volumeNode))


def volume_from_node(volumeNode) -> Volume:
    """Copy a scalar volume node into a ``Volume`` (KJI float32 array + geometry).

    Rejects (ImageError) a missing node or image, vector/RGB/4D volumes, single-slice
    images and NaN/inf voxels. Parent transforms are not applied: geometry is the
    node's IJK->RAS, and hints are mapped into that frame (``interactions_from_markups``).
    """
    image = _scalar_image(volumeNode)
    i, j, k = image.GetDimensions()
    flat = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    # explicit copy: the Volume must not keep a view on memory that VTK may free or reuse
    array = np.array(flat.reshape(k, j, i), dtype=np.float32, copy=True)
    return Volume(array, volume_geometry(volumeNode), name=_node_name(volumeNode))


def world_to_ijk(volumeNode, points_world: Iterable[Sequence[float]]) -> np.ndarray:
    """Continuous IJK of world RAS points, through the volume's parent transform(s), if any."""
    to_local = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(None, volumeNode.GetParentTransformNode(), to_local)
    ras_to_ijk = np.linalg.inv(_ijk_to_ras(volumeNode))
    out = []
    for p in points_world:
        local = to_local.TransformPoint([float(c) for c in p])
        out.append((ras_to_ijk @ np.array([*local, 1.0]))[:3])
    return np.array(out, dtype=float).reshape(-1, 3)


def ijk_to_world(volumeNode, ijk: Sequence[float]) -> np.ndarray:
    """World RAS of a voxel, through the volume's parent transform(s), if any (inverse of world_to_ijk)."""
    local = (_ijk_to_ras(volumeNode) @ np.array([*map(float, ijk), 1.0]))[:3]
    to_world = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(volumeNode.GetParentTransformNode(), None, to_world)
    return np.array(to_world.TransformPoint([float(c) for c in local]))


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
    image = _scalar_image(volumeNode)
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
                f"point {name!r} of {_node_name(pointListNode)} at RAS ({p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f}) "
                f"is outside volume {_node_name(volumeNode)!r} (IJK ({', '.join(f'{c:.1f}' for c in ijk)}), size {tuple(size)})"
            )
        clicks.append(Click(voxel, label=int(label), positive=bool(positive), axis=int(axis)))
    return clicks


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
    columns = _ijk_to_ras(volumeNode)[:3, :3]
    cosines = np.abs(n @ (columns / np.linalg.norm(columns, axis=0)))
    ijk_index = int(np.argmax(cosines))
    angle = float(np.degrees(np.arccos(min(1.0, cosines[ijk_index]))))
    if max_degrees is not None and angle > max_degrees:
        raise InteractionError(
            f"the slice view is {angle:.0f} degrees oblique to the volume's voxel axes; "
            "rotate the view to the volume plane (slice view menu: 'Rotate to volume plane') first"
        )
    return 2 - ijk_index


# ---------------------------------------------------------------------------------------
# segmentations
# ---------------------------------------------------------------------------------------
def _segment_label_value(segment) -> int | None:
    value = vtk.reference("")
    if segment.GetTag(LABEL_TAG, value):
        try:
            return int(value.get())
        except ValueError:
            return None
    return None


def find_segments(segmentationNode, labels: LabelTable) -> dict[int, str]:
    """Existing segment per class: the segment tagged with its label value, else the one with its name."""
    segmentation = segmentationNode.GetSegmentation()
    ids = list(segmentation.GetSegmentIDs())
    by_tag, by_name = {}, {}
    for sid in ids:
        seg = segmentation.GetSegment(sid)
        v = _segment_label_value(seg)
        if v is not None:
            by_tag.setdefault(v, sid)
        by_name.setdefault(seg.GetName(), sid)
    found: dict[int, str] = {}
    for entry in labels:
        sid = by_tag.get(entry.value)
        if sid is None:
            sid = by_name.get(entry.name)
            if sid is not None and _segment_label_value(segmentation.GetSegment(sid)) not in (None, entry.value):
                sid = None  # same name but tagged as another class
        if sid is not None and sid not in found.values():
            found[entry.value] = sid
    return found


def labels_from_segmentation(segmentationNode) -> LabelTable:
    """The classes a segmentation holds (tagged value, else the next free value), names and colours."""
    table = LabelTable()
    if segmentationNode is None:
        return table
    segmentation = segmentationNode.GetSegmentation()
    segments = [segmentation.GetSegment(sid) for sid in segmentation.GetSegmentIDs()]
    untagged = []
    for seg in segments:
        v = _segment_label_value(seg)
        if v is not None and v >= 1 and v not in table:
            table.add(v, seg.GetName(), seg.GetColor())
        else:
            untagged.append(seg)
    for seg in untagged:
        v = max(table.values or [0]) + 1
        table.add(v, seg.GetName(), seg.GetColor())
    return table


def class_labels(segmentationNode, value: int, name: str | None = None) -> LabelTable:
    """The segmentation's classes plus class ``value`` named ``name`` (its colour kept if it exists)."""
    table = labels_from_segmentation(segmentationNode)
    old = table[value] if value in table else None
    table.add(value, name or (old.name if old else f"Segment_{value}"), old.color if old else None)
    return table


def check_geometry(segmentationNode, volumeNode) -> None:
    """GeometryError unless the segmentation lies on the volume's voxel grid.

    Checked: same parent transform, the reference image geometry (when set) and the
    grid of every non-empty internal labelmap. Nothing is modified.
    """
    _scalar_image(volumeNode)
    if segmentationNode is None:
        raise GeometryError("no segmentation selected")
    seg_name, vol_name = _node_name(segmentationNode), _node_name(volumeNode)
    if not _same_node(segmentationNode.GetParentTransformNode(), volumeNode.GetParentTransformNode()):
        raise GeometryError(
            f"segmentation {seg_name!r} is under transform {_node_name(segmentationNode.GetParentTransformNode())!r} "
            f"but volume {vol_name!r} is under {_node_name(volumeNode.GetParentTransformNode())!r}; put both under the same transform"
        )
    volume_m = _ijk_to_ras(volumeNode)
    volume_extent = tuple(volumeNode.GetImageData().GetExtent())
    segmentation = segmentationNode.GetSegmentation()
    ref = segmentation.GetConversionParameter(slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName())
    if ref:
        ref_image = slicer.vtkOrientedImageData()
        if slicer.vtkSegmentationConverter.DeserializeImageGeometry(ref, ref_image, False):
            ref_m, ref_extent = _image_to_world(ref_image), tuple(ref_image.GetExtent())
            if ref_extent != volume_extent or not np.allclose(ref_m, volume_m, atol=GEOMETRY_TOLERANCE):
                raise GeometryError(
                    f"segmentation {seg_name!r} has reference geometry {_describe(ref_m, ref_extent)} "
                    f"but volume {vol_name!r} is {_describe(volume_m, volume_extent)}; "
                    "choose the volume as the segmentation's source geometry or start a new segmentation"
                )
    for sid in segmentation.GetSegmentIDs():
        lm = segmentation.GetSegment(sid).GetRepresentation(BINARY_LABELMAP)
        if lm is None or _extent_empty(lm.GetExtent()):
            continue
        if not np.allclose(_image_to_world(lm), volume_m, atol=GEOMETRY_TOLERANCE):
            raise GeometryError(
                f"segment {segmentation.GetSegment(sid).GetName()!r} of {seg_name!r} is stored on grid "
                f"{_describe(_image_to_world(lm), tuple(lm.GetExtent()))}, not on volume {vol_name!r} grid "
                f"{_describe(volume_m, volume_extent)}"
            )


def _describe(m: np.ndarray, extent: Sequence[int]) -> str:
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    origin = ", ".join(f"{c:.3f}" for c in m[:3, 3])
    return f"(origin ({origin}), spacing ({', '.join(f'{c:.4g}' for c in spacing)}), extent {tuple(int(e) for e in extent)})"


def ensure_segments(segmentationNode, labels: LabelTable, volumeNode) -> dict[int, str]:
    """One segment per class of ``labels``; returns {label value: segment ID}.

    Existing segments are found by tag (then by name) and keep their content; missing
    ones are added empty. Every class segment gets the table's name and colour and is
    tagged with its label value. The reference geometry is set from the volume.
    GeometryError (nothing changed) if the segmentation already holds data on another grid.
    """
    check_geometry(segmentationNode, volumeNode)
    segmentation = segmentationNode.GetSegmentation()
    source = segmentation.GetSourceRepresentationName()
    if source != BINARY_LABELMAP and segmentation.GetNumberOfSegments() > 0:
        # a segmentation made from models: convert, then edit labelmaps as Slicer's editor does
        if not segmentationNode.CreateBinaryLabelmapRepresentation():
            raise InteractiveSegError(
                f"segmentation {_node_name(segmentationNode)!r}: cannot convert {source!r} to binary labelmap"
            )
    wasModified = segmentationNode.StartModify()
    try:
        if source != BINARY_LABELMAP:
            segmentationNode.SetSourceRepresentationToBinaryLabelmap()
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        ids = find_segments(segmentationNode, labels)
        for entry in labels:
            sid = ids.get(entry.value)
            if sid is None:
                sid = segmentation.AddEmptySegment("", entry.name, list(entry.color))
                ids[entry.value] = sid
            seg = segmentation.GetSegment(sid)
            if seg.GetName() != entry.name:
                seg.SetName(entry.name)
            if not np.allclose(seg.GetColor(), entry.color, atol=1e-4):
                seg.SetColor(*entry.color)
            seg.SetTag(LABEL_TAG, str(entry.value))
    finally:
        segmentationNode.EndModify(wasModified)
    return ids


def _region_extent(region: Region, shape_kji: Sequence[int]) -> tuple[int, ...]:
    if len(region) != 3:
        raise InteractionError(f"region must have 3 slices (K, J, I), got {region!r}")
    bounds = []
    for s, n in zip(region, shape_kji, strict=False):
        start, stop, step = s.indices(n)
        if step != 1 or stop <= start:
            raise InteractionError(f"region {region!r} is empty or strided for a volume of shape {tuple(shape_kji)}")
        bounds.append((start, stop - 1))
    (k0, k1), (j0, j1), (i0, i1) = bounds
    return (i0, i1, j0, j1, k0, k1)


def _layer_values(labelmap, extent: Sequence[int]) -> np.ndarray:
    """Values of a (possibly shared, possibly cropped) internal labelmap inside ``extent`` (KJI array)."""
    i0, i1, j0, j1, k0, k1 = extent
    out = np.zeros((k1 - k0 + 1, j1 - j0 + 1, i1 - i0 + 1), dtype=np.int64)
    if labelmap is None or _extent_empty(labelmap.GetExtent()) or labelmap.GetPointData().GetScalars() is None:
        return out
    e = labelmap.GetExtent()
    li, lj, lk = e[1] - e[0] + 1, e[3] - e[2] + 1, e[5] - e[4] + 1
    arr = numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars()).reshape(lk, lj, li)
    lo = [max(a, b) for a, b in zip((k0, j0, i0), (e[4], e[2], e[0]), strict=False)]
    hi = [min(a, b) for a, b in zip((k1, j1, i1), (e[5], e[3], e[1]), strict=False)]
    if any(h < l for l, h in zip(lo, hi, strict=False)):
        return out
    src = arr[lo[0] - e[4] : hi[0] - e[4] + 1, lo[1] - e[2] : hi[1] - e[2] + 1, lo[2] - e[0] : hi[2] - e[0] + 1]
    out[lo[0] - k0 : hi[0] - k0 + 1, lo[1] - j0 : hi[1] - j0 + 1, lo[2] - i0 : hi[2] - i0 + 1] = src
    return out


def _segment_voxels(segment, extent: Sequence[int]) -> np.ndarray:
    """Boolean KJI mask of one segment inside ``extent`` (its label value in its, possibly shared, layer)."""
    return _layer_values(segment.GetRepresentation(BINARY_LABELMAP), extent) == segment.GetLabelValue()


def segment_mask(segmentationNode, segmentId: str, volumeNode, region: Region | None = None) -> np.ndarray:
    """Boolean KJI mask of one segment on the volume's grid (inside ``region``, default the
    whole volume): what the user painted with any Segment Editor effect. GeometryError if
    the segmentation is on another grid, InteractionError for an unknown segment."""
    check_geometry(segmentationNode, volumeNode)
    segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
    if segment is None:
        raise InteractionError(f"segmentation {_node_name(segmentationNode)!r} has no segment {segmentId!r}")
    dims = volumeNode.GetImageData().GetDimensions()
    shape_kji = (dims[2], dims[1], dims[0])
    extent = _region_extent(region if region is not None else tuple(slice(0, n) for n in shape_kji), shape_kji)
    return _segment_voxels(segment, extent)


def _modifier_image(mask: np.ndarray, extent: Sequence[int], volumeNode):
    image = slicer.vtkOrientedImageData()
    m = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(m)
    image.SetImageToWorldMatrix(m)
    image.SetExtent(*extent)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = mask.astype(np.uint8).ravel()
    return image


def write_region(
    segmentationNode, segment_ids: dict[int, str], labelmap_region: np.ndarray, region: Region, volumeNode
) -> list[str]:
    """Write a region of the session's multi-class labelmap into one segment per class.

    Only voxels inside ``region`` (KJI slices) change: per class, voxels of the segment
    that the region no longer holds are removed (merge-min restricted to the extent) and
    new ones are added (merge-mask restricted to the extent). Voxels outside the region,
    other segments and segment names/colours are untouched; a class segment that would
    overwrite a foreign segment sharing its layer is moved to its own layer by Slicer.
    Returns the IDs of the segments that changed.
    """
    check_geometry(segmentationNode, volumeNode)
    segmentation = segmentationNode.GetSegmentation()
    if segmentation.GetSourceRepresentationName() != BINARY_LABELMAP:
        raise InteractiveSegError(
            f"segmentation {_node_name(segmentationNode)!r} is not edited as a binary labelmap; call ensure_segments first"
        )
    dims = volumeNode.GetImageData().GetDimensions()
    shape_kji = (dims[2], dims[1], dims[0])
    extent = _region_extent(region, shape_kji)
    values = np.asarray(labelmap_region)
    expected = (extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1)
    if values.shape != expected:
        raise InteractionError(f"labelmap region has shape {values.shape} but region {region!r} has shape {expected}")
    for sid in segment_ids.values():
        if segmentation.GetSegment(sid) is None:
            raise InteractionError(f"segmentation {_node_name(segmentationNode)!r} has no segment {sid!r}")
    unknown = sorted(set(np.unique(values).tolist()) - {0} - set(segment_ids))
    if unknown:
        raise InteractionError(
            f"labelmap region holds classes {unknown} that have no segment (known: {sorted(segment_ids)})"
        )

    Logic = slicer.vtkSlicerSegmentationsModuleLogic
    masks = {v: values == v for v in segment_ids}
    ours = list(segment_ids.values())
    changed: list[str] = []
    wasModified = segmentationNode.StartModify()
    try:
        # 1) remove: voxels of each class segment that the region no longer assigns to it
        for value, sid in segment_ids.items():
            seg = segmentation.GetSegment(sid)
            current = _segment_voxels(seg, extent)
            if np.any(current & ~masks[value]):
                Logic.SetBinaryLabelmapToSegment(
                    _modifier_image(masks[value], extent, volumeNode),
                    segmentationNode,
                    sid,
                    Logic.MODE_MERGE_MIN,
                    extent,
                )
                changed.append(sid)
        # 2) add: voxels the region assigns to a class but its segment does not hold yet
        for value, sid in segment_ids.items():
            seg = segmentation.GetSegment(sid)
            current = _segment_voxels(seg, extent)
            if np.any(masks[value] & ~current):
                Logic.SetBinaryLabelmapToSegment(
                    _modifier_image(masks[value], extent, volumeNode),
                    segmentationNode,
                    sid,
                    Logic.MODE_MERGE_MASK,
                    extent,
                    False,
                    ours,
                )
                if sid not in changed:
                    changed.append(sid)
    finally:
        segmentationNode.EndModify(wasModified)
    return changed


def labelmap_from_segmentation(segmentationNode, volumeNode, labels: LabelTable) -> np.ndarray:
    """KJI labelmap on the volume's grid holding each class's segment with its label value.

    Segments on another grid are resampled (nearest neighbour); segments that are not
    classes of ``labels`` are left out; where class segments overlap the later class wins.
    """
    _scalar_image(volumeNode)
    dims = volumeNode.GetImageData().GetDimensions()
    dtype = np.uint8 if max(labels.values or [1]) < 256 else np.uint16
    out = np.zeros((dims[2], dims[1], dims[0]), dtype=dtype)
    if segmentationNode is None:
        return out
    if not _same_node(segmentationNode.GetParentTransformNode(), volumeNode.GetParentTransformNode()):
        raise GeometryError(
            f"segmentation {_node_name(segmentationNode)!r} and volume {_node_name(volumeNode)!r} are under different transforms"
        )
    ids = find_segments(segmentationNode, labels)
    if not ids:
        return out
    segment_ids, label_values = vtk.vtkStringArray(), vtk.vtkIntArray()
    for value, sid in ids.items():
        segment_ids.InsertNextValue(sid)
        label_values.InsertNextValue(value)
    merged = slicer.vtkOrientedImageData()
    ok = segmentationNode.GenerateMergedLabelmapForAllSegments(
        merged, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY, _geometry_image(volumeNode), segment_ids, label_values
    )
    if not ok or merged.GetPointData().GetScalars() is None:
        return out
    e = merged.GetExtent()
    if tuple(e) != tuple(volumeNode.GetImageData().GetExtent()):
        # should not happen with EXTENT_REFERENCE_GEOMETRY; copy the overlap to be safe
        out[...] = _layer_values(merged, volumeNode.GetImageData().GetExtent()).astype(dtype)
        return out
    out[...] = numpy_support.vtk_to_numpy(merged.GetPointData().GetScalars()).reshape(out.shape)
    return out


def new_segmentation_node(volumeNode, name: str | None = None):
    """A segmentation node beside the volume (same transform, display nodes, reference geometry)."""
    scene = volumeNode.GetScene()
    if scene is None:
        raise ImageError(f"volume {_node_name(volumeNode)!r} is not in a scene")
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name or f"{_node_name(volumeNode)} segmentation")
    node.CreateDefaultDisplayNodes()
    if volumeNode.GetParentTransformNode() is not None:
        node.SetAndObserveTransformNodeID(volumeNode.GetParentTransformNode().GetID())
    node.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
    return node


# ---------------------------------------------------------------------------------------
# hints and sessions (the Qt-free core of InteractiveSegLogic)
# ---------------------------------------------------------------------------------------
def parse_hints(hints: Any) -> list[Interaction]:
    """Interactions from interaction objects, their JSON dicts, a list of those, or a JSON string."""
    if hints is None:
        return []
    if isinstance(hints, str):
        return from_json(hints)
    if isinstance(hints, dict) or not isinstance(hints, (list, tuple)):
        hints = [hints]
    out = []
    for h in hints:
        if isinstance(h, dict):
            out.append(from_dict(h))
        elif isinstance(h, str):
            out.extend(from_json(h))
        elif hasattr(h, "points") and hasattr(h, "label"):
            out.append(h)
        else:
            raise InteractionError(f"cannot read hint {h!r}: expected an interaction, its JSON dict or a JSON string")
    return out


_ENGINE_FACTS: dict[str, tuple[LabelTable | None, bool]] = {}


def _engine_facts(engine: str, engine_kwargs: dict | None) -> tuple[LabelTable | None, bool]:
    """(classes of a multi-class engine or None, whether it adopts a segmentation's classes),
    from one instance per engine and options (creating one may load a model)."""
    from InteractiveSegLib.engines import create_engine

    key = json.dumps([engine, engine_kwargs or {}], sort_keys=True, default=str)
    if key not in _ENGINE_FACTS:
        instance = create_engine(engine, **(engine_kwargs or {}))
        table = instance.label_table() if getattr(instance, "multiclass", False) else None
        _ENGINE_FACTS[key] = (table, hasattr(instance, "bind_labels"))
    return _ENGINE_FACTS[key]


def engine_classes(engine: str, engine_kwargs: dict | None = None) -> LabelTable | None:
    """The classes a multi-class engine segments (its ``label_table()``), None for
    single-class engines; asked once per engine and options."""
    return _engine_facts(engine, engine_kwargs)[0]


def engine_adopts_labels(engine: str, engine_kwargs: dict | None = None) -> bool:
    """True for engines that take the segmentation's own classes and match them to their
    model by name (scribble fine-tuning: it works on any engine's output)."""
    return _engine_facts(engine, engine_kwargs)[1]


def adopt_labels(existing: LabelTable, model: LabelTable) -> LabelTable:
    """The segmentation's classes, then the model's classes it does not name yet (free values)."""
    import re

    table = LabelTable.from_dict(existing.to_dict())
    have = {re.sub(r"[_ ](l|r|left|right)$", "", e.name.lower()) for e in table} | {e.name.lower() for e in table}
    for e in model:
        if e.name.lower() not in have:
            table.add(max(table.values or [0]) + 1, e.name, e.color)
    return table


@dataclass
class _Entry:
    session: Any
    engine: str
    segmentation_id: str
    segment_ids: dict[int, str]
    labels_key: str
    volume_key: tuple
    content_key: tuple = field(default=())
    kwargs_key: str = "{}"


@dataclass
class Pending:
    """Hints accepted by ``SessionStore.prepare``, computed by ``compute``, written by ``commit``."""

    entry: _Entry
    segmentationNode: Any
    volumeNode: Any
    steps: list
    done: list = field(default_factory=list)
    written: int = 0


class SessionStore:
    """One ``Session`` per volume node; every step is written into the segmentation at once.

    A session is rebuilt (starting from what the segmentation holds) when the engine,
    the segmentation, the classes or the volume change, or when the class segments were
    edited outside InteractiveSeg (e.g. in the Segment Editor), so the session never
    overwrites newer work from its stale copy.
    """

    def __init__(self, editor=None) -> None:
        self._entries: dict[str, _Entry] = {}
        #: ``editor_writer.EditorWriter`` or None. With one, results go through the Segment
        #: Editor's logic (its masking, overwrite and undo states); without, through
        #: ``write_region`` (other segments are never overwritten, undo replays the session).
        self.editor = editor

    # -- public ---------------------------------------------------------------------------
    def session(self, volumeNode):
        entry = self._entries.get(volumeNode.GetID()) if volumeNode is not None else None
        return entry.session if entry else None

    def segment(
        self,
        volumeNode,
        hints,
        engine: str = "click",
        segmentationNode=None,
        labels: LabelTable | None = None,
        group: bool = False,
        **engine_kwargs,
    ):
        """Apply hints in order (``group``: all of them as one step, one undo); returns the
        segmentation node (created if None).

        A multi-class engine (e.g. ``sim``) brings its own classes: one segment per class,
        named after the model's classes, whatever ``labels`` says."""
        pending = self.prepare(volumeNode, hints, engine, segmentationNode, labels, group, **engine_kwargs)
        self.compute(pending)
        return self.commit(pending)

    def prepare(
        self,
        volumeNode,
        hints,
        engine: str = "click",
        segmentationNode=None,
        labels: LabelTable | None = None,
        group: bool = False,
        **engine_kwargs,
    ) -> Pending:
        """Main thread, before the engine runs: check everything, create the segments and
        the session. Raises (scene unchanged) on bad input."""
        interactions = parse_hints(hints)
        _scalar_image(volumeNode)  # fail early, before any node is created
        if segmentationNode is not None:
            check_geometry(segmentationNode, volumeNode)
        labels = self.classes(engine, engine_kwargs, segmentationNode, labels, interactions)
        dims = volumeNode.GetImageData().GetDimensions()
        for h in interactions:
            validate(h, (dims[2], dims[1], dims[0]), labels.values)
        created = segmentationNode is None
        if created:
            segmentationNode = new_segmentation_node(volumeNode)
        try:
            entry = self._entry(volumeNode, segmentationNode, labels, engine, engine_kwargs)
        except Exception:
            if created:  # e.g. unknown engine or missing model: leave the scene as it was
                segmentationNode.GetScene().RemoveNode(segmentationNode)
            raise
        steps = [interactions] if group and interactions else [[h] for h in interactions]
        return Pending(entry, segmentationNode, volumeNode, steps)

    @staticmethod
    def compute(pending: Pending, job=None) -> Pending:
        """Engine work only (no MRML): safe on the inference worker thread. With a
        ``worker.Job``, progress is reported between steps and inside a long step (the
        engine's propagated slices or fine-tuning iterations); Cancel stops there, the
        interrupted hint leaves the session as it was, the steps already computed are
        kept and written."""
        engine = pending.entry.session.engine
        total = len(pending.steps)
        try:
            for n, hs in enumerate(pending.steps[len(pending.done) :], start=len(pending.done)):
                if job is not None:
                    job.report(n / total, f"hint {n + 1} of {total}")
                    engine.progress = lambda f, text, n=n: job.report(
                        (n + f) / total, f"hint {n + 1} of {total}: {text}"
                    )
                pending.done.append(
                    pending.entry.session.add_many(hs) if len(hs) > 1 else pending.entry.session.add(hs[0])
                )
        finally:
            engine.progress = None
        return pending

    def commit(self, pending: Pending):
        """Main thread, after ``compute``: write each computed step's region (one undo state
        per step when writing through the Segment Editor). Returns the segmentation node."""
        for step in pending.done[pending.written :]:
            if self.editor is not None:
                self.editor.save_state(
                    pending.segmentationNode, pending.volumeNode
                )  # one undo state per hint, as the Segment Editor's effects do
            # the step's own result: later steps of the same call may already be in the session's labelmap
            self._write(pending.entry, pending.segmentationNode, pending.volumeNode, step.region, step.after)
            pending.written += 1
        return pending.segmentationNode

    @staticmethod
    def discard(pending: Pending) -> int:
        """Cancel: forget the computed steps that were not written (newest first), so the
        session matches the untouched segmentation again. Returns how many were dropped."""
        dropped = pending.done[pending.written :]
        for _ in dropped:
            pending.entry.session.undo()
        # undone steps must not come back through Redo: the segmentation never held them
        pending.entry.session.discard_undone()
        del pending.done[pending.written :]
        return len(dropped)

    def apply_markups(
        self,
        volumeNode,
        positiveNode=None,
        negativeNode=None,
        label: int = 1,
        axis: int = 0,
        engine: str = "click",
        segmentationNode=None,
        labels: LabelTable | None = None,
        clear: bool = True,
        **engine_kwargs,
    ):
        """Turn the points of a positive and a negative point list into clicks and apply them.

        Points are applied in list order, positives first; with ``clear`` the point lists
        are emptied afterwards so that the next Apply only sends new clicks.
        """
        hints = interactions_from_markups(positiveNode, volumeNode, label, True, axis)
        hints += interactions_from_markups(negativeNode, volumeNode, label, False, axis)
        if not hints:
            raise InteractionError("place at least one click first")
        segmentationNode = self.segment(volumeNode, hints, engine, segmentationNode, labels, **engine_kwargs)
        if clear:
            for node in (positiveNode, negativeNode):
                if node is not None:
                    node.RemoveAllControlPoints()
        return segmentationNode

    def move_last_click(self, volumeNode, segmentationNode, ras, run=None) -> bool:
        """Drag-to-move: the last click moved to ``ras`` (a dragged markup point or mouse);
        the engine re-runs and the segment follows, without a new history step.
        ``run``: how to run the engine call, e.g. ``InferenceWorker.run`` (default: here)."""
        entry = self._entries.get(volumeNode.GetID()) if volumeNode is not None else None
        if entry is None or segmentationNode is None or entry.segmentation_id != segmentationNode.GetID():
            return False
        if entry.content_key != self._content_key(segmentationNode, entry.segment_ids):
            raise InteractionError("the segments were edited outside InteractiveSeg since the last step")
        ijk = tuple(int(round(c)) for c in world_to_ijk(volumeNode, [ras])[0])
        old_region = entry.session.history[-1].region if entry.session.history else None
        step = run(lambda job=None: entry.session.move_last_click(ijk)) if run else entry.session.move_last_click(ijk)
        for region in (old_region, step.region):
            self._write(entry, segmentationNode, volumeNode, region)
        return True

    def automatic(self, volumeNode, axis: int, index: int, engine: str = "sim", segmentationNode=None, **engine_kwargs):
        """A multi-class engine's automatic result on one slice (no hint), as an undoable step."""
        return self.segment(volumeNode, [SliceAuto(index, axis)], engine, segmentationNode, None, **engine_kwargs)

    def suggest_slice(self, volumeNode):
        """(suggestion, world point at the slice's centre) from the volume's session: the
        slice a 3D engine (VMN) rates worst, to take the view there; None if it has none."""
        session = self.session(volumeNode)
        suggestion = session.suggest_slice() if session is not None else None
        if suggestion is None:
            return None
        return suggestion, slice_center_world(volumeNode, suggestion.axis, suggestion.index)

    def undo(self, volumeNode, segmentationNode) -> bool:
        return self._undo_redo(volumeNode, segmentationNode, redo=False)

    def redo(self, volumeNode, segmentationNode) -> bool:
        return self._undo_redo(volumeNode, segmentationNode, redo=True)

    def reset(self, volumeNode=None) -> None:
        if volumeNode is None:
            self._entries.clear()
        else:
            self._entries.pop(volumeNode.GetID(), None)

    # -- internals ------------------------------------------------------------------------
    def reset_adaptation(self, volumeNode) -> bool:
        """Scribble fine-tuning: forget the weights adapted on this volume (the next hint
        starts from the source model again). False if the session has no such engine."""
        session = self.session(volumeNode)
        if session is None or not hasattr(session.engine, "reset_weights"):
            return False
        session.engine.reset_weights()
        return True

    def classes(
        self, engine: str, engine_kwargs: dict, segmentationNode, labels: LabelTable | None = None, interactions=()
    ) -> LabelTable:
        """The session's classes: a multi-class engine's own (or, for engines that adopt
        labels, the segmentation's plus the model's), else ``labels``, else the segmentation's
        segments plus the hints' label values."""
        model_labels = engine_classes(engine, engine_kwargs)
        if model_labels is not None and engine_adopts_labels(engine, engine_kwargs):
            return adopt_labels(
                self._resolve_labels(labels, segmentationNode, interactions, fallback=False), model_labels
            )
        if model_labels is not None:
            return model_labels
        return self._resolve_labels(labels, segmentationNode, interactions)

    @staticmethod
    def _resolve_labels(labels, segmentationNode, interactions, fallback: bool = True) -> LabelTable:
        if labels is not None:
            return labels
        table = labels_from_segmentation(segmentationNode)
        for h in interactions:
            if isinstance(h.label, int) and h.label >= 1 and h.label not in table:
                table.add(h.label, f"Segment_{h.label}")
        if len(table) == 0 and fallback:
            table.add(1, "Segment_1")
        return table

    @staticmethod
    def _volume_key(volumeNode) -> tuple:
        return (volumeNode.GetImageData().GetMTime(), tuple(np.round(_ijk_to_ras(volumeNode), 6).ravel()))

    @staticmethod
    def _content_key(segmentationNode, segment_ids: dict[int, str]) -> tuple:
        segmentation = segmentationNode.GetSegmentation()
        key = []
        for sid in segment_ids.values():
            seg = segmentation.GetSegment(sid)
            lm = seg.GetRepresentation(BINARY_LABELMAP) if seg is not None else None
            key.append(
                (
                    sid,
                    seg.GetLabelValue() if seg else -1,
                    lm.GetMTime() if lm else -1,
                    tuple(lm.GetExtent()) if lm else (),
                )
            )
        return tuple(key)

    def _entry(self, volumeNode, segmentationNode, labels: LabelTable, engine: str, engine_kwargs) -> _Entry:
        from InteractiveSegLib.session import Session

        labels_key = json.dumps([(e.value, e.name, [round(c, 3) for c in e.color]) for e in labels])
        kwargs_key = json.dumps(engine_kwargs or {}, sort_keys=True, default=repr)
        entry = self._entries.get(volumeNode.GetID())
        if entry is not None:
            same = (
                entry.engine == engine
                and entry.segmentation_id == segmentationNode.GetID()
                and entry.labels_key == labels_key
                and entry.volume_key == self._volume_key(volumeNode)
                and entry.kwargs_key == kwargs_key
                and all(
                    segmentationNode.GetSegmentation().GetSegment(s) is not None for s in entry.segment_ids.values()
                )
                and entry.content_key == self._content_key(segmentationNode, entry.segment_ids)
            )
            if same:
                return entry
        # the engine (and its model file) loads before any segment is added: a model that
        # does not load leaves the segmentation as it was
        initial = labelmap_from_segmentation(segmentationNode, volumeNode, labels)
        session = Session(volume_from_node(volumeNode), engine=engine, labels=labels, labelmap=initial, **engine_kwargs)
        segment_ids = ensure_segments(segmentationNode, labels, volumeNode)
        entry = _Entry(
            session,
            engine,
            segmentationNode.GetID(),
            segment_ids,
            labels_key,
            self._volume_key(volumeNode),
            kwargs_key=kwargs_key,
        )
        entry.content_key = self._content_key(segmentationNode, segment_ids)
        self._entries[volumeNode.GetID()] = entry
        return entry

    def _write(self, entry: _Entry, segmentationNode, volumeNode, region, values=None) -> None:
        """``values``: the region's labels to write (a step's own result); default the session's current ones."""
        writer = self.editor.write if self.editor is not None else write_region
        writer(
            segmentationNode,
            entry.segment_ids,
            entry.session.labelmap[region] if values is None else values,
            region,
            volumeNode,
        )
        entry.content_key = self._content_key(segmentationNode, entry.segment_ids)

    def _undo_redo(self, volumeNode, segmentationNode, redo: bool) -> bool:
        entry = self._entries.get(volumeNode.GetID()) if volumeNode is not None else None
        if entry is None or segmentationNode is None or entry.segmentation_id != segmentationNode.GetID():
            return False
        if entry.content_key != self._content_key(segmentationNode, entry.segment_ids):
            raise InteractionError(
                "the segments were edited outside InteractiveSeg since the last step; use the Segment Editor's undo"
            )
        step = entry.session.redo() if redo else entry.session.undo()
        if step is None:
            return False
        if self.editor is not None:
            # the editor's saved state restores the segments bit-exactly (masking included)
            (self.editor.redo if redo else self.editor.undo)()
            entry.content_key = self._content_key(segmentationNode, entry.segment_ids)
        else:
            self._write(entry, segmentationNode, volumeNode, step.region)
        return True
