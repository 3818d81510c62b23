"""Slice-view gestures -> library hints (InteractiveSegSlicer.slice_hints), incl. bad input."""

from __future__ import annotations

import pytest

from InteractiveSegLib.errors import InteractionError
from InteractiveSegLib.hints import Click, ExtremePoints, Scribble


@pytest.fixture
def hints(slicer_app):
    from InteractiveSegSlicer import slice_hints

    return slice_hints


SHAPE = (10, 20, 30)  # K, J, I


def test_a_click_takes_the_release_point_on_the_pressed_slice(hints):
    h = hints.hint_from_gesture("click", [(4.4, 5.6, 3.2)], SHAPE, axis=0, label=3, positive=False)
    assert h == Click((4, 6, 3), label=3, positive=False, axis=0)


def test_a_stroke_leaving_the_image_keeps_its_inside_voxels(hints):
    h = hints.hint_from_gesture("scribble", [(27.0, 5.0, 2.0), (33.0, 5.0, 2.0)], SHAPE, axis=0)
    assert isinstance(h, Scribble) and h.voxels == [(27, 5, 2), (28, 5, 2), (29, 5, 2)]
    with pytest.raises(InteractionError, match="outside the image"):
        hints.hint_from_gesture("scribble", [(31.0, 5.0, 2.0), (35.0, 5.0, 2.0)], SHAPE, axis=0)


def test_depth_jitter_is_flattened_to_the_view_slice(hints):
    # a sagittal view (axis 2 = I constant): the mouse's I coordinate wobbles around 7
    h = hints.hint_from_gesture("scribble", [(7.2, 3.0, 1.0), (6.7, 3.0, 4.0)], SHAPE, axis=2)
    assert {v[0] for v in h.voxels} == {7} and [v[2] for v in h.voxels] == [1, 2, 3, 4]


def test_extreme_points_and_bad_gestures(hints):
    pts = [(5, 2, 4), (12, 3, 4), (8, 0, 4), (8, 9, 4)]
    h = hints.hint_from_gesture("extreme", pts, SHAPE, axis=0)
    assert isinstance(h, ExtremePoints) and h.points_ijk == [tuple(p) for p in pts]
    with pytest.raises(InteractionError, match="outside the image"):
        hints.hint_from_gesture("box", [(1, 1, 4), (40, 5, 4)], SHAPE, axis=0)
    with pytest.raises(InteractionError, match="outside the image"):
        hints.hint_from_gesture("click", [(1, 1, 12)], SHAPE, axis=0)  # slice 12 of 10
    with pytest.raises(InteractionError, match="unknown gesture"):
        hints.hint_from_gesture("lasso", [(1, 1, 1)], SHAPE, axis=0)
    with pytest.raises(InteractionError, match="no points"):
        hints.hint_from_gesture("click", [], SHAPE, axis=0)
