"""The shared training loop: a run that stops continues from its state file, and the click
trainer's samples are what the engine would show the network."""

from argparse import Namespace

import numpy as np
import pytest
import torch
from scipy import ndimage

from InteractiveSegLib.checkpoints import checkpoint_weights
from InteractiveSegLib.cli.main import main
from InteractiveSegLib.methods.click import train as click_train
from InteractiveSegLib.training import fit, resumed_iteration


def small_run(out, iterations, resume, minutes=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0]])
    args = Namespace(out=str(out), iterations=iterations, log_every=1, save_every=2, seed=0, command="t", resume=resume)
    args.minutes = minutes
    fit(args, model, opt, lambda: ((model(x) - y) ** 2).mean(), "linear", {}, {})
    return model, args


def test_a_stopped_run_resumes_where_it_saved(tmp_path):
    out = tmp_path / "m.pt"
    straight, _ = small_run(tmp_path / "straight.pt", 6, resume=False)
    small_run(out, 4, resume=False)  # stops after iteration 4 (saved at 2 and 4)
    _, args = small_run(out, 6, resume=True)
    assert resumed_iteration(args) == 6
    # the resumed run ends where one uninterrupted run of 6 iterations ends
    for name, value in straight.state_dict().items():
        torch.testing.assert_close(checkpoint_weights(out)[name], value)


def test_a_run_with_a_deadline_saves_and_stops_after_the_step_that_passes_it(tmp_path, capsys):
    out = tmp_path / "m.pt"
    small_run(out, 6, resume=False, minutes=1e-9)  # the first step passes it
    assert "stopped after 1 iterations" in capsys.readouterr().out
    assert torch.load(out, map_location="cpu", weights_only=True)["meta"]["iterations"] == 1
    _, args = small_run(out, 6, resume=True)  # and the next run goes on from there
    assert resumed_iteration(args) == 6


def _click_args(**changed) -> Namespace:
    """The click trainer's options for drawing samples from Colin27 at a 64-pixel working size."""
    args = dict(dataset=["colin27"], min_voxels=200, min_area=30, pool=1, block=48, mix=[1, 0, 0, 0], size=64)
    args.update(context=0.4, min_side_px=64, p_previous=0.0, p_first_window=0.0, p_merge=0.0, p_beyond=0.0)
    args.update(p_finer=0.0, max_finer=3.0, finest_mm=0.5)
    return Namespace(**{**args, "hints": ["click"], **changed})


def test_click_samples_are_working_size_views_with_the_click_inside_the_structure():
    args = _click_args()
    rng = np.random.default_rng(0)
    pool = click_train.Pool(args.dataset, args, rng)
    sampler = click_train.TrainingClickSampler(seed=0)
    drawn = [click_train.draw_sample(pool, sampler, args, rng) for _ in range(8)]
    samples = [s for s in drawn if s is not None]
    assert len(samples) >= 6
    for s in samples:
        assert s.image.shape == s.truth.shape == (64, 64) and not s.previous.any()
        r, c = (int(round(v)) for v in s.positive[0])
        assert s.truth[r, c]  # the first click lies in the structure it asks for
        # a zoomed view: the whole structure inside, with room around it
        rows = np.nonzero(s.truth.any(axis=1))[0]
        assert rows[0] > 0 and rows[-1] < 63


def test_a_sample_past_the_end_teaches_a_negative_stroke_to_clear_a_false_mask():
    """``--p-beyond``: a slice just past a structure's end, holding the mask of its last slice
    (as a propagation leaves it), with a negative stroke on it and an empty target."""
    args = _click_args(p_beyond=1.0, hints=["box"])
    rng = np.random.default_rng(1)
    pool = click_train.Pool(args.dataset, args, rng)
    sampler = click_train.TrainingClickSampler(seed=0)
    samples = [s for s in (click_train.draw_sample(pool, sampler, args, rng) for _ in range(12)) if s is not None]
    assert len(samples) >= 4
    for s in samples:
        assert not s.truth.any() and s.previous.any()
        assert s.negative and not s.positive and not s.boxes  # a box cannot say "none here": a stroke
        near = ndimage.binary_dilation(s.previous, iterations=2)  # resizing thins a thin mask
        assert all(near[int(np.clip(round(r), 0, 63)), int(np.clip(round(c), 0, 63))] for r, c in s.negative)


def test_a_finer_slice_shows_the_same_anatomy_in_more_pixels():
    """``--p-finer``: the slice of a thin-slice scan, so a stroke of as many pixels is shorter
    against its structure."""
    rows, cols = np.mgrid[:32, :40]
    truth = (rows - 14) ** 2 + (cols - 20) ** 2 <= 36  # a disc of 6 pixels' radius
    image = truth.astype(np.float32)
    previous = np.zeros_like(truth)
    previous[:8, :8] = True
    fine, fine_truth, fine_previous, spacing = click_train.finer_slice(image, truth, previous, (3.0, 2.0), 2.0)
    assert fine.shape == fine_truth.shape == fine_previous.shape == (64, 80)
    assert spacing == (1.5, 1.0)
    assert abs(fine_truth.sum() / (4 * truth.sum()) - 1) < 0.1  # the same area in mm²
    assert fine_previous.sum() == 4 * previous.sum() and fine_previous[:16, :16].all()
    centre = np.argwhere(fine_truth).mean(0)
    assert np.allclose((centre + 0.5) / 2 - 0.5, np.argwhere(truth).mean(0), atol=0.1)  # in place
    assert np.allclose(fine[ndimage.binary_erosion(fine_truth, iterations=2)], 1.0)  # linear: the inside as it was
    args = _click_args(p_finer=1.0, max_finer=3.0, finest_mm=0.7, hints=["scribble"])
    rng = np.random.default_rng(3)
    factors = [click_train.finer_factor((3.0, 2.0), args, rng) for _ in range(50)]
    assert 1 <= min(factors) and max(factors) <= 2.0 / 0.7 and len(set(factors)) == 50  # 2 mm: at most 0.7 mm
    assert click_train.finer_factor((0.5, 0.5), args, rng) == 1.0  # already a scan's finest
    assert click_train.finer_factor((3.0, 3.0), _click_args(p_finer=0.0), rng) == 1.0
    pool = click_train.Pool(args.dataset, args, rng)
    sampler = click_train.TrainingClickSampler(seed=0)
    samples = [s for s in (click_train.draw_sample(pool, sampler, args, rng) for _ in range(8)) if s is not None]
    assert len(samples) >= 6 and all(s.image.shape == (64, 64) and s.positive for s in samples)


def test_a_merged_target_joins_touching_allowed_structures_only():
    labels = np.zeros((40, 40), np.uint16)
    labels[10:20, 10:20] = 1  # the clicked structure
    labels[10:20, 20:30] = 2  # touches it, allowed
    labels[20:30, 10:20] = 3  # touches it, held out
    labels[32:38, 32:38] = 4  # allowed but apart
    for seed in range(10):
        out = click_train.merged(labels, labels == 1, [1, 2, 4], np.random.default_rng(seed))
        assert out[labels == 1].all() and out[labels == 2].all()
        assert not out[labels == 3].any() and not out[labels == 4].any()


@pytest.mark.parametrize(
    "command",
    [
        ["train-click", "--pool", "1", "--batch", "2", "--max-interactions", "2"],
        ["train-vmn", "--part", "interaction", "--batch", "2"],
        ["train-vmn", "--part", "memory", "--batch", "1", "--frames", "3"],
        ["train-sim", "--variant", "ddg-sim", "--batch", "2", "--crop", "32"],
    ],
)
def test_training_commands_take_a_users_folder(tmp_path, decathlon, command, capsys):
    """One step on the folder's train cases: the command reads it and writes a checkpoint."""
    out = tmp_path / "net.pt"
    args = [*command, "--dataset", str(decathlon), "--iterations", "1", "--out", str(out), "--threads", "1"]
    assert main(args) == 0, capsys.readouterr().err
    assert out.exists()


def test_a_vmn_fine_tune_keeps_its_checkpoints_image_scaling(tmp_path, decathlon, capsys):
    """A network fine-tuned on differently scaled images starts from a broken point: the
    command refuses, names the scaling to use, writes nothing, and then trains with it."""
    first = tmp_path / "first.pt"
    base = ["train-vmn", "--part", "memory", "--batch", "1", "--frames", "3", "--dataset", str(decathlon)]
    base += ["--iterations", "1", "--threads", "1"]
    assert main([*base, "--normalization", "percentile", "--out", str(first)]) == 0
    capsys.readouterr()
    second = tmp_path / "second.pt"
    assert main([*base, "--init", str(first), "--out", str(second)]) != 0
    assert "pass --normalization percentile" in capsys.readouterr().err and not second.exists()
    assert main([*base, "--init", str(first), "--normalization", "percentile", "--out", str(second)]) == 0
    assert torch.load(second, map_location="cpu", weights_only=True)["meta"]["normalization"] == "percentile"


def test_an_online_task_learns_the_train_cases_of_a_folder_then_segments(tmp_path, decathlon, capsys):
    task = tmp_path / "task"
    assert main(["online", "--task", str(task), "--dataset", str(decathlon)]) == 0
    learnt = capsys.readouterr().out
    assert learnt.count("learnt ball_") == 4  # the fifth case is the folder's held-out one
    out = tmp_path / "pred.seg.nrrd"
    image = decathlon / "imagesTr" / "ball_4.nii.gz"
    assert main(["online", "--task", str(task), "--image", str(image), "--predict", str(out)]) == 0
    assert out.exists()
    assert main(["online", "--task", str(task)]) == 2  # nothing to learn or segment


def test_first_hints_of_every_kind_are_the_robot_s():
    truth = np.zeros((60, 80), bool)
    truth[20:40, 25:55] = True
    sampler = click_train.TrainingClickSampler(seed=0)
    empty = np.zeros_like(truth)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        click = click_train.first_hint("click", truth, empty, sampler, rng)
        assert click is not None and click.positive and truth[tuple(click.points[0].astype(int))]
        stroke = click_train.first_hint("scribble", truth, empty, sampler, rng)
        assert stroke is not None and stroke.positive and len(stroke.cue_points) >= 5
        assert truth[tuple(stroke.cue_points.astype(int).T)].all()
        box = click_train.first_hint("box", truth, empty, sampler, rng)
        assert box is not None and not len(box.cue_points) and len(box.boxes) == 1
        r0, c0, r1, c1 = box.boxes[0]
        assert abs(r0 - 20) <= 10 and abs(r1 - 39) <= 10 and abs(c0 - 25) <= 10 and abs(c1 - 54) <= 10
        extreme = click_train.first_hint("extreme", truth, empty, sampler, rng)
        assert extreme is not None and extreme.positive and len(extreme.cue_points) == 4
    # a corrective stroke on a mask that is too large is negative
    stroke = click_train.first_hint("scribble", truth, np.ones_like(truth), sampler, np.random.default_rng(0))
    assert stroke is not None and not stroke.positive and not truth[tuple(stroke.cue_points.astype(int).T)].any()


def test_a_flipped_sample_keeps_its_box_on_the_flipped_structure():
    size = 32
    truth = np.zeros((size, size), bool)
    truth[4:12, 6:20] = True
    sample = click_train.Sample(truth.astype(np.float32), truth, truth, [], [], [(3.0, 5.0, 12.0, 20.0)])
    for seed in range(8):
        s = click_train.Sample(sample.image, sample.truth, sample.previous, [], [], list(sample.boxes))
        out = click_train.flip(s, np.random.default_rng(seed), size)
        r0, c0, r1, c1 = out.boxes[0]
        rows, cols = np.nonzero(out.truth)
        assert r0 < rows.min() and rows.max() < r1 and c0 < cols.min() and cols.max() < c1


def test_a_twice_as_wide_network_starts_as_the_narrow_one_and_its_copies_learn_apart():
    """A wider 3D prompt network warm-started from a trained narrow one (``--init`` with
    ``--features`` twice the source's) answers as the source does, through the U-Net's skip
    concatenations and transposed convolutions, and the copies of a channel get different
    gradients (else they would stay copies and the width would add nothing)."""
    from InteractiveSegLib.methods.prompt3d.network import prompt3d_net
    from InteractiveSegLib.training import load_matching

    torch.manual_seed(0)
    narrow, wide = prompt3d_net((4, 4, 8, 8, 16, 4)), prompt3d_net((8, 8, 16, 16, 32, 8))
    counts = load_matching(wide, narrow.state_dict())
    assert counts["fresh"] == [] and counts["widened"] == 0 and counts["grown"] > 0
    x = torch.randn(1, 6, 32, 32, 32)
    narrow.eval()
    wide.eval()
    with torch.no_grad():
        torch.testing.assert_close(wide(x), narrow(x), rtol=1e-4, atol=1e-4)
    wide.train()
    wide(x).mean().backward()
    grad = wide.conv_0.conv_0.conv.weight.grad
    assert not torch.allclose(grad[0::2], grad[1::2])
