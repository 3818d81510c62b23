"""The shipped click engine on real data it never trained on (held-out AAL structures, the
abdominal CT's held-out organs)."""

import numpy as np
import pytest
import torch

from InteractiveSegLib.bench.click import to_ijk
from InteractiveSegLib.checkpoints import save_checkpoint
from InteractiveSegLib.data import datasets
from InteractiveSegLib.engines import create_engine
from InteractiveSegLib.errors import EngineError, ModelError
from InteractiveSegLib.hints import Box, Click
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.methods.click.network import click_fcnn
from InteractiveSegLib.metrics import dice
from InteractiveSegLib.session import Session
from InteractiveSegLib.users.robot import robot_click
from InteractiveSegLib.volume import Volume


@pytest.fixture(scope="module")
def colin():
    return datasets.load("colin27")


@pytest.fixture(scope="module")
def engine(colin):
    e = create_engine("click")
    e.set_image(colin.image)
    return e


def robot_session(colin, engine, name, axis, clicks):
    value = colin.labels.labels.by_name(name).value
    mask = colin.labels.labelmap == value
    areas = mask.sum(axis=tuple(a for a in range(3) if a != axis))
    index = int(np.argmax(areas))
    gt = np.take(mask, index, axis=axis)
    s = Session(colin.image, engine, LabelTable.default([1]))
    dices = []
    for _ in range(clicks):
        c = robot_click(gt, np.take(s.labelmap, index, axis=axis) == 1)
        if c is None:
            break
        step = s.add(Click(to_ijk(c.point, axis, index), 1, c.positive, axis))
        dices.append(dice(gt, np.take(s.labelmap, index, axis=axis) == 1))
    return dices, step


@pytest.mark.parametrize("name, axis", [("Thalamus_R", 0), ("Putamen_R", 1), ("Caudate_R", 2)])
def test_held_out_structure_on_every_orientation(colin, engine, name, axis):
    dices, step = robot_session(colin, engine, name, axis, clicks=5)
    assert max(dices) > 0.75, dices
    # the answer lies on the clicked slice only
    assert step.region[axis].stop - step.region[axis].start == 1


def test_inference_runs_on_an_roi_not_the_whole_slice(colin, engine):
    value = colin.labels.labels.by_name("Caudate_R").value
    k = int(np.argmax((colin.labels.labelmap == value).sum(axis=(1, 2))))
    j, i = np.argwhere(colin.labels.labelmap[k] == value).mean(axis=0).astype(int)
    s = Session(colin.image, engine, LabelTable.default([1]))
    step = s.add(Click((int(i), int(j), k), 1, True, 0))
    rows, cols = step.region[1], step.region[2]
    assert (rows.stop - rows.start) * (cols.stop - cols.start) < 217 * 181


def test_boxes_are_refused_with_a_clear_message(colin, engine):
    s = Session(colin.image, engine, LabelTable.default([1]))
    with pytest.raises(EngineError, match="does not take box hints"):
        s.add(Box((10, 10, 50), (40, 40, 50)))
    assert not s.labelmap.any() and not s.history


def test_a_model_that_does_not_load_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="does not load"):
        create_engine("click", model_path=bad)
    with pytest.raises(ModelError, match="does not exist"):
        create_engine("click", model_path=tmp_path / "none.pt")
    other = tmp_path / "other.pt"
    save_checkpoint(other, "click_fcnn", {"net": {"features": [8, 8, 16, 16, 32, 8]}}, click_fcnn(), {})
    with pytest.raises(ModelError, match="does not match"):
        create_engine("click", model_path=other)
    torch.save({"arch": "vmn", "state_dict": {}}, tmp_path / "vmn.pt")
    with pytest.raises(ModelError, match="expected 'click_fcnn'"):
        create_engine("click", model_path=tmp_path / "vmn.pt")


@pytest.mark.parametrize("name", ["liver", "spleen", "kidney_right"])
def test_ct_organs_never_trained_on_are_segmented_and_corrections_keep_helping(name, shared_data):
    """Abdominal CT (the trained structures are left-sided or odd-numbered): a held-out
    organ on its largest axial slice, ten robot clicks."""
    ct = datasets.load("ct-abdomen")
    engine = create_engine("click")
    engine.set_image(ct.image)
    assert engine.modality == "ct"
    dices, _ = robot_session(ct, engine, name, 0, clicks=10)
    assert dices[4] > 0.75, dices
    assert max(dices[5:]) >= dices[4] - 0.02, dices  # later clicks do not undo what five gave


def test_declared_modality_wins_and_a_user_can_override_it(colin):
    ct_like = Volume(colin.image.array, colin.image.geometry, modality="ct")
    e = create_engine("click")
    e.set_image(ct_like)
    assert e.modality == "ct"
    e = create_engine("click", modality="mr")
    e.set_image(ct_like)
    assert e.modality == "mr"
