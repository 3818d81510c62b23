import numpy as np

from InteractiveSegLib.metrics import dice
from InteractiveSegLib.users.robot import TrainingClickSampler, robot_click, robot_scribble


def disk(shape, center, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= r * r


def test_first_click_is_the_centre_of_the_structure():
    gt = disk((64, 64), (30, 34), 10)
    c = robot_click(gt, np.zeros_like(gt))
    assert c.positive and c.point == (30, 34)


def test_negative_click_on_the_largest_false_positive():
    gt = disk((64, 64), (20, 20), 8)
    pred = gt | disk((64, 64), (45, 45), 9) | disk((64, 64), (10, 50), 3)
    c = robot_click(gt, pred)
    assert not c.positive and c.point == (45, 45)


def test_largest_error_wins_between_fn_and_fp():
    gt = disk((64, 64), (20, 20), 12)
    pred = disk((64, 64), (20, 20), 4) | disk((64, 64), (50, 50), 3)
    c = robot_click(gt, pred)
    assert c.positive and np.hypot(c.point[0] - 20, c.point[1] - 20) > 4


def test_perfect_prediction_needs_no_click_and_3d_works():
    gt = np.zeros((8, 16, 16), bool)
    gt[2:6, 4:12, 4:12] = True
    assert robot_click(gt, gt) is None
    c = robot_click(gt, np.zeros_like(gt))
    assert c.positive and gt[c.point]


def test_robot_is_deterministic():
    rng = np.random.default_rng(1)
    gt = rng.random((50, 50)) > 0.5
    pred = rng.random((50, 50)) > 0.5
    assert robot_click(gt, pred) == robot_click(gt, pred)


def test_scribble_is_a_short_stroke_inside_the_error():
    gt = disk((80, 80), (40, 40), 20)
    pts, positive = robot_scribble(gt, np.zeros_like(gt))
    assert positive and 5 <= len(pts) <= 30
    assert all(gt[p] for p in pts)


def test_training_sampler_prefers_the_inside_of_large_regions():
    gt = disk((64, 64), (32, 32), 15)
    sampler = TrainingClickSampler(seed=0)
    pts = np.array([sampler(gt, np.zeros_like(gt)).point for _ in range(200)])
    assert all(gt[tuple(p)] for p in pts)
    d = np.hypot(pts[:, 0] - 32, pts[:, 1] - 32)
    assert np.median(d) < 5  # p ~ exp(dist) - 1 concentrates clicks at the centre
    # negative click when the false positive area is larger
    pred = gt | disk((64, 64), (10, 10), 9)
    assert not sampler(gt, pred).positive


def test_dice():
    a = np.zeros((10, 10), bool)
    a[:5] = True
    assert dice(a, a) == 1.0 and dice(a, ~a) == 0.0
    assert dice(np.zeros_like(a), np.zeros_like(a)) == 1.0
