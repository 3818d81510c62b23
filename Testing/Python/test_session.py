"""Session: history, undo/redo, drag, multi-class merge, registry — with a toy engine
registered in one line, so these tests do not depend on the shipped weights."""

import numpy as np
import pytest

from InteractiveSegLib.engines import Engine, Prediction, available_engines, create_engine, register_engine
from InteractiveSegLib.errors import EngineError, InteractionError
from InteractiveSegLib.hints import Click
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.session import Session, merge_class
from InteractiveSegLib.volume import Volume


class DiskEngine(Engine):
    """Toy 2D engine: a disk of radius 3 around each positive click, minus negatives."""

    name = "disk"

    def __init__(self):
        super().__init__()
        self.calls = 0

    def predict(self, request):
        self.calls += 1
        sl = np.zeros(request.current_slice().shape, np.float32)
        yy, xx = np.mgrid[: sl.shape[0], : sl.shape[1]]
        others = [a for a in range(3) if a != request.axis]
        for h in request.interactions:
            p = (h.ijk[2], h.ijk[1], h.ijk[0])
            d = (yy - p[others[0]]) ** 2 + (xx - p[others[1]]) ** 2 <= 9
            sl[d] = 1.0 if h.positive else 0.0
        return Prediction(
            request.label, self.slice_region(request.axis, request.slice_index), np.expand_dims(sl, request.axis)
        )


register_engine("disk", DiskEngine)


@pytest.fixture
def session():
    vol = Volume(np.zeros((8, 32, 32), np.float32))
    return Session(vol, "disk", LabelTable.default([1, 2]))


def test_registry_lists_and_creates_engines():
    assert {"disk", "click"} <= set(available_engines())
    assert isinstance(create_engine("disk"), DiskEngine)
    with pytest.raises(EngineError, match="unknown engine"):
        create_engine("no-such-engine")


def test_add_undo_redo(session):
    s1 = session.add(Click((10, 10, 4), label=1))
    assert session.labelmap[4, 10, 10] == 1 and s1.changed
    session.add(Click((20, 20, 4), label=1))
    assert session.labelmap[4, 20, 20] == 1 and session.labelmap[4, 10, 10] == 1  # same-slice clicks accumulate
    session.undo()
    assert session.labelmap[4, 20, 20] == 0 and session.labelmap[4, 10, 10] == 1
    session.undo()
    assert not session.labelmap.any() and session.undo() is None
    session.redo()
    session.redo()
    assert session.labelmap[4, 20, 20] == 1 and len(session.history) == 2
    assert session.redo() is None


def test_new_hint_clears_redo(session):
    session.add(Click((10, 10, 4)))
    session.undo()
    session.add(Click((20, 20, 4)))
    assert session.redo() is None and len(session.history) == 1


def test_negative_click_removes(session):
    session.add(Click((10, 10, 4), label=1))
    session.add(Click((10, 10, 4), label=1, positive=False))
    assert session.labelmap[4, 10, 10] == 0


def test_classes_do_not_overwrite_each_other(session):
    session.add(Click((10, 10, 4), label=1))
    session.add(Click((12, 10, 4), label=2))
    assert session.labelmap[4, 10, 10] == 1  # class 1 kept where they overlap
    assert session.labelmap[4, 10, 14] == 2
    s = Session(session.volume, "disk", session.labels, overwrite_other=True)
    s.add(Click((10, 10, 4), label=1))
    s.add(Click((12, 10, 4), label=2))
    assert s.labelmap[4, 10, 10] == 2


def test_drag_moves_the_click_without_a_new_step(session):
    session.add(Click((10, 10, 4)))
    session.move_last_click((20, 10, 4))
    assert len(session.history) == 1 and session.history[0].interaction.ijk == (20, 10, 4)
    assert session.labelmap[4, 10, 10] == 0 and session.labelmap[4, 10, 20] == 1
    session.undo()
    assert not session.labelmap.any()


def test_other_slices_and_orientations_are_independent(session):
    session.add(Click((10, 10, 4), axis=0))
    session.add(Click((10, 10, 5), axis=0))
    assert session.labelmap[4, 10, 10] == 1 and session.labelmap[5, 10, 10] == 1
    session.add(Click((16, 16, 2), axis=2))  # a sagittal click: slice i = 16
    assert session.labelmap[2, 16, 16] == 1 and session.labelmap[2, 16, 15] == 0


def test_invalid_hint_changes_nothing(session):
    engine = session.engine
    session.add(Click((10, 10, 4)))
    before = session.labelmap.copy()
    with pytest.raises(InteractionError, match="outside"):
        session.add(Click((99, 10, 4)))
    with pytest.raises(InteractionError, match="unknown class"):
        session.add(Click((10, 10, 4), label=5))
    with pytest.raises(InteractionError, match="outside"):
        session.move_last_click((99, 0, 0))
    np.testing.assert_array_equal(session.labelmap, before)
    assert len(session.history) == 1 and engine.calls == 1


def test_hints_json_replays_to_the_same_labelmap(session):
    session.add(Click((10, 10, 4), label=1))
    session.add(Click((20, 20, 4), label=2))
    other = Session(session.volume, "disk", session.labels)
    other.replay_json(session.hints_json())
    np.testing.assert_array_equal(other.labelmap, session.labelmap)


def test_merge_class_only_touches_its_class():
    before = np.array([[0, 1, 2], [1, 0, 2]], np.uint8)
    mask = np.array([[1, 0, 1], [1, 1, 0]], bool)
    np.testing.assert_array_equal(merge_class(before, mask, 1, False), [[1, 0, 2], [1, 1, 2]])


def test_a_model_that_returns_nan_is_an_error_and_changes_nothing():
    class Broken(Engine):
        """A network whose weights went to NaN: every probability is NaN."""

        name = "broken"

        def predict(self, request):
            region = self.slice_region(request.axis, request.slice_index)
            shape = tuple(r.stop - r.start for r in region)
            return Prediction(request.label, region, np.full(shape, np.nan, np.float32))

    vol = Volume(np.zeros((3, 8, 8), np.float32))
    s = Session(vol, Broken(), LabelTable.default([1]))
    with pytest.raises(EngineError, match="NaN"):
        s.add(Click((2, 2, 1), 1, True, 0))
    assert not s.labelmap.any() and not s.history


def test_a_slice_engine_refuses_a_hint_that_spans_slices_instead_of_projecting_it():
    from InteractiveSegLib.hints import ExtremePoints

    s = Session(Volume(np.zeros((6, 16, 16), np.float32)), DiskEngine(), LabelTable.default([1]))
    with pytest.raises(InteractionError, match="spans slices 1..4"):
        s.add(ExtremePoints([(2, 5, 1), (9, 5, 2), (5, 2, 3), (5, 9, 4)], 1, True, 0))
    assert not s.labelmap.any() and not s.history


def test_a_step_keeps_only_its_changed_box_compressed_and_no_probability(session):
    step = session.add(Click((10, 10, 4), label=1))
    assert step.change is not None and step.change.box == (slice(4, 5), slice(7, 14), slice(7, 14))
    np.testing.assert_array_equal(step.change.after(), session.labelmap[step.change.box])
    assert not step.change.before().any()
    assert step.prediction.released and step.nbytes < 200  # a disk's box, zlib'd
    with pytest.raises(EngineError, match="released"):
        step.prediction.mask()


def test_history_past_its_budget_drops_the_oldest_undo_steps_but_keeps_their_hints(caplog):
    vol = Volume(np.zeros((8, 32, 32), np.float32))
    budget = 100  # bytes: room for two or three compressed disks
    session = Session(vol, "disk", LabelTable.default([1]), history_budget=budget)
    for k in range(6):
        session.add(Click((10, 10, k), label=1))
    assert session.history_bytes <= budget and session.dropped >= 3
    assert "can no longer be undone" in caplog.text
    assert len(session.interactions) == 6  # every hint still counts
    undone = 0
    while session.undo() is not None:
        undone += 1
    assert undone == 6 - session.dropped
    # the slices whose steps left the history keep their disks; the undone ones are empty
    assert all(session.labelmap[k].any() for k in range(session.dropped))
    assert not session.labelmap[session.dropped :].any()
    session.redo()
    assert session.labelmap[session.dropped].any()


def test_a_volume_whose_session_would_not_fit_in_free_memory_is_refused(monkeypatch):
    from InteractiveSegLib import memory_budget
    from InteractiveSegLib.errors import MemoryBudgetError

    vol = Volume(np.zeros((8, 32, 32), np.float32))
    engine = DiskEngine()
    monkeypatch.setattr(memory_budget, "available_memory", lambda: 1000)  # bytes: far too little
    with pytest.raises(MemoryBudgetError, match="GB of memory"):
        Session(vol, engine, LabelTable.default([1]))
    assert engine.volume is None  # refused before the engine took the image
    monkeypatch.setattr(memory_budget, "available_memory", lambda: 10**9)
    assert Session(vol, engine, LabelTable.default([1])).engine.volume is vol


def test_next_slice_moves_on_when_asked_again_and_a_seen_slice_speaks_for_its_neighbours():
    """A rated 3D step: the suggestion is its most expected wrong voxels; asked again without
    a correction (the user found the slice right) the next one comes, not a neighbour of the
    slice just seen; a new step starts afresh."""
    from InteractiveSegLib.engines.base import SliceRatings

    wrong = np.zeros(40)
    wrong[10:30] = 1.0
    wrong[[20, 21]] = 5.0  # the worst slice and its neighbour
    wrong[5] = 2.0  # far from them, less wrong than 21

    class Rated(Engine):
        """A 3D engine that marks a block and rates slices by ``wrong``."""

        name = "rated"
        mode = "3d"
        HISTORY = "class"

        def predict(self, request):
            shape = self.volume.shape
            prob = np.zeros(shape, np.float32)
            prob[10:30, 2:6, 2:6] = 1
            hinted = [request.slice_index]
            ratings = SliceRatings(0, np.full(shape[0], 0.5), wrong.copy(), hinted)
            region = (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))
            return Prediction(request.label, region, prob, ratings=ratings)

    s = Session(Volume(np.zeros((40, 8, 8), np.float32)), Rated(), LabelTable.default([1]))
    s.add(Click((3, 3, 12), 1, True, 0))
    assert s.suggest_slice().index == 20
    assert s.suggest_slice().index == 5, "the seen slice 20 weighs its neighbour 21 down"
    assert s.suggest_slice(exclude=(10,)).index not in (5, 10, 20)
    s.add(Click((3, 3, 25), 1, True, 0))
    assert s.suggest_slice().index == 20, "a new result: every slice may be suggested again"
