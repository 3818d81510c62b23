"""What the benchmark suites share: the thick-slice, finer-voxel and MRI-contrast copies of a
volume (issue 20: thin-slice and thick-slice scans, CT and MRI alike, measured on the same
anatomy)."""

from dataclasses import replace

import numpy as np
import pytest

from InteractiveSegLib.bench.harness import BenchData, finer_voxels, mri_contrast, thick_slices
from InteractiveSegLib.errors import InteractiveSegError
from InteractiveSegLib.intensity import detect_modality
from InteractiveSegLib.volume import Geometry, Volume


def _nine_slices() -> BenchData:
    """Nine slices (K along -S, 2.5 mm apart), each slice's intensity its index; structure 1
    only on slice 4 (the middle of the second run of three), structure 2 only on slice 0."""
    image = np.broadcast_to(np.arange(9, dtype=np.float32)[:, None, None], (9, 4, 5)).copy()
    labels = np.zeros((9, 4, 5), np.uint8)
    labels[4, 1:3, 1:3] = 1
    labels[0, 0, 0] = 2
    geometry = Geometry(
        origin=(10.0, -20.0, 30.0),
        spacing=(0.8, 0.9, 2.5),
        direction=((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),
    )
    return BenchData("nine", Volume(image, geometry, "nine", "mr"), labels, {1: "one", 2: "two"})


def test_thick_slices_average_each_run_and_keep_the_anatomy_where_it_was():
    d = _nine_slices()
    thick = thick_slices(d, 3)
    assert thick.image.shape == (3, 4, 5) and thick.labelmap.shape == (3, 4, 5)
    np.testing.assert_allclose(thick.image.array[:, 0, 0], [1.0, 4.0, 7.0])  # the mean of each run
    assert thick.image.geometry.spacing == (0.8, 0.9, 7.5) and thick.image.modality == "mr"
    for j in range(3):  # each thick slice is centred on the middle of its run, in RAS
        np.testing.assert_allclose(
            thick.image.geometry.ijk_to_ras_points([[2, 1, j]]), d.image.geometry.ijk_to_ras_points([[2, 1, 3 * j + 1]])
        )
    assert (thick.labelmap[1] == d.labelmap[4]).all() and not thick.labelmap[[0, 2]].any()
    assert thick.structures == {1: "one"} and thick.name == "nine-thick3"  # structure 2 left no voxel
    assert thick_slices(d, 1) is d


def test_thick_slices_along_another_axis_thicken_that_axis_alone():
    """A sagittal acquisition: the nine slices run along I (the last KJI axis)."""
    d = _nine_slices()
    geometry = replace(d.image.geometry, spacing=(2.5, 0.9, 0.8))
    image = Volume(np.moveaxis(d.image.array, 0, 2).copy(), geometry, "nine", "mr")
    turned = BenchData("nine", image, np.moveaxis(d.labelmap, 0, 2).copy(), dict(d.structures))
    thick = thick_slices(turned, 3, axis=2)
    assert thick.image.shape == (4, 5, 3) and thick.labelmap.shape == (4, 5, 3)
    np.testing.assert_allclose(thick.image.array[0, 0, :], [1.0, 4.0, 7.0])
    assert thick.image.geometry.spacing == (7.5, 0.9, 0.8) and thick.name == "nine-thick3-sagittal"
    for i in range(3):
        np.testing.assert_allclose(
            thick.image.geometry.ijk_to_ras_points([[i, 1, 2]]),
            turned.image.geometry.ijk_to_ras_points([[3 * i + 1, 1, 2]]),
        )
    assert (thick.labelmap[:, :, 1] == turned.labelmap[:, :, 4]).all() and thick.structures == {1: "one"}
    with pytest.raises(InteractiveSegError, match="thick-axis"):
        thick_slices(turned, 3, axis=3)


def test_thick_slices_drop_the_trailing_slices_that_fill_no_run():
    assert thick_slices(_nine_slices(), 4).image.shape == (2, 4, 5)


@pytest.mark.parametrize("k", [0, -1, 10])
def test_a_thickness_the_volume_cannot_take_is_refused(k):
    with pytest.raises(InteractiveSegError, match=f"--thick-slices {k}: expected 1 to 9"):
        thick_slices(_nine_slices(), k)


def test_finer_voxels_split_each_voxel_and_keep_the_anatomy_where_it_was():
    d = _nine_slices()
    fine = finer_voxels(d, 2)
    assert fine.image.shape == (18, 8, 10) and fine.labelmap.shape == (18, 8, 10)
    assert fine.image.geometry.spacing == (0.4, 0.45, 1.25) and fine.image.modality == "mr"
    assert fine.name == "nine-finer2" and fine.structures == d.structures
    # the 2 x 2 x 2 fine voxels of a coarse voxel are centred on it, in RAS, and keep its label
    coarse = d.image.geometry.ijk_to_ras_points([[3, 2, 4]])
    corners = fine.image.geometry.ijk_to_ras_points([[6, 4, 8], [7, 5, 9]])
    np.testing.assert_allclose(corners.mean(0), coarse[0])
    assert (fine.labelmap[8:10, 2:6, 2:6] == 1).all() and (fine.labelmap[:2, :2, :2] == 2).all()
    assert np.count_nonzero(fine.labelmap) == 8 * np.count_nonzero(d.labelmap)
    # the image is interpolated: each pair of fine slices averages its coarse slice's value
    np.testing.assert_allclose([fine.image.array[2 * m : 2 * m + 2, 0, 0].mean() for m in range(1, 8)], range(1, 8))
    assert finer_voxels(d, 1) is d
    with pytest.raises(InteractiveSegError, match="finer-voxels"):
        finer_voxels(d, 5)


def test_a_ct_drawn_as_an_mri_keeps_its_anatomy_under_a_t1_contrast():
    """``mri_contrast``: fat brightest, then liver, then fluid, air darkest (an order no CT
    has), no Hounsfield units left to tell a CT by, labels and grid unchanged."""
    hu = np.full((12, 16, 16), -1000.0, np.float32)  # air
    hu[:, 2:14, 2:14] = -100.0  # fat
    hu[:, 4:8, 4:12] = 60.0  # liver
    hu[:, 9:12, 4:12] = 0.0  # fluid
    labels = np.zeros(hu.shape, np.uint8)
    labels[:, 4:8, 4:12] = 1
    d = BenchData("ct", Volume(hu, Geometry(spacing=(1.0, 1.0, 3.0)), "ct", "ct"), labels, {1: "liver"})
    mr = mri_contrast(d)
    assert mr.name == "ct-as-mri" and mr.image.modality == "mr" and mr.structures == d.structures
    assert mr.labelmap is d.labelmap and mr.image.geometry == d.image.geometry
    a = mr.image.array
    fat, liver, fluid, air = (float(np.median(a[hu == v])) for v in (-100.0, 60.0, 0.0, -1000.0))
    assert fat > liver > fluid > air >= 0
    assert detect_modality(a) == "mr"
    np.testing.assert_array_equal(mri_contrast(d).image.array, a)  # seeded
    with pytest.raises(InteractiveSegError, match="as-mri"):
        mri_contrast(mr)


def test_two_reports_compare_exactly_or_within_a_tolerance(tmp_path, capsys):
    """``tools/compare_bench.py``: timings never count; a Pearson r a few 1e-8 apart is a
    difference exactly and none within ``--tolerance 1e-7``; a Dice one voxel of a whole brain
    apart (3e-7) is a difference either way."""
    import json

    from conftest import load_tool

    tool = load_tool("compare_bench")
    paths = {}
    for name, dice, pearson, rss in (
        ("a", 0.8812345, 0.50517990, 700),
        ("b", 0.8812345, 0.50517991, 900),
        ("c", 0.8812348, 0.50517990, 700),
    ):
        paths[name] = tmp_path / f"{name}.json"
        result = {"dice_at": {"1": dice}, "quality_pearson": pearson, "peak_rss_mb": rss}
        paths[name].write_text(json.dumps({"results": [result]}))
    assert tool.main([str(paths["a"]), str(paths["b"])]) == 1
    assert "quality_pearson" in capsys.readouterr().out
    assert tool.main([str(paths["a"]), str(paths["b"]), "--tolerance", "1e-7"]) == 0
    assert "identical" in capsys.readouterr().out
    assert tool.main([str(paths["a"]), str(paths["c"]), "--tolerance", "1e-7"]) == 1
    assert "dice_at/1" in capsys.readouterr().out
