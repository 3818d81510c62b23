"""The 3D network's boundary moved onto the image's edges (``methods/prompt3d/edges.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from InteractiveSegLib.engines import create_engine
from InteractiveSegLib.errors import EngineError
from InteractiveSegLib.hints import DrawnSlice, Scribble
from InteractiveSegLib.methods.prompt3d.edges import (
    FADE,
    SURE,
    distance,
    edge_strength,
    hint_markers,
    negative_side,
    snap_to_edges,
)
from InteractiveSegLib.metrics import dice


def ball(shape=(40, 48, 48), radius=12.0, spacing=(1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """A bright ball in noise and the distance (mm) of each voxel from its centre."""
    grids = np.indices(shape).astype(np.float64)
    r = np.sqrt(sum(((g - (n - 1) / 2) * s) ** 2 for g, n, s in zip(grids, shape, spacing, strict=True)))
    image = np.where(r < radius, 1.0, 0.0) + np.random.default_rng(0).normal(0, 0.05, shape)
    return image.astype(np.float32), r


def region_at(origin, shape) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The region of ``shape`` whose first voxel is ``origin`` (KJI)."""
    return tuple(origin), tuple(o + n for o, n in zip(origin, shape, strict=True))


def snap(prob, image, spacing=(1.0, 1.0, 1.0), hints=(), origin=(0, 0, 0), **options) -> np.ndarray:
    """``snap_to_edges`` on ``image``'s edge strength, blended as the engine does."""
    marks = hint_markers(list(hints), region_at(origin, prob.shape))
    found = snap_to_edges(prob, edge_strength(image, spacing), spacing, marks, **options)
    if found is None:
        return prob
    snapped, share = found
    return ((1 - share) * prob + share * snapped).astype(np.float32)


def answer(r: np.ndarray, radius: float, softness: float = 2.0) -> np.ndarray:
    """A network's answer: a ball of ``radius`` whose probability falls off over ``softness`` mm."""
    return (1 / (1 + np.exp((r - radius) / softness))).astype(np.float32)


def test_an_answer_short_of_the_edge_grows_onto_it_and_one_past_it_shrinks_back():
    image, r = ball()
    truth = r < 12
    for radius in (10.0, 14.0):  # 2 mm short of the ball's edge, then 2 mm past it
        prob = answer(r, radius)
        snapped = snap(prob, image, band=3.0, weight=0.5) > 0.5
        assert dice(truth, snapped) > dice(truth, prob > 0.5) + 0.05
        assert dice(truth, snapped) > 0.95


def test_the_boundary_moves_at_most_the_band_whatever_the_image_says():
    image, r = ball(radius=20.0)  # the edge is 12 mm beyond the answer
    prob = answer(r, 8.0)
    snapped = snap(prob, image, band=3.0, weight=0.5) > 0.5
    reach = ndimage.distance_transform_edt(~(prob > 0.5))
    assert snapped.any() and (reach[snapped] <= 3.0).all()


def test_the_band_is_in_millimetres_on_thick_slices():
    spacing = (3.0, 1.0, 1.0)
    image, r = ball(shape=(20, 48, 48), radius=20.0, spacing=spacing)
    prob = answer(r, 8.0)
    snapped = snap(prob, image, spacing, band=3.0, weight=0.5) > 0.5
    grown = snapped & ~(prob > 0.5)
    reach = ndimage.distance_transform_edt(~(prob > 0.5), sampling=spacing)
    assert grown.any() and (reach[grown] <= 3.0).all()


def test_only_the_unsure_band_moves_with_a_small_weight():
    image, r = ball()
    prob = answer(r, 10.0)
    out = snap(prob, image, weight=0.3)
    changed = (out > 0.5) != (prob > 0.5)
    assert changed.any()
    assert (np.abs(prob[changed] - 0.5) <= 0.3 / (2 * 0.7) + 1e-6).all()


def test_stroke_voxels_stay_on_their_side():
    image, r = ball()
    prob = answer(r, 12.0)
    centre = (20, 24, 24)  # KJI in the region; hints are IJK in the volume, the region starts at (2, 3, 4) KJI
    origin = (2, 3, 4)
    not_here = Scribble([(centre[2] + 4, centre[1] + 3, centre[0] + 2)], positive=False, axis=0)
    out = snap(prob, image, hints=[not_here], origin=origin, band=3.0, weight=0.5)
    assert out[centre] < 0.5 and (out > 0.5).sum() > 0.9 * (prob > 0.5).sum()


def test_flooding_the_band_alone_gives_what_flooding_the_whole_region_gives():
    from skimage.segmentation import watershed

    spacing = (2.0, 1.0, 1.0)
    image, r = ball(shape=(24, 48, 48), radius=14.0, spacing=spacing)
    image += ndimage.gaussian_filter(np.random.default_rng(1).normal(0, 0.3, image.shape), 1.5).astype(np.float32)
    prob = answer(r + 3 * np.sin(np.indices(r.shape)[2] / 3.0), 11.0)  # a bumpy answer in a noisy image
    reach = 3.0
    markers = np.zeros(prob.shape, np.int32)  # the markers, with scipy's exact distances
    markers[ndimage.distance_transform_edt(prob <= 0.5, sampling=spacing) > reach] = 2
    markers[(ndimage.distance_transform_edt(prob > 0.5, sampling=spacing) > reach) | (prob > SURE)] = 1
    gradient = ndimage.gaussian_gradient_magnitude(image, sigma=1.0 / np.asarray(spacing))
    whole = (watershed(gradient, markers) == 1).astype(np.float32)
    out = snap(prob, image, spacing, band=reach, weight=1.0)
    band = markers == 0
    assert whole[band].any() and not whole[band].all()  # the flood decides some of the band each way
    assert np.array_equal(out, whole)


def test_a_thick_answer_takes_the_thick_weight_and_a_thin_one_keeps_the_weight():
    """``thick_weight`` (the engine's coarse-grid share) is for an answer thicker than the
    band somewhere; a shell thinner than it, a ribbon of cortex, keeps ``weight``."""
    image, r = ball()
    prob = answer(r, 10.0)
    assert np.array_equal(
        snap(prob, image, band=3.0, weight=0.0, thick_weight=0.5), snap(prob, image, band=3.0, weight=0.5)
    )
    shell = np.where((r > 9.0) & (r < 13.0), 0.97, 0.2).astype(np.float32)  # 4 mm thick: no voxel 3 mm inside
    kept = snap(shell, image, band=3.0, weight=0.3, thick_weight=0.5)
    assert np.array_equal(kept, snap(shell, image, band=3.0, weight=0.3))
    assert not np.array_equal(kept, snap(shell, image, band=3.0, weight=0.5))


def test_a_heavier_weight_holds_only_where_the_snapped_boundary_is_an_edge():
    """``edgeless_weight`` (the engine's MRI weight for a CT's heavier one) replaces ``weight``
    where the band holds no edge: an answer inside an even interior, noise alone."""
    image, r = ball()
    prob = answer(r, 10.0)  # 2 mm short of the ball's edge: the band holds it
    assert np.array_equal(
        snap(prob, image, band=3.0, weight=0.4, edgeless_weight=0.3), snap(prob, image, band=3.0, weight=0.4)
    )
    even = np.random.default_rng(1).normal(0, 0.05, r.shape).astype(np.float32)
    held = snap(prob, even, band=3.0, weight=0.4, edgeless_weight=0.3)
    assert np.array_equal(held, snap(prob, even, band=3.0, weight=0.3))
    assert not np.array_equal(held, snap(prob, even, band=3.0, weight=0.4))


def test_distances_are_scipys_in_millimetres():
    mask = np.zeros((9, 20, 24), bool)
    mask[2:8, 3:17, 5:20] = True
    for spacing in ((1.0, 1.0, 1.0), (3.0, 0.7, 0.9)):
        want = ndimage.distance_transform_edt(mask, sampling=spacing)
        assert np.allclose(distance(mask, np.asarray(spacing)), want, atol=1e-4)


def test_an_empty_or_full_answer_is_left_as_it_is():
    image, r = ball()
    for prob in (np.zeros(r.shape, np.float32), np.ones(r.shape, np.float32)):
        assert snap(prob, image) is prob


def test_the_engine_refuses_a_weight_outside_0_to_1():
    with pytest.raises(EngineError, match="edge_weight"):
        create_engine("prompt3d", edge_weight=1.5)
    with pytest.raises(EngineError, match="coarse_edge_weight"):
        create_engine("prompt3d", coarse_edge_weight=-0.1)
    for fade in (0.0, 1.5):
        with pytest.raises(EngineError, match="negative_fade"):
            create_engine("prompt3d", negative_fade=fade)
    with pytest.raises(EngineError, match="snap_voxels"):
        create_engine("prompt3d", snap_voxels=0)


def fade(prob, image, hints, origin=(0, 0, 0)) -> np.ndarray:
    """``negative_side`` on ``image``'s edge strength, unit spacing, faded as the engine does."""
    marks = hint_markers(hints, region_at(origin, prob.shape))
    negative = negative_side(prob, edge_strength(image, (1.0, 1.0, 1.0)), marks)
    return prob if negative is None else np.where(negative, prob * np.float32(FADE), prob).astype(np.float32)


def two_blocks() -> tuple[np.ndarray, np.ndarray]:
    """A bright block on top of a dimmer one (KJI), in noise, and a mask of the dim one: an
    answer that spilled from the bright structure into its neighbour."""
    image = np.zeros((40, 24, 24), np.float32)
    image[4:20, 4:20, 4:20] = 1.0
    image[20:36, 4:20, 4:20] = 0.5
    image += np.random.default_rng(0).normal(0, 0.03, image.shape).astype(np.float32)
    dim = np.zeros(image.shape, bool)
    dim[20:36, 4:20, 4:20] = True
    return image, dim


def stroke(k: int, positive: bool) -> Scribble:
    """A short stroke across the blocks' middle on axial slice ``k`` (IJK points)."""
    return Scribble([(i, 12, k) for i in range(8, 16)], positive=positive, axis=0)


def test_a_negative_stroke_takes_the_unsure_answer_on_its_side_of_the_edge():
    image, dim = two_blocks()
    bright = np.roll(dim, -16, axis=0)
    prob = np.where(bright | dim, 0.8, 0.05).astype(np.float32)  # both blocks, not sure
    prob[bright] = 0.97  # the part it is sure of
    out = fade(prob, image, [stroke(10, True), stroke(30, False)])
    assert (out[dim] < 0.5).all()  # the neighbour, past the edge from the positive stroke
    assert (out[bright] > 0.5).all() and np.array_equal(out[:16], prob[:16])  # the structure stays
    sure = prob.copy()
    sure[dim] = 0.9  # surer than 0.5 / FADE: the network keeps it
    assert 0.9 > 0.5 / FADE and (fade(sure, image, [stroke(30, False)])[dim] > 0.5).all()


def test_a_drawn_slice_marks_its_cross_section_and_the_rest_of_its_plane():
    cross = [(i, j, 7) for i in range(3, 6) for j in range(2, 4)]  # IJK, on axial slice 7
    hints = [DrawnSlice(cross, axis=0), DrawnSlice([], axis=0, index=9), stroke(8, False)]
    marks = hint_markers(hints, region_at((0, 0, 0), (12, 24, 24)))
    assert (marks[7, 2:4, 3:6] == 1).all() and marks[7].sum() == 6 + 2 * (24 * 24 - 6)
    assert (marks[9] == 2).all()  # an empty drawn slice: not there, all of its plane
    assert (marks[8, 12, 8:16] == 2).all() and marks[8].sum() == 16  # the stroke alone on its slice
    assert not marks[[0, 1, 2, 3, 4, 5, 6, 10, 11]].any()
    shifted = hint_markers(hints, region_at((5, 0, 0), (12, 24, 24)))  # the region starts at slice 5
    assert (shifted[2, 2:4, 3:6] == 1).all() and (shifted[4] == 2).all()


def test_an_empty_drawn_slice_takes_the_unsure_answer_past_it():
    image, dim = two_blocks()
    bright = np.roll(dim, -16, axis=0)
    prob = np.where(bright | dim, 0.8, 0.05).astype(np.float32)
    cross = [(i, j, 10) for j, i in np.argwhere(bright[10])]
    out = fade(prob, image, [DrawnSlice(cross, axis=0), DrawnSlice([], axis=0, index=30)])
    assert (out[dim] < 0.5).all() and np.array_equal(out[:16], prob[:16])


def test_without_a_negative_stroke_in_the_region_the_answer_stays():
    image, dim = two_blocks()
    prob = np.where(dim, 0.8, 0.05).astype(np.float32)
    assert fade(prob, image, [stroke(30, True)]) is prob
    # a negative stroke outside the region (the region starts 50 slices further up) changes nothing
    assert fade(prob, image, [stroke(30, False)], origin=(50, 0, 0)) is prob
