"""Dynamic Data Generation rules 1-4 (checked statistically with fixed seeds), SDG and the test robot."""

import numpy as np
import pytest
from scipy import ndimage

from InteractiveSegLib.preprocessing import one_hot
from InteractiveSegLib.users.multiclass import DynamicUser, RobotUser, centre_weighted_point, static_clicks

N = 4


def _scene() -> np.ndarray:
    """Class 1: two squares (two components), class 2: one disk, class 3: one bar; 0 background."""
    lab = np.zeros((64, 64), np.uint8)
    lab[5:15, 5:15] = 1
    lab[40:52, 5:17] = 1
    rr, cc = np.mgrid[:64, :64]
    lab[(rr - 30) ** 2 + (cc - 40) ** 2 < 64] = 2
    lab[55:60, 30:60] = 3
    return one_hot(lab, N)


def test_first_round_clicks_every_component_of_every_class():
    target = _scene()
    user = DynamicUser(target, np.random.default_rng(0), skip_class=False, hold_out=0.0)
    clicks = user.step(None)
    per_class = {c: sum(1 for k in clicks if k.cls == c) for c in range(N)}
    assert per_class == {0: 1, 1: 2, 2: 1, 3: 1}
    for k in clicks:  # every click lies in its class
        assert target[k.cls, k.row, k.col]


def test_first_round_sees_the_shown_result():
    """An initial user clicks every component whatever is shown; a corrective-start user
    corrects the shown (automatic) result: one click per class it misses, inside the miss."""
    target = _scene()
    shown = target.copy()
    shown[2], shown[0] = False, shown[0] | target[2]  # the disk (class 2) is missed, the rest right
    initial = DynamicUser(target, np.random.default_rng(0), skip_class=False, hold_out=0.0)
    assert len(initial.step(shown)) == 5
    user = DynamicUser(target, np.random.default_rng(0), skip_class=False, hold_out=0.0, corrective_start=True)
    clicks = user.step(shown)
    assert [k.cls for k in clicks] == [2] and target[2, clicks[0].row, clicks[0].col]
    assert user.p == pytest.approx(2 / 3)


def test_probability_drops_by_one_over_t_and_stops_after_t_rounds():
    target = _scene()
    empty = np.zeros_like(target)
    empty[0] = True  # a prediction of background everywhere: every class is missed
    rounds = []
    for seed in range(300):
        user = DynamicUser(target, np.random.default_rng(seed), max_interactions=3, skip_class=False, hold_out=0.0)
        user.step(None)
        assert user.p == pytest.approx(2 / 3)
        counts = [len(user.step(empty)) for _ in range(3)]
        rounds.append(counts)
        assert user.p == 0.0 and user.step(empty) == []
    rounds = np.array(rounds)
    # round 2 clicks each of the 3 missed classes with p = 2/3, round 3 with p = 1/3, round 4 never
    assert rounds[:, 0].mean() == pytest.approx(3 * 2 / 3, abs=0.15)
    assert rounds[:, 1].mean() == pytest.approx(3 * 1 / 3, abs=0.15)
    assert rounds[:, 2].sum() == 0


def test_at_most_three_clicks_per_component():
    target = _scene()
    empty = np.zeros_like(target)
    empty[0] = True
    user = DynamicUser(target, np.random.default_rng(1), max_interactions=10**6, skip_class=False, hold_out=0.0)
    user.step(None)
    for _ in range(20):
        user.step(empty)
    assert max(user.count.values()) == 3
    labelled = [ndimage.label(target[c], np.ones((3, 3)))[0] for c in range(N)]
    per_component: dict = {}
    for k in user.generated:
        key = (k.cls, labelled[k.cls][k.row, k.col])
        per_component[key] = per_component.get(key, 0) + 1
    assert max(per_component.values()) <= 3


def test_rule3_one_random_class_gets_no_clicks():
    target = _scene()
    skipped = []
    for seed in range(400):
        user = DynamicUser(target, np.random.default_rng(seed), hold_out=0.0)
        clicks = user.step(None)
        assert user.skipped not in {k.cls for k in clicks}
        assert {k.cls for k in user.generated} == set(range(N))
        skipped.append(user.skipped)
    freq = np.bincount(skipped, minlength=N) / len(skipped)
    assert np.all(np.abs(freq - 1 / N) < 0.07)  # uniform over classes


def test_rule4_holds_out_eighty_percent_of_generated_clicks():
    target = _scene()
    kept = generated = 0
    for seed in range(500):
        user = DynamicUser(target, np.random.default_rng(seed), skip_class=False, hold_out=0.8)
        kept += len(user.step(None))
        generated += len(user.generated)
    frac = kept / generated
    sd = np.sqrt(0.2 * 0.8 / generated)
    assert abs(frac - 0.2) < 4 * sd


def test_click_position_peaks_at_the_region_centre():
    region = np.zeros((41, 41), bool)
    region[5:36, 5:36] = True
    dist = ndimage.distance_transform_edt(region)
    rng = np.random.default_rng(0)
    drawn = [dist[centre_weighted_point(region, rng)] for _ in range(2000)]
    uniform = dist[region].mean()
    assert np.mean(drawn) > uniform * 1.2  # more central than a uniform draw
    assert min(drawn) >= 1  # never outside
    assert centre_weighted_point(region, None) == (20, 20)


def test_static_generation_ignores_predictions_and_stays_in_classes():
    target = _scene()
    counts = []
    for seed in range(200):
        clicks = static_clicks(target, np.random.default_rng(seed), max_per_class=3)
        for k in clicks:
            assert target[k.cls, k.row, k.col]
        counts.append(len(clicks))
    assert 0 <= min(counts) and max(counts) <= 3 * N
    assert np.mean(counts) == pytest.approx(1.5 * N, abs=0.5)


def test_robot_clicks_the_centre_of_the_largest_missed_region_per_class():
    target = _scene()
    pred = target.copy()
    pred[2] = False  # the disk is missed...
    pred[0] |= target[2]  # ...and called background
    clicks = RobotUser(target).step(pred)
    assert [(k.row, k.col, k.cls) for k in clicks] == [(30, 40, 2)]
    assert RobotUser(target).step(target) == []


def test_overlapping_classes_get_their_own_clicks():
    """Multi-label: a pixel may belong to two classes; each class is clicked in its own region."""
    target = np.zeros((3, 40, 40), bool)
    target[1, 5:25, 5:25] = True
    target[2, 15:35, 15:35] = True  # overlaps class 1 on 15:25
    target[0] = ~target[1:].any(0)
    user = DynamicUser(target, np.random.default_rng(0), skip_class=False, hold_out=0.0)
    clicks = user.step(None)
    assert sorted(k.cls for k in clicks) == [0, 1, 2]
    for k in clicks:
        assert target[k.cls, k.row, k.col]
    pred = target.copy()
    pred[2] = False
    (k,) = RobotUser(target).step(pred)
    assert k.cls == 2 and target[2, k.row, k.col]


def test_ddg_fills_the_memory_with_fixed_weight_passes_before_backprop():
    """The SIM is filled by running the network with fixed weights (no gradient), once per
    round; state r holds round r's clicks and the result they corrected; 0 rounds = automatic."""
    import torch

    from InteractiveSegLib.methods.sim.memory import network_input
    from InteractiveSegLib.methods.sim.network import sim_net
    from InteractiveSegLib.methods.sim.train import fill_memory, predict_probs

    torch.manual_seed(0)
    net = sim_net(N, 3, "sim", "lstm", features=(8, 16, 16, 32))
    calls = []
    net.register_forward_hook(lambda m, i, o: calls.append(torch.is_grad_enabled()))
    target = _scene()
    imgs = [np.random.default_rng(k).random((64, 64)).astype(np.float32) for k in range(2)]
    users = [DynamicUser(target, np.random.default_rng(k), hold_out=0.0, skip_class=False) for k in range(2)]
    states = fill_memory(net, imgs, users, "sim", N, 3, 3, False)
    assert calls == [False, False, False] and not net.training
    assert [len(s) for s in states] == [3, 3]
    auto = predict_probs(net, np.stack([network_input(i, [], "sim", N, 3) for i in imgs]), False)
    np.testing.assert_allclose(states[0][0].probs, auto[0], atol=1e-6)  # round 1 corrects the automatic result
    x = np.stack([network_input(i, s[:1], "sim", N, 3) for i, s in zip(imgs, states, strict=False)])
    np.testing.assert_allclose(states[1][1].probs, predict_probs(net, x, False)[1], atol=1e-6)
    assert states[0][0].clicks.sum() > 0  # round one clicked every component
    calls.clear()
    assert fill_memory(net, imgs, users, "sim", N, 3, 0, False) == [[], []] and calls == []
    # one memory length per image: a batch mixes lengths (batch-norm statistics match test time)
    users = [DynamicUser(target, np.random.default_rng(k), hold_out=0.0, skip_class=False) for k in range(2)]
    mixed = fill_memory(net, imgs, users, "sim", N, 3, np.array([0, 2]), False)
    assert [len(s) for s in mixed] == [0, 2] and len(calls) == 2
    np.testing.assert_allclose(mixed[1][0].probs, auto[1], atol=1e-6)


def test_per_class_robot_clicks_every_class_missing_a_region():
    """The paper's test-time virtual user clicks each class that misses a region, the
    BENCHMARK robot only the largest such region."""
    labels = np.zeros((40, 40), np.int16)
    labels[5:25, 5:25] = 1  # large
    labels[30:36, 30:36] = 2  # small
    target = one_hot(labels, 3)
    empty = one_hot(np.zeros_like(labels), 3)
    assert [c.cls for c in RobotUser(target).step(empty)] == [1]
    assert sorted(c.cls for c in RobotUser(target, per_class=True).step(empty)) == [1, 2]
    assert RobotUser(target, per_class=True).step(target) == []  # nothing missed, nothing clicked
