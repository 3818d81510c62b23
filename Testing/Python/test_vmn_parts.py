"""VMN building blocks: the memory read (eqs. 4-6), propagation order and memory
contents, the ROI crop/paste, the robot's boxes and extreme points."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from InteractiveSegLib.hints import Box, ExtremePoints, Scribble, ijk_from_slice_point
from InteractiveSegLib.methods.vmn.interaction import hint_cues, hint_roi, network_input, to_roi
from InteractiveSegLib.methods.vmn.network import VMNet, interaction_net, memory_read
from InteractiveSegLib.methods.vmn.propagation import memory_slices, propagate
from InteractiveSegLib.preprocessing import Roi, crop_resize, paste
from InteractiveSegLib.users.robot import robot_box, robot_extreme_points


def _numpy_read(km, vm, kq):
    """Eqs. 4-6 written out position by position."""
    b, t, ck, h, w = km.shape
    cv = vm.shape[2]
    out = np.zeros((b, cv, kq.shape[2], kq.shape[3]))
    for n in range(b):
        mem_k = km[n].transpose(0, 2, 3, 1).reshape(-1, ck)  # every 3D memory position i
        mem_v = vm[n].transpose(0, 2, 3, 1).reshape(-1, cv)
        for y in range(kq.shape[2]):
            for x in range(kq.shape[3]):
                q = kq[n, :, y, x]
                s = mem_k @ q / (np.linalg.norm(mem_k, axis=1) * np.linalg.norm(q))  # eq. 4
                wgt = np.exp(s) / np.exp(s).sum()  # eq. 5
                out[n, :, y, x] = wgt @ mem_v  # eq. 6
    return out


def test_memory_read_matches_equations_4_to_6():
    rng = np.random.default_rng(0)
    km = rng.normal(size=(2, 3, 4, 5, 6))
    vm = rng.normal(size=(2, 3, 7, 5, 6))
    kq = rng.normal(size=(2, 4, 3, 4))  # the query may differ in size from the memory cells
    got = memory_read(*(torch.from_numpy(a).float() for a in (km, vm, kq))).numpy()
    np.testing.assert_allclose(got, _numpy_read(km, vm, kq), rtol=1e-4, atol=1e-5)


def test_empty_memory_reads_zeros():
    kq = torch.randn(1, 4, 3, 3)
    out = memory_read(torch.zeros(1, 0, 4, 3, 3), torch.zeros(1, 0, 6, 3, 3), kq)
    assert out.shape == (1, 6, 3, 3) and not out.any()


def test_network_shapes_and_quality_range():
    net = VMNet().eval()
    img = torch.randn(2, 1, 48, 64)
    with torch.no_grad():
        logit, q = net(img, torch.randn(2, 3, 1, 48, 64), torch.rand(2, 3, 1, 48, 64))
        logit0, q0 = net(img, torch.zeros(2, 0, 1, 48, 64), torch.zeros(2, 0, 1, 48, 64))
    assert logit.shape == logit0.shape == (2, 1, 48, 64)
    assert ((q >= 0) & (q <= 1)).all() and q.shape == (2,)
    assert interaction_net()(torch.randn(1, 4, 96, 96)).shape == (1, 1, 96, 96)


class Recorder:
    """A Propagator stand-in: copies the nearest memory slice's mask, records every call."""

    def __init__(self, structure: dict[int, bool], shape=(4, 4)):
        self.structure, self.shape, self.encoded, self.priors = structure, shape, [], {}

    def encode_memory(self, index, prob):
        self.encoded.append(index)
        return index

    def segment(self, index, memory, prior=None):
        self.priors[index] = None if prior is None else prior.copy()
        present = self.structure.get(index, False)
        # a distinct probability per slice, so the prior handed on is traceable
        return np.full(self.shape, 0.6 + index / 1000 if present else 0.0, np.float32), 0.5 + 0.01 * index


def test_memory_priority_and_cap():
    # interactive slice, previous slice, other corrected (nearest first), periodic (newest first)
    assert memory_slices(10, 13, [10, 30, 2], [15, 20], 14, cap=20) == [10, 13, 2, 30, 20, 15]
    assert memory_slices(10, 13, [10, 30, 2], [15, 20], 14, cap=2) == [10, 13]
    assert memory_slices(10, 13, [10], [], 14, cap=0) == []


def test_propagation_order_memory_and_stop():
    n = 30
    structure = {i: 8 <= i <= 19 for i in range(n)}  # the structure spans slices 8..19
    rec = Recorder(structure)
    start = 12
    res = propagate(rec, n, {start: np.ones((4, 4), np.float32)}, start, cap=20, every=5, stop_after=3)
    up = [q for q in res.order if q > start]
    down = [q for q in res.order if q < start]
    assert up == list(range(13, 23))  # 20, 21, 22 empty: stops after three
    assert down == list(range(11, 4, -1))  # 7, 6, 5 empty: stops after three
    assert res.order == up + down  # up first, then down, each outward from the start
    assert res.memory[13] == [12]
    assert res.memory[14] == [12, 13]
    assert res.memory[18] == [12, 17]  # slice 17 (5 from the start) is saved every S = 5
    assert res.memory[19] == [12, 18, 17]
    assert res.memory[11] == [12]  # each direction has its own memory
    assert res.memory[6] == [12, 7]  # slice 7 was saved going down
    assert np.isnan(res.quality[start]) and np.isfinite(res.quality[13])
    assert not res.probability[23:].any() and not res.probability[:5].any()
    assert (res.probability[8:20] > 0.5).all()
    # the decoder's prior is the previous slice's mask: the start's going each way, then the last propagated
    np.testing.assert_array_equal(rec.priors[13], np.ones((4, 4)))
    np.testing.assert_array_equal(rec.priors[11], np.ones((4, 4)))
    np.testing.assert_array_equal(rec.priors[15], res.probability[14])
    np.testing.assert_array_equal(rec.priors[9], res.probability[10])


def test_propagation_reaches_far_corrections_and_keeps_them():
    n = 40
    structure = {i: 5 <= i <= 10 for i in range(n)}
    rec = Recorder(structure)
    corrected = {8: np.ones((4, 4), np.float32), 30: np.zeros((4, 4), np.float32)}
    corrected[30][0, 0] = 1
    res = propagate(rec, n, corrected, 8, stop_after=2)
    assert max(res.order) > 30  # the far corrected slice carries its own mask onwards
    np.testing.assert_array_equal(res.probability[30], corrected[30])
    assert 30 not in res.order and res.memory[31][:2] == [30, 8]
    assert res.memory[29][:2] == [30, 8] and res.memory[12][:2] == [8, 11]
    assert all(30 in res.memory[q] and 8 in res.memory[q] for q in res.order)  # every corrected slice in every memory


def test_each_corrected_slice_carries_its_mask_half_way_to_the_next():
    """A later correction cannot undo the slices nearer an earlier one; an empty correction
    (as on a slice beyond the structure) carries nothing and bounds the others' runs."""
    n = 40
    rec = Recorder({i: 10 <= i <= 26 for i in range(n)})
    full, none = np.ones((4, 4), np.float32), np.zeros((4, 4), np.float32)
    res = propagate(rec, n, {15: full, 24: none}, 24, stop_after=3)
    assert (res.probability[10:24] > 0.5).all() and not res.probability[24:].any() and not res.probability[:10].any()
    assert sorted(q for q in res.order if q > 15) == list(range(16, 24))  # up to the empty slice, not past it
    assert all(res.memory[q][0] == 15 for q in res.order)  # the empty slice starts no run
    assert not any(24 in res.memory[q] for q in res.order) and 24 not in rec.encoded  # nor is it in any memory
    res = propagate(rec, n, {10: full, 14: full, 30: full}, 14)
    assert [res.memory[q][0] for q in (11, 12, 13)] == [10, 10, 14]  # 12 is half-way: the lower slice's
    assert res.memory[22][0] == 14 and res.memory[29][0] == 30 and 23 not in res.order  # 29-27 empty: stop


def test_memory_size_zero_reads_nothing():
    rec = Recorder({i: True for i in range(6)})
    res = propagate(rec, 6, {2: np.ones((4, 4), np.float32)}, 2, cap=0)
    assert all(m == [] for m in res.memory.values()) and rec.encoded == []
    assert all(p is None for p in rec.priors.values())  # no memory: no slice carried either


def test_roi_crop_paste_round_trip_is_exact():
    rng = np.random.default_rng(1)
    a = rng.random((50, 70)).astype(np.float32)
    roi = Roi(5, 37, 10, 42)  # 32 x 32: the fixed size
    out = paste(crop_resize(a, roi, 32), roi, a.shape)
    np.testing.assert_array_equal(out[roi.slices], a[roi.slices])
    assert not out[:5].any() and not out[:, 42:].any()
    # through a resize: a constant region comes back constant, the rest stays untouched
    b = np.zeros((50, 70), np.float32)
    b[10:30, 20:40] = 1
    roi = Roi(10, 30, 20, 40)
    np.testing.assert_allclose(paste(crop_resize(b, roi, 96), roi, b.shape), b, atol=1e-6)
    # points map to the pixel centres of the resized ROI and back
    p = to_roi(roi, [(10, 20), (29, 39)], 40)
    np.testing.assert_allclose(p, [[0.5, 0.5], [38.5, 38.5]])


def test_hint_roi_widens_by_ten_percent_and_takes_the_previous_mask():
    roi = hint_roi(np.array([[20, 30], [59, 129]]), (200, 200))
    assert (roi.r0, roi.r1, roi.c0, roi.c1) == (16, 64, 20, 140)
    prev = np.zeros((200, 200), bool)
    prev[100:110, 100:110] = True
    roi = hint_roi(np.array([[20, 30]]), (200, 200), prev, min_size=4)
    assert roi.r0 <= 20 and roi.r1 >= 110 and roi.c1 >= 110


def _slice_hint(kind, ref):
    lift = lambda pts: [ijk_from_slice_point(p, 0, 3) for p in pts]  # noqa: E731
    if kind == "box":
        return Box(*lift(robot_box(ref)))
    if kind == "extreme":
        return ExtremePoints(lift(robot_extreme_points(ref)))
    return Scribble(lift([(20, 20), (21, 21)]), positive=False)


def test_cues_of_each_hint_type():
    ref = np.zeros((40, 50), bool)
    ref[10:30, 15:35] = True
    pos, neg = hint_cues(_slice_hint("box", ref), 0)
    assert pos == [] and (10, 15) in neg and (29, 34) in neg and (20, 25) not in neg  # the outline only
    pos, neg = hint_cues(_slice_hint("extreme", ref), 0)
    assert len(pos) == 4 and neg == [] and all(ref[p] for p in pos)
    pos, neg = hint_cues(_slice_hint("scribble", ref), 0)
    assert pos == [] and neg == [(20, 20), (21, 21)]


@pytest.mark.parametrize("encoding", ["geodesic", "exp_geodesic", "gaussian"])
def test_interaction_input_channels(encoding):
    img = np.random.default_rng(0).random((40, 50)).astype(np.float32)
    roi = Roi(0, 40, 0, 50)
    x = network_input(img, None, [(20, 25)], [], roi, 32, encoding)
    assert x.shape == (4, 32, 32)
    assert np.allclose(x[1], 0.5)  # round one: neutral previous mask
    assert x[2].max() == pytest.approx(1.0) and not x[3].any()
    peak = np.unravel_index(np.argmax(x[2]), x[2].shape)
    assert abs(peak[0] - 16) <= 1 and abs(peak[1] - 16) <= 1


def test_robot_box_and_extreme_jitter_bounded():
    ref = np.zeros((100, 100), bool)
    ref[30:60, 40:80] = True
    rng = np.random.default_rng(3)
    for _ in range(50):
        (r0, c0), (r1, c1) = robot_box(ref, rng)
        assert abs(r0 - 30) <= 10 and abs(c0 - 40) <= 10 and abs(r1 - 59) <= 10 and abs(c1 - 79) <= 10
        pts = robot_extreme_points(ref, rng)
        exact = robot_extreme_points(ref)
        assert all(max(abs(a - b) for a, b in zip(p, e, strict=False)) <= 10 for p, e in zip(pts, exact, strict=False))
    assert robot_box(ref) == ((30, 40), (59, 79))
    top, bottom, left, right = robot_extreme_points(ref)
    assert top[0] == 30 and bottom[0] == 59 and left[1] == 40 and right[1] == 79


@pytest.mark.parametrize("dims", [2, 3])
def test_warm_start_widening_keeps_the_function(dims):
    """Coordinates were added to VMN's keys, and a likeness channel to the 3D prompt
    network's input, after first training runs: the widened network starts as the source
    network (the new input channels at zero), for 2D and 3D convolutions alike."""
    from InteractiveSegLib.training import load_matching

    torch.manual_seed(0)
    conv = torch.nn.Conv2d if dims == 2 else torch.nn.Conv3d
    narrow, wide = conv(3, 4, 3, padding=1), conv(5, 4, 3, padding=1)
    counts = load_matching(wide, narrow.state_dict())
    assert counts["copied"] == 1 and counts["widened"] == 1 and counts["fresh"] == []
    x = torch.randn(1, 3, *(8,) * dims)
    extra = torch.randn(1, 2, *(8,) * dims)
    torch.testing.assert_close(wide(torch.cat([x, extra], 1)), narrow(x))


def test_real_network_propagates_with_and_without_memory():
    from InteractiveSegLib.methods.vmn.propagation import VMNPropagator

    torch.manual_seed(0)
    vol = np.random.default_rng(0).random((7, 40, 50)).astype(np.float32)  # not a multiple of 16: padded
    mask = np.zeros((40, 50), np.float32)
    mask[10:20, 10:20] = 1
    for prior, cap in ((False, 0), (False, 20), (True, 0), (True, 20)):
        res = propagate(VMNPropagator(VMNet(prior=prior).eval(), vol), 7, {3: mask}, 3, cap=cap, stop_after=100)
        assert res.probability.shape == (7, 40, 50) and sorted(res.order) == [0, 1, 2, 4, 5, 6]
        assert np.isfinite(res.quality[[0, 1, 2, 4, 5, 6]]).all()


def test_interaction_samples_past_the_end_clear_a_false_mask():
    """f_IN training: a slice past the structure's end holds a false mask (previous-mask
    channel), the robot's stroke there is negative, and the target is empty."""
    from InteractiveSegLib.methods.vmn.train import Structure, interaction_sample

    mask = np.zeros((20, 32, 32), bool)
    mask[6:12, 10:22, 8:20] = True
    image = np.random.default_rng(0).random(mask.shape).astype(np.float32)
    structs = [Structure("box", image, mask)]
    rng = np.random.default_rng(1)
    past = [interaction_sample(structs, rng, 32, "geodesic", beyond=1.0) for _ in range(30)]
    empty = [(x, y) for x, y in past if not y.any()]
    assert len(empty) >= 10  # the others: the slice past the end fell outside the volume
    for x, _ in empty:
        assert (x[1] > 0.5).any()  # a false previous mask to clear
        assert x[3].max() > x[2].max()  # the stroke is negative (channel 3), no positive cue
    assert all(y.any() for _, y in [interaction_sample(structs, rng, 32, "geodesic", beyond=0.0) for _ in range(10)])


class Bright(torch.nn.Module):
    """A stand-in f_IN: the bright part of the image channel (the geometry apart from training)."""

    def forward(self, x):
        return (x[:, :1] - 0.5) * 40


def test_a_short_stroke_on_a_large_structure_zooms_out_until_it_sees_all_of_it():
    """f_IN's ROI starts at the stroke's box; it grows while the prediction touches its edge."""
    from InteractiveSegLib.methods.vmn.interaction import segment_slice

    yy, xx = np.mgrid[:200, :200]
    disk = (yy - 100) ** 2 + (xx - 90) ** 2 <= 70**2
    image = disk.astype(np.float32)
    stroke = Scribble([(90 + d, 100, 0) for d in range(-4, 5)], axis=0)  # (i, j, k): 9 voxels in the middle
    prob, roi = segment_slice(Bright(), image, None, [stroke], 0, size=64, encoding="gaussian")
    assert roi.r1 - roi.r0 > 140 and roi.c1 - roi.c0 > 140
    found = prob > 0.5
    assert (found & disk).sum() / disk.sum() > 0.97 and not (found & ~disk).sum() > 0.03 * disk.sum()
    # a box bounds the structure: no zoom, the ROI stays the box's
    box = Box((60, 60, 0), (120, 140, 0), axis=0)
    _, roi = segment_slice(Bright(), image, None, [box], 0, size=64, encoding="gaussian")
    assert roi.r1 - roi.r0 < 100


def test_the_click_network_as_f_in_zooms_out_from_a_short_stroke_and_reads_every_hint_kind():
    """f_IN as the click engine's network (``segment_slice_zoomed``): the window starts at the
    stroke and grows while the object touches its edge; a box is its outline, extreme points
    are positive points, a negative stroke is negative points."""
    from InteractiveSegLib.methods.click.zoom import ZoomSettings
    from InteractiveSegLib.methods.vmn.interaction import segment_slice_zoomed, zoomed_cues

    yy, xx = np.mgrid[:200, :200]
    disk = (yy - 100) ** 2 + (xx - 90) ** 2 <= 70**2
    image = disk.astype(np.float32)
    stroke = Scribble([(90 + d, 100, 0) for d in range(-4, 5)], axis=0)  # 9 voxels in the middle
    settings = ZoomSettings(size=64)  # the first window: 64 pixels, the stroke 9
    found = segment_slice_zoomed(Bright(), image, None, [stroke], 0, (1.0, 1.0), settings) > 0.5
    assert (found & disk).sum() / disk.sum() > 0.97 and (found & ~disk).sum() < 0.03 * disk.sum()
    # anisotropic pixels (2 mm rows): the window is square in millimetres and still finds all of it
    tall = disk[::2]
    found = segment_slice_zoomed(Bright(), tall.astype(np.float32), None, [stroke], 0, (2.0, 1.0), settings) > 0.5
    assert (found & tall).sum() / tall.sum() > 0.95
    box = Box((60, 60, 0), (120, 140, 0), axis=0)
    extreme = ExtremePoints([(20, 100, 0), (160, 100, 0), (90, 30, 0), (90, 170, 0)], axis=0)
    negative = Scribble([(5, 5, 0), (6, 5, 0)], positive=False, axis=0)
    pos, neg, boxes = zoomed_cues([box, extreme, negative], 0)
    assert boxes == [(60, 60, 140, 120)] and len(pos) == 4 and neg == [(5, 5), (5, 6)]
    wide = np.zeros((400, 400), np.float32)
    wide[:200, :200] = image
    out = segment_slice_zoomed(Bright(), wide, None, [box], 0, (1.0, 1.0), settings) > 0.5
    assert out[60:141, 60:121].all() and (out[:200, :200] & disk).sum() / disk.sum() > 0.97
    assert not out[200:].any() and not out[:, 200:].any()


class Residue:
    """A Propagator stand-in that follows a structure exactly and, beyond its end, keeps a few
    stray voxels (what a network that never empties a slice leaves behind)."""

    def __init__(self, truth: np.ndarray, stray: int = 2):
        self.truth, self.stray = truth, stray

    def encode_memory(self, index, prob):
        return index

    def segment(self, index, memory, prior=None):
        out = self.truth[index].astype(np.float32)
        if not out.any():
            out[0, : self.stray] = 0.9  # stray voxels
        return out, 0.5


def _ball(n=60, side=32, centre=17, radius=7.5):
    k, j, i = np.ogrid[:n, :side, :side]
    return (k - centre) ** 2 + (j - 16) ** 2 + (i - 16) ** 2 <= radius**2


def test_stop_rule_nothing_written_beyond_the_end_of_a_structure_that_ends():
    """The structure spans slices 10-24; beyond them the stand-in network leaves two stray voxels
    on every slice. The stop rule (three slices in a row under 2% of the start's foreground)
    ends each run three slices past the structure, clears those three, and keeps every slice
    of the structure, its tips included."""
    truth = _ball()
    present = np.flatnonzero(truth.any((1, 2)))
    first, last = int(present[0]), int(present[-1])
    start, stop_after = 17, 3
    res = propagate(
        Residue(truth), len(truth), {start: truth[start].astype(np.float32)}, start, stop_after=stop_after, vanish=0.02
    )
    assert max(res.order) == last + stop_after and min(res.order) == first - stop_after
    found = res.probability > 0.5
    assert not found[last + 1 :].any() and not found[:first].any()  # nothing beyond the ends
    np.testing.assert_array_equal(found[first : last + 1], truth[first : last + 1])  # tips included
    # with the rule counting only empty slices, the residue carries every run to the volume's ends
    res = propagate(Residue(truth), len(truth), {start: truth[start].astype(np.float32)}, start, stop_after=stop_after)
    assert max(res.order) == len(truth) - 1 and (res.probability[last + 1 :] > 0.5).any()


def test_stop_rule_empty_slices_end_a_run_and_a_gap_shorter_than_the_rule_does_not():
    """Two parts of one structure, slices 5-12 and 15-20 (a gap of two empty slices): with
    ``stop_after=3`` the run crosses the gap; with ``stop_after=2`` it ends in it."""
    truth = np.zeros((40, 8, 8), bool)
    truth[5:13, 2:6, 2:6] = True
    truth[15:21, 3:7, 3:7] = True
    res = propagate(Residue(truth, 0), 40, {8: truth[8].astype(np.float32)}, 8, stop_after=3, vanish=0.02)
    np.testing.assert_array_equal(res.probability > 0.5, truth)
    assert max(res.order) == 20 + 3 and min(res.order) == 5 - 3
    res = propagate(Residue(truth, 0), 40, {8: truth[8].astype(np.float32)}, 8, stop_after=2, vanish=0.02)
    assert max(res.order) == 14 and not (res.probability[13:] > 0.5).any()


class Copier:
    """A Propagator stand-in that copies the previous slice's mask past the structure's end (as
    f_VMN does on the CT) and rates a slice 0.6 inside the structure, 0.1 beyond it."""

    def __init__(self, truth: np.ndarray):
        self.truth = truth

    def encode_memory(self, index, prob):
        return index

    def segment(self, index, memory, prior=None):
        inside = self.truth[index].any()
        return (self.truth[index] if inside else prior > 0.5).astype(np.float32), 0.6 if inside else 0.1


def test_fade_ends_a_run_where_the_predicted_iou_falls_and_vanish_cannot():
    """The copied mask never shrinks, so ``vanish`` never ends the run; with ``fade`` 0.5 three
    slices rated under half the run's best end it, and nothing is left beyond the structure."""
    truth = _ball()
    present = np.flatnonzero(truth.any((1, 2)))
    first, last, start = int(present[0]), int(present[-1]), 17
    seed = {start: truth[start].astype(np.float32)}
    flooded = propagate(Copier(truth), len(truth), seed, start, vanish=0.02)
    beyond = flooded.probability > 0.5
    assert beyond[last + 1 :].any(axis=(1, 2)).all() and beyond[:first].any(axis=(1, 2)).all()  # to both ends
    res = propagate(Copier(truth), len(truth), seed, start, vanish=0.02, fade=0.5)
    found = res.probability > 0.5
    np.testing.assert_array_equal(found, truth)
    assert max(res.order) == last + 3 and min(res.order) == first - 3


def test_propagation_axis_follows_the_finest_spacing_when_slices_are_thick():
    from InteractiveSegLib.methods.vmn.engine import choose_axis

    assert choose_axis((1.0, 1.0, 1.0), 0) == 0  # isotropic: the hint's axis
    assert choose_axis((3.0, 3.0, 3.0), 2) == 2
    assert choose_axis((5.0, 1.0, 1.0), 0) == 1  # thick axial slices: coronal (the lower of a tie)
    assert choose_axis((5.0, 1.0, 0.8), 0) == 2  # the finer of the two
    assert choose_axis((5.0, 1.0, 1.0), 2) == 2  # a sagittal hint: its slices are fine, it stays
    assert choose_axis((1.8, 1.0, 1.0), 0) == 0  # under twice the finest: not thick
    assert choose_axis((1.8, 1.0, 1.0), 0, thick_ratio=1.5) == 1


def test_sequences_take_strides_up_to_max_stride_along_every_axis():
    """f_VMN's 5-slice sequences: the slice stride is drawn from 1 to ``max_stride`` (thick slices)."""
    from InteractiveSegLib.methods.vmn.train import Structure, memory_sample

    n = 40
    k, j, i = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    image = ((k + j + i) / 300).astype(np.float32)  # one step along any axis adds 1/300 everywhere
    mask = np.zeros((n, n, n), bool)
    mask[8:32, 8:32, 8:32] = True
    rng = np.random.default_rng(0)
    strides = set()
    for _ in range(60):
        images, _, _ = memory_sample([Structure("cube", image, mask)], rng, 16, 5, max_stride=3)
        diff = images[1:, 0, 4:12, 4:12] - images[:-1, 0, 4:12, 4:12]
        steps = np.unique(np.round(np.abs(diff) * 300))
        if len(steps) == 1 and steps[0] > 0:  # no slice clipped at the volume's edge
            strides.add(int(steps[0]))
    assert strides == {1, 2, 3}


def test_augmented_structures_are_redrawn_by_the_data_layer():
    from InteractiveSegLib.data.synthesis import SynthesisSettings
    from InteractiveSegLib.methods.vmn.train import AugmentedStructures, Structure

    lab = np.zeros((40, 40, 40), np.uint8)
    lab[5:35, 5:35, 5:35] = 1
    lab[12:28, 12:28, 12:28] = 2
    image = (lab * 0.4).astype(np.float32)
    s = Structure("cube", image, lab == 2, lab, 2, (1.0, 1.0, 1.0))
    pool = AugmentedStructures([s], np.random.default_rng(0), size=3, block=32, min_voxels=200)
    assert len(pool.pool) == 3
    for a in pool.pool:
        assert a.image.shape == a.mask.shape and max(a.image.shape) <= 32 and a.mask.sum() >= 200
        assert 0 <= a.image.min() and a.image.max() <= 1
        inside, outside = a.image[a.mask].mean(), a.image[~a.mask].mean()
        assert abs(inside - outside) > 0.02  # the structure still has a contrast of its own
    assert not all(np.allclose(a.image.mean(), pool.pool[0].image.mean()) for a in pool.pool[1:])
    toned = SynthesisSettings(tone_curve_probability=1.0)
    assert AugmentedStructures([s], np.random.default_rng(0), size=1, block=32, settings=toned).settings is toned
