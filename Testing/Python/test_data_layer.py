"""The data layer: named sources, user folders (Decathlon, nnU-Net v2, pairs), explicit splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from InteractiveSegLib.bench.harness import shipped_data
from InteractiveSegLib.data import datasets, folders
from InteractiveSegLib.data.splits import ODD_NUMBER_OR_LEFT, SPLIT_RULES, name_is_train, split_structures
from InteractiveSegLib.errors import ConfigError, GeometryError, ImageError
from InteractiveSegLib.io import geometry_to_sitk, write_volume
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.volume import Geometry

SHAPE = (6, 8, 10)


def _case(i: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(i)
    image = rng.normal(100.0, 10.0, SHAPE).astype(np.float32)
    lab = np.zeros(SHAPE, np.uint8)
    lab[1:4, 2:5, 2:6] = 1
    lab[2:5, 5:7, 6:9] = 2
    return image, lab


def _write(path: Path, arr: np.ndarray) -> None:
    write_volume(path, arr, Geometry(spacing=(1.0, 1.0, 2.0)))


def _msd(root: Path, n: int = 5, **extra: object) -> Path:
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for i in range(n):
        image, lab = _case(i)
        _write(root / "imagesTr" / f"liver_{i:03d}.nii.gz", image)
        _write(root / "labelsTr" / f"liver_{i:03d}.nii.gz", lab)
        training.append({"image": f"./imagesTr/liver_{i:03d}.nii.gz", "label": f"./labelsTr/liver_{i:03d}.nii.gz"})
    meta = {
        "name": "Liver",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "liver", "2": "cancer"},
        "numTraining": n,
        "training": training,
        "test": ["./imagesTs/liver_100.nii.gz"],
        **extra,
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_decathlon_folder_lists_cases_splits_every_fifth_and_reads_lazily(tmp_path):
    d = _msd(tmp_path / "Task03_Liver", n=5)
    folder = folders.scan(d)
    assert folder.layout == "msd" and folder.modality == "ct" and folder.label_names == {1: "liver", 2: "cancer"}
    assert [c.name for c in folder.cases] == [f"liver_{i:03d}" for i in range(5)]
    # the unlabelled test image listed in dataset.json does not count: every 5th case is test
    assert [c.split for c in folder.cases] == ["train"] * 4 + ["test"]
    vols = datasets.resolve([str(d)])
    assert [v.name for v in vols] == [c.name for c in folder.cases]
    assert not any(v.loaded for v in vols)  # listed, not read
    assert "index % 5 == 4" in vols[4].split_description() and not any(v.loaded for v in vols)
    v = vols[0]
    assert v.modality == "ct" and v.image.shape == SHAPE and v.loaded
    assert [e.name for e in v.labels.labels] == ["liver", "cancer"]
    assert v.structures("train") == [1, 2] and v.structures("test") == []
    assert vols[4].structures("test") == [1, 2] and vols[4].structures("train") == []
    v.release()
    assert not v.loaded and v.mask(1).sum() == 3 * 3 * 4


def test_decathlon_listed_validation_cases_are_test(tmp_path):
    d = _msd(tmp_path / "msd", n=4, validation=[{"image": "./imagesTr/liver_001.nii.gz"}])
    assert [c.split for c in folders.list_cases(d)] == ["train", "test", "train", "train"]
    assert "listed in dataset.json" in folders.list_cases(d)[1].reason


def test_decathlon_4d_image_uses_channel_0(tmp_path):
    d = _msd(tmp_path / "msd", n=1, modality={"0": "FLAIR", "1": "T1w"})
    image, _ = _case(0)
    geometry = Geometry(spacing=(1.0, 1.0, 2.0))
    channels = [geometry_to_sitk(sitk.GetImageFromArray(a), geometry) for a in (image, image * 0 + 7)]
    sitk.WriteImage(sitk.JoinSeries(channels), str(d / "imagesTr" / "liver_000.nii.gz"))
    [v] = datasets.resolve([str(d)])
    assert v.modality == "mr" and v.image.shape == SHAPE
    np.testing.assert_allclose(v.image.array, image)


def test_nnunet_v2_folder(tmp_path):
    d = tmp_path / "Dataset001_Spleen"
    (d / "imagesTr").mkdir(parents=True)
    (d / "labelsTr").mkdir()
    for i in range(6):
        image, lab = _case(i)
        _write(d / "imagesTr" / f"spl_{i}_0000.nii.gz", image)
        _write(d / "imagesTr" / f"spl_{i}_0001.nii.gz", image * 2)  # a second channel, ignored
        _write(d / "labelsTr" / f"spl_{i}.nii.gz", lab)
    meta = {
        "channel_names": {"0": "T2", "1": "ADC"},
        "labels": {"background": 0, "spleen": 1, "hilum": 2, "whole": [1, 2]},
        "numTraining": 6,
        "file_ending": ".nii.gz",
    }
    (d / "dataset.json").write_text(json.dumps(meta))
    folder = folders.scan(d)
    assert folder.layout == "nnunet" and folder.modality == "mr"
    assert folder.label_names == {1: "spleen", 2: "hilum"}
    assert [c.image.name for c in folder.cases][:2] == ["spl_0_0000.nii.gz", "spl_1_0000.nii.gz"]
    assert [c.split for c in folder.cases] == ["train"] * 4 + ["test", "train"]
    v = datasets.resolve([str(d)])[0]
    assert [e.name for e in v.labels.labels] == ["spleen", "hilum"]
    np.testing.assert_allclose(v.image.array, _case(0)[0])


def test_pairs_folders_flat_and_images_labels(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, suffix in enumerate(["_label", "_labels"]):
        image, lab = _case(i)
        _write(flat / f"p{i}.nii.gz", image)
        _write(flat / f"p{i}{suffix}.nii.gz", lab)
    split = tmp_path / "split"
    (split / "images").mkdir(parents=True)
    (split / "labels").mkdir()
    for i in range(3):
        image, lab = _case(i)
        _write(split / "images" / f"q{i}.nrrd", image)
        _write(split / "labels" / f"q{i}.nrrd", lab)
    assert folders.layout(flat) == "pairs" and folders.layout(split) == "pairs"
    vols = datasets.resolve([str(flat), str(split)])
    assert [v.name for v in vols] == ["p0", "p1", "q0", "q1", "q2"]
    assert all(v.modality is None for v in vols)  # no dataset.json: the caller detects it
    assert vols[3].labels.labelmap.max() == 2


def test_folder_errors_are_clear(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(ImageError, match="not a labelled folder"):
        datasets.resolve([str(empty)])
    with pytest.raises(ImageError, match="neither a data set name nor a folder"):
        datasets.resolve([str(tmp_path / "nope")])
    nolabel = tmp_path / "nolabel"
    (nolabel / "images").mkdir(parents=True)
    (nolabel / "labels").mkdir()
    _write(nolabel / "images" / "a.nii.gz", _case(0)[0])
    with pytest.raises(ImageError, match="no labels for a.nii.gz"):
        folders.scan(nolabel)
    missing = _msd(tmp_path / "missing", n=2)
    (missing / "labelsTr" / "liver_001.nii.gz").unlink()
    with pytest.raises(ImageError, match="missing files: liver_001"):
        folders.scan(missing)
    grid = _msd(tmp_path / "grid", n=1)
    _write(grid / "labelsTr" / "liver_000.nii.gz", np.zeros((6, 8, 9), np.uint8))
    [v] = datasets.resolve([str(grid)])
    with pytest.raises(GeometryError, match="case liver_000: .* does not lie on the grid"):
        _ = v.image


def test_ct_abdomen_split_rule_by_name():
    train = ["kidney_left", "rib_left_7", "rib_right_9", "vertebrae_L1", "vertebrae_L3", "vertebrae_T11"]
    test = ["liver", "spleen", "stomach", "pancreas", "aorta", "colon", "kidney_right", "rib_left_8", "vertebrae_T12"]
    assert all(name_is_train(n) for n in train)
    assert not any(name_is_train(n) for n in test)
    table = LabelTable.default(range(1, 5), {1: "liver", 2: "kidney_left", 3: "rib_right_10", 4: "vertebrae_L5"})
    assert split_structures(ODD_NUMBER_OR_LEFT, table, "train") == [2, 4]
    assert split_structures(ODD_NUMBER_OR_LEFT, table, "test") == [1, 3]
    with pytest.raises(ConfigError):
        split_structures(ODD_NUMBER_OR_LEFT, table, "val")
    assert set(datasets.describe_splits()) == set(datasets.ALL_DATASETS)
    assert set(datasets.DATASET_RULES.values()) <= set(SPLIT_RULES)


def test_missing_shared_data_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("INTERACTIVESEG_SHARED_DATA", str(tmp_path))
    datasets.load.cache_clear()
    try:
        with pytest.raises(ImageError, match=f"ct-abdomen.*missing.*{tmp_path}"):
            datasets.load("ct-abdomen")
    finally:
        datasets.load.cache_clear()


def test_shared_sources_load_with_modality_names_and_split(shared_data):
    ct = datasets.load("ct-abdomen")
    assert ct.modality == "ct" and ct.image.array.min() < -500  # Hounsfield units
    names = {ct.labels.labels[v].name for v in ct.structures("train")}
    held = {ct.labels.labels[v].name for v in ct.structures("test")}
    assert len(ct.labels.labels) == 58 and not names & held
    assert {"kidney_left", "rib_left_7", "rib_right_9", "vertebrae_L1", "vertebrae_T11"} <= names
    assert {"liver", "spleen", "stomach", "pancreas", "aorta", "colon", "kidney_right"} <= held
    assert "train: adrenal_gland_left" in ct.split_description()
    tumour = datasets.load("mr-brain-tumor")
    assert tumour.modality == "mr" and [e.name for e in tumour.labels.labels] == ["glioma"]
    assert datasets.load("mr-breast").labels.labels[1].name == "breast_lesion"
    for name in ("mr-brain-tumor", "mr-breast", "mr-prostate-phantom"):
        lv = datasets.load(name)
        assert lv.structures("train") == [] and lv.structures("test") == lv.labels.labels.values
    data = shipped_data(["mr-breast", "mr-brain-tumor"], "test", 10)
    assert [d.name for d in data] == ["mr-breast", "mr-brain-tumor"] and data[0].structures == {1: "breast_lesion"}


def test_colin27_split_unchanged():
    lv = datasets.load("colin27")
    assert lv.modality == "mr" and lv.structures("train")[:4] == [1, 3, 5, 7]
    assert all(v % 2 == 0 for v in lv.structures("test"))
    assert datasets.structures_for_split("mni152", [1, 2], "test") == [1, 2]
    assert datasets.structures_for_split("mni152", [1, 2], "train") == []
    assert datasets.resolve(["colin27,mni152"])[1].name == "mni152"


def test_shipped_data_takes_folders_and_leaves_out_cases_outside_the_split(tmp_path):
    d = _msd(tmp_path / "msd", n=5)
    data = shipped_data([str(d)], "test", 1)
    assert [b.name for b in data] == ["liver_004"] and data[0].structures == {1: "liver", 2: "cancer"}


def test_balls_are_bright_balls_of_their_size_in_mm_held_out_whole():
    lv = datasets.load("balls")
    assert lv.modality == "ct" and lv.structures("train") == [] and lv.structures("test") == [1, 2, 3]
    image, labels = lv.image.array, lv.labels.labelmap
    for value, (*centre, radius) in enumerate(datasets.BALLS, 1):
        ball = labels == value
        extent_mm = [(np.ptp(np.nonzero(ball)[a]) + 1) * s for a, s in enumerate((2.0, 1.0, 1.0))]
        assert all(abs(e - 2 * radius) <= 2.0 for e in extent_mm)  # as wide in mm along every axis
        assert tuple(int(round(c)) for c in np.argwhere(ball).mean(0)) == tuple(centre)
        assert image[ball].mean() > 0 > image[~ball & (labels == 0)].mean()
