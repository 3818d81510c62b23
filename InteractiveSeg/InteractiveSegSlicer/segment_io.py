"""Reading and writing the segments of a ``vtkMRMLSegmentationNode``: one segment per class,
labelmap <-> segments, and writes restricted to the extent a hint changed.

Why a separate, Qt-free module: the segmentation is the user's document, shared with the
Segment Editor and every other tool; this is the one place that decides how the library's
multi-class labelmaps map onto segments (tag, then name), checks that a segmentation lies
on the volume's grid, and changes only the voxels of the region a step touched (through
the static ``vtkSlicerSegmentationsModuleLogic`` functions that Slicer's own effects use).
Every function checks its inputs first and raises an ``InteractiveSegLib.errors`` exception
before it changes anything in the scene.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from InteractiveSegLib.engines.base import Region
from InteractiveSegLib.errors import GeometryError, ImageError, InteractionError, InteractiveSegError
from InteractiveSegLib.labels import LabelTable

from .geometry import ijk_to_ras, image_to_world, node_name, scalar_image

BINARY_LABELMAP = "Binary labelmap"
#: Segment tag that remembers which class (label value) a segment holds.
LABEL_TAG = "InteractiveSeg.LabelValue"
#: World-space tolerance (mm) when comparing voxel grids.
GEOMETRY_TOLERANCE = 1e-3


def _extent_empty(extent: Sequence[int]) -> bool:
    return extent[0] > extent[1] or extent[2] > extent[3] or extent[4] > extent[5]


def _same_node(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a.GetID() == b.GetID())


def _geometry_image(volumeNode):
    """An empty vtkOrientedImageData with the volume's voxel grid (origin, spacing, directions, extent)."""
    image = slicer.vtkOrientedImageData()
    m = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(m)
    image.SetImageToWorldMatrix(m)
    image.SetExtent(volumeNode.GetImageData().GetExtent())
    return image


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
    scalar_image(volumeNode)
    if segmentationNode is None:
        raise GeometryError("no segmentation selected")
    seg_name, vol_name = node_name(segmentationNode), node_name(volumeNode)
    if not _same_node(segmentationNode.GetParentTransformNode(), volumeNode.GetParentTransformNode()):
        raise GeometryError(
            f"segmentation {seg_name!r} is under transform {node_name(segmentationNode.GetParentTransformNode())!r} "
            f"but volume {vol_name!r} is under {node_name(volumeNode.GetParentTransformNode())!r}; "
            "put both under the same transform"
        )
    volume_m = ijk_to_ras(volumeNode)
    volume_extent = tuple(volumeNode.GetImageData().GetExtent())
    segmentation = segmentationNode.GetSegmentation()
    ref = segmentation.GetConversionParameter(slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName())
    if ref:
        ref_image = slicer.vtkOrientedImageData()
        if slicer.vtkSegmentationConverter.DeserializeImageGeometry(ref, ref_image, False):
            ref_m, ref_extent = image_to_world(ref_image), tuple(ref_image.GetExtent())
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
        if not np.allclose(image_to_world(lm), volume_m, atol=GEOMETRY_TOLERANCE):
            raise GeometryError(
                f"segment {segmentation.GetSegment(sid).GetName()!r} of {seg_name!r} is stored on grid "
                f"{_describe(image_to_world(lm), tuple(lm.GetExtent()))}, not on volume {vol_name!r} grid "
                f"{_describe(volume_m, volume_extent)}"
            )


def _describe(m: np.ndarray, extent: Sequence[int]) -> str:
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    origin = ", ".join(f"{c:.3f}" for c in m[:3, 3])
    return (
        f"(origin ({origin}), spacing ({', '.join(f'{c:.4g}' for c in spacing)}), "
        f"extent {tuple(int(e) for e in extent)})"
    )


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
                f"segmentation {node_name(segmentationNode)!r}: cannot convert {source!r} to binary labelmap"
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
    if any(h < low for low, h in zip(lo, hi, strict=False)):
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
        raise InteractionError(f"segmentation {node_name(segmentationNode)!r} has no segment {segmentId!r}")
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
            f"segmentation {node_name(segmentationNode)!r} is not edited as a binary labelmap; "
            "call ensure_segments first"
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
            raise InteractionError(f"segmentation {node_name(segmentationNode)!r} has no segment {sid!r}")
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
    scalar_image(volumeNode)
    dims = volumeNode.GetImageData().GetDimensions()
    dtype = np.uint8 if max(labels.values or [1]) < 256 else np.uint16
    out = np.zeros((dims[2], dims[1], dims[0]), dtype=dtype)
    if segmentationNode is None:
        return out
    if not _same_node(segmentationNode.GetParentTransformNode(), volumeNode.GetParentTransformNode()):
        raise GeometryError(
            f"segmentation {node_name(segmentationNode)!r} and volume {node_name(volumeNode)!r} "
            "are under different transforms"
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
        raise ImageError(f"volume {node_name(volumeNode)!r} is not in a scene")
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name or f"{node_name(volumeNode)} segmentation")
    node.CreateDefaultDisplayNodes()
    if volumeNode.GetParentTransformNode() is not None:
        node.SetAndObserveTransformNodeID(volumeNode.GetParentTransformNode().GetID())
    node.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
    return node
