"""The working copy the 3D prompt engine's edge rules run on (``methods/prompt3d/snap_grid.py``)."""

from __future__ import annotations

import numpy as np

from InteractiveSegLib.methods.prompt3d.snap_grid import SnapGrid


def test_a_region_within_the_limit_is_its_own_working_copy():
    grid = SnapGrid.for_region((40, 100, 120), (3.0, 0.7, 0.7), most=40 * 100 * 120)
    assert not grid.coarser
    assert grid.work == (40, 100, 120)
    assert grid.work_spacing == (3.0, 0.7, 0.7)
    assert grid.band_scale == 1.0


def test_a_large_region_is_thinned_along_its_fine_axes_first():
    """Slices 5 mm thick and 0.5 mm pixels: the pixels grow towards cubes, the slices stay."""
    grid = SnapGrid.for_region((40, 400, 400), (5.0, 0.5, 0.5), most=128**3)
    assert grid.coarser
    assert int(np.prod(grid.work)) <= 128**3
    assert grid.work[0] == 40
    assert grid.work[1] == grid.work[2] > 180  # no coarser than the limit needs
    assert np.isclose(grid.band_scale, 0.5 / grid.work_spacing[1])


def test_marks_survive_the_copy_and_the_structure_wins_a_shared_cell():
    grid = SnapGrid.for_region((8, 64, 64), (1.0, 1.0, 1.0), most=8 * 16 * 16)
    marks = np.zeros((8, 64, 64), np.int32)
    marks[3, 10, 10] = 1  # a one-voxel click
    marks[5, 40, 40], marks[5, 41, 41] = 1, 2  # a stroke of each kind in one cell
    marks[7, 60:64, 60:64] = 2  # the rest of a drawn plane
    work = grid.down_marks(marks)
    cell = lambda k: tuple(np.asarray(k) * np.asarray(grid.work) // np.asarray(grid.shape))  # noqa: E731
    assert work[cell((3, 10, 10))] == 1
    assert work[cell((5, 40, 40))] == 1
    assert set(np.unique(work)) == {0, 1, 2}


def test_a_mask_comes_back_from_the_copy_nearly_as_it_was():
    k, j, i = np.mgrid[:32, :96, :96]
    ball = (k - 16) ** 2 + (j - 48) ** 2 + (i - 48) ** 2 < 30**2
    grid = SnapGrid.for_region(ball.shape, (1.0, 1.0, 1.0), most=ball.size // 8)
    back = grid.up_mask(grid.down(ball.astype(np.float32)) > 0.5)
    assert back.shape == ball.shape and back.dtype == bool
    assert np.mean(back != ball) < 0.01
    same = SnapGrid.for_region(ball.shape, (1.0, 1.0, 1.0))
    assert same.up_mask(ball) is ball  # no copy: the region's own voxels
