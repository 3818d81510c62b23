"""The Qt-free Slicer glue (geometry, segment_io, session_store, markups -> clicks in
slice_hints) against real Slicer classes (slicer-core scene from trame-slicer's SlicerApp;
no mocks)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from InteractiveSegLib.errors import GeometryError, ImageError, InteractionError
from InteractiveSegLib.hints import Click, to_dict
from InteractiveSegLib.labels import LabelTable

# Non-identity IJK->RAS: axes permuted, two flips, anisotropic spacing, offset origin.
IJK_TO_RAS = np.array(
    [
        [-0.8, 0.0, 0.0, 12.5],
        [0.0, 0.0, 2.5, -30.0],
        [0.0, -1.2, 0.0, 41.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def glue_modules() -> SimpleNamespace:
    """The Qt-free Slicer glue, one module per idea (importable once slicer-core is set up)."""
    from InteractiveSegSlicer import geometry, segment_io, session_store, slice_hints

    return SimpleNamespace(
        geometry=geometry, segment_io=segment_io, session_store=session_store, slice_hints=slice_hints
    )


@pytest.fixture
def glue(slicer_app):
    return glue_modules()


def ramp(shape=(6, 9, 11)) -> np.ndarray:
    return np.arange(np.prod(shape), dtype=np.int16).reshape(shape)


def labels3() -> LabelTable:
    t = LabelTable()
    t.add(1, "liver", (0.8, 0.2, 0.2))
    t.add(2, "spleen", (0.2, 0.7, 0.3))
    t.add(5, "kidney", (0.1, 0.3, 0.9))
    return t


def segment_array(glue, seg_node, volume_node, sid) -> np.ndarray:
    """One segment as a KJI boolean array on the volume grid, read independently of write_region."""
    seg = seg_node.GetSegmentation().GetSegment(sid)
    lm = seg.GetRepresentation(glue.segment_io.BINARY_LABELMAP)
    return glue.segment_io._layer_values(lm, volume_node.GetImageData().GetExtent()) == seg.GetLabelValue()


def node_ids(scene) -> list[str]:
    return [scene.GetNthNode(n).GetID() for n in range(scene.GetNumberOfNodes())]


# --- volumes ---------------------------------------------------------------------------------
def test_volume_round_trip_array_and_geometry(glue, volume_node):
    a = ramp()
    node = volume_node(a, IJK_TO_RAS, name="CT")
    vol = glue.geometry.volume_from_node(node)
    assert vol.name == "CT"
    assert vol.array.dtype == np.float32 and vol.shape == a.shape
    np.testing.assert_array_equal(vol.array, a.astype(np.float32))
    np.testing.assert_allclose(vol.geometry.ijk_to_ras, IJK_TO_RAS, atol=1e-9)
    np.testing.assert_allclose(vol.geometry.spacing, (0.8, 1.2, 2.5))
    # voxel (i, j, k) = (3, 4, 5) sits at the RAS the node reports
    ras = IJK_TO_RAS @ np.array([3, 4, 5, 1.0])
    np.testing.assert_allclose(vol.geometry.ras_to_ijk(ras[:3])[0], (3, 4, 5), atol=1e-9)
    assert vol.array[5, 4, 3] == a[5, 4, 3]
    # a copy, not a view on VTK memory
    from vtk.util import numpy_support

    numpy_support.vtk_to_numpy(node.GetImageData().GetPointData().GetScalars())[:] = 0
    assert vol.array.max() == a.max()


@pytest.mark.parametrize(
    "case",
    ["rgb", "4d", "single_slice", "nan", "no_image"],
)
def test_unusable_volumes_are_rejected(glue, scene, volume_node, case):
    if case == "rgb":
        node = volume_node(np.zeros((4, 5, 6, 3), np.uint8), components=3)
        match = "3 components"
    elif case == "4d":
        node = volume_node(np.zeros((4, 5, 6, 7), np.float32), components=7)
        match = "7 components"
    elif case == "single_slice":
        node = volume_node(np.zeros((1, 5, 6), np.float32))
        match = "needs a 3D volume"
    elif case == "nan":
        a = np.ones((4, 5, 6), np.float32)
        a[1, 2, 3] = np.nan
        node = volume_node(a)
        match = "NaN"
    else:
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
        match = "no voxel data"
    before = node_ids(scene)
    with pytest.raises(ImageError, match=match):
        glue.geometry.volume_from_node(node)
    assert node_ids(scene) == before


# --- markups ---------------------------------------------------------------------------------
def test_markups_ras_to_ijk_with_rounding_and_parent_transform(glue, scene, volume_node):
    import vtk

    node = volume_node(np.zeros((6, 9, 11), np.float32), IJK_TO_RAS)
    # the volume sits under a translation; the points are given in world coordinates
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    m = vtk.vtkMatrix4x4()
    m.SetElement(0, 3, 5.0)
    m.SetElement(1, 3, -3.0)
    transform.SetMatrixTransformToParent(m)
    node.SetAndObserveTransformNodeID(transform.GetID())
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "positive")
    wanted = [(3, 4, 5), (0, 0, 0), (10, 8, 5)]
    for n, (ijk, jitter) in enumerate(
        zip(wanted, [(0.3, -0.4, 0.2), (0.0, 0.0, 0.0), (-0.45, 0.1, 0.49)], strict=False)
    ):
        local = IJK_TO_RAS @ np.array([*(np.add(ijk, jitter)), 1.0])
        world = local[:3] + (5.0, -3.0, 0.0)
        points.AddControlPoint(vtk.vtkVector3d(*world), f"p{n}")
    clicks = glue.slice_hints.interactions_from_markups(points, node, label=2, positive=False, axis=1)
    assert [c.ijk for c in clicks] == wanted
    assert all(c.label == 2 and c.positive is False and c.axis == 1 for c in clicks)


def test_markups_outside_volume_names_the_point(glue, scene, volume_node):
    import vtk

    node = volume_node(np.zeros((6, 9, 11), np.float32), IJK_TO_RAS)
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "clicks")
    points.AddControlPoint(vtk.vtkVector3d(*(IJK_TO_RAS @ [1, 1, 1, 1])[:3]), "inside")
    points.AddControlPoint(vtk.vtkVector3d(*(IJK_TO_RAS @ [11, 1, 1, 1])[:3]), "far-away")
    with pytest.raises(InteractionError, match="far-away.*outside"):
        glue.slice_hints.interactions_from_markups(points, node)


# --- segmentations ---------------------------------------------------------------------------
def test_multiclass_labelmap_round_trips_with_names_and_colours(glue, scene, volume_node):
    vol = volume_node(ramp(), IJK_TO_RAS)
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "seg")
    labels = labels3()
    ids = glue.segment_io.ensure_segments(seg, labels, vol)
    assert sorted(ids) == [1, 2, 5]
    rng = np.random.default_rng(1)
    lm = rng.choice([0, 1, 2, 5], size=(6, 9, 11)).astype(np.uint8)
    full = tuple(slice(0, n) for n in lm.shape)
    glue.segment_io.write_region(seg, ids, lm, full, vol)
    np.testing.assert_array_equal(glue.segment_io.labelmap_from_segmentation(seg, vol, labels), lm)
    segmentation = seg.GetSegmentation()
    for entry in labels:
        s = segmentation.GetSegment(ids[entry.value])
        assert s.GetName() == entry.name
        np.testing.assert_allclose(s.GetColor(), entry.color, atol=1e-6)
    # calling again finds the same segments (by tag) and keeps their content
    assert glue.segment_io.ensure_segments(seg, labels, vol) == ids
    assert segmentation.GetNumberOfSegments() == 3
    np.testing.assert_array_equal(glue.segment_io.labelmap_from_segmentation(seg, vol, labels), lm)
    # the table can be read back from the segmentation
    back = glue.segment_io.labels_from_segmentation(seg)
    assert [(e.value, e.name) for e in back] == [(e.value, e.name) for e in labels]


def test_write_region_only_touches_the_region(glue, scene, volume_node):

    vol = volume_node(ramp((8, 10, 12)), IJK_TO_RAS)
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "seg")
    labels = labels3()
    ids = glue.segment_io.ensure_segments(seg, labels, vol)
    # a foreign segment (not a class) and pre-filled class voxels, written with Slicer's own API
    foreign = seg.GetSegmentation().AddEmptySegment("", "user notes", [1, 1, 0])
    Logic = __import__("slicer").vtkSlicerSegmentationsModuleLogic
    prefill = {
        ids[1]: np.zeros((8, 10, 12), bool),
        ids[2]: np.zeros((8, 10, 12), bool),
        foreign: np.zeros((8, 10, 12), bool),
    }
    prefill[ids[1]][1:7, 2:8, 1:11] = True  # crosses the region
    prefill[ids[2]][0, :, :] = True  # outside the region only
    prefill[foreign][7, 0:3, 0:3] = True  # outside the region
    prefill[foreign][3:5, 1:3, 4:6] = True  # inside, where class 2 will be written: must survive
    for sid, mask in prefill.items():
        modifier = glue.segment_io._modifier_image(mask, (0, 11, 0, 9, 0, 7), vol)
        Logic.SetBinaryLabelmapToSegment(
            modifier, seg, sid, Logic.MODE_MERGE_MASK, [0, 11, 0, 9, 0, 7]
        )  # "Add", as the Segment Editor does
    before = {sid: segment_array(glue, seg, vol, sid) for sid in [*ids.values(), foreign]}
    for sid, mask in prefill.items():
        np.testing.assert_array_equal(before[sid], mask)

    region = (slice(3, 5), slice(1, 9), slice(4, 10))  # KJI
    new = np.zeros((2, 8, 6), np.uint8)
    new[:, 0:3, :] = 2  # class 2 takes voxels class 1 had
    new[:, 5:8, 2:4] = 5  # class 5 appears
    # the rest: background, i.e. class 1 is removed from the region
    changed = glue.segment_io.write_region(seg, ids, new, region, vol)
    assert set(changed) == {ids[1], ids[2], ids[5]}

    inside = np.zeros((8, 10, 12), bool)
    inside[region] = True
    for value, sid in ids.items():
        after = segment_array(glue, seg, vol, sid)
        np.testing.assert_array_equal(after[~inside], before[sid][~inside])  # outside untouched
        np.testing.assert_array_equal(after[region], new == value)  # inside matches
    np.testing.assert_array_equal(segment_array(glue, seg, vol, foreign), before[foreign])
    names = [seg.GetSegmentation().GetSegment(s).GetName() for s in seg.GetSegmentation().GetSegmentIDs()]
    assert names == ["liver", "spleen", "kidney", "user notes"]
    # writing the same content again changes nothing
    assert glue.segment_io.write_region(seg, ids, new, region, vol) == []


def test_mismatched_geometry_is_rejected_and_scene_unchanged(glue, scene, volume_node):
    vol = volume_node(ramp(), IJK_TO_RAS, name="A")
    other = volume_node(ramp(), np.diag([1.0, 1.0, 1.0, 1.0]), name="B")
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "on B")
    labels = labels3()
    ids = glue.segment_io.ensure_segments(seg, labels, other)
    lm = np.zeros((6, 9, 11), np.uint8)
    lm[2:4, 2:5, 3:7] = 1
    glue.segment_io.write_region(seg, ids, lm, tuple(slice(0, n) for n in lm.shape), other)

    segmentation = seg.GetSegmentation()
    ref_name = __import__("slicer").vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    snapshot = (
        node_ids(scene),
        list(segmentation.GetSegmentIDs()),
        segmentation.GetConversionParameter(ref_name),
        glue.segment_io.labelmap_from_segmentation(seg, other, labels).copy(),
    )
    with pytest.raises(GeometryError, match="reference geometry"):
        glue.segment_io.ensure_segments(seg, labels, vol)
    with pytest.raises(GeometryError):
        glue.segment_io.write_region(seg, ids, np.ones((1, 1, 1), np.uint8), (slice(0, 1),) * 3, vol)
    assert snapshot[0] == node_ids(scene)
    assert snapshot[1] == list(segmentation.GetSegmentIDs())
    assert snapshot[2] == segmentation.GetConversionParameter(ref_name)
    np.testing.assert_array_equal(snapshot[3], glue.segment_io.labelmap_from_segmentation(seg, other, labels))


def test_write_region_validates_before_writing(glue, scene, volume_node):
    vol = volume_node(ramp())
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "seg")
    ids = glue.segment_io.ensure_segments(seg, LabelTable.default([1]), vol)
    region = (slice(0, 2), slice(0, 2), slice(0, 2))
    with pytest.raises(InteractionError, match="no segment"):
        glue.segment_io.write_region(seg, ids, np.full((2, 2, 2), 3, np.uint8), region, vol)
    with pytest.raises(InteractionError, match="shape"):
        glue.segment_io.write_region(seg, ids, np.ones((2, 2, 3), np.uint8), region, vol)
    assert not segment_array(glue, seg, vol, ids[1]).any()


# --- the Logic's core: sessions per volume --------------------------------------------------
@pytest.fixture
def disk_volume(volume_node):
    z, y, x = np.mgrid[:12, :48, :48]
    disk = (y - 22) ** 2 + (x - 25) ** 2 < 9**2
    image = (disk * 100 + np.random.default_rng(0).normal(0, 5, disk.shape)).astype(np.float32)
    return volume_node(image, np.diag([0.7, 0.7, 2.0, 1.0]), name="disk"), disk


@pytest.fixture
def growcut_registered(slicer_app):
    from InteractiveSegLib.engines import available_engines, register_engine

    if "growcut" not in available_engines():  # source tree not pip-installed: register as the entry point does
        from InteractiveSegSlicer.growcut_engine import GrowFromSeedsEngine

        register_engine("growcut", GrowFromSeedsEngine)


def test_session_store_segments_undoes_and_redoes(glue, disk_volume, growcut_registered):
    vol, disk = disk_volume
    store = glue.session_store.SessionStore()
    hints = [to_dict(Click((25, 22, 6), 1, True, 0)), to_dict(Click((2, 2, 6), 1, False, 0))]  # JSON dicts
    seg = store.segment(vol, hints, engine="growcut", labels=LabelTable.default([1], {1: "tumour"}))
    segmentation = seg.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    sid = segmentation.GetSegmentIDs()[0]
    assert segmentation.GetSegment(sid).GetName() == "tumour"
    mask = segment_array(glue, seg, vol, sid)
    assert mask[6].sum() > 0 and not np.delete(mask, 6, axis=0).any()
    dice = 2 * (mask[6] & disk[6]).sum() / (mask[6].sum() + disk[6].sum())
    assert dice > 0.9
    assert store.undo(vol, seg) and store.undo(vol, seg)
    assert not segment_array(glue, seg, vol, sid).any()
    assert store.redo(vol, seg) and store.redo(vol, seg)
    np.testing.assert_array_equal(segment_array(glue, seg, vol, sid), mask)
    # a second class on another slice goes to its own segment, the first one is kept
    store.segment(
        vol, [Click((25, 22, 3), 2, True, 0), Click((2, 2, 3), 2, False, 0)], engine="growcut", segmentationNode=seg
    )
    assert [segmentation.GetSegment(s).GetName() for s in segmentation.GetSegmentIDs()] == ["tumour", "Segment_2"]
    np.testing.assert_array_equal(segment_array(glue, seg, vol, sid), mask)


def test_undo_and_redo_are_refused_while_a_job_computes_on_the_volume(glue, disk_volume, growcut_registered):
    """Reproduces the issue's case on real MRML: undo of A while B computes was accepted,
    the segment kept A and B's history was lost. Now it is refused and nothing changes."""
    import threading

    from InteractiveSegLib.engines import register_engine
    from InteractiveSegSlicer.growcut_engine import GrowFromSeedsEngine
    from InteractiveSegSlicer.worker import InferenceWorker

    entered, gate = threading.Event(), threading.Event()

    class SlowGrowFromSeeds(GrowFromSeedsEngine):
        name = "slow-growcut"

        def predict(self, request):
            entered.set()
            assert gate.wait(20)
            return super().predict(request)

    register_engine("slow-growcut", SlowGrowFromSeeds)
    vol, _ = disk_volume
    store = glue.session_store.SessionStore()
    gate.set()
    seg = store.segment(vol, [Click((25, 22, 6), 1, True, 0), Click((2, 2, 6), 1, False, 0)], engine="slow-growcut")
    sid = seg.GetSegmentation().GetSegmentIDs()[0]
    after_a = segment_array(glue, seg, vol, sid)
    gate.clear()
    entered.clear()
    pending = store.prepare(vol, [Click((25, 22, 3), 1, True, 0), Click((2, 2, 3), 1, False, 0)], "slow-growcut", seg)
    worker = InferenceWorker()
    job = worker.submit(store.compute, pending)
    try:
        assert entered.wait(20)
        for redo in (False, True):
            with pytest.raises(InteractionError, match="is running on this volume"):
                (store.redo if redo else store.undo)(vol, seg)
        with pytest.raises(InteractionError, match="is running"):
            store.segment(vol, [Click((25, 22, 8), 1, True, 0)], engine="slow-growcut", segmentationNode=seg)
        np.testing.assert_array_equal(segment_array(glue, seg, vol, sid), after_a)  # nothing changed
    finally:
        gate.set()
    job.wait(20)
    store.commit(pending)
    session = store.session(vol)
    assert len(session.history) == 4 and not session.busy  # A's two clicks and B's, none lost
    assert segment_array(glue, seg, vol, sid)[3].any()
    assert store.undo(vol, seg) and store.undo(vol, seg)  # B's two steps undo once the job is done
    np.testing.assert_array_equal(segment_array(glue, seg, vol, sid), after_a)
    worker.shutdown()


def test_session_store_applies_markups(glue, scene, disk_volume, growcut_registered):
    import vtk

    vol, disk = disk_volume
    ijk_to_ras = np.diag([0.7, 0.7, 2.0, 1.0])
    pos = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "pos")
    neg = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "neg")
    pos.AddControlPoint(vtk.vtkVector3d(*(ijk_to_ras @ [25, 22, 4, 1])[:3]), "in")
    neg.AddControlPoint(vtk.vtkVector3d(*(ijk_to_ras @ [3, 40, 4, 1])[:3]), "out")
    store = glue.session_store.SessionStore()
    seg = store.apply_markups(vol, pos, neg, label=1, axis=0, engine="growcut")
    assert pos.GetNumberOfControlPoints() == 0 and neg.GetNumberOfControlPoints() == 0
    sid = seg.GetSegmentation().GetSegmentIDs()[0]
    mask = segment_array(glue, seg, vol, sid)
    assert 2 * (mask[4] & disk[4]).sum() / (mask[4].sum() + disk[4].sum()) > 0.9
    with pytest.raises(InteractionError, match="at least one click"):
        store.apply_markups(vol, pos, neg, engine="growcut", segmentationNode=seg)


def test_orientation_maps_to_the_volume_array_axis(glue, volume_node):
    # IJK_TO_RAS: i -> R, j -> S, k -> A, so axial slices (normal S) are along KJI axis 1 (j)
    node = volume_node(ramp(), IJK_TO_RAS)
    assert glue.geometry.kji_axis_for_orientation(node, "Axial") == 1
    assert glue.geometry.kji_axis_for_orientation(node, "Coronal") == 0
    assert glue.geometry.kji_axis_for_orientation(node, "Sagittal") == 2
    assert glue.geometry.kji_axis_for_orientation(volume_node(ramp()), "Axial") == 0
    with pytest.raises(InteractionError, match="orientation"):
        glue.geometry.kji_axis_for_orientation(node, "Oblique")


def test_class_labels_adds_or_renames_one_class(glue, scene, volume_node):
    vol = volume_node(ramp())
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "seg")
    glue.segment_io.ensure_segments(seg, labels3(), vol)
    table = glue.segment_io.class_labels(seg, 2, "left spleen")
    assert [(e.value, e.name) for e in table] == [(1, "liver"), (2, "left spleen"), (5, "kidney")]
    assert table[2].color == labels3()[2].color
    assert glue.segment_io.class_labels(None, 3, None)[3].name == "Segment_3"


def test_session_is_kept_across_applies_and_rebuilt_after_outside_edits(glue, scene, disk_volume, growcut_registered):
    import vtk

    vol, disk = disk_volume
    ijk_to_ras = np.diag([0.7, 0.7, 2.0, 1.0])
    pos = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "pos")
    neg = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "neg")
    store = glue.session_store.SessionStore()
    seg = None
    for point, node in (([25, 22, 5], pos), ([3, 40, 5], neg), ([25, 22, 7], pos), ([3, 3, 7], neg)):
        node.AddControlPoint(vtk.vtkVector3d(*(ijk_to_ras @ [*point, 1])[:3]))
        # as the widget does: the class table is read from the segmentation before every Apply
        labels = glue.segment_io.class_labels(seg, 1, "disk")
        seg = store.apply_markups(vol, pos, neg, 1, 0, "growcut", seg, labels)
    session = store.session(vol)
    assert len(session.history) == 4  # one session for all four applies
    sid = seg.GetSegmentation().GetSegmentIdBySegmentName("disk")
    assert store.undo(vol, seg)
    assert segment_array(glue, seg, vol, sid)[7].all()  # back to "positive only" on slice 7
    assert store.redo(vol, seg)

    # an edit made outside InteractiveSeg (e.g. Segment Editor): no stale undo, fresh session from the segmentation
    Logic = __import__("slicer").vtkSlicerSegmentationsModuleLogic
    extra = np.zeros(disk.shape, bool)
    extra[10, 0:4, 0:4] = True
    Logic.SetBinaryLabelmapToSegment(
        glue.segment_io._modifier_image(extra, (0, 47, 0, 47, 0, 11), vol),
        seg,
        sid,
        Logic.MODE_MERGE_MASK,
        [0, 47, 0, 47, 0, 11],
    )
    with pytest.raises(InteractionError, match="edited outside"):
        store.undo(vol, seg)
    store.segment(
        vol,
        [Click((25, 22, 3), 1, True, 0), Click((2, 2, 3), 1, False, 0)],
        engine="growcut",
        segmentationNode=seg,
        labels=glue.segment_io.class_labels(seg, 1, "disk"),
    )
    assert store.session(vol) is not session
    assert segment_array(glue, seg, vol, sid)[10, 0:4, 0:4].all()  # the outside edit survived


def test_segmentation_under_another_transform_is_rejected(glue, scene, volume_node):
    vol = volume_node(ramp())
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "moved")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "t")
    seg.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(GeometryError, match="transform"):
        glue.segment_io.ensure_segments(seg, LabelTable.default([1]), vol)
    assert seg.GetSegmentation().GetNumberOfSegments() == 0


def test_unknown_engine_leaves_the_scene_unchanged(glue, scene, disk_volume):
    from InteractiveSegLib.errors import EngineError

    vol, _ = disk_volume
    before = node_ids(scene)
    with pytest.raises(EngineError, match="no-such-engine"):
        glue.session_store.SessionStore().segment(vol, [Click((25, 22, 6), 1, True, 0)], engine="no-such-engine")
    with pytest.raises(InteractionError, match="outside"):
        glue.session_store.SessionStore().segment(vol, [Click((99, 22, 6), 1, True, 0)], engine="growcut")
    assert node_ids(scene) == before


def test_dragging_the_last_click_updates_the_segment_without_a_new_step(glue, disk_volume, growcut_registered):
    vol, disk = disk_volume
    store = glue.session_store.SessionStore()
    seg = store.segment(vol, [Click((25, 22, 6), 1, True, 0), Click((2, 2, 6), 1, False, 0)], engine="growcut")
    sid = seg.GetSegmentation().GetSegmentIDs()[0]
    good = segment_array(glue, seg, vol, sid)
    # drag the negative click into the disk: the disk is now split between the seeds
    assert store.move_last_click(vol, seg, (np.diag([0.7, 0.7, 2.0, 1.0]) @ [25, 28, 6, 1])[:3])
    moved = segment_array(glue, seg, vol, sid)
    fresh = glue.session_store.SessionStore().segment(
        vol, [Click((25, 22, 6), 1, True, 0), Click((25, 28, 6), 1, False, 0)], engine="growcut"
    )
    assert not np.array_equal(moved, good)
    np.testing.assert_array_equal(moved, segment_array(glue, fresh, vol, fresh.GetSegmentation().GetSegmentIDs()[0]))
    session = store.session(vol)
    assert len(session.history) == 2 and session.history[-1].interaction.ijk == (25, 28, 6)
    assert store.undo(vol, seg) and store.undo(vol, seg)
    assert not segment_array(glue, seg, vol, sid).any()
