"""Scribble fine-tuning through the session store (real MRML) on another engine's output:
the segmentation keeps its segments, the model's class is matched by name, a class the
model never knew gets a channel, several labels are one undoable step, and the weights
adapted on the volume are kept until reset; the source model never changes."""

from __future__ import annotations

import numpy as np
import torch
from test_finetune_parts import SPEC2D, bright_detector, disks_volume
from test_slicer_glue import IJK_TO_RAS, glue_modules

from InteractiveSegLib.hints import Scribble
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.methods.finetune.model import SegmentationModel


def _stroke(points_rc, label, positive=True):
    return Scribble([(c, r, 1) for r, c in points_rc], label=label, positive=positive, axis=0)


def test_finetune_on_an_existing_segmentation(slicer_app, volume_node):
    glue = glue_modules()

    vol_lib, disk, square = disks_volume()
    image = np.repeat(vol_lib.array, 3, axis=0)  # three identical slices: a 3D volume
    vol = volume_node(image, IJK_TO_RAS)
    # "another engine's output": a segment named "other" (value 1) holding a corner patch
    seg = glue.segment_io.new_segmentation_node(vol)
    theirs = LabelTable.default([1], {1: "other"})
    ids = glue.segment_io.ensure_segments(seg, theirs, vol)
    patch = np.zeros(image.shape, np.uint8)
    patch[1, :6, :6] = 1
    full = tuple(slice(0, n) for n in image.shape)
    glue.segment_io.write_region(seg, ids, patch, full, vol)

    model = SegmentationModel.from_module(bright_detector(), SPEC2D)
    source = {n: p.clone() for n, p in model.module.named_parameters()}
    store = glue.session_store.SessionStore()
    kw = {"model": model, "layers": 1, "iterations": 200, "region_growing": False}
    # the model's class "disk" is added beside "other" (free value 2); "square" is new to the model
    labels = glue.session_store.adopt_labels(
        glue.segment_io.labels_from_segmentation(seg), LabelTable.default([1], {1: "disk"})
    )
    labels.add(3, "square")
    inside = [(44, c) for c in range(39, 50)]
    outside = [(30, c) for c in range(30, 60)] + [(58, c) for c in range(30, 60)]
    disk_stroke = [(20, c) for c in range(14, 27)]
    hints = [_stroke(disk_stroke, 2), _stroke(inside, 3), _stroke(outside, 3, positive=False)]
    store.segment(vol, hints, "finetune", seg, labels, group=True, **kw)
    session = store.session(vol)
    assert len(session.history) == 1  # three hints, two labels, one step
    written = glue.segment_io.labelmap_from_segmentation(seg, vol, session.labels)
    np.testing.assert_array_equal(written, session.labelmap)
    lab = session.labelmap[1]
    assert (lab[:6, :6] == 1).all()  # the other engine's segment is untouched
    assert (lab[disk] == 2).mean() > 0.9 and (lab[square] == 3).mean() > 0.9
    assert all(lab[r, c] == 3 for r, c in inside)
    assert session.engine._bound == {2: 1} and session.engine.new_labels == [3]

    # the same engine options: the session (and its adapted weights) is reused, not rebuilt
    store.segment(vol, [_stroke([(10, 40)], 3, positive=False)], "finetune", seg, labels, **kw)
    assert store.session(vol) is session and len(session.history) == 2
    assert store.reset_adaptation(vol)
    assert all(torch.equal(source[n], p) for n, p in model.module.named_parameters())

    before = glue.segment_io.labelmap_from_segmentation(seg, vol, session.labels)
    store.undo(vol, seg)
    store.undo(vol, seg)
    after_undo = glue.segment_io.labelmap_from_segmentation(seg, vol, session.labels)
    np.testing.assert_array_equal(after_undo, patch)  # back to the other engine's output, bit for bit
    store.redo(vol, seg)
    assert not np.array_equal(glue.segment_io.labelmap_from_segmentation(seg, vol, session.labels), patch)
    assert before.shape == after_undo.shape


def test_adopt_labels_keeps_existing_and_adds_missing():
    glue = glue_modules()

    existing = LabelTable.default([1, 4], {1: "Caudate_R", 4: "lesion"})
    model = LabelTable.default([1, 2], {1: "caudate", 2: "putamen"})
    t = glue.session_store.adopt_labels(existing, model)
    assert [(e.value, e.name) for e in t] == [(1, "Caudate_R"), (4, "lesion"), (5, "putamen")]


def test_a_model_that_runs_code_loads_only_once_the_user_says_yes(slicer_app, volume_node, tmp_path):
    """The UI's path (``SegmentationLogic.prepare_trusting``): a spec naming a network
    outside MONAI is refused until the user answers yes; the answer is asked once."""
    import pytest

    from InteractiveSegLib.errors import UntrustedCodeError
    from InteractiveSegSlicer.logic import SegmentationLogic

    glue_modules()
    vol_lib, _, _ = disks_volume()
    vol = volume_node(np.repeat(vol_lib.array, 3, axis=0), IJK_TO_RAS)
    torch.save(bright_detector().state_dict(), tmp_path / "conv.pt")
    spec = {**SPEC2D, "network": "test_finetune_parts:bright_detector"}  # code outside MONAI
    (tmp_path / "conv.pt.json").write_text(__import__("json").dumps(spec))
    logic = SegmentationLogic()
    asked: list[str] = []
    hints = [_stroke([(44, c) for c in range(39, 50)], 1)]
    model = str(tmp_path / "conv.pt")
    with pytest.raises(UntrustedCodeError, match="trust"):
        logic.prepare_trusting(lambda m: asked.append(m) or False, vol, hints, "finetune", model=model)
    assert len(asked) == 1 and "test_finetune_parts:bright_detector" in asked[0]
    assert logic.store.session(vol) is None and model not in logic.trusted_models  # nothing changed
    pending = logic.prepare_trusting(lambda m: asked.append(m) or True, vol, hints, "finetune", model=model)
    logic.store.compute(pending)
    seg = logic.store.commit(pending)
    assert seg is not None and logic.store.session(vol).labelmap.any()
    logic.prepare_trusting(
        lambda m: asked.append(m) or True, vol, hints, "finetune", pending.segmentationNode, model=model
    )
    assert len(asked) == 2  # the yes is remembered for the session
