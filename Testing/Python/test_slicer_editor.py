"""Results written through the Segment Editor's logic (real vtkSlicerSegmentEditorLogic from
slicer-core; no mocks): overwrite and masking settings honoured, undo bit-exact, batch API
and propagation end to end, gestures and markups on an oblique anisotropic volume."""

from __future__ import annotations

import numpy as np
import pytest
from test_slicer_glue import glue_modules

from InteractiveSegLib.errors import InteractionError
from InteractiveSegLib.hints import Box, Click, Scribble, to_dict
from InteractiveSegLib.labels import LabelTable

# Oblique (30 degrees about R, 20 about S) and anisotropic (0.7, 0.9, 2.5 mm) grid, offset origin.
_a, _b = np.radians(30), np.radians(20)
_ROT = np.array([[np.cos(_b), -np.sin(_b), 0], [np.sin(_b), np.cos(_b), 0], [0, 0, 1]]) @ np.array(
    [[1, 0, 0], [0, np.cos(_a), -np.sin(_a)], [0, np.sin(_a), np.cos(_a)]]
)
OBLIQUE = np.eye(4)
OBLIQUE[:3, :3] = _ROT @ np.diag([0.7, 0.9, 2.5])
OBLIQUE[:3, 3] = [-40.0, 12.5, 7.0]


@pytest.fixture
def glue(slicer_app):
    from InteractiveSegSlicer import editor_writer, logic

    logic.register_slicer_engines()
    return glue_modules(), editor_writer, logic


@pytest.fixture
def disk(volume_node):
    """A bright disk (radius 14) on 8 slices of a 48 x 48 image, plus noise; KJI."""
    k, j, i = np.mgrid[:8, :48, :48]
    inside = (j - 24) ** 2 + (i - 24) ** 2 < 14**2
    image = inside * 800.0 + 100.0 + np.random.default_rng(0).normal(0, 10, inside.shape)
    return volume_node(image.astype(np.float32), np.diag([0.8, 0.8, 2.0, 1.0]), name="disk"), inside


def segment_array(mrml, seg_node, vol, sid) -> np.ndarray:
    seg = seg_node.GetSegmentation().GetSegment(sid)
    return (
        mrml.segment_io._layer_values(
            seg.GetRepresentation(mrml.segment_io.BINARY_LABELMAP), vol.GetImageData().GetExtent()
        )
        == seg.GetLabelValue()
    )


#: The session's only class: the disk (a foreign "vessel" segment is not one of its classes).
ONLY_DISK = LabelTable.default([2], {2: "disk"})


def grow_disk_on_slice(mrml, store, vol, seg, k: int) -> str:
    """Grow from seeds on slice ``k``: a click in the disk, one in the background; the
    disk segment's id."""
    clicks = [Click((24, 24, k), 2, True, 0), Click((2, 2, k), 2, False, 0)]
    store.segment(vol, clicks, engine="growcut", segmentationNode=seg, labels=ONLY_DISK)
    return mrml.segment_io.find_segments(seg, ONLY_DISK)[2]


def with_foreign_segment(scene, mrml, vol, mask):
    """A segmentation holding a segment "vessel" that is not one of InteractiveSeg's classes."""
    seg = mrml.segment_io.new_segmentation_node(vol, "existing")
    sid = seg.GetSegmentation().AddEmptySegment("", "vessel")
    extent = vol.GetImageData().GetExtent()
    import slicer

    Logic = slicer.vtkSlicerSegmentationsModuleLogic
    Logic.SetBinaryLabelmapToSegment(
        mrml.segment_io._modifier_image(mask, extent, vol), seg, sid, Logic.MODE_REPLACE, extent
    )
    return seg, sid


@pytest.mark.parametrize("overwrite", ["none", "all"])
def test_overwrite_setting_decides_what_happens_to_other_segments(glue, scene, disk, overwrite):
    mrml, editor_writer, _ = glue
    vol, inside = disk
    vessel = np.zeros_like(inside)
    vessel[3, 20:28, 10:40] = True  # crosses the disk on slice 3
    seg, vessel_id = with_foreign_segment(scene, mrml, vol, vessel)
    editor = editor_writer.EditorWriter(scene)
    editor.set_overwrite(overwrite)
    store = mrml.session_store.SessionStore(editor)
    ours = segment_array(mrml, seg, vol, grow_disk_on_slice(mrml, store, vol, seg, 3))
    after = segment_array(mrml, seg, vol, vessel_id)
    overlap = vessel & ours
    assert overlap.sum() > 50, "the disk result covers part of the vessel"
    if overwrite == "none":
        np.testing.assert_array_equal(after, vessel)  # bit-exact: never silently overwritten
    else:
        # the editor's "overwrite all": the vessel gave up every voxel the class took (the first,
        # positive-only click had filled the whole slice, so it lost more, as in Slicer)
        assert not (after & ours).any() and not (after & ~vessel).any() and after.sum() < vessel.sum()


def test_masking_editable_area_is_honoured(glue, scene, disk):
    mrml, editor_writer, _ = glue
    vol, inside = disk
    vessel = np.zeros_like(inside)
    vessel[3, 20:28, 10:40] = True
    seg, vessel_id = with_foreign_segment(scene, mrml, vol, vessel)
    editor = editor_writer.EditorWriter(scene)
    editor.set_overwrite("all")
    editor.set_mask("EditAllowedOutsideAllSegments")
    store = mrml.session_store.SessionStore(editor)
    sid = grow_disk_on_slice(mrml, store, vol, seg, 3)
    ours = segment_array(mrml, seg, vol, sid)
    assert ours[3].sum() > 300 and not (ours & vessel).any()
    np.testing.assert_array_equal(segment_array(mrml, seg, vol, vessel_id), vessel)
    with pytest.raises(InteractionError):
        editor.set_mask("Nowhere")


def test_undo_restores_every_segment_bit_exactly_and_redo_reapplies(glue, scene, disk):
    mrml, editor_writer, _ = glue
    vol, inside = disk
    vessel = np.zeros_like(inside)
    vessel[2:5, 30:34, 5:45] = True
    seg, vessel_id = with_foreign_segment(scene, mrml, vol, vessel)
    store = mrml.session_store.SessionStore(editor_writer.EditorWriter(scene))
    sid = grow_disk_on_slice(mrml, store, vol, seg, 2)
    state1 = {s: segment_array(mrml, seg, vol, s) for s in (sid, vessel_id)}
    grow_disk_on_slice(mrml, store, vol, seg, 4)
    state2 = {s: segment_array(mrml, seg, vol, s) for s in (sid, vessel_id)}
    assert state2[sid][4].sum() > 300 and not state1[sid][4].any()
    assert store.undo(vol, seg) and store.undo(vol, seg)  # one undo state per hint: back past both slice-4 hints
    for s in (sid, vessel_id):
        np.testing.assert_array_equal(segment_array(mrml, seg, vol, s), state1[s])
    assert store.redo(vol, seg) and store.redo(vol, seg)
    for s in (sid, vessel_id):
        np.testing.assert_array_equal(segment_array(mrml, seg, vol, s), state2[s])


def test_markups_and_gestures_on_an_oblique_anisotropic_volume_hit_the_right_voxels(glue, scene, volume_node):
    import vtk

    mrml, _, logic = glue
    vol = volume_node(np.zeros((12, 30, 40), np.float32), OBLIQUE, name="oblique")
    targets = [(5, 7, 3), (39, 0, 11), (20, 15, 6)]
    jitter = np.array([0.3, -0.4, 0.45])  # less than half a voxel along each index axis
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "p")
    for t in targets:
        points.AddControlPoint(vtk.vtkVector3d(*(OBLIQUE @ [*(np.array(t) + jitter), 1])[:3]))
    clicks = mrml.slice_hints.interactions_from_markups(points, vol, label=2, positive=False, axis=0)
    assert [c.ijk for c in clicks] == targets and all(c.label == 2 and not c.positive for c in clicks)
    # a slice view whose normal is the volume's K direction shows KJI axis 0 slices
    normal = OBLIQUE[:3, 2]
    lg = logic.SegmentationLogic()
    stroke = [OBLIQUE @ [i + 0.2, 10 - 0.3, 6 + 0.4, 1] for i in (2, 9)]
    hint = lg.hint_from_view(vol, "scribble", [p[:3] for p in stroke], normal, label=1)
    assert isinstance(hint, Scribble) and hint.axis == 0
    assert hint.voxels == [(i, 10, 6) for i in range(2, 10)], "a fast drag is filled voxel by voxel on slice 6"
    box = lg.hint_from_view(vol, "box", [(OBLIQUE @ [3, 4, 6, 1])[:3], (OBLIQUE @ [12, 20, 6, 1])[:3]], -normal)
    assert isinstance(box, Box) and box.min_ijk == (3, 4, 6) and box.max_ijk == (12, 20, 6)
    assert (
        lg.hint_from_view(vol, "click", [(OBLIQUE @ [4, 5, 6, 1])[:3]], OBLIQUE[:3, 0]).axis == 2
    )  # sagittal-like view
    with pytest.raises(InteractionError, match="outside the image"):
        lg.hint_from_view(vol, "click", [(OBLIQUE @ [45, 5, 6, 1])[:3]], normal)
    with pytest.raises(InteractionError, match="oblique"):
        lg.hint_from_view(vol, "click", [(OBLIQUE @ [4, 5, 6, 1])[:3]], OBLIQUE[:3, 0] + OBLIQUE[:3, 2] * 0.4)


def test_batch_api_segments_a_real_volume_end_to_end(glue, scene, volume_node):
    """Colin27 T1 (Debian mricron-data) with JSON hints through the logic's batch API and
    its inference thread: the AAL structure clicked is found (Dice against the atlas)."""
    mrml, _, logic = glue
    from InteractiveSegLib.data import datasets

    lv = datasets.load("colin27")  # Debian mricron-data, installed by `make setup`
    vol = volume_node(lv.image.array, lv.image.geometry.ijk_to_ras, name="colin27")
    labels = lv.labels.labelmap
    # a compact held-out structure: one click is meant to find it (a whole gyrus needs more)
    structure = lv.labels.labels.by_name("Thalamus_R").value
    k = int(np.argmax((labels == structure).sum(axis=(1, 2))))
    ref = labels[k] == structure
    from scipy import ndimage

    j, i = np.unravel_index(np.argmax(ndimage.distance_transform_edt(ref)), ref.shape)
    lg = logic.SegmentationLogic()
    seg = lg.segment(vol, [to_dict(Click((int(i), int(j), k), 1, True, 0))], engine="click")
    got = segment_array(mrml, seg, vol, seg.GetSegmentation().GetSegmentIDs()[0])
    assert not np.delete(got, k, axis=0).any(), "a click only changes its own slice"
    dice = 2 * (got[k] & ref).sum() / (got[k].sum() + ref.sum())
    assert dice > 0.5, f"Dice {dice:.2f} on the clicked structure"
    assert lg.worker.thread_id is not None


def test_propagate_turns_one_drawn_slice_into_3d(glue, scene, volume_node):
    mrml, _, logic = glue
    k, j, i = np.mgrid[:24, :48, :48]
    ball = (k - 12) ** 2 * 2.0 + (j - 24) ** 2 + (i - 24) ** 2 < 12**2
    image = ball * 800.0 + 100.0 + np.random.default_rng(1).normal(0, 10, ball.shape)
    vol = volume_node(image.astype(np.float32), np.diag([1.0, 1.0, 1.4, 1.0]), name="ball")
    lg = logic.SegmentationLogic()
    drawn = np.zeros_like(ball)
    drawn[12] = ball[12]
    seg = mrml.segment_io.new_segmentation_node(vol)
    table = mrml.segment_io.class_labels(None, 1, "ball")
    ids = mrml.segment_io.ensure_segments(seg, table, vol)
    mrml.segment_io.write_region(seg, ids, drawn.astype(np.uint8), (slice(0, 24), slice(0, 48), slice(0, 48)), vol)
    with pytest.raises(InteractionError, match="no voxel on slice"):
        lg.propagate(vol, seg, label=1, axis=0, index=3, engine="vmn-growcut")
    lg.propagate(vol, seg, label=1, axis=0, engine="vmn-growcut")
    got = segment_array(mrml, seg, vol, ids[1])
    assert (got.sum(axis=(1, 2)) > 0).sum() >= 10, "the result spans many slices"
    dice = 2 * (got & ball).sum() / (got.sum() + ball.sum())
    assert dice > 0.7, f"3D Dice {dice:.2f}"


def test_cancel_discards_computed_steps_and_leaves_the_segmentation_untouched(glue, scene, disk):
    mrml, editor_writer, _ = glue
    vol, _ = disk
    store = mrml.session_store.SessionStore(editor_writer.EditorWriter(scene))
    seg = store.segment(vol, [Click((24, 24, 2), 1, True, 0), Click((2, 2, 2), 1, False, 0)], engine="growcut")
    sid = seg.GetSegmentation().GetSegmentIDs()[0]
    before = segment_array(mrml, seg, vol, sid)
    pending = store.prepare(vol, [Click((24, 24, 5), 1, True, 0), Click((2, 2, 5), 1, False, 0)], "growcut", seg)
    store.compute(pending)
    assert store.discard(pending) == 2 and store.commit(pending) is seg  # nothing left to write
    np.testing.assert_array_equal(segment_array(mrml, seg, vol, sid), before)
    session = store.session(vol)
    assert len(session.history) == 2 and not session.labelmap[5].any()
    assert not store.redo(vol, seg), "a cancelled step cannot come back through Redo"
    # undo goes back to the state after the first (positive-only) click, which filled the slice
    assert store.undo(vol, seg) and segment_array(mrml, seg, vol, sid)[2].all()


def test_the_selected_segment_gives_the_hints_class(glue, scene, disk):
    mrml, _, logic = glue
    vol, inside = disk
    seg, vessel_id = with_foreign_segment(scene, mrml, vol, np.zeros_like(inside))
    liver_id = seg.GetSegmentation().AddEmptySegment("", "liver")
    lg = logic.SegmentationLogic()
    labels, value = lg.segment_class(seg, liver_id, "growcut")
    assert labels[value].name == "liver" and lg.segment_class(seg, vessel_id, "growcut")[1] != value
    with pytest.raises(InteractionError, match="caudate"):  # sim only segments its own classes
        lg.segment_class(seg, liver_id, "sim")


def test_a_model_file_that_does_not_load_changes_nothing(glue, scene, disk, tmp_path):
    from InteractiveSegLib.errors import InteractiveSegError

    mrml, _, logic = glue
    vol, inside = disk
    seg, _ = with_foreign_segment(scene, mrml, vol, inside)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    nodes_before = scene.GetNumberOfNodes()
    segments_before = list(seg.GetSegmentation().GetSegmentIDs())
    lg = logic.SegmentationLogic()
    for target in (seg, None):
        with pytest.raises(InteractiveSegError, match="broken.pt"):
            lg.segment(
                vol, [Click((24, 24, 3), 2, True, 0)], engine="click", segmentationNode=target, model_path=str(broken)
            )
    assert scene.GetNumberOfNodes() == nodes_before
    assert list(seg.GetSegmentation().GetSegmentIDs()) == segments_before
