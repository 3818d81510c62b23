"""The Segment Editor effect's and the module panel's decisions, Qt-free, on real MRML: the
``GestureTracker``'s rules driving an ``InteractiveController`` whose results go through the
Segment Editor's logic (``EditorWriter``: undo states, masking, overwrite), and the
controller methods the effect and the panel call (configure, submit_gesture, submit_markups,
submit_propagation, automatic_hint, highlight_next_slice, last_click) on a crop of Colin27.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from InteractiveSegLib.errors import InteractionError, InteractiveSegError
from InteractiveSegLib.hints import Box, Click, DrawnSlice, ExtremePoints, Scribble, SliceAuto

AXIAL = (0.0, 0.0, 1.0)
PIXEL = (100.0, 100.0)


@dataclasses.dataclass
class Editor:
    """A controller writing through a Segment Editor node, and the undo states it saved."""

    controller: object
    writer: object
    states: list


@pytest.fixture
def editor(slicer_app, scene, colin_crop) -> Editor:
    from InteractiveSegSlicer.controller import InteractiveController
    from InteractiveSegSlicer.editor_writer import EditorWriter
    from InteractiveSegSlicer.logic import SegmentationLogic

    states: list = []
    writer = EditorWriter(scene)

    def save_state() -> None:  # as the effect's scriptedEffect.saveStateForUndo: one state per hint
        states.append(writer.node.GetSegmentationNode().GetID())
        writer.logic.SaveStateForUndo()

    writer._save_state = save_state
    volume = slicer_app.io_manager.load_volumes([str(colin_crop)])[0]
    controller = InteractiveController(volume, engine="growcut", logic=SegmentationLogic(writer))
    controller.ensure_segmentation()
    return Editor(controller, writer, states)


def centre_ras(controller) -> np.ndarray:
    from InteractiveSegSlicer import geometry

    dims = controller.volumeNode.GetImageData().GetDimensions()
    return np.asarray(geometry.ijk_to_world(controller.volumeNode, [d // 2 for d in dims]))


def corner_ras(controller, offset: int = 3) -> np.ndarray:
    """A voxel ``offset`` voxels in from the image's corner, on the middle slice (background)."""
    from InteractiveSegSlicer import geometry

    dims = controller.volumeNode.GetImageData().GetDimensions()
    return np.asarray(geometry.ijk_to_world(controller.volumeNode, [offset, offset, dims[2] // 2]))


def tracker_of(controller, mode: str = "click"):
    from InteractiveSegSlicer.gestures import GestureTracker

    return GestureTracker(controller, mode)


def run(controller, action):
    """What the effect does with an action's hint: submit (marked), wait, write."""
    assert action.hint is not None
    return controller.finish(controller.submit_gesture(action.hint, action.verb))


def marks(scene, sign: str) -> int:
    node = scene.GetFirstNodeByName(f"InteractiveSeg hints {sign}")
    return 0 if node is None else node.GetNumberOfControlPoints()


# --- the gesture rules ------------------------------------------------------------------------
def test_a_click_acts_on_press_and_a_drag_moves_it(editor, scene):
    c = editor.controller
    ras = centre_ras(c)
    tracker = tracker_of(c)
    run(c, tracker.press(corner_ras(c), PIXEL, AXIAL, ctrl=True))  # the background, outside
    tracker.release(corner_ras(c), PIXEL)
    pressed = tracker.press(ras, PIXEL, AXIAL)
    assert isinstance(pressed.hint, Click) and pressed.hint.positive and pressed.verb == "click"
    first = run(c, pressed)
    assert first.voxels > 0 and first.voxels == c.voxel_count()
    assert len(editor.states) == 2 and marks(scene, "+") == 1, "one undo state and one mark per hint"
    assert tracker.move(ras + [1.0, 0, 0], (102.0, 100.0)).move_to is None, "2 pixels are not a drag"
    far = corner_ras(c, 30)  # the background near the negative click
    dragged = tracker.move(far, (130.0, 100.0))
    assert dragged.hint is None and dragged.move_to is not None
    moved = c.move_click(dragged.move_to)
    assert moved.message == "click moved" and moved.voxels == c.voxel_count() != first.voxels
    assert c.last_click() is not None and np.allclose(c.last_click()[0], far, atol=1.0)
    released = tracker.release(far, (130.0, 100.0))
    assert released.hint is None and released.move_to is not None and not tracker.active
    assert len(editor.states) == 2, "moving a click makes no new undo state"
    assert c.undo().voxels == 0 and c.last_click() is not None and c.last_click()[1] is False


def test_the_marks_follow_undo_redo_and_a_moved_click(editor, scene):
    """The placed-hint marks show the history as it stands: undo removes a hint's mark, redo
    puts it back, a moved click's mark moves with it."""
    c = editor.controller
    tracker = tracker_of(c)
    run(c, tracker.press(corner_ras(c), PIXEL, AXIAL, ctrl=True))
    tracker.release(corner_ras(c), PIXEL)
    run(c, tracker.press(centre_ras(c), PIXEL, AXIAL))
    tracker.release(centre_ras(c), PIXEL)
    assert (marks(scene, "+"), marks(scene, "-")) == (1, 1)
    c.undo()
    assert (marks(scene, "+"), marks(scene, "-")) == (0, 1)
    c.redo()
    assert (marks(scene, "+"), marks(scene, "-")) == (1, 1)
    far = corner_ras(c, 30)
    c.move_click(far)
    node = scene.GetFirstNodeByName("InteractiveSeg hints +")
    assert np.allclose(node.GetNthControlPointPositionWorld(0), far, atol=1.0)  # within a voxel (1 mm)


def test_an_empty_drawn_slice_places_no_mark(editor, scene):
    """A drawn slice marks its voxels; an empty one ("not on this slice") has only a stand-in
    point at the slice's corner, which must not appear in the views."""
    from InteractiveSegSlicer import hint_marks

    volume = editor.controller.volumeNode
    assert hint_marks.show_hint(volume, DrawnSlice([], axis=0, index=3)) == 0
    assert hint_marks.show_hint(volume, DrawnSlice([(4, 5, 3), (5, 5, 3)], axis=0)) == 2
    assert (marks(scene, "+"), marks(scene, "-")) == (2, 0)


def test_ctrl_or_the_negative_switch_makes_a_negative_click(editor, scene):
    c = editor.controller
    ras = centre_ras(c)
    tracker = tracker_of(c)
    positive = run(c, tracker.press(ras, PIXEL, AXIAL))  # growcut: a lone seed fills the slice
    tracker.release(ras, PIXEL)
    ctrl = tracker.press(corner_ras(c), PIXEL, AXIAL, ctrl=True)
    assert not ctrl.hint.positive and ctrl.verb == "negative click"
    negative = run(c, ctrl)
    tracker.release(corner_ras(c), PIXEL)
    assert negative.changed > 0 and negative.voxels < positive.voxels
    assert c.last_click() is not None and c.last_click()[1] is False
    assert marks(scene, "-") == 1
    tracker.negative = True
    switched = tracker.press(ras + [-10.0, 0, 0], PIXEL, AXIAL)
    assert not switched.hint.positive and switched.verb == "negative click"


def test_a_scribble_acts_on_release(editor):
    c = editor.controller
    ras = centre_ras(c)
    tracker = tracker_of(c, "scribble")
    assert tracker.press(ras, PIXEL, AXIAL).hint is None, "nothing on press"
    for n in range(1, 6):
        assert tracker.move(ras + [n * 1.5, 0, 0], (PIXEL[0] + 3 * n, PIXEL[1])).hint is None
    assert tracker.stroke is not None and len(tracker.stroke.pixels) == 6 and c.voxel_count() == 0
    released = tracker.release(ras + [9.0, 0, 0], (PIXEL[0] + 18, PIXEL[1]))
    assert isinstance(released.hint, Scribble) and len(released.hint.voxels) >= 5
    assert run(c, released).voxels > 0 and tracker.stroke is None


def test_a_box_acts_on_release_and_needs_a_drag(editor):
    c = editor.controller
    c.configure("vmn-growcut")
    ras = centre_ras(c)
    tracker = tracker_of(c, "box")
    assert tracker.press(ras, PIXEL, AXIAL).hint is None
    still = tracker.release(ras, PIXEL)
    assert still.hint is None and still.message == "drag from one corner of the box to the other"
    tracker.press(ras, PIXEL, AXIAL)
    tracker.move(ras + [6.0, 6.0, 0], (PIXEL[0] + 20, PIXEL[1] - 20))
    released = tracker.release(ras + [12.0, 12.0, 0], (PIXEL[0] + 40, PIXEL[1] - 40))
    assert isinstance(released.hint, Box) and released.verb == "box"
    assert released.hint.min_ijk != released.hint.max_ijk
    assert c.voxel_count() == 0 and editor.states == []


def test_extreme_points_three_messages_then_a_hint(editor):
    c = editor.controller
    ras = centre_ras(c)
    tracker = tracker_of(c, "extreme")
    offsets = ([-6.0, 0, 0], [6.0, 0, 0], [0, -6.0, 0], [0, 6.0, 0])
    for n, off in enumerate(offsets[:3], start=1):
        action = tracker.press(ras + off, PIXEL, AXIAL)
        assert action.hint is None and action.message == f"extreme point {n} of 4"
        assert tracker.release(ras + off, PIXEL).hint is None
    fourth = tracker.press(ras + offsets[3], PIXEL, AXIAL)
    assert isinstance(fourth.hint, ExtremePoints) and fourth.verb == "extreme points"
    assert run(c, fourth).voxels > 0 and len(editor.states) == 1


def test_cancel_drops_a_stroke_and_the_extreme_points(editor):
    c = editor.controller
    ras = centre_ras(c)
    tracker = tracker_of(c, "scribble")
    tracker.press(ras, PIXEL, AXIAL)
    tracker.move(ras + [6.0, 0, 0], (PIXEL[0] + 20, PIXEL[1]))
    assert tracker.cancel() is True and tracker.stroke is None
    assert tracker.release(ras + [6.0, 0, 0], (PIXEL[0] + 20, PIXEL[1])).hint is None
    tracker.set_mode("extreme")
    tracker.press(ras, PIXEL, AXIAL)
    assert tracker.cancel() is True and c.extreme_points_placed == 0
    assert tracker.cancel() is False, "nothing left to cancel"
    assert c.voxel_count() == 0 and editor.states == []


def test_a_press_outside_the_image_raises_and_changes_nothing(editor, scene):
    c = editor.controller
    ras = centre_ras(c)
    tracker = tracker_of(c)
    before = run(c, tracker.press(ras, PIXEL, AXIAL)).voxels
    tracker.release(ras, PIXEL)
    for mode in ("click", "extreme"):  # a scribble may start outside: its inside voxels count
        tracker.set_mode(mode)
        with pytest.raises(InteractionError, match="outside the image"):
            tracker.press(ras + [0.0, 0.0, 500.0], PIXEL, AXIAL)
        assert not tracker.active and c.extreme_points_placed == 0
    tracker.set_mode("box")  # growcut takes no box: refused, naming what it takes
    with pytest.raises(InteractionError, match="does not take box"):
        tracker.press(ras, PIXEL, AXIAL)
    assert c.voxel_count() == before and len(editor.states) == 1 and marks(scene, "+") == 1
    assert c.undo().voxels == 0 and c.undo().message == "nothing to undo"


# --- the controller methods of the effect and the panel ----------------------------------------
def test_configure_sets_engine_model_and_device_or_changes_nothing(editor):
    c = editor.controller
    c.configure("growcut", "/models/mine.pt", "cpu")
    assert (c.engine, c.engine_kwargs, c.logic.device) == ("growcut", {}, "cpu")
    c.configure("finetune", "/models/mine.pt", "Automatic")
    assert (c.engine, c.engine_kwargs, c.logic.device) == ("finetune", {"model": "/models/mine.pt"}, None)
    c.configure("finetune", "", None)
    assert c.engine_kwargs == {}
    with pytest.raises(InteractiveSegError, match="unknown engine"):
        c.configure("no-such-engine", "", "cuda")
    assert (c.engine, c.logic.device) == ("finetune", None)


def test_submit_markups_applies_every_point_as_one_job_and_empties_the_lists(editor, scene):
    c = editor.controller
    ras = centre_ras(c)
    positive = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "positive")
    negative = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "negative")
    with pytest.raises(InteractionError, match="at least one click"):
        c.submit_markups(positive, negative)
    positive.AddControlPointWorld(*ras)
    negative.AddControlPointWorld(*(ras + [0.0, 0.0, 500.0]))
    with pytest.raises(InteractionError, match="outside"):
        c.submit_markups(positive, negative)
    assert positive.GetNumberOfControlPoints() == 1 and not c.running, "a refused Apply keeps the points"
    negative.RemoveAllControlPoints()
    negative.AddControlPointWorld(*(ras + [10.0, 0.0, 0.0]))
    op = c.submit_markups(positive, negative, "Axial")
    assert positive.GetNumberOfControlPoints() == 0 and negative.GetNumberOfControlPoints() == 0
    result = c.finish(op)
    assert result.voxels > 0 and result.message.startswith("apply:")
    assert len(editor.states) == 2, "one undo state per click"
    assert c.last_click() is not None and c.last_click()[1] is False, "negatives are applied last"
    undone = c.undo()
    assert 0 < undone.voxels != result.voxels


def test_submit_propagation_carries_the_drawn_slice_through_the_volume(editor):
    c = editor.controller
    with pytest.raises(InteractionError, match="no voxel"):
        c.submit_propagation("Axial")
    assert c.engine == "growcut", "a refused Propagate changes nothing"
    ras = centre_ras(c)
    drawn = c.finish(c.submit_gesture(c.hint("click", [ras]), "click"))
    c.configure("vmn-growcut")
    op = c.submit_propagation("Axial")
    assert c.engine == "vmn-growcut" and op.verb == "propagate"
    result = c.finish(op)
    assert result.voxels > drawn.voxels and result.message.startswith("propagate:")
    assert len(editor.states) == 2
    c.configure("prompt3d")  # a 3D network that takes a drawn slice keeps the choice
    result = c.finish(c.submit_propagation("Axial"))
    assert c.engine == "prompt3d" and result.message.startswith("propagate:") and len(editor.states) == 3
    c.configure("growcut")
    assert c.submit_propagation("Axial").job is not None and c.engine == "vmn", "a 2D engine: vmn propagates"
    c.cancel()


def test_automatic_hint_is_the_slice_under_the_point_and_2d_engines_refuse_it(editor):
    c = editor.controller
    ras = centre_ras(c)
    dims = c.volumeNode.GetImageData().GetDimensions()
    hint = c.automatic_hint(ras, "Axial")
    assert hint == SliceAuto(dims[2] // 2, 0)
    with pytest.raises(InteractiveSegError):
        c.finish(c.submit(hint, "automatic"))
    assert not c.running and c.voxel_count() == 0 and editor.states == []
    c.configure("sim")  # a multi-class engine: every class of its model on that slice
    result = c.finish(c.submit(c.automatic_hint(ras, "Axial"), "automatic"))
    assert result.changed > 0 and result.message.startswith("automatic:") and len(editor.states) == 1
    segmentation = c.segmentationNode.GetSegmentation()
    assert segmentation.GetNumberOfSegments() > 2, "one segment per class of the model"
    with pytest.raises(InteractionError, match="outside"):
        c.submit(c.automatic_hint(ras + [0.0, 0.0, 500.0], "Axial"), "automatic")


def test_highlight_next_slice_hides_the_highlight_when_the_engine_rates_no_slice(editor, scene):
    from InteractiveSegSlicer import slice_views

    c = editor.controller
    highlight = slice_views.highlight_slice(c.volumeNode, 0, 3)
    assert highlight.GetDisplayNode().GetVisibility()
    result = c.highlight_next_slice()
    assert result.ras is None and "suggests no slice" in result.message
    assert not highlight.GetDisplayNode().GetVisibility()
    highlight.GetDisplayNode().SetVisibility(True)
    c.finish(c.submit_gesture(c.hint("click", [centre_ras(c)]), "click"))
    assert not highlight.GetDisplayNode().GetVisibility(), "a hint hides the suggestion it acted upon"


def test_highlight_next_slice_shows_the_slice_a_3d_engine_rates_worst(editor, scene):
    from InteractiveSegSlicer import geometry, slice_views

    c = editor.controller
    c.configure("vmn")
    c.finish(c.submit_gesture(c.hint("click", [centre_ras(c)]), "click"))
    result = c.highlight_next_slice()
    assert result.ras is not None and result.message.startswith("next slice:")
    highlight = scene.GetFirstNodeByName(slice_views.SUGGESTED_SLICE)
    assert highlight is not None and highlight.GetDisplayNode().GetVisibility()
    ratings = c.logic.store.session(c.volumeNode).history[-1].prediction.ratings
    error = np.array(ratings.expected_wrong_voxels, np.float64)
    error[ratings.corrected] = np.nan
    worst = int(np.nanargmax(error))
    assert result.slice[:2] == (ratings.axis, worst)
    assert geometry.slice_index_at(c.volumeNode, result.ras, ratings.axis) == worst
    assert np.allclose(highlight.GetCenterWorld(), result.ras, atol=1e-3), "the highlight lies on that slice"
    again = c.highlight_next_slice()
    assert again.slice is not None and again.slice[1] != worst, "asked again, the next slice comes"
    assert np.allclose(highlight.GetCenterWorld(), again.ras, atol=1e-3)
