"""Online learning through the Slicer glue (real MRML from slicer-core, the real inference
thread, a real task folder; no mocks): painted slices read back exactly, the proxy written
through the Segment Editor's logic (drawn slices, undo, overwrite and masking), training
stopped mid-round with a consistent task, the lock, bad input refused, and the slice
highlight on an oblique, anisotropic grid."""

from __future__ import annotations

import time

import numpy as np
import pytest
from test_slicer_editor import OBLIQUE, with_foreign_segment
from test_slicer_glue import glue_modules

SMALL = dict(channels=(4, 8, 16), patch=(16, 24, 24), n_f=3, buffer_size=2, aux_size=3, replay_m=1)
SHAPE = (24, 32, 32)  # KJI


@pytest.fixture
def glue(slicer_app):
    from InteractiveSegSlicer import online_glue, slice_views

    return glue_modules(), online_glue, slice_views


@pytest.fixture
def ball(volume_node):
    """A bright ball in noise on an oblique, anisotropic grid; (volume node, KJI mask)."""
    k, j, i = np.indices(SHAPE)
    inside = (k - 12) ** 2 + (j - 16) ** 2 + (i - 15) ** 2 <= 8**2
    image = inside * 500.0 + 100.0 + np.random.default_rng(0).normal(0, 10, SHAPE)
    return volume_node(image.astype(np.float32), OBLIQUE, name="ball"), inside


def online(online_glue, task, vol=None, seg=None, sid=None, **settings):
    from InteractiveSegLib.methods.online.learner import OnlineSettings
    from InteractiveSegLib.methods.online.proxy_mask import RegistrationSettings

    return online_glue.OnlineLearningLogic(
        task,
        vol,
        seg,
        sid,
        settings=OnlineSettings(**(SMALL | settings)),
        registration=RegistrationSettings(affine_iterations=3, bspline_iterations=0),
        workers=1,
    )


def full(shape=SHAPE):
    return tuple(slice(0, n) for n in shape)


def painted(mrml, online_glue, vol, inside, seg=None, value=1):
    """A segmentation (new, or ``seg``) whose class segment ``value`` holds the ball on coronal
    slice j=16 and sagittal slice i=15, as painted by the user."""
    seg, sid = online_glue.class_segment(vol, seg, value, "ball")
    drawn = np.zeros(SHAPE, bool)
    drawn[:, 16, :] = inside[:, 16, :]
    drawn[:, :, 15] = inside[:, :, 15]
    mrml.segment_io.write_region(seg, {value: sid}, drawn.astype(np.uint8) * value, full(), vol)
    return seg, sid, drawn


def test_painted_slices_become_a_proxy_written_through_the_segment_editor(glue, scene, ball, tmp_path):
    mrml, online_glue, _ = glue
    vol, inside = ball
    vessel = np.zeros(SHAPE, bool)
    vessel[10:14, 4:28, 6:26] = True  # crosses the ball, and both drawn slices
    seg, vessel_id = with_foreign_segment(scene, mrml, vol, vessel)
    seg, sid, drawn = painted(mrml, online_glue, vol, inside, seg, value=2)  # the vessel is class 1
    lg = online(online_glue, tmp_path / "task", vol, seg, sid)
    assert not lg.learner.rounds_trained and lg.status()["volume"] == "ball"
    assert not lg.show_prediction(), "no prediction before the task has learnt"
    assert (
        lg.record_drawn_slice(1, 16) == inside[:, 16, :].sum()
        and lg.record_drawn_slice(2, 15) == inside[:, :, 15].sum()
    )
    planes = lg.learner.proxy_mask.planes
    np.testing.assert_array_equal(planes[1].drawn[16], inside[:, 16, :])  # exactly what was painted
    np.testing.assert_array_equal(planes[2].drawn[15], inside[:, :, 15])
    lg.editor.set_overwrite("none")
    before = mrml.segment_io.segment_mask(seg, sid, vol)
    np.testing.assert_array_equal(before, drawn)
    assert lg.update_proxy() == [sid]
    after = mrml.segment_io.segment_mask(seg, sid, vol)
    proxy = lg.learner.proxy()
    np.testing.assert_array_equal(after, proxy)
    np.testing.assert_array_equal(after[:, 16, :], drawn[:, 16, :])  # drawn slices bit-exact
    np.testing.assert_array_equal(after[:, :, 15], drawn[:, :, 15])
    dice = 2 * (after & inside).sum() / (after.sum() + inside.sum())
    assert dice > 0.6 and (after.sum(axis=(1, 2)) > 0).sum() > 8, f"the proxy fills the ball in 3D (Dice {dice:.2f})"
    np.testing.assert_array_equal(
        mrml.segment_io.segment_mask(seg, vessel_id, vol), vessel
    )  # overwrite "none": untouched
    assert lg.update_proxy() == []  # nothing new: no write, no undo state
    assert lg.undo()  # one undo state restores the segment bit-exactly
    np.testing.assert_array_equal(mrml.segment_io.segment_mask(seg, sid, vol), drawn)
    # masking: with "editable area: outside all segments" the proxy keeps off the vessel
    lg.editor.set_overwrite("all")
    lg.editor.set_mask("EditAllowedOutsideAllSegments")
    lg.update_proxy()
    masked = mrml.segment_io.segment_mask(seg, sid, vol)
    off_drawn = np.ones(SHAPE, bool)
    off_drawn[:, 16, :] = off_drawn[:, :, 15] = False
    assert not (masked & vessel & off_drawn).any() and (masked & off_drawn).sum() > 300
    np.testing.assert_array_equal(masked[:, 16, :], drawn[:, 16, :])
    np.testing.assert_array_equal(mrml.segment_io.segment_mask(seg, vessel_id, vol), vessel)
    lg.close()


def test_training_on_the_worker_stops_cleanly_and_the_task_reopens_as_saved(glue, scene, ball, tmp_path):
    import torch

    from InteractiveSegSlicer.logic import shared_worker

    mrml, online_glue, _ = glue
    vol, inside = ball
    seg, sid, _ = painted(mrml, online_glue, vol, inside)
    task = tmp_path / "task"
    lg = online(online_glue, task, vol, seg, sid, n_f=400)
    from InteractiveSegLib.errors import InteractionError

    with pytest.raises(InteractionError, match="drawn slice"):
        lg.submit_training()
    lg.record_drawn_slice(1, 16)
    lg.record_drawn_slice(2, 15)
    worker = shared_worker()
    job = lg.submit_training(worker)
    deadline = time.monotonic() + 120
    while job.progress == 0 and not job.done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lg.training
    with pytest.raises(InteractionError, match="training is running"):
        lg.propose()  # nothing touches the learner while it trains
    job.cancel()
    report = job.wait(120)
    assert worker.thread_id is not None and job.cancel_requested and job.error is None
    assert report.stopped and 0 < len(report.losses) < 400, "Stop ends the round after the current step"
    assert job.message.startswith("training step")
    status = lg.status()
    assert status["rounds"] == 1 and status["stopped"] and not lg.training and "last loss" in lg.status_text()
    weights = {k: v.clone() for k, v in lg.learner.segmenter.net.state_dict().items()}
    steps = lg.learner.segmenter.steps
    assert steps == len(report.losses)
    lg.close()
    again = online_glue.OnlineLearningLogic(task)  # settings come from the task
    lrn = again.learner
    assert (lrn.rounds_trained, lrn.volumes_done, lrn.segmenter.steps, lrn.settings.n_f) == (1, 0, steps, 400)
    for k, v in lrn.segmenter.net.state_dict().items():
        assert torch.equal(v, weights[k]), k
    # the task has learnt: a new volume's empty segment starts from the prediction
    seg2, sid2 = online_glue.class_segment(vol, None, 1, "ball")
    assert again.start(vol, seg2, sid2)
    np.testing.assert_array_equal(mrml.segment_io.segment_mask(seg2, sid2, vol), again.learner.prediction() > 0.5)
    again.finish_volume()
    assert not again.is_started() and again.status()["volumes_learnt"] == 1
    again.close()
    with online_glue.OnlineLearningLogic(task).store as store:  # counted on disk
        assert store.load_checkpoint()["meta"]["volumes_done"] == 1


def test_a_task_open_elsewhere_is_refused_with_a_clear_message_and_nothing_changes(glue, scene, ball, tmp_path):
    from InteractiveSegLib.methods.online.task_folder import TaskLockedError

    mrml, online_glue, _ = glue
    vol, inside = ball
    seg, sid, drawn = painted(mrml, online_glue, vol, inside)
    task = tmp_path / "task"
    first = online(online_glue, task, vol, seg, sid)
    first.record_drawn_slice(1, 16)
    first.train()
    files = {p.name: p.read_bytes() for p in sorted(task.rglob("*")) if p.is_file() and p.name != "task.lock"}
    second = online_glue.OnlineLearningLogic()
    with pytest.raises(TaskLockedError, match="open in another session"):
        second.open(task)
    assert not second.is_open and second.status() == {"open": False}
    with pytest.raises(TaskLockedError):
        online(online_glue, task, vol, seg, sid)
    assert {p.name: p.read_bytes() for p in sorted(task.rglob("*")) if p.is_file() and p.name != "task.lock"} == files
    np.testing.assert_array_equal(mrml.segment_io.segment_mask(seg, sid, vol), drawn)
    first.open(task)  # the same task again here: still open, not refused by its own lock
    assert first.is_started() and first.propose()
    first.close()
    second.open(task)  # released
    assert second.is_open and second.learner.rounds_trained == 1
    second.close()


def test_bad_volumes_and_segmentations_are_refused_unchanged(glue, scene, ball, volume_node, tmp_path):
    from InteractiveSegLib.errors import GeometryError, ImageError

    mrml, online_glue, _ = glue
    vol, inside = ball
    seg, sid, _ = painted(mrml, online_glue, vol, inside)
    lg = online(online_glue, tmp_path / "task")
    flat = volume_node(np.zeros((1, 32, 32), np.float32), name="flat")
    rgb = volume_node(np.zeros((4, 32, 32, 3), np.uint8), name="rgb", components=3)
    other = volume_node(np.zeros((24, 32, 32), np.float32), np.diag([1.0, 1.0, 1.0, 1.0]), name="other grid")
    nodes = scene.GetNumberOfNodes()
    with pytest.raises(ImageError, match="2D"):
        lg.start(flat, seg, sid)
    with pytest.raises(ImageError, match="components"):
        lg.start(rgb, seg, sid)
    with pytest.raises(GeometryError, match="reference geometry"):
        lg.start(other, seg, sid)
    with pytest.raises(Exception, match="no segment"):
        lg.start(vol, seg, "no-such-segment")
    assert not lg.is_started() and scene.GetNumberOfNodes() == nodes
    with pytest.raises(Exception, match="start the task on a volume"):
        lg.propose()
    lg.close()
    with pytest.raises(Exception, match="open a task"):
        lg.start(vol, seg, sid)


def _corners_ijk(mrml, vol, node):
    import vtk

    points = vtk.vtkPoints()
    node.GetPlaneCornerPointsWorld(points)
    return mrml.geometry.world_to_ijk(vol, [points.GetPoint(n) for n in range(points.GetNumberOfPoints())])


def test_the_highlight_lies_on_the_slice_of_an_oblique_anisotropic_volume_under_a_transform(glue, scene, ball):
    import vtk

    mrml, _, slice_views = glue
    vol, _ = ball
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    m = vtk.vtkMatrix4x4()  # 90 degrees about S, then 30 mm up
    for r, c, value in ((0, 0, 0.0), (0, 1, -1.0), (1, 0, 1.0), (1, 1, 0.0), (2, 3, 30.0)):
        m.SetElement(r, c, value)
    transform.SetMatrixTransformToParent(m)
    vol.SetAndObserveTransformNodeID(transform.GetID())
    dims = vol.GetImageData().GetDimensions()
    for axis, index in ((0, 5), (1, 16), (2, 31)):
        node = slice_views.highlight_slice(vol, axis, index)
        assert (
            node.GetName() == slice_views.SUGGESTED_SLICE and node.GetLocked() and node.GetDisplayNode().GetVisibility()
        )
        ijk = _corners_ijk(mrml, vol, node)
        np.testing.assert_allclose(ijk[:, 2 - axis], index, atol=1e-4)  # on that slice
        for c in (c for c in range(3) if c != 2 - axis):  # to the outer edges of its voxels
            np.testing.assert_allclose([ijk[:, c].min(), ijk[:, c].max()], [-0.5, dims[c] - 0.5], atol=1e-4)
    assert (
        len(
            [n for n in range(scene.GetNumberOfNodes()) if scene.GetNthNode(n).GetName() == slice_views.SUGGESTED_SLICE]
        )
        == 1
    )
    assert slice_views.hide_highlights(scene) == 1 and not node.GetDisplayNode().GetVisibility()
    assert slice_views.hide_highlights(scene) == 0


def test_proposals_take_a_view_to_the_slice_and_the_view_records_it(glue, scene, ball, volume_node, tmp_path):
    mrml, online_glue, slice_views = glue
    vol, inside = ball
    seg, sid, drawn = painted(mrml, online_glue, vol, inside)
    lg = online(online_glue, tmp_path / "task", vol, seg, sid)
    proposals = lg.propose()
    assert sorted(p.axis for p in proposals) == [1, 2]  # one per plane (coronal, sagittal)
    view = scene.AddNewNodeByClass("vtkMRMLSliceNode")
    for p in proposals:
        assert mrml.geometry.kji_axis_for_orientation(vol, p.orientation) == p.axis
        assert mrml.geometry.slice_index_at(vol, p.ras, p.axis) == p.index
        node = scene.GetFirstNodeByName(p.highlight)
        np.testing.assert_allclose(_corners_ijk(mrml, vol, node)[:, 2 - p.axis], p.index, atol=1e-4)
        assert slice_views.show_slice(view, vol, p.axis, p.index) == p.orientation
        assert slice_views.view_slice(view, vol) == (p.axis, p.index)
        np.testing.assert_allclose(
            mrml.geometry.world_to_ijk(vol, [slice_views._slice_to_ras(view)[:3, 3]])[0][2 - p.axis], p.index, atol=1e-6
        )
        axis, index, voxels = lg.record_view_slice(view)  # "Slice drawn" in that view
        assert (axis, index) == (p.axis, p.index) and voxels == np.take(drawn, index, axis=axis).sum()
        np.testing.assert_array_equal(lg.learner.proxy_mask.planes[axis].drawn[index], np.take(drawn, index, axis=axis))
        assert not node.GetDisplayNode().GetVisibility(), "a recorded proposal is no longer highlighted"
    lg.close()
    # a volume so oblique that no view orientation maps to array axis 1 alone: the view is aimed at the slice's own axes
    a, b = np.radians(40), np.radians(35)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]) @ np.array(
        [[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]]
    )
    m = np.eye(4)
    m[:3, :3] = rot @ np.diag([0.8, 1.1, 2.0])
    skew = volume_node(np.zeros((12, 20, 24), np.float32), m, name="skew")
    assert 1 not in {mrml.geometry.kji_axis_for_orientation(skew, o) for o in mrml.geometry.ORIENTATION_NORMALS}
    for axis, index in ((0, 3), (1, 7), (2, 20)):
        slice_views.show_slice(view, skew, axis, index)
        assert slice_views.view_slice(view, skew) == (axis, index)
        column = m[:3, 2 - axis] / np.linalg.norm(m[:3, 2 - axis])
        assert abs(slice_views._slice_to_ras(view)[:3, 2] @ column) == pytest.approx(1, abs=1e-9), (
            "exactly the volume's slice plane"
        )
