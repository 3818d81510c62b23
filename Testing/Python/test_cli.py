"""The console script end to end: demo, bench on user-supplied files, segment, errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from InteractiveSegLib.cli.main import main
from InteractiveSegLib.data import datasets
from InteractiveSegLib.hints import Click, to_json
from InteractiveSegLib.io import read_labels, write_volume
from InteractiveSegLib.volume import Geometry, Volume


@pytest.fixture(scope="module")
def crop_files(tmp_path_factory):
    """A real Colin27 crop with two held-out AAL structures, written as a user's own files."""
    lv = datasets.load("colin27")
    sl = (slice(70, 90), slice(90, 170), slice(50, 130))
    d = tmp_path_factory.mktemp("data")
    lab = lv.labels.labelmap[sl]
    keep = np.isin(lab, [72, 74])  # Caudate_R, Putamen_R
    img = write_volume(d / "crop.nii.gz", Volume(lv.image.array[sl], lv.image.geometry))
    labels = write_volume(d / "crop_labels.nrrd", np.where(keep, lab, 0).astype(np.uint8), lv.image.geometry)
    return img, labels


def test_bench_on_user_files_writes_the_documented_json(tmp_path, crop_files):
    img, labels = crop_files
    out = tmp_path / "b.json"
    code = main(
        [
            "bench",
            "--engines",
            "click,growcut",
            "--image",
            str(img),
            "--labels",
            str(labels),
            "--max-slices",
            "2",
            "--max-clicks",
            "4",
            "--json",
            str(out),
            "--markdown",
            str(tmp_path / "b.md"),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report["machine"]["cpu_threads"] >= 1 and "bench" in report["command"]
    engines = [r["engine"] for r in report["results"]]
    assert engines == ["click", "growcut"]
    for r in report["results"]:
        assert r["mode"] == "2d" and r["hint"] == "click" and r["data"] == "crop"
        assert set(r["dice_at"]) == {"0", "1", "2", "3", "5", "10"}
        assert all(0.0 <= v <= 1.0 for v in r["dice_at"].values())
        assert r["dice_at"]["0"] == 0.0 and r["dice_at"]["3"] >= r["dice_at"]["1"] - 0.2
        assert 1 <= r["noc85"] <= 20 and r["noc85"] <= r["noc90"]
        assert r["ms_per_interaction"]["median"] > 0 and r["peak_rss_mb"] > 0
        assert set(r["per_structure"]) == {"Segment_72", "Segment_74"}
    assert "| click | crop |" in (tmp_path / "b.md").read_text()


def test_demo_writes_a_named_coloured_segmentation_and_an_overlay(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--clicks", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("Dice") >= 5
    seg = read_labels(tmp_path / "colin27_demo.seg.nrrd")
    assert [e.name for e in seg.labels] == ["Caudate_R", "Putamen_R", "Thalamus_R", "Insula_R"]
    assert len({e.color for e in seg.labels}) == 4
    assert set(np.unique(seg.labelmap)) <= {0, 1, 2, 3, 4} and (seg.labelmap > 0).sum() > 100
    png = Image.open(tmp_path / "colin27_demo_axial.png")
    assert png.size[0] > 300 and png.mode == "RGB"


def test_segment_applies_a_hints_file(tmp_path, crop_files):
    img, _ = crop_files
    hints = tmp_path / "hints.json"
    hints.write_text(to_json([Click((40, 30, 10), label=2, axis=0)]))
    assert main(["segment", "--image", str(img), "--hints", str(hints), "--out", str(tmp_path / "o.seg.nrrd")]) == 0
    seg = read_labels(tmp_path / "o.seg.nrrd")
    assert seg.labels.values == [2] and seg.labelmap[10].any() and not seg.labelmap[11].any()


def test_bad_input_is_a_message_and_exit_code_2(tmp_path, crop_files, capsys):
    img, _ = crop_files
    hints = tmp_path / "hints.json"
    hints.write_text(to_json([Click((999, 30, 10))]))
    out = tmp_path / "o.seg.nrrd"
    assert main(["segment", "--image", str(img), "--hints", str(hints), "--out", str(out)]) == 2
    assert "outside the volume" in capsys.readouterr().err and not out.exists()
    (tmp_path / "bad.nii.gz").write_bytes(b"nope")
    assert main(["segment", "--image", str(tmp_path / "bad.nii.gz"), "--hints", str(hints), "--out", str(out)]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing hints", "does not exist"),
        ("hints folder", "is a folder"),
        ("binary hints", "not UTF-8"),
        ("no hint", "holds no hint"),
        ("output folder", "is a folder"),
        ("output suffix", "must end in .seg.nrrd"),
        ("model for click", "for the fine-tuning engines"),
        ("spec not json", "not valid JSON"),
    ],
)
def test_bad_arguments_are_refused_before_any_work_and_change_nothing(tmp_path, crop_files, capsys, case, expected):
    img, _ = crop_files
    good = tmp_path / "hints.json"
    good.write_text(to_json([Click((30, 40, 10))]))
    out = tmp_path / "o.seg.nrrd"
    out.write_bytes(b"the user's earlier result")
    hints, target, extra = good, out, []
    if case == "missing hints":
        hints = tmp_path / "none.json"
    elif case == "hints folder":
        hints = tmp_path
    elif case == "binary hints":
        hints = tmp_path / "bin.json"
        hints.write_bytes(b"\xff\xfe\x00")
    elif case == "no hint":
        hints = tmp_path / "empty.json"
        hints.write_text("[]")
    elif case == "output folder":
        target = tmp_path / "folder.seg.nrrd"
        target.mkdir()
    elif case == "output suffix":
        target = tmp_path / "o.nrrd"
    elif case == "model for click":
        extra = ["--model", str(tmp_path / "m.pt")]
    elif case == "spec not json":
        (tmp_path / "spec.json").write_text("{nope")
        extra = ["--engine", "finetune", "--model-spec", str(tmp_path / "spec.json")]
    code = main(["segment", "--image", str(img), "--hints", str(hints), "--out", str(target), *extra])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err
    assert out.read_bytes() == b"the user's earlier result" and not (tmp_path / "o.nrrd").exists()


def test_an_unexpected_failure_is_one_line_not_a_traceback(tmp_path, crop_files, capsys, monkeypatch):
    import InteractiveSegLib.session as session

    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(session.Session, "add", broken)
    img, _ = crop_files
    hints = tmp_path / "hints.json"
    hints.write_text(to_json([Click((30, 40, 10))]))
    code = main(["segment", "--image", str(img), "--hints", str(hints), "--out", str(tmp_path / "o.seg.nrrd")])
    err = capsys.readouterr().err
    assert code == 3 and "unexpected RuntimeError: something inside broke" in err and "Traceback" not in err
    monkeypatch.setenv("INTERACTIVESEG_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["segment", "--image", str(img), "--hints", str(hints), "--out", str(tmp_path / "o.seg.nrrd")])


def test_sim_bench_ablation_on_a_users_volume_of_the_task(tmp_path, capsys):
    """Multi-class bench on a user volume of the task (held-out right hemisphere of Colin27,
    classes given by label value): per-class Dice/IoU per round, each ablation system named."""
    from InteractiveSegLib.data.multiclass_tasks import load_task

    data = load_task("colin27-deep-grey")
    lv = datasets.load("colin27")
    lo, hi = data.side_cols("test")
    sl = (slice(60, 100), slice(60, 190), slice(lo, hi))
    img = write_volume(tmp_path / "right.nii.gz", Volume(lv.image.array[sl], lv.image.geometry))
    labels = write_volume(tmp_path / "right_labels.nrrd", data.target[sl], lv.image.geometry)
    out = tmp_path / "sim.json"
    code = main(
        [
            "bench",
            "--engines",
            "sim,growcut",
            "--ablation",
            "--image",
            str(img),
            "--labels",
            str(labels),
            "--axes",
            "0,2",
            "--max-slices",
            "2",
            "--rounds",
            "2",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    results = json.loads(out.read_text())["results"]
    systems = ["auto", "sdg-base", "sdg-cim", "ddg-cim", "ddg-sim", "growcut"]
    assert [(r["engine"], r["robot"]) for r in results] == [
        (e, robot) for robot in ("largest", "per-class") for e in systems
    ]
    for r in results:
        assert r["mode"] == "2d" and r["sessions"] == 4
        assert set(r["dice_at"]) == {"0", "1", "2"} and set(r["per_class"]) == {
            "background",
            "caudate",
            "putamen",
            "pallidum",
            "thalamus",
        }
        assert all(0.0 <= v <= 1.0 for v in r["dice_at"].values())
        assert r["ms_per_interaction"]["median"] > 0
    by = {r["engine"]: r for r in results if r["robot"] == "largest"}
    assert by["auto"]["dice_at"]["0"] == by["auto"]["dice_at"]["2"]  # the automatic system ignores clicks
    assert by["ddg-sim"]["ms_per_interaction_256"]["slice"] == [256, 256]
    per_class = {r["engine"]: r for r in results if r["robot"] == "per-class"}
    assert "ms_per_interaction_256" not in per_class["ddg-sim"]  # latency once, with the first robot
    # the paper's virtual user clicks every class that misses a region: never fewer clicks than the BENCHMARK robot
    assert per_class["ddg-sim"]["clicks_per_interaction"] >= by["ddg-sim"]["clicks_per_interaction"] >= 1
    for r in (by["ddg-sim"], per_class["ddg-sim"]):
        assert r["smallest_class"] in r["structures"]
        assert set(r["paired"]) == set(systems) - {"ddg-sim"}
        assert set(r["paired"]["ddg-cim"]["pallidum"]) <= {"0", "1", "2"}
    capsys.readouterr()
    assert main(["bench", "--engines", "sim,click", "--image", str(img), "--labels", str(labels)]) == 2
    assert "cannot measure ['click']" in capsys.readouterr().err


def test_segment_with_the_multiclass_engine_names_the_models_classes(tmp_path, crop_files):
    from InteractiveSegLib.hints import SliceAuto

    img, _ = crop_files
    hints = tmp_path / "hints.json"
    hints.write_text(to_json([SliceAuto(10, 0), Click((30, 40, 10), label=2, axis=0)]))
    out = tmp_path / "sim.seg.nrrd"
    assert main(["segment", "--image", str(img), "--hints", str(hints), "--out", str(out), "--engine", "sim"]) == 0
    seg = read_labels(out)
    assert [e.name for e in seg.labels] == ["caudate", "putamen", "pallidum", "thalamus"]
    assert seg.labelmap[10].any() and not np.delete(seg.labelmap, 10, axis=0).any()


def test_vmn_bench_per_volume_rounds_on_a_users_volume(tmp_path, capsys):
    """3D bench on a user volume: per-volume results keyed by round, propagation time,
    the quality head's correlation, each selection mode and the two baselines named."""
    lv = datasets.load("colin27")
    names = {v: lv.labels.labels[v].name for v in lv.structures("test")}
    keep = [v for v, n in names.items() if n in ("Putamen_R", "Caudate_R")]
    sl = (slice(52, 104), slice(95, 160), slice(85, 133))  # both structures whole, with a margin
    img = write_volume(tmp_path / "block.nii.gz", Volume(lv.image.array[sl], lv.image.geometry))
    lab = np.where(np.isin(lv.labels.labelmap[sl], keep), lv.labels.labelmap[sl], 0).astype(np.uint8)
    labels = write_volume(tmp_path / "block_labels.nrrd", lab, lv.image.geometry)
    out = tmp_path / "vmn.json"
    code = main(
        [
            "bench",
            "--engines",
            "vmn,vmn-mem0,vmn-growcut",
            "--hint",
            "box,extreme",
            "--select",
            "quality,oracle",
            "--rounds",
            "2",
            "--image",
            str(img),
            "--labels",
            str(labels),
            "--no-speed",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    results = json.loads(out.read_text())["results"]
    assert len(results) == 3 * 2 * 2
    for r in results:
        assert r["mode"] == "3d" and r["hint"] in ("box", "extreme") and r["select"] in ("quality", "oracle")
        assert set(r["dice_at"]) == {"1", "2"} and len(r["structures"]) == 2
        assert all(0.0 <= v <= 1.0 for v in r["dice_at"].values())
        assert r["s_per_propagation"] > 0
    vmn = [r for r in results if r["engine"] == "vmn"]
    assert all(r["quality_pairs"] > 0 and -1 <= r["quality_pearson"] <= 1 for r in vmn)
    for hint in ("box", "extreme"):  # paired: every selection mode gets the same round-1 hint
        first = {r["select"]: r["dice_at"]["1"] for r in vmn if r["hint"] == hint}
        assert first["quality"] == first["oracle"]
    capsys.readouterr()
    assert main(["bench", "--engines", "vmn", "--hint", "lasso", "--image", str(img), "--labels", str(labels)]) == 2
    assert "--hint 'lasso'" in capsys.readouterr().err


def test_3d_bench_on_a_thick_slice_copy_of_a_users_volume(tmp_path, crop_files, capsys):
    """--thick-slices: the same anatomy as a thick-slice scan (the crop's 20 slices, 2 per
    thick slice), every engine and baseline on it; a thickness the volume cannot take exits 2."""
    img, labels = crop_files
    out = tmp_path / "thick.json"
    args = ["bench", "--engines", "prompt3d,vmn-growcut", "--hint", "box", "--rounds", "2", "--no-speed"]
    code = main([*args, "--image", str(img), "--labels", str(labels), "--thick-slices", "2", "--json", str(out)])
    assert code == 0
    results = json.loads(out.read_text())["results"]
    assert [r["engine"] for r in results] == ["prompt3d", "vmn-growcut"]
    for r in results:
        assert r["data"] == "crop-thick2" and r["shape"] == [10, 80, 80] and len(r["structures"]) == 2
        assert all(0.0 <= v <= 1.0 for v in r["dice_at"].values())
    capsys.readouterr()
    assert main([*args, "--image", str(img), "--labels", str(labels), "--thick-slices", "21"]) == 2
    assert "--thick-slices 21: expected 1 to 20 for crop" in capsys.readouterr().err


def test_online_task_learns_a_labelled_volume_then_segments_and_survives_a_restart(tmp_path, crop_files, capsys):
    img, labels = crop_files
    task = tmp_path / "task"
    out = tmp_path / "f.seg.nrrd"
    assert main(["online", "--task", str(task), "--image", str(img), "--predict", str(out)]) == 2
    assert "has not learnt anything" in capsys.readouterr().err and not out.exists()
    assert main(["online", "--task", str(task), "--image", str(img), "--labels", str(labels), "--structure", "74"]) == 0
    assert "1 volumes, 1 training rounds" in capsys.readouterr().out
    assert (task / "checkpoint.pt").exists() and (task / "buffer.json").exists()
    assert main(["online", "--task", str(task), "--image", str(img), "--predict", str(out), "--name", "Putamen_R"]) == 0
    seg = read_labels(out)
    assert seg.labelmap.shape == (20, 80, 80) and seg.labels[1].name == "Putamen_R"
    assert main(["online", "--task", str(task), "--image", str(img), "--labels", str(labels), "--structure", "99"]) == 2
    assert "no voxel of 99" in capsys.readouterr().err


def test_a_corrupt_task_or_labels_on_another_grid_give_a_message_and_change_nothing(tmp_path, crop_files, capsys):
    """The online command's bad inputs: a task checkpoint or replay buffer cut short or
    replaced, labels of another volume. Each is one line, exit 2, the task files untouched."""
    img, labels = crop_files
    task = tmp_path / "task"
    assert main(["online", "--task", str(task), "--image", str(img), "--labels", str(labels), "--structure", "74"]) == 0
    capsys.readouterr()
    good = {name: (task / name).read_bytes() for name in ("checkpoint.pt", "buffer.json")}
    other = tmp_path / "other_labels.nrrd"
    write_volume(other, np.zeros((10, 80, 80), np.uint8), Geometry())
    cases = [
        ("checkpoint.pt", good["checkpoint.pt"][: len(good["checkpoint.pt"]) // 2], "checkpoint.pt is corrupt"),
        ("checkpoint.pt", b"\x80\x04not a checkpoint", "checkpoint.pt is corrupt"),
        ("buffer.json", b'{"buffer": [1, 2', "buffer.json is corrupt"),
        ("buffer.json", b'{"unexpected": true}', "buffer.json is corrupt"),
        (None, b"", "differs from image"),
    ]
    for name, data, expected in cases:
        if name is not None:
            (task / name).write_bytes(data)
        labels_arg = str(other) if name is None else str(labels)
        code = main(["online", "--task", str(task), "--image", str(img), "--labels", labels_arg])
        err = capsys.readouterr().err
        assert code == 2 and expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        if name is not None:
            assert (task / name).read_bytes() == data  # left for the user to restore, not overwritten
            (task / name).write_bytes(good[name])
    assert {n: (task / n).read_bytes() for n in good} == good


def test_finetune_bench_on_a_users_volume_runs_2d_and_3d_sessions(tmp_path, crop_files):
    """The fine-tuning suite end to end on a user's files: one scribble round per session,
    2D and 3D, every figure of ../shared/BENCHMARK.md and the iterations of each round."""
    img, labels = crop_files
    out = tmp_path / "ft.json"
    args = ["bench", "--engines", "finetune,finetune-3d", "--image", str(img), "--labels", str(labels)]
    args += ["--max-slices", "1", "--rounds", "1", "--max-structures", "1", "--no-speed", "--json", str(out)]
    assert main(args) == 0
    results = json.loads(out.read_text())["results"]
    assert [(r["engine"], r["mode"]) for r in results] == [("finetune", "2d"), ("finetune-3d", "3d")]
    for r in results:
        assert set(r["dice_at"]) == {"0", "1"} and all(0.0 <= v <= 1.0 for v in r["dice_at"].values())
        assert r["iterations"]["median"] >= 1 and r["ms_per_interaction"]["median"] > 0


def test_an_online_stream_too_short_for_a_batch_is_refused_with_the_figure(tmp_path, capsys):
    args = ["bench", "--engines", "online", "--stream", "--stream-length", "2", "--eval-volumes", "1", "--no-speed"]
    assert main(args) == 2
    assert "--stream-length 3 or more" in capsys.readouterr().err


def test_online_stream_bench_writes_one_documented_result_per_engine(tmp_path):
    """The smallest stream that makes a replay batch: a learning run and an interactive run,
    each a full ../shared/BENCHMARK.md result with one row per held-out volume."""
    out = tmp_path / "online.json"
    args = ["bench", "--engines", "online-dynamic,online-cold", "--stream", "--stream-length", "3"]
    args += ["--eval-volumes", "1", "--rounds", "1", "--no-speed", "--json", str(out)]
    assert main(args) == 0
    results = json.loads(out.read_text())["results"]
    assert [r["engine"] for r in results] == ["online-dynamic", "online-cold"]
    for r in results:
        assert list(r["per_structure"]) == r["structures"] and len(r["structures"]) == 1
        row = r["per_structure"][r["structures"][0]]
        assert row["dice_at"] == r["dice_at"]  # one held-out volume: its figures are the mean


def _bad_image(tmp_path, kind):
    """An image file a careless or hostile user might give."""
    import nibabel as nib

    a = np.random.default_rng(0).random((12, 16, 20)).astype(np.float32)
    if kind == "truncated":
        nib.save(nib.Nifti1Image(a, np.eye(4)), tmp_path / "ok.nii.gz")
        raw = (tmp_path / "ok.nii.gz").read_bytes()
        (tmp_path / "bad.nii.gz").write_bytes(raw[: len(raw) // 2])
    elif kind == "nan":
        a[2, 3, 4] = np.nan
        nib.save(nib.Nifti1Image(a, np.eye(4)), tmp_path / "bad.nii.gz")
    elif kind == "2d":
        nib.save(nib.Nifti1Image(a[0], np.eye(4)), tmp_path / "bad.nii.gz")
    elif kind == "empty":
        (tmp_path / "bad.nii.gz").write_bytes(b"")
    elif kind == "4d":
        nib.save(nib.Nifti1Image(np.stack([a, a], axis=-1), np.eye(4)), tmp_path / "bad.nii.gz")
    elif kind == "rgb":
        import SimpleITK as sitk

        rgb = (np.stack([a, a, a], axis=-1) * 255).astype(np.uint8)
        sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(tmp_path / "bad.nrrd"))
        return tmp_path / "bad.nrrd"
    elif kind == "missing":
        return tmp_path / "no-such-file.nii.gz"
    return tmp_path / "bad.nii.gz"


class _RunsCode:
    """A pickle that would run a shell command when loaded (torch's weights_only refuses it)."""

    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def _bad_model(tmp_path, kind):
    """A model file a careless or hostile user might give to the fine-tuning engine."""
    import torch

    path = tmp_path / "m.pt"
    if kind == "garbage":
        path.write_bytes(b"not a model")
    elif kind == "code":
        torch.save({"w": torch.zeros(1)}, path)
        spec = {"labels": ["background", "x"], "network": "subprocess:run", "network_kwargs": {"args": ["true"]}}
        (tmp_path / "m.pt.json").write_text(json.dumps(spec))
    elif kind == "pickle":
        torch.save({"state_dict": _RunsCode()}, path)
    elif kind == "wrong-output":

        class Shrinks(torch.nn.Module):  # two classes promised, a quarter of the size given
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(1, 2, 1)

            def forward(self, x):
                return torch.nn.functional.avg_pool2d(self.conv(x), 4)

        torch.jit.save(torch.jit.script(Shrinks()), str(path))
        (tmp_path / "m.pt.json").write_text(json.dumps({"labels": ["background", "x"]}))
    return path


@pytest.mark.parametrize(
    "case, expected",
    [
        ('{"type": "click", "ijk": [30, 40, 10], "positive": "false"}', "must be true or false"),
        ('{"type": "click", "ijk": [30, 40, 10], "axis": 0.0}', "'axis' must be an integer"),
        ('{"type": "click", "ijk": [Infinity, 40, 10]}', "not a finite number"),
        ('{"type": "click", "ijk": null}', "a point must be a list of numbers"),
        ("42", "an object or a list of objects"),
        ('{"type": "lasso", "ijk": [1, 2, 3]}', "unknown hint type"),
        ('{"type": "click", "ijk": [999, 40, 10]}', "outside the volume"),
        ('{"type": "extreme_points", "points_ijk": [[30,4,1],[30,70,2],[2,40,3],[70,40,4]]}', "spans slices"),
        ("image:truncated", "truncated"),
        ("image:nan", "NaN"),
        ("image:2d", "3D"),
        ("image:empty", "cannot read"),
        ("image:4d", "3D"),
        ("image:rgb", "components per voxel"),
        ("image:missing", "no such file"),
        ("hints:missing", "does not exist"),
        ("out:folder", "is a folder"),
        ("model:garbage", "does not load"),
        ("model:code", "trust-code"),
        ("model:pickle", "does not load"),
        ("model:wrong-output", "output"),
    ],
)
def test_the_bad_input_corpus_gives_a_message_exit_2_and_writes_nothing(tmp_path, crop_files, capsys, case, expected):
    """Every bad input through the CLI: one clear line, exit 2, no traceback, the earlier
    output left as it was."""
    img, _ = crop_files
    hints = tmp_path / "hints.json"
    hints.write_text(to_json([Click((30, 40, 10))]))
    out = tmp_path / "o.seg.nrrd"
    out.write_bytes(b"the user's earlier result")
    extra: list[str] = []
    if case.startswith("image:"):
        img = _bad_image(tmp_path, case.split(":")[1])
    elif case.startswith("model:"):
        extra = ["--engine", "finetune", "--model", str(_bad_model(tmp_path, case.split(":")[1]))]
    elif case == "hints:missing":
        hints = tmp_path / "no-hints.json"
    elif case == "out:folder":
        out = tmp_path / "folder.seg.nrrd"
        out.mkdir()
    else:
        hints.write_text(case)
    code = main(["segment", "--image", str(img), "--hints", str(hints), "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert out.is_dir() or out.read_bytes() == b"the user's earlier result"
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()  # no code ran
