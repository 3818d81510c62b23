"""The online segmenter and Algorithms 3/5 (dynamic-learning paper): eq. 2 and eq. 9 as
written, label smoothing against the previous segmenter, replay of past volumes only,
random slices until F has learnt, a task that survives a restart, Cancel between steps,
and bad input refused without a change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from InteractiveSegLib.bench.online import SHAPE, crop_sample
from InteractiveSegLib.errors import InteractionError
from InteractiveSegLib.methods.online.learner import DynamicLearner, OnlineSettings, combined_loss, weighted_loss
from InteractiveSegLib.methods.online.proxy_mask import RegistrationSettings
from InteractiveSegLib.methods.online.task_folder import TaskFolder, TaskLockedError

SMALL = dict(channels=(4, 8, 16), patch=(16, 24, 24), n_f=3, buffer_size=2, aux_size=3, replay_m=1)
FAST_REG = RegistrationSettings(affine_iterations=3, bspline_iterations=0)


def ball_volume(shape=(16, 24, 24), centre=(8, 12, 12), radius=6, seed=0):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    mask = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius**2
    return (mask * 100.0 + rng.normal(0, 5, shape)).astype(np.float32), mask


def learner(**kw):
    return DynamicLearner(OnlineSettings(**(SMALL | kw)), registration=FAST_REG, workers=1)


def draw_centre_slices(lrn, mask):
    for axis in (1, 2):
        i = mask.shape[axis] // 2
        lrn.add_slice(axis, i, np.take(mask, i, axis=axis))


def drawn(key=None, **kw):
    """A learner on the ball volume with its centre coronal and sagittal slices drawn."""
    image, mask = ball_volume()
    lrn = learner(**kw)
    lrn.start_volume(image, key)
    draw_centre_slices(lrn, mask)
    return lrn, image, mask


def test_eq2_weights_new_and_replayed_samples_as_written():
    per = torch.tensor([2.0, 4.0, 6.0])  # new sample first, m = 2 replayed
    assert combined_loss(per, 0.7).item() == pytest.approx(0.7 * 2 + 0.3 / 3 * (4 + 6))
    assert combined_loss(per, None).item() == pytest.approx(4.0)  # eq. 1
    assert combined_loss(per[:1], 0.7).item() == pytest.approx(2.0)  # nothing replayed yet


def test_eq9_voxels_of_zero_confidence_do_not_count():
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(1, 1, 4, 5, 6, generator=g), (torch.rand(1, 1, 4, 5, 6, generator=g) > 0.5).float()
    w = torch.ones_like(logits)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert weighted_loss(logits, target, w).item() == pytest.approx(ref.item(), rel=1e-6)
    w[..., :2, :, :] = 0
    changed = logits.clone()
    changed[..., :2, :, :] += 5.0
    assert weighted_loss(changed, target, w).item() == pytest.approx(weighted_loss(logits, target, w).item(), rel=1e-6)


def test_label_smoothing_mixes_the_previous_segmenter_fixed_for_the_volume():
    lrn, image, mask = drawn("a", lambda_y=0.8)
    first = lrn.target()
    assert np.array_equal(first.target, 0.8 * lrn.proxy().astype(np.float32))  # F_prev = 0 before any training
    lrn.train_round()
    lrn.finish_volume()
    lrn.start_volume(image, "b")
    f_prev = lrn.prediction().copy()
    draw_centre_slices(lrn, mask)
    lrn.train_round()  # F changes; F_prev must not
    t = lrn.target()
    assert np.allclose(t.target, 0.2 * f_prev + 0.8 * lrn.proxy(), atol=1e-6)
    assert not np.allclose(lrn.prediction(), f_prev)
    off = learner(label_smoothing=False)
    off.start_volume(image, "c")
    draw_centre_slices(off, mask)
    assert np.array_equal(off.target().target, off.proxy().astype(np.float32))


def test_confidence_weights_follow_the_drawn_slices():
    lrn, _, _ = drawn(weights="indicator", omega=4.0)
    w = lrn.target().weight
    assert np.all(w[:, 12, :] == 5.0) and np.all(w[:, :, 12] == 5.0) and w[0, 0, 0] == 1.0


def test_rounds_fit_the_proxy_and_replay_only_past_volumes():
    lrn, _, _ = drawn("v0", n_f=12)
    r1 = lrn.train_round()
    r2 = lrn.train_round()
    assert np.mean(r2.losses[-3:]) < np.mean(r1.losses[:3])
    assert lrn.buffer.buffer == ["v0"]  # one key per volume, however many rounds
    lrn.finish_volume()
    seen = []
    real = lrn.segmenter.train_steps
    lrn.segmenter.train_steps = lambda new, replayed, *a, **k: (
        seen.append(len(replayed)) or real(new, replayed, *a, **k)
    )
    image2, mask2 = ball_volume(centre=(7, 10, 13), seed=1)
    lrn.start_volume(image2, "v1")
    draw_centre_slices(lrn, mask2)
    lrn.train_round()
    assert seen == [1]  # v0 replayed, not v1 itself (its sample joins B after the round)
    assert sorted(set(lrn.buffer.aux) - {None}) == ["v0", "v1"]


def test_slices_are_random_until_the_segmenter_has_learnt_then_guided():
    image, mask = ball_volume()
    lrn = learner(guidance=True, tau=2)
    lrn.start_volume(image)
    assert not lrn.guided()
    present = {a: mask.any(axis=tuple(b for b in range(3) if b != a)) for a in (1, 2)}
    p = lrn.propose(within=present)
    assert all(present[a][i] for a, idx in p.items() for i in idx) and all(len(v) == 2 for v in p.values())
    draw_centre_slices(lrn, mask)
    lrn.train_round()
    assert lrn.guided()
    p = lrn.propose()
    assert all(i not in lrn.drawn()[a] for a, idx in p.items() for i in idx)
    assert not learner(guidance=False).guided()


def test_cancel_between_steps_keeps_a_consistent_state():
    lrn, _, _ = drawn(n_f=10)
    calls = []
    report = lrn.train_round(progress=lambda i, n: calls.append((i, n)), should_stop=lambda: len(calls) >= 4)
    assert report.stopped and len(report.losses) == 4 and calls[-1] == (4, 10)


def test_task_survives_a_restart_and_refuses_a_second_session(tmp_path):
    image, mask = ball_volume()
    with TaskFolder.open(tmp_path / "task") as store:
        lrn = DynamicLearner(OnlineSettings(**SMALL), store=store, registration=FAST_REG, workers=1)
        lrn.start_volume(image, "first")
        draw_centre_slices(lrn, mask)
        lrn.train_round()
        lrn.finish_volume()
        with pytest.raises(TaskLockedError):
            TaskFolder.open(tmp_path / "task")
        before = lrn.segmenter.predict(lrn.image)
        state = lrn.buffer.state()
    with TaskFolder.open(tmp_path / "task") as store:
        again = DynamicLearner(store=store, registration=FAST_REG, workers=1)  # settings come from the task
        assert again.settings.channels == SMALL["channels"] and again.volumes_done == 1 and again.rounds_trained == 1
        assert again.buffer.state() == state and again.guided()
        again.start_volume(image, "second")
        assert np.allclose(again.f_prev, before)
        assert again.segmenter.steps == lrn.segmenter.steps


def test_bad_input_is_refused_and_changes_nothing():
    image, mask = ball_volume()
    lrn = learner()
    with pytest.raises(InteractionError):
        lrn.start_volume(image[0])
    bad = image.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InteractionError):
        lrn.start_volume(bad)
    with pytest.raises(InteractionError):
        lrn.propose()
    lrn.start_volume(image)
    with pytest.raises(InteractionError):
        lrn.train_round()  # nothing drawn yet
    with pytest.raises(InteractionError):
        lrn.add_slice(1, 99, np.zeros((16, 24), bool))
    assert lrn.rounds_trained == 0 and lrn.segmenter.steps == 0 and lrn.drawn() == {}


def test_stream_sample_is_the_structure_box_with_a_bounded_margin():
    image, mask = ball_volume(shape=(40, 60, 60), centre=(20, 30, 30), radius=10)
    s = crop_sample(image, mask, "ball", np.random.default_rng(0))
    assert s.image.shape == SHAPE and s.mask.shape == SHAPE
    filled = s.mask.mean()
    # ball in its box is ~52 % of the box; a margin of <= 10 of 21 voxels per side keeps >= 52 % / 8
    assert 0.06 < filled < 0.56
