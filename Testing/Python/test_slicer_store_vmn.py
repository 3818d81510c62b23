"""VMN through the session store (real MRML): a box propagates into the segment, and the
suggested slice maps to a world point on that slice, under a non-identity geometry."""

from __future__ import annotations

import numpy as np
from test_slicer_glue import IJK_TO_RAS, glue_modules

from InteractiveSegLib.data import datasets
from InteractiveSegLib.hints import Box, ijk_from_slice_point
from InteractiveSegLib.users.robot import robot_box


def putamen_box(volume_node):
    """Putamen_R's axial block of Colin27 (a held-out structure) as a volume node under a
    non-identity geometry, its largest slice and the robot's box there."""
    d = datasets.load("colin27")
    value = next(v for v in d.structures("test") if d.labels.labels[v].name == "Putamen_R")
    ref = d.mask(value)
    k = np.flatnonzero(ref.any((1, 2)))
    block = slice(k.min() - 4, k.max() + 5)
    vol = volume_node(d.image.array[block], IJK_TO_RAS)
    ref = ref[block]
    index = int(np.argmax(ref.sum((1, 2))))
    lo, hi = robot_box(ref[index])
    return vol, index, Box(ijk_from_slice_point(lo, 0, index), ijk_from_slice_point(hi, 0, index), axis=0)


def test_vmn_segment_and_suggested_slice(slicer_app, volume_node):
    glue = glue_modules()

    vol, index, box = putamen_box(volume_node)
    store = glue.session_store.SessionStore()
    assert store.suggest_slice(vol) is None  # nothing segmented yet
    seg = store.segment(vol, [box], engine="vmn")
    session = store.session(vol)
    written = glue.segment_io.labelmap_from_segmentation(seg, vol, session.labels)
    np.testing.assert_array_equal(written, session.labelmap)
    assert np.count_nonzero(session.labelmap.any((1, 2))) > 5  # propagated beyond the boxed slice
    suggestion, ras = store.suggest_slice(vol)
    assert suggestion.index != index
    assert glue.geometry.slice_index_at(vol, ras, suggestion.axis) == suggestion.index
    ijk = glue.geometry.world_to_ijk(vol, [ras])[0]
    dims = vol.GetImageData().GetDimensions()
    assert abs(ijk[0] - (dims[0] - 1) / 2) < 1 and abs(ijk[1] - (dims[1] - 1) / 2) < 1  # the slice's centre


def test_a_propagation_reports_per_slice_progress_and_cancel_leaves_the_segment_as_it_was(slicer_app, volume_node):
    """Cancel inside a long engine step (the propagation), not only between hints: the job
    raises Cancelled at the next slice, nothing is computed or written, the engine's hook is
    cleared."""
    glue = glue_modules()
    from InteractiveSegSlicer.worker import Cancelled, Job

    vol, index, box = putamen_box(volume_node)
    store = glue.session_store.SessionStore()
    pending = store.prepare(vol, [box], engine="vmn")
    job = Job(None, (), {}, "propagate")
    messages = []
    real = job.report

    def report(fraction, text=""):
        messages.append((fraction, text))
        if len(messages) == 4:  # the user presses Cancel while slices are propagating
            job.cancel()
        real(fraction, text)

    job.report = report
    try:
        store.compute(pending, job)
        raise AssertionError("the cancelled propagation finished")
    except Cancelled:
        pass
    assert any("slice" in t for _, t in messages[1:]) and all(0 <= f <= 1 for f, _ in messages)
    session = store.session(vol)
    assert pending.done == [] and session.history == [] and not session.labelmap.any()
    assert session.engine.progress is None
    seg = pending.segmentationNode
    assert not glue.segment_io.labelmap_from_segmentation(seg, vol, session.labels).any()
