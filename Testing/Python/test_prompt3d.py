"""The native 3D prompt engine (``prompt3d``): its region, its input channels, its zoom-out,
drawn slices, slice ratings and its trainer, on synthetic volumes and the shipped model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from InteractiveSegLib.bench.harness import as_acquired, user_data
from InteractiveSegLib.checkpoints import save_checkpoint
from InteractiveSegLib.data import datasets
from InteractiveSegLib.data.datasets import bright_balls
from InteractiveSegLib.engines import create_engine, describe_engine
from InteractiveSegLib.engines.base import Request
from InteractiveSegLib.errors import EngineError, ModelError
from InteractiveSegLib.hints import Box, Click, DrawnSlice, ExtremePoints, Scribble
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.methods.prompt3d import train as prompt3d_train
from InteractiveSegLib.methods.prompt3d.edges import COARSE_WEIGHT, WEIGHT, WEIGHTS
from InteractiveSegLib.methods.prompt3d.engine import BOXES_ALONE, Prompt3DEngine, rate_slices
from InteractiveSegLib.methods.prompt3d.network import prompt3d_net
from InteractiveSegLib.methods.prompt3d.outline import FINE_CT_MM, SliceOutliner
from InteractiveSegLib.methods.prompt3d.prompts import (
    CHANNELS,
    encode,
    grow_to_object,
    hinted_planes,
    mask_box,
    object_region,
    touching_faces,
)
from InteractiveSegLib.methods.vmn.train import Structure
from InteractiveSegLib.metrics import dice
from InteractiveSegLib.session import Session
from InteractiveSegLib.users.robot import robot_scribble
from InteractiveSegLib.volume import Geometry, Volume


def ball_volume(shape=(60, 100, 100), centre=(30, 50, 45), radius=30, spacing=(1.0, 1.0, 2.0)):
    """A bright ball in noise (``datasets.bright_balls``); ``spacing`` is IJK (the K slices
    thicker), ``radius`` in mm."""
    image, labels = bright_balls(shape, ((*centre, radius),), spacing[::-1])
    return Volume(image, Geometry(spacing=spacing), modality="ct"), labels == 1


def ball_structure(radius: int) -> tuple[Structure, np.ndarray]:
    """A training structure: a ball in a 40 x 64 x 64 block, slices twice as thick."""
    volume, ball = ball_volume(shape=(40, 64, 64), centre=(20, 32, 30), radius=radius)
    return Structure("ball", volume.array / 100.0, ball, None, 1, (2.0, 1.0, 1.0)), ball


@pytest.fixture
def tiny_model(tmp_path):
    """An untrained small network saved as a checkpoint: the engine's plumbing without the shipped weights."""
    torch.manual_seed(0)
    cfg = {"features": [4, 4, 8, 8, 16, 4]}
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, "prompt3d_net", {"net": cfg, "size": 32}, prompt3d_net(**cfg), {"data": "none"})
    return path


class TruthEngine(Prompt3DEngine):
    """The engine with a perfect network: the reference inside whatever region it is asked
    about. What is left to test is the engine's own part: where it looks."""

    truth: np.ndarray

    def run(self, hints, current, region):
        return self.truth[tuple(slice(a, b) for a, b in zip(*region, strict=True))].astype(np.float32)


def test_a_first_box_reaches_through_the_slices_as_far_in_mm_as_it_is_wide():
    box = Box((20, 30, 40), (49, 49, 40), axis=0)  # 30 x 20 voxels of 1 mm on slice 40
    lo, hi = object_region([box], None, (2.0, 1.0, 1.0), (100, 100, 100), context=0.0, min_side=1)
    assert (lo[1], hi[1], lo[2], hi[2]) == (30, 50, 20, 50)
    assert hi[0] - lo[0] in (15, 16)  # 30 mm of 2-mm slices, centred on the box's slice
    assert lo[0] <= 40 < hi[0]
    current = np.zeros((100, 100, 100), bool)
    current[10:70, 35:45, 25:45] = True  # a later round: the current mask's box decides the depth
    lo, hi = object_region([box], current, (2.0, 1.0, 1.0), (100, 100, 100), context=0.0, min_side=1)
    assert (lo[0], hi[0]) == (10, 70)


def test_a_later_rounds_region_on_one_axis_reaches_as_deep_as_it_is_wide():
    """A thin answer to strokes on the slices of one axis (a network short of a large
    structure) does not keep the region thin: it reaches as far through the slices, in mm,
    as the strokes and the answer reach across them. Strokes on two axes show the depth, and
    so does a box, which spans the structure on its slice."""
    current = np.zeros((100, 100, 100), bool)
    current[48:52, 40:60, 30:50] = True  # 4 slices of 2 mm, 20 x 20 mm across
    stroke = Scribble([(30, 50, 50), (79, 50, 50)], axis=0)  # 50 mm across slice 50
    lo, hi = object_region([stroke], current, (2.0, 1.0, 1.0), (100, 100, 100), context=0.0, min_side=1)
    assert (lo[1], hi[1], lo[2], hi[2]) == (40, 60, 30, 80)
    assert hi[0] - lo[0] in (25, 26)  # 50 mm of 2-mm slices, about the box's centre
    assert lo[0] <= 48 and 52 <= hi[0]
    across = Scribble([(40, 45, 50), (40, 55, 50)], axis=2)  # a stroke on a sagittal slice
    box = Box((30, 40, 50), (79, 59, 50), axis=0)
    for hints in ([stroke, across], [box, stroke]):
        lo, hi = object_region(hints, current, (2.0, 1.0, 1.0), (100, 100, 100), context=0.0, min_side=1)
        assert (lo[0], hi[0]) == (48, 52)


def test_a_clicks_smallest_region_is_as_many_mm_a_side_on_thick_slices():
    """A click on a scan of 5-mm sagittal slices: its region is 24 mm a side along every
    axis, not 24 thick slices (120 mm, most of a head) across the sagittal one."""
    click = Click((50, 50, 50), axis=0)
    lo, hi = object_region([click], None, (1.0, 1.0, 5.0), (100, 100, 100))
    mm = (np.asarray(hi) - np.asarray(lo)) * np.array([1.0, 1.0, 5.0])
    assert np.all(mm >= 24) and mm[2] <= 24 + 2 * 5  # whole voxels: at most one more each side
    assert object_region([click], None, (1.0, 1.0, 1.0), (100, 100, 100)) == ((38, 38, 38), (63, 63, 63))


def test_a_region_only_zooms_out_across_the_faces_its_result_touches():
    region = ((10, 10, 10), (30, 30, 30))
    mask = np.zeros((20, 20, 20), bool)
    mask[5:10, 5:20, 5:10] = True  # touches the high J face only
    faces = touching_faces(mask, region, (100, 100, 100))
    assert faces == [(1, 1)]
    assert grow_to_object(region, faces, (100, 100, 100)) == ((10, 10, 10), (30, 40, 30))
    assert touching_faces(mask, ((10, 10, 10), (30, 30, 30)), (100, 30, 100)) == []  # the volume's own border


def test_the_channels_hold_each_hint_where_its_voxels_are():
    image = np.zeros((32, 32, 32), np.float32)
    region = ((0, 0, 0), (32, 32, 32))  # one voxel per cell: painting is exact
    hints = [
        Scribble([(5, 6, 7), (6, 6, 7)], axis=0),
        Click((20, 21, 22), positive=False, axis=0),
        Box((2, 3, 10), (8, 9, 10), axis=0),
    ]
    x = encode(image, None, hints, region, 32)
    assert x.shape == (len(CHANNELS), 32, 32, 32)
    assert set(zip(*np.nonzero(x[2]), strict=True)) == {(7, 6, 5), (7, 6, 6)}
    assert set(zip(*np.nonzero(x[3]), strict=True)) == {(22, 21, 20)}
    assert x[4].sum() == 7 * 7 and x[4][10, 3:10, 2:9].all()
    small = ((0, 0, 0), (8, 8, 8))  # a region 4 times smaller than the grid: a voxel is 4^3 cells
    x = encode(image, None, [Click((1, 2, 3), axis=0)], small, 32)
    assert x[2].sum() == 64 and x[2][12:16, 8:12, 4:8].all()


def test_likeness_marks_what_looks_like_the_positive_hints():
    """Two halves of different intensity: a stroke in the bright half makes the bright half
    alike and the dark half not; a box whose surroundings hold the same two intensities is
    judged by the median of what it holds; a negative hint alone marks nothing."""
    image = np.full((32, 32, 32), 0.3, np.float32)
    image[:, :, 16:] = 0.7
    whole = ((0, 0, 0), (32, 32, 32))
    x = encode(image, None, [Scribble([(20, 10, 5), (24, 10, 5)], axis=0)], whole, 32)
    assert x[5][:, :, 18:].min() > 0.9 and x[5][:, :, :14].max() < 0.01
    box = Box((2, 2, 8), (28, 12, 8), axis=0)  # two thirds of it in the dark half
    assert encode(image, None, [box], whole, 32)[5][:, :, :14].min() > 0.9
    assert not encode(image, None, [Click((5, 5, 5), positive=False, axis=0)], whole, 32)[5].any()


def test_a_loose_box_or_extreme_points_mark_the_lesion_not_the_background_they_enclose():
    """A small bright lesion in dark tissue, a box half again its size around it (the box's
    median is background): in the engine's region the likeness marks the lesion, as what
    is more common inside the box than around it (the plain median marked the background).
    Extreme points on the lesion's boundary do the same; their cells (half lesion, half
    background) are not taken as inside."""
    k, j, i = np.indices((32, 64, 64))
    image = np.where((k - 16) ** 2 + (j - 32) ** 2 + (i - 32) ** 2 <= 25, 0.8, 0.2).astype(np.float32)
    box = Box((24, 24, 16), (40, 40, 16), axis=0)
    extreme = ExtremePoints([(27, 32, 16), (37, 32, 16), (32, 27, 16), (32, 37, 16)], axis=0)
    for hint in (box, extreme):
        region = object_region([hint], None, (1.0, 1.0, 1.0), image.shape)
        lo, scale = np.array(region[0]), 32 / (np.array(region[1]) - np.array(region[0]))
        x = encode(image, None, [hint], region, 32)
        lesion, tissue = (tuple(((np.array(p) - lo) * scale).astype(int)) for p in ((16, 32, 32), (16, 32, 44)))
        assert x[5][lesion] > 0.9 and x[5][lesion] > x[5][tissue] + 0.1, hint
    assert encode(image, None, [box], region, 32)[4].any()  # the box channel as before


def test_a_drawn_slice_is_positive_on_its_cross_section_and_negative_around_it():
    voxels = [(i, j, 5) for j in range(10, 20) for i in range(12, 18)]
    image, whole = np.zeros((32, 32, 32), np.float32), ((0, 0, 0), (32, 32, 32))
    x = encode(image, None, [DrawnSlice(voxels, axis=0)], whole, 32)
    assert x[2][5, 10:20, 12:18].all() and x[2].sum() == 60
    assert x[3][5].sum() == 32 * 32 - 60 and x[3].sum() == x[3][5].sum()
    empty = encode(
        np.zeros((32, 32, 32), np.float32), None, [DrawnSlice([], axis=0, index=7)], ((0, 0, 0), (32, 32, 32)), 32
    )
    assert empty[3][7].all() and empty[2].sum() == 0


def test_zoom_out_keeps_a_large_structure_whole_from_a_short_scribble(tiny_model):
    """A 3-voxel stroke in a ball 120 mm across: the first region is a fraction of the
    ball; the engine zooms out until the result no longer touches its faces."""
    volume, ball = ball_volume(shape=(80, 160, 160), centre=(40, 80, 80), radius=60)
    stroke = Scribble([(79, 80, 40), (80, 80, 40), (81, 80, 40)], axis=0)
    scores = {}
    for zoom in (0, 6):
        engine = TruthEngine(model_path=tiny_model, max_zoom=zoom, outline=False)
        engine.truth = ball
        engine.set_image(volume)
        session = Session(volume, engine, LabelTable.default([1]))
        session.add(stroke)
        scores[zoom] = dice(ball, session.labelmap == 1)
    assert scores[0] < 0.1  # without zooming out it sees a small part of the ball
    assert scores[6] == 1.0


class TruthOutliner(SliceOutliner):
    """A perfect 2D network: the box of the reference's cross-section on the slice."""

    def __init__(self, truth: np.ndarray) -> None:
        self.truth = truth

    def outline(self, norm, hints, axis, index, spacing_kji, current=None, *, modality):
        box = mask_box(np.expand_dims(np.take(self.truth, index, axis=axis), axis))
        assert box is not None
        lo, hi = list(box[0]), list(box[1])
        lo[axis], hi[axis] = index, index + 1
        return tuple(lo), tuple(hi)


def test_a_strokes_region_reaches_as_far_as_the_2d_network_sees_the_object(tiny_model):
    """The same stroke with no zoom-out at all: the 2D hint network outlines the ball on the
    stroke's slice, so the first region holds the ball already (issue 20: the region comes
    from the object, not from the hint's box; in mm as deep as the outline is wide)."""
    volume, ball = ball_volume(shape=(80, 160, 160), centre=(40, 80, 80), radius=60)
    stroke = Scribble([(79, 80, 40), (80, 80, 40), (81, 80, 40)], axis=0)
    scores = {}
    for outline in (False, True):
        engine = TruthEngine(model_path=tiny_model, max_zoom=0, outline=outline)
        engine.truth = ball
        if outline:
            engine.outliner = TruthOutliner(ball)
        engine.set_image(volume)
        session = Session(volume, engine, LabelTable.default([1]))
        session.add(stroke)
        scores[outline] = dice(ball, session.labelmap == 1)
    assert scores[False] < 0.1
    assert scores[True] > 0.95


def test_only_strokes_and_clicks_are_outlined(tiny_model):
    """Boxes and extreme points show the object's extent on their slice themselves: the
    outline is asked for when the newest hint is a stroke or a click, and before the first
    answer only when every hint is."""
    outliner = Prompt3DEngine(model_path=tiny_model).outliner
    assert outliner is not None
    none, some = False, True  # no mask yet, a mask
    stroke, click = Scribble([(3, 3, 1), (4, 3, 1)], axis=0), Click((3, 3, 1), axis=0)
    box = Box((1, 1, 1), (6, 6, 1), axis=0)
    extreme = ExtremePoints([(1, 3, 1), (6, 3, 1), (3, 1, 1), (3, 6, 1)], axis=0)
    assert outliner.wanted([stroke, click], none)
    assert outliner.wanted([box, stroke], some)  # a stroke correcting a box's answer
    assert not outliner.wanted([box], none)
    assert not outliner.wanted([stroke, box], some)
    assert not outliner.wanted([box, stroke], none)
    assert not outliner.wanted([extreme], none)
    assert not outliner.wanted([], none)
    assert Prompt3DEngine(model_path=tiny_model, outline=False).outliner is None


def box_iou(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """IoU of two boxes given as (lo, hi) corners, hi exclusive."""
    lo, hi = np.maximum(a[0], b[0]), np.minimum(a[1], b[1])
    inter = np.prod(np.maximum(hi - lo, 0))
    return float(inter / (np.prod(a[1] - a[0]) + np.prod(b[1] - b[0]) - inter))


def test_the_outline_of_a_short_stroke_reaches_toward_the_structures_extent():
    """Colin27's atlas structures, the robot's first stroke on each one's largest axial slice:
    the shipped 2D hint network's outline holds the stroke and is closer to the structure's
    own box on that slice than the stroke's box is."""
    lv = datasets.load("colin27")
    engine = create_engine("prompt3d", threads=1)
    engine.set_image(lv.image)
    assert engine.outliner is not None
    spacing = tuple(float(s) for s in lv.image.geometry.spacing[::-1])

    gains = []
    for name in ("Frontal_Sup_Medial_R", "Temporal_Sup_R", "Cerebelum_9_R", "Postcentral_R", "Frontal_Mid_L"):
        ref = lv.labels.labelmap == lv.labels.labels.by_name(name).value
        k = int(np.argmax(ref.sum((1, 2))))
        found = robot_scribble(ref[k], np.zeros_like(ref[k]))
        assert found is not None
        stroke = Scribble([(c, r, k) for r, c in found[0]], axis=0)
        box = engine.outliner.outline(engine._norm, [stroke], 0, k, spacing, modality="mr")
        assert box is not None
        seen = np.array(box[0][1:]), np.array(box[1][1:])
        points = np.array(found[0])
        drawn = points.min(0), points.max(0) + 1
        rows, cols = np.nonzero(ref[k])
        truth = np.array([rows.min(), cols.min()]), np.array([rows.max(), cols.max()]) + 1
        assert (seen[0] <= drawn[0]).all() and (seen[1] >= drawn[1]).all()
        gains.append(box_iou(seen, truth) - box_iou(drawn, truth))
    assert min(gains) > 0
    assert np.mean(gains) > 0.1


def test_a_ct_slice_of_fine_pixels_is_outlined_by_the_fine_ct_network(tiny_model):
    """``outline.network_for``: a CT slice whose pixels are finer than ``FINE_CT_MM`` on
    either side goes to the network trained on finer slices; a coarser CT and any MRI do not."""
    outliner = Prompt3DEngine(model_path=tiny_model).outliner
    assert outliner is not None and outliner.fine_ct_net is not outliner.net
    assert outliner.network_for("ct", (1.5, 1.5))[0] is outliner.fine_ct_net
    assert outliner.network_for("ct", (0.7, 5.0))[0] is outliner.fine_ct_net  # a coronal slice of a thick scan
    assert outliner.network_for("ct", (FINE_CT_MM, 3.0))[0] is outliner.net
    assert outliner.network_for("mr", (0.5, 0.5))[0] is outliner.net


def test_on_a_fine_ct_the_outline_of_a_short_stroke_reaches_further_toward_the_organ(shared_data):
    """The shared CT at 1.5 mm (``bench.harness.finer_voxels``), the robot's first stroke on
    each organ's largest axial slice: the fine-CT network's outline is closer to the organ's
    own box on that slice than the outline of the network that reads every other slice."""
    names = ["liver", "spleen", "gluteus_maximus_right", "kidney_right", "stomach"]
    ct = shared_data / "ct-abdomen"
    d = as_acquired(user_data(str(ct / "ct.nii.gz"), str(ct / "organs.seg.nrrd"), names), finer=2)
    engine = create_engine("prompt3d", threads=1)
    engine.set_image(d.image)
    assert engine.outliner is not None
    spacing = tuple(float(s) for s in d.image.geometry.spacing[::-1])
    for value in d.structures:
        ref = d.labelmap == value
        k = int(np.argmax(ref.sum((1, 2))))
        found = robot_scribble(ref[k], np.zeros_like(ref[k]))
        assert found is not None
        stroke = Scribble([(c, r, k) for r, c in found[0]], axis=0)
        rows, cols = np.nonzero(ref[k])
        truth = np.array([rows.min(), cols.min()]), np.array([rows.max(), cols.max()]) + 1
        seen = {}
        for modality in ("mr", "ct"):  # the same slice read by the default network, then the fine-CT one
            box = engine.outliner.outline(engine._norm, [stroke], 0, k, spacing, modality=modality)
            assert box is not None
            seen[modality] = box_iou((np.array(box[0][1:]), np.array(box[1][1:])), truth)
        assert seen["ct"] > seen["mr"] + 0.05


def test_drawn_slices_are_kept_as_drawn_and_an_empty_one_clears_its_slice(tiny_model):
    volume, ball = ball_volume()
    engine = create_engine("prompt3d", model_path=tiny_model)
    engine.set_image(volume)
    session = Session(volume, engine, LabelTable.default([1]))
    drawn = [(int(i), int(j), 30) for j, i in np.argwhere(ball[30])]
    session.add(DrawnSlice(drawn, axis=0))
    assert np.array_equal(session.labelmap[30] == 1, ball[30])
    session.add(DrawnSlice([], axis=0, index=30))
    assert not (session.labelmap[30] == 1).any()
    first = Session(volume, engine, LabelTable.default([1]))  # only "not here": nothing is segmented
    first.add(Scribble([(50, 50, 20), (51, 50, 20)], positive=False, axis=0))
    first.add(DrawnSlice([], axis=0, index=31))
    assert not first.labelmap.any()


def test_every_slice_the_result_reaches_is_rated_and_the_drawn_ones_are_not_suggested(tiny_model):
    volume, ball = ball_volume()
    engine = TruthEngine(model_path=tiny_model)
    engine.truth = ball
    engine.set_image(volume)
    session = Session(volume, engine, LabelTable.default([1]))
    step = session.add(Box((15, 20, 30), (75, 80, 30), axis=0))
    ratings = step.prediction.ratings
    held = np.flatnonzero(ball.any((1, 2)))
    assert np.isfinite(ratings.predicted_iou[held]).all()
    assert np.allclose(ratings.predicted_iou[held], 1.0)  # a certain result expects no error
    assert ratings.corrected == [30]
    suggestion = session.suggest_slice()
    assert suggestion is not None and suggestion.index != 30


def test_the_suggestion_looks_beyond_the_slices_next_to_a_hint():
    """The result runs over 40 slices and is least sure next to the hinted slice 20: the
    suggestion goes where no hint has spoken (at least a fifth of the run away), and
    without a hint on that axis it is the least sure slice itself."""
    prob = np.full((40, 10, 10), 0.6, np.float32)
    prob[[19, 21]] = 0.5  # the least sure slices, on either side of the hint
    prob[5] = 0.55  # unsure too, far from it
    region = ((0, 0, 0), (40, 10, 10))
    hint = Scribble([(5, 5, 20), (6, 5, 20)], axis=0)
    near = rate_slices(prob, region, 0, 40, [hint])
    assert near.corrected == [20]
    assert int(np.nanargmax(near.expected_wrong_voxels)) == 5
    assert np.allclose(near.predicted_iou, rate_slices(prob, region, 0, 40, []).predicted_iou, equal_nan=True)
    across = Scribble([(5, 20, 5), (6, 20, 5)], axis=1)  # a hint along another axis says nothing here
    assert int(np.nanargmax(rate_slices(prob, region, 0, 40, [across]).expected_wrong_voxels)) in (19, 21)


def test_the_slice_quality_model_is_fitted_to_the_truth_and_only_renames_the_predicted_iou(tmp_path, tiny_model):
    """``fit`` recovers a logistic relation of a product of two features; the ratings read
    it as their predicted IoU,
    while the wrong voxels the suggestion ranks by stay as they were; a checkpoint whose
    model has the wrong number of weights is refused when it loads."""
    from InteractiveSegLib.checkpoints import update_checkpoint
    from InteractiveSegLib.methods.prompt3d.slice_quality import FEATURES, fit, predicted_iou

    rng = np.random.default_rng(0)
    features = rng.uniform(size=(600, len(FEATURES)))
    truth = 1 / (1 + np.exp(-(2 * features[:, 1] * features[:, 7] - features[:, 0] + 0.5)))  # a product
    model = fit(features, truth, l2=0.0)
    np.testing.assert_allclose(predicted_iou(features, model), truth, atol=0.02)
    with pytest.raises(ValueError, match="weights"):
        predicted_iou(features, {**model, "weights": model["weights"][:-1]})

    prob = np.full((40, 10, 10), 0.6, np.float32)
    prob[[19, 21]], prob[5], prob[30:] = 0.5, 0.55, 0.001  # nothing expected past slice 29
    region = ((0, 0, 0), (40, 10, 10))
    hint = [Scribble([(5, 5, 20), (6, 5, 20)], axis=0)]
    plain, learnt = rate_slices(prob, region, 0, 40, hint), rate_slices(prob, region, 0, 40, hint, model)
    rated = np.isfinite(plain.predicted_iou)
    assert rated[:30].all() and not rated[30:].any() and np.array_equal(np.isfinite(learnt.predicted_iou), rated)
    assert plain.features is not None and np.isnan(plain.features[30:]).all()
    column = {name: plain.features[:30, i] for i, name in enumerate(FEATURES)}
    assert column["hinted"][20] == 1 and column["hint_distance"][20] == 0 and column["hint_distance"][0] == 20 / 30
    assert column["end_distance"][0] == column["end_distance"][29] == 0 and column["relative_area"].max() == 1
    assert (column["round"] == 1 / 6).all() and not column["box"].any() and (column["region_depth"] == 1).all()
    np.testing.assert_allclose(learnt.predicted_iou[rated], predicted_iou(plain.features[rated], model))
    assert not np.allclose(learnt.predicted_iou[rated], plain.predicted_iou[rated])
    np.testing.assert_array_equal(learnt.expected_wrong_voxels, plain.expected_wrong_voxels)

    broken = tmp_path / "broken.pt"
    update_checkpoint(tiny_model, broken, {"slice_quality": {**model, "mean": [0.0]}}, {})
    with pytest.raises(EngineError, match="slice_quality needs"):
        Prompt3DEngine(broken)


def test_the_slice_quality_is_read_on_structures_it_was_not_fitted_on():
    """Six structures' sessions where the truth follows the relative area and the expected
    IoU runs against it: the model's cross-fitted r is high, the expected IoU's negative;
    under ``MIN_PAIRS`` rated slices nothing is fitted."""
    from InteractiveSegLib.bench.calibration import MIN_PAIRS, Calibration, fit_slice_quality
    from InteractiveSegLib.bench.vmn import VolumeRun
    from InteractiveSegLib.methods.prompt3d.slice_quality import FEATURES

    rng = np.random.default_rng(1)
    played = []
    for s in range(6):
        run = VolumeRun(f"s{s}")
        for _ in range(30):
            f = rng.uniform(size=len(FEATURES))
            truth = float(np.clip(f[1] + rng.normal(0, 0.05), 0, 1))
            f[0] = 1 - truth + rng.normal(0, 0.05)
            run.features.append(f)
            run.pairs.append((float(f[0]), truth))
        played.append((f"0:{s}", run))
    found = fit_slice_quality(Calibration(0.5, {"0.5": 0.4}), played)
    assert found.pairs == 180 and found.slice_quality is not None
    assert found.pearson["expected_iou"] < -0.8 and found.pearson["slice_quality"] > 0.9
    few = VolumeRun("s")
    few.features, few.pairs = played[0][1].features[: MIN_PAIRS - 1], played[0][1].pairs[: MIN_PAIRS - 1]
    assert fit_slice_quality(Calibration(0.5, {}), [("0:1", few)]).slice_quality is None


def test_the_engine_declares_its_hints_and_refuses_what_it_cannot_run(tmp_path, tiny_model):
    info = describe_engine("prompt3d")
    assert info.mode == "3d" and {"box", "scribble", "click", "extreme_points", "drawn_slice"} <= info.hints
    with pytest.raises(ModelError):
        create_engine("prompt3d", model_path=tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError):
        create_engine("prompt3d", model_path=bad)
    with pytest.raises(EngineError):
        create_engine("prompt3d", model_path=tiny_model, max_zoom=-1)
    # the outline's 2D network: missing, or a checkpoint of another network, is refused by name
    with pytest.raises(ModelError, match="missing_2d.pt"):
        create_engine("prompt3d", model_path=tiny_model, outline_model_path=tmp_path / "missing_2d.pt")
    with pytest.raises(ModelError, match="click_fcnn"):
        create_engine("prompt3d", model_path=tiny_model, outline_model_path=tiny_model)
    with pytest.raises(ModelError, match="missing_ct.pt"):
        create_engine("prompt3d", model_path=tiny_model, fine_ct_outline_model_path=tmp_path / "missing_ct.pt")
    engine = create_engine("prompt3d", model_path=tiny_model)
    box = Box((15, 20, 30), (75, 80, 30), axis=0)
    request = Request(1, [box], 0, 30, np.zeros((60, 100, 100), np.uint8))
    with pytest.raises(EngineError, match="set_image"):
        engine.predict(request)


class ShortEngine(Prompt3DEngine):
    """A network that is sure of a ball 4 mm short of the reference (probability 0.9 inside,
    0.1 outside): a weight of 0.3 cannot move its boundary, the snapped mask alone can."""

    answer: np.ndarray

    def run(self, hints, current, region):
        return self.answer[tuple(slice(a, b) for a, b in zip(*region, strict=True))]


def short_session(shape, centre, radius, coarse_edge_weight, **options):
    """The reference and ``ShortEngine``'s result from a box on the ball's middle slice."""
    volume, ball = ball_volume(shape=shape, centre=centre, radius=radius)
    _, short = ball_volume(shape=shape, centre=centre, radius=radius - 4)
    engine = ShortEngine(
        model_path=None, outline=False, edge_weight=WEIGHT, coarse_edge_weight=coarse_edge_weight, **options
    )
    engine.answer = np.where(short, 0.9, 0.1).astype(np.float32)
    engine.set_image(volume)
    session = Session(volume, engine, LabelTable.default([1]))
    k = centre[0]  # KJI
    i, j = np.nonzero(ball[k].T)
    session.add(Box((int(i.min()), int(j.min()), k), (int(i.max()), int(j.max()), k), axis=0))
    return ball, session.labelmap == 1


def test_on_a_coarse_grid_the_image_edges_decide_a_thick_answers_boundary():
    """A region more than 1.5 times the grid's side (a ball 120 mm across): the image's edge
    takes the boundary the network put 4 mm short of it. A ball 30 mm across is answered on a
    grid as fine as its voxels: the rule leaves it alone."""
    large = {w: short_session((64, 160, 160), (32, 80, 80), 60, w) for w in (WEIGHT, COARSE_WEIGHT)}
    assert dice(*large[COARSE_WEIGHT]) > 0.97 > dice(*large[WEIGHT]) + 0.05
    small = {w: short_session((40, 64, 64), (20, 32, 32), 15, w) for w in (WEIGHT, COARSE_WEIGHT)}
    assert np.array_equal(small[WEIGHT][1], small[COARSE_WEIGHT][1])
    assert dice(*small[WEIGHT]) < 0.9


def test_a_large_regions_edges_are_found_on_a_coarser_copy():
    """The ball 120 mm across, its edge rules on a copy of 64^3 voxels instead of its
    64 x 160 x 160: the boundary still moves onto the image's edge, and the answer is nearly
    the one the region's own voxels give."""
    ball, whole = short_session((64, 160, 160), (32, 80, 80), 60, COARSE_WEIGHT, snap_voxels=10**9)
    _, coarser = short_session((64, 160, 160), (32, 80, 80), 60, COARSE_WEIGHT, snap_voxels=64**3)
    assert dice(ball, coarser) > 0.97
    assert dice(whole, coarser) > 0.98


def test_the_edges_weigh_by_the_volumes_modality_unless_the_caller_says():
    """A CT's boundaries are edges, an MRI's atlas parcels have none (``edges.WEIGHTS``)."""
    volume, _ = ball_volume(shape=(20, 32, 32), centre=(10, 16, 16), radius=8)
    mr = Volume(volume.array, volume.geometry, modality="mr")
    engine = create_engine("prompt3d", outline=False)
    for image, modality in ((volume, "ct"), (mr, "mr")):
        engine.set_image(image)
        assert engine.edge_weight == WEIGHTS[modality]
    assert WEIGHTS["ct"] > WEIGHTS["mr"]
    chosen = create_engine("prompt3d", outline=False, edge_weight=0.1)
    chosen.set_image(volume)
    assert chosen.edge_weight == 0.1


class ShownEngine(Prompt3DEngine):
    """Records whether the network was shown a current mask."""

    shown: list

    def run(self, hints, current, region):
        self.shown.append(current is not None and bool(current.any()))
        return np.zeros(tuple(b - a for a, b in zip(*region, strict=True)), np.float32)


def test_a_ct_session_of_boxes_alone_shows_the_network_its_boxes_not_its_last_answer(tiny_model):
    """``BOXES_ALONE``: in a CT the boxes say where the organ is and the last answer held the
    network back; in an MRI, or once a stroke joins the boxes, the last answer is shown."""
    volume, ball = ball_volume(shape=(40, 64, 64), centre=(20, 32, 32), radius=12)
    boxes = [Box((20, 20, 20), (44, 44, 20), axis=0), Box((22, 22, 26), (42, 42, 26), axis=0)]
    stroke = Scribble([(30, 32, 20), (34, 32, 20)], positive=True, axis=0)
    current = ball.astype(np.uint8)
    seen = {}
    for modality in ("ct", "mr"):
        engine = ShownEngine(tiny_model, max_zoom=0, threads=1, outline=False)
        engine.shown = []
        engine.set_image(Volume(volume.array, volume.geometry, modality=modality))
        for hints in (boxes, [*boxes, stroke]):
            engine.predict(Request(1, hints, 0, 26, current))
        seen[modality] = engine.shown
    assert seen == {"ct": [False, True], "mr": [True, True]}
    assert BOXES_ALONE == {"ct"}


def test_the_shipped_network_segments_a_structure_it_never_saw_from_a_box():
    """A ball in a CT-like volume (no such structure is in its training data): a box on its
    largest slice gives most of the ball in 3D, far from the box's own cylinder."""
    volume, ball = ball_volume()
    engine = create_engine("prompt3d", threads=1)
    engine.set_image(volume)
    session = Session(volume, engine, LabelTable.default([1]))
    session.add(Box((15, 20, 30), (75, 80, 30), axis=0))
    assert dice(ball, session.labelmap == 1) > 0.8


def test_training_samples_are_benchmark_steps_in_the_engines_region():
    rng = np.random.default_rng(3)
    s, ball = ball_structure(20)
    lost = Structure("lost", s.image, np.zeros_like(ball), None, 2, s.spacing)  # deformed away
    for _ in range(8):
        x, y, planes = prompt3d_train.training_sample([s, lost], rng, 32, 0.5, 3, {})
        assert x.shape == (len(CHANNELS), 32, 32, 32) and y.shape == (1, 32, 32, 32)
        assert x[2].any() or x[4].any()  # the first hint is in its region
        assert y.any() and not y.all()  # the structure, with background around it
        assert planes.any() and not planes.all()  # the hinted slices, not the whole region
        assert not (x[2:5].any(0) & ~planes[0]).any()  # every hint's cells lie on a hinted plane


def test_large_structure_samples_come_from_the_largest_with_a_click_or_a_stroke():
    """``--p-large``: the largest structures, each first hint a click or a stroke (no box, no
    extreme points, no drawn slice and its negative plane), where the default draws them all."""
    structures = [ball_structure(r)[0] for r in (6, 9, 12, 15, 20)]
    assert [s.mask.sum() for s in prompt3d_train.largest(structures, 0.4)] == [s.mask.sum() for s in structures[:2:-1]]
    rng = np.random.default_rng(4)
    short = [
        prompt3d_train.training_sample(structures, rng, 32, 0.0, 3, {}, kinds=prompt3d_train.SHORT_HINTS)[0]
        for _ in range(12)
    ]
    assert all(x[2].any() and not x[3].any() and not x[4].any() for x in short)
    drawn = [prompt3d_train.training_sample(structures, rng, 32, 0.0, 3, {})[0] for _ in range(24)]
    assert any(x[3].any() or x[4].any() for x in drawn)  # boxes, or drawn slices' negatives


def test_a_widened_region_keeps_its_centre_and_stays_inside_the_volume():
    region = ((10, 20, 30), (20, 40, 50))
    assert prompt3d_train.widened(region, np.array([1.0, 1.0, 1.0]), (100, 100, 100)) == region
    assert prompt3d_train.widened(region, np.array([2.0, 1.5, 1.0]), (100, 100, 100)) == ((5, 15, 30), (25, 45, 50))
    assert prompt3d_train.widened(region, np.array([3.0, 3.0, 3.0]), (22, 100, 55)) == ((0, 0, 10), (22, 60, 55))


def test_region_jitter_widens_some_samples_regions_beyond_the_engines():
    """With the jitter the structure fills less of its sample's region, on average (the
    network must find its ends in the image, not from the region's size)."""
    s, _ball = ball_structure(20)
    fill = {}
    for jitter in (0.0, 2.0):
        rng = np.random.default_rng(4)
        samples = [prompt3d_train.training_sample([s], rng, 32, 0.0, 0, {}, region_jitter=jitter) for _ in range(20)]
        fill[jitter] = np.mean([y.mean() for _x, y, _planes in samples])
    assert fill[2.0] < 0.9 * fill[0.0]


def test_the_hinted_planes_are_each_hints_slice_across_the_region():
    region = ((10, 0, 0), (42, 64, 64))  # 32 slices on K onto a 16-cell grid: a cell holds two
    stroke = Scribble([(5, 5, 20), (6, 5, 20)], axis=0)  # IJK: slice K = 20
    coronal = Click((30, 40, 25), axis=1)  # slice J = 40
    outside = Click((3, 3, 50), axis=0)  # slice K = 50: beyond the region
    planes = hinted_planes([stroke, coronal, outside], region, 16)
    assert planes[5].all() and planes[:, 10].all()  # K 20 -> cell (20 - 10) / 2, J 40 -> cell 40 / 4
    assert planes.sum() == 2 * 16 * 16 - 16  # the two planes, their shared row once; K 50 adds none


def test_a_blocks_cached_box_is_never_another_structures(monkeypatch):
    """Re-drawn blocks are renewed during training, and a new mask can take a freed mask's
    id: a box cached for that id must not cut the new structure's block."""
    import weakref

    monkeypatch.setattr(prompt3d_train, "P_FOV_CUT", 0.0)
    s, ball = ball_structure(10)
    gone = np.zeros(3)
    boxes = {id(s.mask): (weakref.ref(gone), ((0, 0, 0), (2, 2, 2)))}
    image, mask, _spacing = prompt3d_train.block_around(s, np.random.default_rng(0), boxes)
    assert mask.sum() == ball.sum() and image.shape == mask.shape


def test_some_blocks_end_inside_the_structure_as_a_scans_field_of_view_does(monkeypatch):
    s, ball = ball_structure(10)
    rng, boxes = np.random.default_rng(1), {}
    monkeypatch.setattr(prompt3d_train, "P_FOV_CUT", 0.0)
    assert all(prompt3d_train.block_around(s, rng, boxes)[1].sum() == ball.sum() for _ in range(10))
    monkeypatch.setattr(prompt3d_train, "P_FOV_CUT", 1.0)
    kept = [prompt3d_train.block_around(s, rng, boxes)[1].sum() / ball.sum() for _ in range(20)]
    assert min(kept) > 0.2 and sum(k < 1 for k in kept) >= 5  # cut on some sides, never to a sliver


def test_later_rounds_can_start_from_the_networks_own_answer():
    """With ``p_own`` = 1 every later round's current mask is what ``own`` answered: to the
    first hint, then to the hints so far given its answer before (round after round, up to
    ``max_corrections`` corrections). Here a network that fills its grid, so the mask is a
    region, whole."""
    rng = np.random.default_rng(4)
    s, _ball = ball_structure(20)
    calls: list[np.ndarray] = []

    def fills(x):
        calls.append(x)
        return np.ones(x.shape[1:], np.float32)

    rounds = []
    for _ in range(12):
        before = len(calls)
        x, _y, _planes = prompt3d_train.training_sample([s], rng, 32, 1.0, 0, {}, fills, 1.0, max_corrections=4)
        filled = x[1] > 0.5  # the last answer's region, whole: one solid block in the sample's region
        lo, hi = mask_box(filled)  # (a corner cell the block half covers on two axes may fall below 0.5)
        assert filled[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].mean() > 0.98 and filled.mean() > 0.05
        mine = calls[before:]
        assert 1 <= len(mine) <= 4 and all(c.shape == (len(CHANNELS), 32, 32, 32) for c in mine)
        assert not mine[0][1].any()  # the first answer: to the first hint alone
        for asked in mine[1:]:  # later: asked with its answer before as the current mask, and corrections
            assert asked[1].any() and (asked[2].sum() + asked[3].sum() + asked[4].sum()) > 0
        rounds.append(len(mine))
    assert max(rounds) > 2  # sessions of several rounds, not only round 3


def test_unions_join_touching_train_structures_and_never_a_held_out_one():
    """Four labels in a row (1 | 2 | 3, a gap, 5) and a held-out 4 touching 1: neighbours are
    found across the gap of one voxel, and no union holds the held-out label."""
    from InteractiveSegLib.methods.prompt3d.composites import composite_structures, neighbours

    labelmap = np.zeros((8, 8, 40), np.int16)
    labelmap[:, :, 0:8], labelmap[:, :, 8:16], labelmap[:, :, 16:24], labelmap[:, :, 25:33] = 1, 2, 3, 5
    labelmap[:, 0:2, 0:8] = 4
    graph = neighbours(labelmap, {1, 2, 3, 5})
    assert graph == {1: {2}, 2: {1, 3}, 3: {2, 5}, 5: {3}}
    image = np.zeros(labelmap.shape, np.float32)
    structs = [Structure(f"v:{v}", image, labelmap == v, labelmap, v, (1.0, 1.0, 1.0)) for v in (1, 2, 3, 5)]
    unions = composite_structures(structs, np.random.default_rng(0), per_volume=10)
    assert len(unions) == 11 and unions[-1].name == "v:union-all"
    assert np.array_equal(unions[-1].mask, np.isin(labelmap, [1, 2, 3, 5]))
    for u in unions:
        joined = set(np.unique(labelmap[u.mask]).tolist())
        assert 4 not in joined and len(joined) >= 2 and u.labelmap is None  # not re-drawn by label value
        present = sorted(joined)  # breadth-first over touching labels: a run of the chain
        assert present == [v for v in (1, 2, 3, 5) if present[0] <= v <= present[-1]]


def tiny_training(decathlon, out) -> list[str]:
    """``train-prompt3d`` on a user's folder: a tiny network on a 32-cell grid, one thread."""
    tiny = ["--size", "32", "--features", *"4 4 8 8 16 4".split()]
    return ["train-prompt3d", "--dataset", str(decathlon), "--out", str(out), "--threads", "1", *tiny]


def test_the_training_command_takes_a_users_folder_and_resumes(tmp_path, decathlon, capsys):
    from InteractiveSegLib.cli.main import main

    out = tmp_path / "p3.pt"
    base = [*tiny_training(decathlon, out), "--save-every", "1", "--p-augment", "0", "--p-tone-curve", "0.5"]
    assert main([*base, "--iterations", "1"]) == 0, capsys.readouterr().err
    assert main([*base, "--iterations", "2", "--resume"]) == 0, capsys.readouterr().err
    assert "resumed from" in capsys.readouterr().out
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert ckpt["arch"] == "prompt3d_net" and ckpt["meta"]["iterations"] == 2 and ckpt["config"]["size"] == 32
    assert ckpt["meta"]["randomisation"]["p_tone_curve"] == 0.5
    engine = create_engine("prompt3d", model_path=out)
    assert engine.size == 32


def test_the_training_command_draws_its_samples_in_worker_processes(tmp_path, decathlon, capsys):
    """``--workers``: samples (here every one a later round on the network's own answer) come
    from worker processes, and the run ends with its checkpoint and the workers gone."""
    import multiprocessing

    from InteractiveSegLib.cli.main import main

    out = tmp_path / "p3.pt"
    args = [*tiny_training(decathlon, out), "--p-augment", "0", "--p-correct", "1", "--p-own", "1"]
    assert main([*args, "--iterations", "3", "--workers", "2", "--sync-every", "2"]) == 0, capsys.readouterr().err
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert ckpt["meta"]["iterations"] == 3 and ckpt["meta"]["workers"] == 2
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("bad", [["--workers", "-1"], ["--sync-every", "0"], ["--minutes", "0"]])
def test_the_training_command_refuses_odd_worker_and_deadline_options(tmp_path, decathlon, capsys, bad):
    from InteractiveSegLib.cli.main import main

    out = tmp_path / "p3.pt"
    assert main([*tiny_training(decathlon, out), "--iterations", "1", *bad]) == 2
    assert "must be" in capsys.readouterr().err and not out.exists()


def test_the_logit_offset_comes_from_the_checkpoint_and_shifts_every_logit(tmp_path, tiny_model):
    from InteractiveSegLib.checkpoints import update_checkpoint

    volume, _ball = ball_volume(shape=(30, 48, 48), centre=(15, 24, 24), radius=12)
    calibrated = tmp_path / "calibrated.pt"
    update_checkpoint(tiny_model, calibrated, {"logit_offset": 2.0}, {"calibration": {"by": "test"}})
    plain, shifted = (Prompt3DEngine(p, max_zoom=0, threads=1) for p in (tiny_model, calibrated))
    assert plain.logit_offset == 0.0 and shifted.logit_offset == 2.0
    assert Prompt3DEngine(calibrated, logit_offset=-1.0).logit_offset == -1.0  # an explicit one wins
    region = ((5, 10, 10), (25, 38, 38))
    hints = [Click((24, 24, 15), positive=True, axis=0)]
    probs = []
    for engine in (plain, shifted):
        engine.set_image(volume)
        probs.append(engine.run(hints, np.zeros(volume.shape, bool), region).astype(np.float64))
    logit = [np.log(p / (1 - p)) for p in probs]
    np.testing.assert_allclose(logit[1] - logit[0], 2.0, atol=1e-2)
    before, after = (torch.load(p, map_location="cpu", weights_only=True) for p in (tiny_model, calibrated))
    assert after["meta"]["calibration"] == {"by": "test"} and after["meta"]["data"] == before["meta"]["data"]
    assert all(torch.equal(before["state_dict"][k], v) for k, v in after["state_dict"].items())


def test_calibration_never_chooses_an_offset_that_empties_every_answer(tmp_path, tiny_model, decathlon, capsys):
    """Offset -30 leaves every answer empty (Dice 0), +30 fills the region (Dice > 0): the
    held-out case's sessions must pick +30 and write it, with the table, to the output only.
    Without ``--include-reported`` the one held-out ball is what a benchmark reports: refused."""
    from InteractiveSegLib.cli.main import main

    out = tmp_path / "calibrated.pt"
    base = ["calibrate-prompt3d", "--model", str(tiny_model), "--data", str(decathlon), "--rounds", "2"]
    assert main([*base, "--out", str(out)]) == 2 and "no unreported held-out structure" in capsys.readouterr().err
    base.append("--include-reported")
    args = [*base, "--out", str(out), "--offsets=-30,30", "--hint", "box", "--per-volume", "1"]
    assert main(args) == 0, capsys.readouterr().err
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    table = ckpt["meta"]["calibration"]["mean_dice_by_offset"]
    assert ckpt["config"]["logit_offset"] == 30.0 and table["-30"] == 0.0 and table["30"] > 0.0
    assert "logit_offset" not in torch.load(tiny_model, map_location="cpu", weights_only=True)["config"]
    quality = ckpt["meta"]["calibration"]["slice_quality"]
    assert quality["pairs"] >= 10 and len(ckpt["config"]["slice_quality"]["weights"]) > len(quality["features"])
    assert create_engine("prompt3d", model_path=out).slice_quality == ckpt["config"]["slice_quality"]
    assert main([*base, "--hint", "lasso"]) == 2 and "--hint 'lasso'" in capsys.readouterr().err


def test_calibration_plays_drawn_slice_sessions_when_asked(tmp_path, tiny_model, decathlon, capsys):
    """``--hint drawn``: every session's hints are the reference's drawn cross-sections."""
    import json

    from InteractiveSegLib.cli.main import main

    base = ["calibrate-prompt3d", "--model", str(tiny_model), "--data", str(decathlon), "--include-reported"]
    sessions = tmp_path / "drawn.json"
    args = [
        *base,
        "--rounds",
        "2",
        "--offsets=0",
        "--hint",
        "drawn",
        "--per-volume",
        "1",
        "--out",
        str(tmp_path / "d.pt"),
    ]
    assert main([*args, "--sessions", str(sessions)]) == 0, capsys.readouterr().err
    rows = json.loads(sessions.read_text())["sessions"]
    assert rows and {r["hint"] for r in rows} == {"drawn"} and all(len(r["dice"]) == 2 for r in rows)


def resolution_sessions(options, tmp_path, tiny_model, decathlon, capsys, monkeypatch):
    """The calibration run with the resolution ``options``: its exit code, the shape of every
    session's volume, the decathlon volume's own shape and the written calibration meta (None
    when the command failed)."""
    from InteractiveSegLib.bench import calibration
    from InteractiveSegLib.bench.harness import shipped_data
    from InteractiveSegLib.cli.main import main

    seen: list[tuple[int, ...]] = []
    played = calibration.run_volume
    monkeypatch.setattr(calibration, "run_volume", lambda s, *a: seen.append(s.volume.shape) or played(s, *a))
    out = tmp_path / "r.pt"
    base = ["calibrate-prompt3d", "--model", str(tiny_model), "--data", str(decathlon), "--include-reported"]
    args = [*base, "--rounds", "1", "--offsets=0", "--hint", "box", "--per-volume", "1", "--out", str(out)]
    code = main([*args, *options])
    whole = shipped_data([str(decathlon)], "test", 0)[0].image.shape
    meta = torch.load(out, map_location="cpu", weights_only=True)["meta"]["calibration"] if code == 0 else None
    return code, seen, whole, meta


def test_calibration_plays_on_thick_slice_copies_when_asked(tmp_path, tiny_model, decathlon, capsys, monkeypatch):
    """``--thick-slices 2 --thick-axis 2``: every session's volume is the sagittal thick copy."""
    play = (tmp_path, tiny_model, decathlon, capsys, monkeypatch)
    code, seen, whole, meta = resolution_sessions(["--thick-slices", "2", "--thick-axis", "2"], *play)
    assert code == 0 and seen and all(s == (whole[0], whole[1], whole[2] // 2) for s in seen)
    assert meta["thick_slices"] == [2, 2]
    assert resolution_sessions(["--thick-slices", "2", "--thick-axis", "3"], *play)[0] == 2
    assert "--thick-axis 3" in capsys.readouterr().err


def test_calibration_plays_on_thin_slice_copies_when_asked(tmp_path, tiny_model, decathlon, capsys, monkeypatch):
    """``--finer-voxels 2``: every session's volume has twice the voxels per side."""
    play = (tmp_path, tiny_model, decathlon, capsys, monkeypatch)
    code, seen, whole, meta = resolution_sessions(["--finer-voxels", "2"], *play)
    assert code == 0 and seen and all(s == tuple(2 * n for n in whole) for s in seen)
    assert meta["finer_voxels"] == 2
    assert resolution_sessions(["--finer-voxels", "5"], *play)[0] == 2
    assert "--finer-voxels 5" in capsys.readouterr().err


def test_calibration_plays_on_mri_contrast_copies_when_asked(tmp_path, tiny_model, decathlon, capsys, monkeypatch):
    """``--as-mri``: every session's CT is played as an MRI, on its own grid."""
    from InteractiveSegLib.bench import calibration

    modalities: list[str | None] = []
    made = calibration.as_acquired

    def copied(*args, **kwargs):
        d = made(*args, **kwargs)
        modalities.append(d.image.modality)
        return d

    monkeypatch.setattr(calibration, "as_acquired", copied)
    code, seen, whole, meta = resolution_sessions(["--as-mri"], tmp_path, tiny_model, decathlon, capsys, monkeypatch)
    assert code == 0 and seen and all(s == whole for s in seen)
    assert meta["as_mri"] is True and modalities and set(modalities) == {"mr"}


def test_the_offset_is_chosen_on_held_out_structures_the_benchmark_never_reports():
    from InteractiveSegLib.bench.calibration import MIN_VOXELS, unreported
    from InteractiveSegLib.bench.harness import shipped_data
    from InteractiveSegLib.bench.options import BenchOptions
    from InteractiveSegLib.bench.vmn import picked

    held_out, train = (shipped_data(["colin27"], split, MIN_VOXELS)[0] for split in ("test", "train"))
    shown = set(picked(held_out, 4, BenchOptions().seed))
    chosen = set(unreported(["colin27"])[0].structures)
    assert len(shown) == 4 and chosen and not chosen & shown and chosen | shown == set(held_out.structures)
    assert not chosen & set(train.structures)


def test_calibration_writes_every_session_and_two_runs_compare_session_by_session(
    tmp_path, tiny_model, decathlon, capsys
):
    """``--sessions``: a row per offset and session, whose Dice average to the table's mean;
    ``tools/compare_sessions.py`` lists what moved between two runs, and refuses a broken file."""
    import json

    from conftest import load_tool

    from InteractiveSegLib.cli.main import main

    base = ["calibrate-prompt3d", "--model", str(tiny_model), "--data", str(decathlon), "--include-reported"]
    base += ["--rounds", "2", "--hint", "box,scribble", "--per-volume", "1"]
    for name, offsets in (("a", "--offsets=0,30"), ("b", "--offsets=-30,30")):
        args = [*base, offsets, "--out", str(tmp_path / f"{name}.pt"), "--sessions", str(tmp_path / f"{name}.json")]
        assert main(args) == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "a.json").read_text())["sessions"]
    table = torch.load(tmp_path / "a.pt", map_location="cpu", weights_only=True)["meta"]["calibration"]
    assert {r["hint"] for r in rows} == {"box", "scribble"} and all(len(r["dice"]) == 2 and r["voxels"] for r in rows)
    for offset in ("0", "30"):
        dices = [x for r in rows if f"{r['offset']:g}" == offset for x in r["dice"]]
        assert dices and np.mean(dices) == pytest.approx(table["mean_dice_by_offset"][offset])
    tool = load_tool("compare_sessions")
    shared = len([r for r in rows if r["offset"] == 30])  # offset 30 is in both runs, played alike
    assert tool.main([str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    assert f"{shared} sessions in both; 0 changed" in capsys.readouterr().out
    moved = json.loads((tmp_path / "b.json").read_text())
    moved["sessions"][-1]["dice"] = [0.0, 0.0]
    (tmp_path / "c.json").write_text(json.dumps(moved))
    assert tool.main([str(tmp_path / "b.json"), str(tmp_path / "c.json")]) == 0
    assert "1 changed" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("{")
    assert tool.main([str(tmp_path / "a.json"), str(tmp_path / "bad.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    nowhere = [*base, "--out", str(tmp_path / "d.pt"), "--sessions", str(tmp_path / "no" / "d.json")]
    assert main(nowhere) == 2 and "its folder does not exist" in capsys.readouterr().err
    assert not (tmp_path / "d.pt").exists()
