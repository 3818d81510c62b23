import json

import pytest

from InteractiveSegLib.errors import InteractionError
from InteractiveSegLib.hints import (
    Box,
    Click,
    DrawnSlice,
    ExtremePoints,
    HintGroup,
    Scribble,
    from_json,
    slice_index,
    to_json,
    validate,
)

SHAPE = (10, 20, 30)  # KJI: i < 30, j < 20, k < 10


def test_json_round_trip_keeps_every_hint_type():
    hints = [
        Click((1, 2, 3), label=2, positive=False, axis=0),
        Scribble([(1, 2, 3), (2, 2, 3), (3, 2, 3)], label=1, axis=0),
        Box((5, 6, 3), (1, 2, 3), label=3),
        ExtremePoints([(1, 5, 3), (9, 5, 3), (5, 1, 3), (5, 9, 3)], label=1),
        DrawnSlice([(1, 2, 3), (2, 2, 3), (1, 3, 3)], label=2, axis=0),
        DrawnSlice([], label=2, axis=1, index=4),
    ]
    back = from_json(to_json(hints))
    assert back == hints
    assert back[2].min_ijk == (1, 2, 3) and back[2].max_ijk == (5, 6, 3)
    assert json.loads(to_json(hints))[0] == {
        "type": "click",
        "ijk": [1, 2, 3],
        "label": 2,
        "positive": False,
        "axis": 0,
    }


@pytest.mark.parametrize(
    "hint, message",
    [
        (Click((30, 0, 0)), "outside the volume"),
        (Click((-1, 0, 0)), "outside the volume"),
        (Click((0, 0, 10)), "outside the volume"),
        (Click((0, 0, 0), label=7), "unknown class"),
        (Click((0, 0, 0), label=0), ">= 1"),
        (Click((0, 0, 0), axis=3), "axis"),
        (Scribble([(0, 0, 1), (0, 0, 2)], axis=0), "spans several"),
        (DrawnSlice([(0, 0, 1), (0, 1, 1), (0, 0, 2)], axis=0), "spans several"),
        (DrawnSlice([(0, 0, 1), (30, 0, 1)], axis=0), "outside the volume"),
    ],
)
def test_validation_gives_a_clear_error(hint, message):
    with pytest.raises(InteractionError, match=message):
        validate(hint, SHAPE, labels=[1, 2, 3])


def test_a_drawn_slice_is_a_positive_structure_on_its_own():
    with pytest.raises(InteractionError, match="cannot be negative"):
        DrawnSlice([(0, 0, 1)], positive=False)
    with pytest.raises(InteractionError, match="needs its slice index"):
        DrawnSlice([])
    with pytest.raises(InteractionError, match="other axial slices"):
        DrawnSlice([(0, 0, 1)], index=2)
    empty = DrawnSlice([], axis=2, index=5)  # the structure is not on sagittal slice 5
    validate(empty, SHAPE, labels=[1])
    assert slice_index(empty) == 5 and DrawnSlice([(0, 0, 1)]).index == 1
    with pytest.raises(InteractionError, match="outside the volume"):
        validate(DrawnSlice([], axis=0, index=99), SHAPE, labels=[1])
    with pytest.raises(InteractionError, match="hint group"):
        HintGroup([DrawnSlice([(0, 0, 1)])])


def test_validation_rejects_wrong_dimensionality():
    with pytest.raises(InteractionError, match="3D"):
        validate(Click((0, 0, 0)), (10, 20))


def test_malformed_input_is_rejected():
    with pytest.raises(InteractionError):
        from_json('[{"type": "lasso"}]')
    with pytest.raises(InteractionError):
        from_json("not json")
    with pytest.raises(InteractionError):
        Click((1, 2))
    with pytest.raises(InteractionError):
        ExtremePoints([(1, 1, 1)] * 3)
    with pytest.raises(InteractionError):
        from_json('{"type": "click", "ijk": [1, 2, 3], "colour": "red"}')


def test_slice_index_follows_axis():
    c = Click((4, 5, 6), axis=0)
    assert slice_index(c) == 6
    assert slice_index(Click((4, 5, 6), axis=1)) == 5
    assert slice_index(Click((4, 5, 6), axis=2)) == 4


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"type": "click", "ijk": [1, 2, 3], "positive": "false"}', "'positive' must be true or false"),
        ('{"type": "click", "ijk": [1, 2, 3], "axis": 0.0}', "'axis' must be an integer"),
        ('{"type": "click", "ijk": [1, 2, 3], "label": true}', "'label' must be an integer"),
        ('{"type": "click", "ijk": [1e999, 2, 3]}', "not a finite number"),
        ('{"type": "click", "ijk": ["1", 2, 3]}', "a point must be a list of numbers"),
        ('{"type": "click", "ijk": null}', "a point must be a list of numbers"),
        ('{"type": "scribble", "voxels": 5}', "must be a list of points"),
        ('{"type": "auto", "index": 3.5}', "'index' must be an integer"),
    ],
)
def test_json_hints_have_the_types_the_format_says(text, message):
    """JSON a careless or hostile file holds: Python's casts would take each silently."""
    with pytest.raises(InteractionError, match=message):
        from_json(text)


def test_a_hints_file_past_the_caps_is_refused_before_any_hint_is_built():
    from InteractiveSegLib.hints import MAX_HINTS, MAX_POINTS, from_json

    one = {"type": "click", "ijk": [1, 2, 3], "label": 1, "positive": True, "axis": 0}
    with pytest.raises(InteractionError, match=f"at most {MAX_HINTS}"):
        from_json(json.dumps([one] * (MAX_HINTS + 1)))
    stroke = {"type": "scribble", "voxels": [[1, 2, 3]] * (MAX_POINTS // 2 + 1), "label": 1, "axis": 0}
    with pytest.raises(InteractionError, match=f"at most {MAX_POINTS}"):
        from_json(json.dumps([stroke, stroke]))
    assert len(from_json(json.dumps([one] * 10))) == 10
