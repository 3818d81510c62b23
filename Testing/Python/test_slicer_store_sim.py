"""The multi-class SIM engine through the session store: one segment per model class (real MRML)."""

from __future__ import annotations

import numpy as np
import pytest
from test_sim_engine import CLASSES, _checkpoint
from test_slicer_glue import glue_modules

from InteractiveSegLib.hints import Click, ijk_from_slice_point


@pytest.fixture
def sim_models(tmp_path, monkeypatch):
    _checkpoint(tmp_path / "sim_ddg_sim.pt")
    monkeypatch.setenv("INTERACTIVESEG_MODELS", str(tmp_path))
    from InteractiveSegSlicer import session_store

    session_store._DECLARATIONS.clear()
    yield tmp_path
    session_store._DECLARATIONS.clear()


def _segments(glue, seg_node, vol) -> dict[str, np.ndarray]:
    segmentation = seg_node.GetSegmentation()
    out = {}
    for sid in segmentation.GetSegmentIDs():
        seg = segmentation.GetSegment(sid)
        lm = seg.GetRepresentation(glue.segment_io.BINARY_LABELMAP)
        out[seg.GetName()] = glue.segment_io._layer_values(lm, vol.GetImageData().GetExtent()) == seg.GetLabelValue()
    return out


def test_sim_writes_one_segment_per_class_and_undoes(slicer_app, volume_node, sim_models):
    glue = glue_modules()

    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.05, (5, 40, 48)).astype(np.float32)
    rr, cc = np.mgrid[:40, :48]
    a[:, (rr - 20) ** 2 + (cc - 24) ** 2 < 150] += 1.0
    vol = volume_node(a)
    store = glue.session_store.SessionStore()
    seg = store.automatic(vol, 0, 2, engine="sim")
    segs = _segments(glue, seg, vol)
    assert sorted(segs) == sorted(CLASSES[1:])  # the model's classes, background excluded
    session = store.session(vol)
    for value, name in ((1, "ring"), (2, "core")):
        np.testing.assert_array_equal(segs[name], session.labelmap == value)
    assert not any(m[[0, 1, 3, 4]].any() for m in segs.values())
    auto = {k: v.copy() for k, v in segs.items()}

    store.segment(
        vol, [Click(ijk_from_slice_point((20, 24), 0, 2), label=2, axis=0)], engine="sim", segmentationNode=seg
    )
    assert len(session.history) == 2  # the same session: the memory is kept across calls
    segs = _segments(glue, seg, vol)
    for value, name in ((1, "ring"), (2, "core")):
        np.testing.assert_array_equal(segs[name], session.labelmap == value)
    assert store.undo(vol, seg)
    after_undo = _segments(glue, seg, vol)
    for name in auto:
        np.testing.assert_array_equal(after_undo[name], auto[name])
