"""Slicer's Grow from seeds (vtkImageGrowCutSegment from slicer-core) as the "growcut" engine."""

from __future__ import annotations

import numpy as np
import pytest

from InteractiveSegLib.engines import Request, available_engines, create_engine, register_engine
from InteractiveSegLib.errors import EngineError
from InteractiveSegLib.hints import Box, Click, Scribble
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.session import Session
from InteractiveSegLib.volume import Geometry, Volume

ENTRY_POINT = "InteractiveSegSlicer.growcut_engine:GrowFromSeedsEngine"


@pytest.fixture(scope="module")
def growcut(slicer_app):
    """create_engine("growcut") as users call it; registers by hand only when not pip-installed."""
    if "growcut" not in available_engines():
        from InteractiveSegSlicer.growcut_engine import GrowFromSeedsEngine

        register_engine("growcut", GrowFromSeedsEngine)
    return lambda **kw: create_engine("growcut", **kw)


@pytest.fixture(scope="module")
def disk_volume():
    z, y, x = np.mgrid[:10, :64, :56]
    disk = (y - 30) ** 2 + (x - 26) ** 2 < 12**2
    image = disk * 100.0 + np.random.default_rng(0).normal(0, 5, disk.shape)
    return Volume(image.astype(np.float32), Geometry(spacing=(0.8, 0.8, 2.5))), disk


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def request(clicks, axis=0, index=5, shape=(10, 64, 56)) -> Request:
    return Request(label=1, interactions=clicks, axis=axis, slice_index=index, labelmap=np.zeros(shape, np.uint8))


def test_entry_point_is_declared():
    """The installed package (make setup installs it, editable) declares the engine, so the
    library's registry finds it without importing the glue."""
    from importlib.metadata import entry_points

    installed = {ep.name: ep.value for ep in entry_points(group="interactiveseg.engines")}
    assert installed.get("growcut") == ENTRY_POINT


def test_segments_a_bright_disk_from_two_clicks(growcut, disk_volume):
    volume, disk = disk_volume
    engine = growcut()
    assert engine.name == "growcut" and engine.mode == "2d"
    engine.set_image(volume)
    pred = engine.predict(request([Click((26, 30, 5), 1, True, 0), Click((3, 60, 5), 1, False, 0)]))
    assert pred.region == (slice(5, 6), slice(0, 64), slice(0, 56))
    assert pred.probability.shape == (1, 64, 56)
    assert dice(pred.mask()[0], disk[5]) > 0.8


def test_works_on_coronal_and_sagittal_slices(growcut, disk_volume):
    volume, disk = disk_volume
    engine = growcut()
    engine.set_image(volume)
    # coronal: KJI axis 1 held at j = 30 cuts the cylinder into a band; background on both sides
    clicks = [Click((26, 30, 5), 1, True, 1), Click((2, 30, 5), 1, False, 1), Click((52, 30, 5), 1, False, 1)]
    pred = engine.predict(request(clicks, axis=1, index=30))
    assert pred.region == (slice(0, 10), slice(30, 31), slice(0, 56))
    assert dice(pred.mask()[:, 0, :], disk[:, 30, :]) > 0.8
    pred = engine.predict(
        request(
            [
                Scribble([(26, 30, 4), (26, 31, 4)], 1, True, 2),
                Click((26, 2, 4), 1, False, 2),
                Click((26, 62, 4), 1, False, 2),
            ],
            axis=2,
            index=26,
        )
    )
    assert pred.region == (slice(0, 10), slice(0, 64), slice(26, 27))
    assert dice(pred.mask()[:, :, 0], disk[:, :, 26]) > 0.8


def test_one_kind_of_seed_fills_the_slice_like_slicer(growcut, disk_volume):
    volume, _ = disk_volume
    engine = growcut()
    engine.set_image(volume)
    assert engine.predict(request([Click((26, 30, 5), 1, True, 0)])).mask().all()
    assert not engine.predict(request([Click((26, 30, 5), 1, False, 0)])).mask().any()


def test_rejects_boxes_and_missing_image(growcut, disk_volume):
    volume, _ = disk_volume
    engine = growcut()
    with pytest.raises(EngineError, match="set_image"):
        engine.predict(request([Click((26, 30, 5))]))
    engine.set_image(volume)
    with pytest.raises(EngineError, match="does not take box hints"):  # what a session asks before predict
        engine.check_hint(Box((20, 20, 5), (30, 30, 5)))


def test_runs_in_a_session_with_undo(growcut, disk_volume):
    volume, disk = disk_volume
    session = Session(volume, engine=growcut(), labels=LabelTable.default([1]))
    session.add(Click((26, 30, 5), 1, True, 0))
    step = session.add(Click((3, 60, 5), 1, False, 0))
    assert dice(session.labelmap[5] == 1, disk[5]) > 0.8
    assert step.region == (slice(5, 6), slice(0, 64), slice(0, 56))
    session.undo()
    assert (session.labelmap[5] == 1).all()  # positive seed only: the whole slice, as in Slicer
