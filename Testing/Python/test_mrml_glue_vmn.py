"""VMN through the MRML glue (real MRML): a box propagates into the segment, and the
suggested slice maps to a world point on that slice, under a non-identity geometry."""

from __future__ import annotations

import numpy as np

from InteractiveSegLib import datasets
from InteractiveSegLib.interactions import Box, ijk_from_slice_point
from InteractiveSegLib.robot import robot_box

from test_mrml_glue import IJK_TO_RAS


def test_vmn_segment_and_suggested_slice(slicer_app, volume_node):
    from InteractiveSegSlicer import mrml_glue as glue

    d = datasets.load("colin27")
    value = next(v for v in d.structures("test") if d.labels.labels[v].name == "Putamen_R")
    ref = d.mask(value)
    k = np.flatnonzero(ref.any((1, 2)))
    block = slice(k.min() - 4, k.max() + 5)
    vol = volume_node(d.image.array[block], IJK_TO_RAS)
    ref = ref[block]
    index = int(np.argmax(ref.sum((1, 2))))
    lo, hi = robot_box(ref[index])
    box = Box(ijk_from_slice_point(lo, 0, index), ijk_from_slice_point(hi, 0, index), axis=0)
    store = glue.SessionStore()
    assert store.suggest_slice(vol) is None  # nothing segmented yet
    seg = store.segment(vol, [box], engine="vmn")
    session = store.session(vol)
    written = glue.labelmap_from_segmentation(seg, vol, session.labels)
    np.testing.assert_array_equal(written, session.labelmap)
    assert np.count_nonzero(session.labelmap.any((1, 2))) > 5  # propagated beyond the boxed slice
    suggestion, ras = store.suggest_slice(vol)
    assert suggestion.index != index
    assert glue.slice_index_at(vol, ras, suggestion.axis) == suggestion.index
    ijk = glue.world_to_ijk(vol, [ras])[0]
    dims = vol.GetImageData().GetDimensions()
    assert abs(ijk[0] - (dims[0] - 1) / 2) < 1 and abs(ijk[1] - (dims[1] - 1) / 2) < 1  # the slice's centre
