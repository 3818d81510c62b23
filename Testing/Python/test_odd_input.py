"""No input breaks an engine: every registered engine, given odd volumes (one voxel, one slice,
flat, integer, boolean, 20 mm slices, micrometre voxels, values near float32's top) and odd
hints (a point box, extreme points on one voxel, the image's corner, an empty or full drawn
slice, a point outside), either answers with a label map of the volume's shape or refuses
with the library's own error and leaves the session as it was. A traceback of another kind
would reach a user of the CLI or the Slicer panel; a numpy warning on the way, a NaN in the
answer."""

from __future__ import annotations

import numpy as np
import pytest

from InteractiveSegLib.engines import available_engines, create_engine, describe_engine
from InteractiveSegLib.errors import InteractiveSegError
from InteractiveSegLib.hints import Box, Click, DrawnSlice, ExtremePoints, Scribble
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.session import Session
from InteractiveSegLib.volume import Geometry, Volume

#: a division by zero or an overflow on the way is a silent NaN in the answer: a failure here
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def odd_volumes() -> dict[str, Volume]:
    rng = np.random.default_rng(0)

    def noise(shape, dtype=np.float32, spacing=(1.0, 1.0, 1.0)):
        return Volume(rng.normal(100, 20, shape).astype(dtype), Geometry(spacing=spacing))

    return {
        "one voxel": noise((1, 1, 1)),
        "one slice": noise((1, 24, 24)),
        "two slices": noise((2, 24, 24)),
        "one row": noise((24, 1, 24)),
        "flat": Volume(np.full((12, 12, 12), 5.0, np.float32)),
        "int16": noise((12, 24, 24), np.int16),
        "boolean": Volume(rng.random((12, 12, 12)) > 0.5),
        "20 mm slices": noise((4, 24, 24), spacing=(0.5, 0.5, 20.0)),
        "micrometre voxels": noise((12, 12, 12), spacing=(1e-4, 1e-4, 1e-4)),
        "near float32's top": Volume(np.full((12, 12, 12), 3e38, np.float32)),
    }


def odd_hints(shape: tuple[int, int, int]) -> dict[str, object]:
    k, j, i = shape
    centre = (i // 2, j // 2, k // 2)  # IJK
    return {
        "click": Click(centre, positive=True, axis=0),
        "negative click first": Click(centre, positive=False, axis=0),
        "one-point stroke": Scribble([centre], positive=True, axis=0),
        "point box": Box(centre, centre, axis=0),
        "whole-slice box": Box((0, 0, k // 2), (i - 1, j - 1, k // 2), axis=0),
        "extreme points on one voxel": ExtremePoints([centre] * 4, axis=0),
        "the far corner": Click((i - 1, j - 1, k - 1), positive=True, axis=0),
        "empty drawn slice": DrawnSlice([], axis=0, index=k // 2),
        "full drawn slice": DrawnSlice([(a, b, k // 2) for a in range(i) for b in range(j)], axis=0, index=k // 2),
        "outside": Click((i + 5, j, k), positive=True, axis=0),
        "sagittal click": Click(centre, positive=True, axis=2),
    }


@pytest.mark.parametrize("name", sorted(available_engines()))
def test_odd_volumes_and_hints_are_answered_or_refused_cleanly(name):
    engine = create_engine(name)
    labels = None if describe_engine(name).multiclass else LabelTable.default([1])
    for what, volume in odd_volumes().items():
        try:
            session = Session(volume, engine) if labels is None else Session(volume, engine, labels)
        except InteractiveSegError:
            continue  # refused on load: nothing to undo
        for hint_name, hint in odd_hints(volume.shape).items():
            before, steps = session.labelmap.copy(), len(session.history)
            try:
                session.add(hint)
            except InteractiveSegError:
                assert len(session.history) == steps, (what, hint_name)
                assert np.array_equal(session.labelmap, before), (what, hint_name)
                continue
            except Exception as e:  # noqa: BLE001 - the point of the test
                pytest.fail(f"{name} on {what} with {hint_name}: {type(e).__name__}: {e}")
            assert session.labelmap.shape == volume.shape, (what, hint_name)
        try:
            session.suggest_slice()
        except InteractiveSegError:
            pass
