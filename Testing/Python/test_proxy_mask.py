"""Proxy masks by registration (dynamic-learning paper, Algorithm 2): drawn slices are
exact, an update only re-registers the slices whose nearest drawn slice changed, and the
warped masks follow a structure that moves from slice to slice."""

from __future__ import annotations

import numpy as np
import pytest

from InteractiveSegLib.errors import InteractionError
from InteractiveSegLib.methods.online.proxy_mask import ProxyMask


def drifting_ellipse(n: int = 24, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A bright ellipse whose centre drifts 1 voxel per slice (a tube leaning sideways)."""
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((n, size, size), np.float32)
    ref = np.zeros((n, size, size), bool)
    for k in range(n):
        m = ((yy - 32) / 9.0) ** 2 + ((xx - 20 - k) / 6.0) ** 2 < 1
        ref[k] = m
        img[k] = np.where(m, 0.9, 0.2) + 0.3 * (xx / size)  # a gentle ramp for the metric
    return img, ref


def dice(a, b):
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def test_drawn_slices_are_exact_and_updates_are_incremental():
    img, ref = drifting_ellipse()
    pm = ProxyMask(img, workers=1)
    first = pm.add(0, 12, ref[12])
    assert sorted(first) == [k for k in range(24) if k != 12]  # every other slice from the only drawing
    second = pm.add(0, 4, ref[4])
    # only the slices now nearer to 4 than to 12 (0..8; 8 ties to the lower index) move
    assert sorted(second) == [0, 1, 2, 3, 5, 6, 7, 8]
    assert pm.planes[0].source[9] == 12 and pm.planes[0].source[8] == 4
    out = pm.mask()
    assert np.array_equal(out[12], ref[12]) and np.array_equal(out[4], ref[4])
    # the registration follows the drift: better than copying the nearest drawing unchanged
    copied = np.stack([ref[4] if abs(k - 4) <= abs(k - 12) else ref[12] for k in range(24)])
    assert dice(out, ref) > dice(copied, ref)


def test_two_planes_average_and_the_newest_drawing_wins():
    img, ref = drifting_ellipse()
    pm = ProxyMask(img, workers=2)
    pm.add(0, 12, ref[12])
    one_plane = pm.mask()
    pm.add(1, 32, ref[:, 32])
    both = pm.mask()
    assert np.array_equal(both[:, 32], ref[:, 32]) and np.array_equal(both[12], ref[12])
    # the paper's point: a second plane removes the first plane's false positives
    assert (both & ~ref).sum() < (one_plane & ~ref).sum()


def test_bad_input_is_refused():
    img, ref = drifting_ellipse(6, 32)
    with pytest.raises(InteractionError):
        ProxyMask(img[0])
    bad = img.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InteractionError):
        ProxyMask(bad)
    pm = ProxyMask(img)
    with pytest.raises(InteractionError):
        pm.add(0, 6, ref[0])
    with pytest.raises(InteractionError):
        pm.add(0, 1, ref[0, :10])
    assert not pm.planes.get(0, None) or not pm.planes[0].drawn


def test_a_plane_drawn_only_outside_the_structure_abstains():
    """An empty drawing on a sagittal slice beyond the structure must not erase the proxy
    the axial drawing gives; the empty slice itself stays empty."""
    img, ref = drifting_ellipse()
    pm = ProxyMask(img, workers=1)
    pm.add(0, 12, ref[12])
    alone = pm.mask()
    pm.add(2, 60, ref[:, :, 60])  # x = 60: no slice of the ellipse reaches it
    assert not ref[:, :, 60].any() and pm.voting_planes() == [0]
    both = pm.mask()
    assert not both[:, :, 60].any()
    assert np.array_equal(np.delete(both, 60, axis=2), np.delete(alone, 60, axis=2))
    pm.add(2, 30, ref[:, :, 30])  # a sagittal drawing that shows it: two planes vote
    assert pm.voting_planes() == [0, 2]
