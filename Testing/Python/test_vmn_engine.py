"""The VMN engine with the shipped weights on a held-out Colin27 structure, through a Session."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from InteractiveSegLib.data import datasets
from InteractiveSegLib.engines import create_engine
from InteractiveSegLib.errors import EngineError, InteractionError, ModelError
from InteractiveSegLib.hints import Box, DrawnSlice, ExtremePoints, Scribble, SliceAuto, ijk_from_slice_point
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.metrics import dice
from InteractiveSegLib.session import Session
from InteractiveSegLib.users.robot import robot_box, robot_extreme_points, robot_slice_hint

STRUCTURE = "Putamen_R"  # even AAL id: held out from training


@pytest.fixture(scope="module")
def colin():
    d = datasets.load("colin27")
    value = next(v for v in d.structures("test") if d.labels.labels[v].name == STRUCTURE)
    return d.image, d.mask(value)


@pytest.fixture(scope="module")
def engine(colin):
    e = create_engine("vmn")
    e.set_image(colin[0])
    return e


def _box(ref, index):
    lo, hi = robot_box(ref[index])
    return Box(ijk_from_slice_point(lo, 0, index), ijk_from_slice_point(hi, 0, index), axis=0)


def test_one_box_segments_the_structure_in_3d(colin, engine):
    image, ref = colin
    index = int(np.argmax(ref.sum((1, 2))))
    session = Session(image, engine, LabelTable.default([1]))
    step = session.add(_box(ref, index))
    pred = session.labelmap == 1
    assert dice(ref[index], pred[index]) > 0.6  # the interactive slice (f_IN)
    touched = np.flatnonzero(pred.any((1, 2)))
    assert touched.min() < index - 5 and touched.max() > index + 5  # it travelled both ways
    # on the other slices it found more of the structure than the boxed slice holds
    others = np.ones(len(ref), bool)
    others[index] = False
    assert (pred & ref)[others].sum() > ref[index].sum()
    q = np.array(step.prediction.ratings.predicted_iou)
    assert np.isnan(q[index]) and np.isfinite(q[touched[touched != index]]).all()
    assert step.prediction.ratings.corrected == [index]


def test_suggestion_correction_undo_redo(colin, engine):
    image, ref = colin
    index = int(np.argmax(ref.sum((1, 2))))
    session = Session(image, engine, LabelTable.default([1]))
    session.add(_box(ref, index))
    first = session.labelmap.copy()
    s = session.suggest_slice()
    assert s is not None and s.axis == 0 and s.index != index and 0 <= s.score <= 1
    ratings = session.history[-1].prediction.ratings
    scores, error = np.array(ratings.predicted_iou), np.array(ratings.expected_wrong_voxels)
    area = (session.labelmap == 1).sum((1, 2))
    np.testing.assert_allclose(error, (1 - scores) * area)  # expected wrong voxels per slice
    assert s.score == scores[s.index] and s.wrong_voxels == pytest.approx(np.nanmax(np.delete(error, index)))
    target = s.index if ref[s.index].any() else int(np.flatnonzero(ref.any((1, 2)))[0])
    step = session.add(
        ExtremePoints([ijk_from_slice_point(p, 0, target) for p in robot_extreme_points(ref[target])], axis=0)
    )
    assert step.prediction.ratings.corrected == sorted({index, target})
    assert session.suggest_slice().index not in (index, target)
    second = session.labelmap.copy()
    session.undo()
    np.testing.assert_array_equal(session.labelmap, first)
    session.redo()
    np.testing.assert_array_equal(session.labelmap, second)
    # after undo the engine's memory has only the first slice again
    session.undo()
    again = session.add(_box(ref, index))
    assert again.prediction.ratings.corrected == [index]


def test_a_round_rewrites_the_class_in_its_box_not_the_whole_volume(colin, engine):
    image, ref = colin
    index = int(np.argmax(ref.sum((1, 2))))
    plain = Session(image, engine, LabelTable.default([1]))
    step = plain.add(_box(ref, index))
    assert np.prod([r.stop - r.start for r in step.region]) < 0.5 * ref.size
    assert (plain.labelmap == 1).sum() == (plain.labelmap[step.region] == 1).sum()
    stray = np.zeros(ref.shape, np.uint8)
    stray[2, 2, 2] = 1  # an earlier voxel of the class, far from the structure
    session = Session(image, engine, LabelTable.default([1]), labelmap=stray)
    session.add(_box(ref, index))
    np.testing.assert_array_equal(session.labelmap, plain.labelmap)  # a round replaces the whole class


def test_memory_beats_no_memory_on_this_structure(colin, engine):
    image, ref = colin
    index = int(np.argmax(ref.sum((1, 2))))
    mem0 = create_engine("vmn-mem0")
    mem0.set_image(image)
    scores = []
    for e in (engine, mem0):
        session = Session(image, e, LabelTable.default([1]))
        session.add(_box(ref, index))
        scores.append(dice(ref, session.labelmap == 1))
    assert scores[0] > scores[1]


def test_bad_input_changes_nothing(colin, engine, tmp_path):
    image, ref = colin
    session = Session(image, engine, LabelTable.default([1]))
    with pytest.raises(InteractionError):
        session.add(Box((0, 0, 500), (10, 10, 500), axis=0))  # outside the image
    with pytest.raises(InteractionError):
        session.add(SliceAuto(50, 0))  # VMN has no automatic mode
    with pytest.raises(InteractionError, match="spans slices 40..60 along axis 0.*on one slice"):
        session.add(Box((50, 60, 40), (90, 120, 60), axis=0))  # once projected onto slice 40 unsaid
    assert not session.history and not session.labelmap.any()
    bad = tmp_path / "vmn_memory.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError):
        create_engine("vmn", model_path=bad)
    with pytest.raises(EngineError):
        create_engine("vmn", memory_size=-1)


def test_a_drawn_slice_is_kept_as_drawn_and_propagated(colin, engine):
    """Propagate in Slicer: the slice the user painted is that slice's mask, not a hint for
    f_IN (which would widen or trim it); a scribble after it is read over it."""
    image, ref = colin
    index = int(np.argmax(ref.sum((1, 2))))
    drawn = ref[index].copy()
    drawn[: int(np.argwhere(drawn)[:, 0].mean())] = False  # half of it: no network would draw that edge
    voxels = [ijk_from_slice_point(p, 0, index) for p in np.argwhere(drawn)]
    session = Session(image, engine, LabelTable.default([1]))
    session.add(DrawnSlice(voxels, axis=0))
    got = session.labelmap == 1
    np.testing.assert_array_equal(got[index], drawn)
    assert got[index - 2].any() and got[index + 2].any()
    # the robot's stroke in the missing half: f_IN reads it with the drawn half as the mask
    stroke = robot_slice_hint("scribble", ref[index], drawn, 0, index, np.random.default_rng(0))
    assert isinstance(stroke, Scribble) and stroke.positive
    session.add(stroke)
    after = (session.labelmap == 1)[index]
    assert dice(ref[index], after) > dice(ref[index], drawn)
    with pytest.raises(EngineError, match="does not take drawn_slice"):
        Session(image, create_engine("click"), LabelTable.default([1])).add(DrawnSlice(voxels, axis=0))


def test_an_empty_drawn_slice_clears_its_slice_and_bounds_the_propagation(colin, engine):
    """The user erases a slice the run reached past the structure's end: that slice is
    cleared exactly and nothing is carried beyond it; the other side keeps its result."""
    image, ref = colin
    index = int(np.argmax(ref.sum((1, 2))))
    session = Session(image, engine, LabelTable.default([1]))
    voxels = [ijk_from_slice_point(p, 0, index) for p in np.argwhere(ref[index])]
    session.add(DrawnSlice(voxels, axis=0))
    before = (session.labelmap == 1).copy()
    filled = np.flatnonzero(before.any((1, 2)))
    stop = index + max(2, (filled.max() - index) // 2)  # inside the run, short of its far end
    assert before[stop].any() and before[stop + 1 :].any()
    session.add(DrawnSlice([], axis=0, index=stop))
    after = session.labelmap == 1
    assert not after[stop:].any()
    np.testing.assert_array_equal(after[index], ref[index])
    assert after[filled.min() : index].any()


def test_the_benchmarks_drawn_hint_measures_the_propagation_alone(colin):
    """``--hint drawn``: the robot paints the reference's cross-section, every engine keeps it
    exactly (no interaction network reads it), and on a slice the structure has left it draws
    an empty slice, which clears that slice (a negative stroke read by f_IN may not)."""
    from InteractiveSegLib.bench.vmn import run_volume

    image, ref = colin
    index = int(np.argmax(ref.sum((1, 2))))
    hint = robot_slice_hint("drawn", ref[index], None, 0, index)
    assert isinstance(hint, DrawnSlice) and len(hint.voxels) == int(ref[index].sum())
    empty = robot_slice_hint("drawn", np.zeros_like(ref[index]), ref[index], 0, index)
    assert isinstance(empty, DrawnSlice) and not empty.voxels and empty.index == index
    assert robot_slice_hint("drawn", ref[index], ref[index], 0, index) is None  # nothing to correct
    session = Session(image, create_engine("vmn-registration"), LabelTable.default([1]))
    run = run_volume(session, ref, STRUCTURE, "drawn", "random", 3, 7)
    got = session.labelmap == 1
    assert len(run.slices) == 3 and run.slices[0] == index and run.dices[0] > 0.5
    for k in run.slices:  # drawn slices, empty ones included, are kept exactly
        np.testing.assert_array_equal(got[k], ref[k])


def test_registration_baseline_carries_the_corrected_slice(colin):
    """vmn-registration (dynamic-learning paper, Algorithm 2) from one box: the corrected
    slice is kept and its neighbours get registered copies of it."""
    image, ref = colin
    index = int(np.argmax(ref.sum((1, 2))))
    session = Session(image, create_engine("vmn-registration"), LabelTable.default([1]))
    step = session.add(_box(ref, index))
    got = session.labelmap == 1
    corrected = step.prediction.state.mask > 0.5
    assert np.array_equal(got[index], corrected)
    assert got[index - 3].any() and got[index + 3].any()
    near = slice(index - 5, index + 6)
    assert dice(ref[near], got[near]) > 0.5
    assert not np.array_equal(got[index + 3], corrected)  # warped, not copied


def test_progress_is_reported_per_slice_and_a_cancel_changes_nothing(colin, engine):
    """The hook Slicer's worker uses: fractions rise per propagated slice; raising from it
    (Cancel) leaves the session and its labelmap as they were."""
    image, ref = colin
    index = int(np.argmax(ref.sum((1, 2))))
    session = Session(image, engine, LabelTable.default([1]))
    seen = []
    engine.progress = lambda f, text: seen.append(f)
    try:
        session.add(_box(ref, index))
        assert len(seen) > 5 and seen == sorted(seen) and 0 < seen[-1] <= 1
        before, n = session.labelmap.copy(), len(session.history)

        class Stop(Exception):
            pass

        def cancel(f, text):
            if f > 0.05:
                raise Stop

        engine.progress = cancel
        with pytest.raises(Stop):
            session.add(_box(ref, index + 4))
        assert np.array_equal(session.labelmap, before) and len(session.history) == n
    finally:
        engine.progress = None


def test_large_region_is_propagated_at_the_working_size(colin):
    """A region wider than ``max_side`` is shrunk for the network and its masks resized back;
    the corrected slice keeps its mask exactly."""
    from InteractiveSegLib.methods.vmn.engine import resize_stack

    image, ref = colin
    engine = create_engine("vmn", max_side=32, stop_after=2)
    engine.set_image(image)
    index = int(np.argmax(ref.sum((1, 2))))
    corrected = {index: ref[index].astype(np.float32)}
    roi = engine.region(0, corrected)
    h, w = roi.r1 - roi.r0, roi.c1 - roi.c0
    assert max(engine.working_shape(roi)) == 32 and max(h, w) > 32
    res = engine.propagate(0, corrected, index)
    assert res.roi == roi and res.probability.shape == (ref.shape[0], h, w)  # the region only
    whole = res.whole_slices(ref.shape[1:])
    np.testing.assert_array_equal(whole[index], ref[index])
    assert res.order and not whole[:, : roi.r0].any() and not whole[:, roi.r1 :].any()
    stack = np.random.default_rng(0).random((3, 40, 50)).astype(np.float32)
    assert resize_stack(stack, (20, 25)).shape == (3, 20, 25) and resize_stack(stack, (80, 100)).shape == (3, 80, 100)
    assert resize_stack(stack, (40, 50)) is not None and np.array_equal(resize_stack(stack, (40, 50)), stack)
    np.testing.assert_allclose(resize_stack(stack, (20, 25)).mean(), stack.mean(), atol=1e-5)  # area keeps the mean


def test_quality_stage_records_what_the_head_saw(colin):
    """The quality stage's recorder pairs every propagated slice's head input with its true
    IoU; the stored input reproduces the head's prediction (what the stage fits is what runs)."""
    from InteractiveSegLib.methods.vmn.quality_training import QualityRecorder
    from InteractiveSegLib.metrics import iou

    image, ref = colin
    engine = create_engine("vmn")
    engine.set_image(image)
    rec = QualityRecorder(engine)
    rec.reference = ref
    index = int(np.argmax(ref.sum((1, 2))))
    session = Session(image, engine, LabelTable.default([1]))
    step = session.add(_box(ref, index))
    quality = np.array(step.prediction.ratings.predicted_iou)
    assert len(rec.samples) == step.prediction.report.propagated == np.isfinite(quality).sum()
    pred = session.labelmap == 1
    rated = np.flatnonzero(np.isfinite(quality))
    assert sorted(iou for _, iou in rec.samples) == sorted(iou(ref[i], pred[i]) for i in rated)
    with torch.no_grad():  # one propagation: every slice has the region's size
        again = engine.net.quality.score(torch.stack([x for x, _ in rec.samples]).float())
    np.testing.assert_allclose(sorted(again.numpy()), sorted(quality[rated]), atol=2e-3)  # half-precision storage


class _Bright(torch.nn.Module):
    """A stand-in f_IN: the bright part of the image channel (the networks' own quality aside)."""

    def forward(self, x):
        return (x[:, :1] - 0.5) * 40


def _ellipsoid_volume(spacing_ijk, slices):
    """A bright ellipsoid (semi-axes 40 mm along k, 25 and 30 voxels in-plane) in a noisy MR-like volume."""
    from InteractiveSegLib.volume import Geometry, Volume

    k, j, i = np.ogrid[:slices, :96, :96]
    ell = ((k - slices // 2) * spacing_ijk[2] / 40) ** 2 + ((j - 48) / 25) ** 2 + ((i - 44) / 30) ** 2 <= 1
    img = 100 + 500 * ell + np.random.default_rng(0).normal(0, 20, ell.shape)
    return Volume(img.astype(np.float32), Geometry(spacing=spacing_ijk)), ell


def test_thick_slices_are_propagated_along_the_finest_axis():
    """A 1 x 1 x 5 mm volume with an axial box: the hint's slice is segmented where it was drawn
    and kept exactly; the propagation runs through coronal slices (KJI axis 1), seeded by the
    coronal slice that crosses the hint's slice, and reaches the structure's other axial slices.
    The same structure at 1 mm isotropic is propagated along the hint's axis, and so is the thick
    one when the choice is off (the default)."""
    volume, ell = _ellipsoid_volume((1.0, 1.0, 5.0), 24)
    engine = create_engine("vmn", axis_choice=True)
    engine.f_in = _Bright()
    engine.set_image(volume)
    index = int(np.argmax(ell.sum((1, 2))))
    session = Session(volume, engine, LabelTable.default([1]))
    step = session.add(_box(ell, index))
    pred = session.labelmap == 1
    assert step.prediction.ratings.axis == 1
    correction = step.prediction.state
    assert correction.axis == 0 and correction.index == index
    np.testing.assert_array_equal(pred[index], correction.mask > 0.5)  # the drawn slice, exactly
    seed = correction.seed
    assert seed.axis == 1 and step.prediction.ratings.corrected == [seed.index]
    assert ell[:, seed.index].any() and np.array_equal(seed.mask[index] > 0.5, correction.mask[seed.index] > 0.5)
    present = np.flatnonzero(ell.any((1, 2)))
    reached = np.flatnonzero(pred.any((1, 2)))
    assert reached.min() <= present.min() + 1 and reached.max() >= present.max() - 1  # every axial slice of it
    assert dice(ell, pred) > 0.7
    # a correction on a coronal slice (the axis it propagates along) joins that memory directly
    suggestion = session.suggest_slice()
    assert suggestion is not None and suggestion.axis == 1
    j = suggestion.index
    hint = robot_slice_hint("scribble", ell[:, j], pred[:, j], 1, j, np.random.default_rng(0))
    step = session.add(hint)
    assert step.prediction.ratings.axis == 1 and step.prediction.ratings.corrected == sorted({seed.index, j})
    np.testing.assert_array_equal((session.labelmap == 1)[index], correction.mask > 0.5)  # still exactly

    iso, ell_iso = _ellipsoid_volume((1.0, 1.0, 1.0), 100)
    engine.set_image(iso)
    index = int(np.argmax(ell_iso.sum((1, 2))))
    step = Session(iso, engine, LabelTable.default([1])).add(_box(ell_iso, index))
    assert step.prediction.ratings.axis == 0 and step.prediction.state.seed is None
    default = create_engine("vmn")
    default.set_image(volume)
    index = int(np.argmax(ell.sum((1, 2))))
    step = Session(volume, default, LabelTable.default([1])).add(_box(ell, index))
    assert step.prediction.ratings.axis == 0 and step.prediction.state.seed is None


def test_checkpoint_normalisation_old_weights_keep_theirs():
    """A checkpoint without ``meta["normalization"]`` (the weights shipped before issue 20) reads
    the percentile scaling it was trained on; "modality" reads ``intensity.normalize``; f_IN and
    f_VMN may differ, each gets its own."""
    from InteractiveSegLib.intensity import normalize
    from InteractiveSegLib.methods.vmn.engine import checkpoint_normalization
    from InteractiveSegLib.preprocessing import normalize_intensity

    assert checkpoint_normalization({}) == "percentile"
    assert checkpoint_normalization({"normalization": "modality"}) == "modality"
    with pytest.raises(EngineError):
        checkpoint_normalization({"normalization": "zscore"})
    hu = np.random.default_rng(0).normal(0, 300, (8, 16, 16)).astype(np.float32)
    hu[:, :3] = -1000  # air: a CT
    from InteractiveSegLib.volume import Volume

    volume = Volume(hu)
    engine = create_engine("vmn")
    engine.meta = {k: v for k, v in engine.meta.items() if k != "normalization"}
    engine.in_meta = {**engine.in_meta, "normalization": "modality"}
    engine.set_image(volume)
    assert engine.modality == "ct"
    np.testing.assert_allclose(engine._norm, normalize_intensity(hu))
    np.testing.assert_allclose(engine._in_norm, normalize(hu, "ct"))
    assert not np.allclose(engine._norm, engine._in_norm)


def test_f_in_is_the_paper_s_network_or_the_click_network_and_no_other(colin):
    from InteractiveSegLib.checkpoints import default_models_dir

    models = default_models_dir()
    paper = create_engine("vmn", interaction_model_path=models / "vmn_interaction.pt")
    click = create_engine("vmn", interaction_model_path=models / "click_zoom.pt")
    assert (paper.in_arch, click.in_arch) == ("vmn_interaction", "click_fcnn")
    image, ref = colin
    index = int(np.argmax(ref.sum((1, 2))))
    points = robot_extreme_points(ref[index])
    hint = ExtremePoints([ijk_from_slice_point(p, 0, index) for p in points], axis=0)
    for engine in (paper, click):
        engine.set_image(image)
        session = Session(image, engine, LabelTable.default([1]))
        session.add(hint)
        assert dice(ref[index], session.labelmap[index] == 1) > 0.5
    with pytest.raises(ModelError, match="expected one of"):
        create_engine("vmn", interaction_model_path=models / "sim_auto.pt")
