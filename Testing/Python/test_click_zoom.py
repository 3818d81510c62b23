"""The click engine's zoom window: millimetre-square views, exact round trips, and the zoom
loop that grows until the object is inside (run with a fixed thresholding network, so the
geometry is tested apart from what a trained network learnt)."""

import numpy as np
import pytest
import torch

from InteractiveSegLib.engines import create_engine
from InteractiveSegLib.hints import Click
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.methods.click.zoom import (
    Window,
    click_maps,
    outline_maps,
    paste_back,
    sample,
    touched_sides,
    window_around,
    working_boxes,
)
from InteractiveSegLib.metrics import dice
from InteractiveSegLib.session import Session
from InteractiveSegLib.volume import Geometry, Volume


def disk(shape, center, radius_mm, spacing):
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    return ((rr - center[0]) * spacing[0]) ** 2 + ((cc - center[1]) * spacing[1]) ** 2 < radius_mm**2


def test_sample_then_paste_back_returns_the_mask_on_anisotropic_pixels():
    spacing = (3.0, 0.8)  # a coronal slice of a thick-slice scan
    mask = disk((60, 200), (30, 100), 40.0, spacing)
    rows, cols = np.nonzero(mask)
    w = window_around(rows, cols, spacing, context=0.3, min_side_mm=10)
    seen = sample(mask[None].astype(np.float32), w, 128)[0]
    # a disk in millimetres is a disk in the working grid: same height and width
    r, c = np.nonzero(seen > 0.5)
    assert abs((r.max() - r.min()) - (c.max() - c.min())) <= 3
    roi, back = paste_back(seen, w, mask.shape)
    full = np.zeros(mask.shape, bool)
    full[roi.slices] = back > 0.5
    assert dice(mask, full) > 0.97


def test_clicks_land_where_the_image_is_sampled():
    spacing = (1.0, 1.0)
    w = Window((50.0, 70.0), 80.0, spacing)
    image = np.zeros((120, 140), np.float32)
    image[40, 90] = 1.0
    seen = sample(image[None], w, 160, mode="nearest")[0]
    peak = np.unravel_index(np.argmax(seen), seen.shape)
    at = w.to_working(np.array([[40, 90]]), 160)[0]
    assert np.allclose(at, peak, atol=1.0)
    cm = click_maps(at[None], 160, 3.0)
    assert np.unravel_index(np.argmax(cm), cm.shape) == tuple(int(round(v)) for v in at)


class Threshold(torch.nn.Module):
    """A fixed network: the clicked object is the bright part of the image channel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 40.0 * (x[:, :1] - 0.5)


@pytest.fixture
def engine():
    e = create_engine("click", modality="mr")
    e.model = Threshold()
    return e


def test_zoom_keeps_the_whole_of_an_object_larger_than_the_first_window(engine):
    spacing = (0.9, 0.9)
    obj = disk((256, 256), (128, 120), 100.0, spacing)  # 220 mm across, the first window is ~58 mm
    image = np.where(obj, 800.0, 100.0)[None].astype(np.float32) + np.zeros((3, 1, 1), np.float32)
    vol = Volume(image, Geometry(spacing=(0.9, 0.9, 2.0)))
    s = Session(vol, engine, LabelTable.default([1]))
    step = s.add(Click((120, 128, 1), 1, True, 0))
    got = s.labelmap[1] == 1
    assert dice(obj, got) > 0.98
    assert step.region[1].stop - step.region[1].start >= obj.any(axis=1).sum()


def test_a_small_object_stays_in_a_small_window(engine):
    spacing = (0.9, 0.9)
    obj = disk((256, 256), (60, 200), 6.0, spacing)
    vol = Volume(np.where(obj, 800.0, 100.0)[None].astype(np.float32), Geometry(spacing=(0.9, 0.9, 2.0)))
    s = Session(vol, engine, LabelTable.default([1]))
    step = s.add(Click((200, 60, 0), 1, True, 0))
    assert dice(obj, s.labelmap[0] == 1) > 0.9
    rows = step.region[1].stop - step.region[1].start
    assert rows < 100  # never the whole slice for a 13 mm object


def test_touched_sides_names_the_edges():
    m = np.zeros((10, 10), bool)
    m[0, 5] = m[5, 9] = True
    assert touched_sides(m, margin=1) == (True, False, False, True)


def test_a_box_is_drawn_as_a_gaussian_line_on_its_outline():
    m = outline_maps(np.array([[20.0, 30.0, 80.0, 100.0]]), 128, sigma=3.0)
    assert m[20, 60] == pytest.approx(1.0) and m[50, 100] == pytest.approx(1.0)  # on a side
    assert m[20, 30] == pytest.approx(1.0)  # a corner
    assert m[50, 65] < 1e-6 and m[5, 5] < 1e-6  # well inside, well outside
    assert m[23, 60] == pytest.approx(np.exp(-9 / 18), rel=1e-4)  # 3 pixels from the top side
    assert m[20, 110] == pytest.approx(np.exp(-100 / 18), rel=1e-4)  # beyond the right end of the top side
    # the same outline as a line of clicks on every pixel of it
    line = [(r, c) for r in range(20, 81) for c in (30, 100)] + [(r, c) for c in range(30, 101) for r in (20, 80)]
    np.testing.assert_allclose(m, click_maps(np.array(line, float), 128, 3.0), atol=0.05)


def test_boxes_go_to_the_working_grid_with_the_clicks():
    w = Window((50.0, 70.0), 80.0, (1.0, 2.0))
    box = working_boxes([(30, 60, 60, 75)], w, 64)[0]
    np.testing.assert_allclose(box[:2], w.to_working(np.array([[30, 60]]), 64)[0])
    np.testing.assert_allclose(box[2:], w.to_working(np.array([[60, 75]]), 64)[0])
