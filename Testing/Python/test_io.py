import numpy as np
import pytest
import SimpleITK as sitk

from InteractiveSegLib.data import datasets
from InteractiveSegLib.errors import GeometryError, ImageError
from InteractiveSegLib.io import read_labels, read_volume, write_seg_nrrd, write_volume
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.volume import Geometry, Volume


@pytest.fixture(scope="module")
def colin():
    return datasets.load("colin27")


@pytest.fixture(scope="module")
def crop(colin):
    """A real 3D crop (basal ganglia) of Colin27 with its AAL labels."""
    sl = (slice(60, 80), slice(100, 140), slice(60, 120))
    return colin.image.array[sl].copy(), colin.labels.labelmap[sl].copy(), colin.image.geometry


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_volume_round_trip_keeps_array_and_geometry(tmp_path, crop, suffix):
    arr, _, _ = crop
    geom = Geometry((10.0, -20.0, 5.0), (0.9, 1.1, 2.0), ((-1.0, 0, 0), (0, -1.0, 0), (0, 0, 1.0)))
    path = write_volume(tmp_path / f"v{suffix}", Volume(arr, geom))
    back = read_volume(path)
    np.testing.assert_allclose(back.array, arr)
    assert back.geometry.close_to(geom)


def test_real_file_geometry_is_ras(colin):
    g = colin.image.geometry
    # ch2.nii.gz: LPS origin (90, 125, -71) with direction -1 on x -> RAS origin (-90, -125, -71), +x
    np.testing.assert_allclose(g.origin, (-90.0, -125.0, -71.0))
    np.testing.assert_allclose(np.asarray(g.direction)[0, 0], 1.0)
    ras = g.ijk_to_ras_points([(0, 0, 0), (10, 0, 0)])
    np.testing.assert_allclose(g.ras_to_ijk(ras), [(0, 0, 0), (10, 0, 0)], atol=1e-9)


def test_dicom_series_folder(tmp_path, crop):
    arr, _, _ = crop
    img = sitk.Cast(sitk.GetImageFromArray(arr[:4]), sitk.sitkInt16)
    img.SetSpacing((1.0, 1.0, 2.0))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(img.GetDepth()):
        s = img[:, :, k]
        s.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1")
        s.SetMetaData("0020|0032", f"0\\0\\{2.0 * k}")
        s.SetMetaData("0020|0013", str(k))
        s.SetMetaData("0008|0060", "MR")
        writer.SetFileName(str(tmp_path / f"{k}.dcm"))
        writer.Execute(s)
    back = read_volume(tmp_path)
    assert back.shape == (4,) + arr.shape[1:]
    np.testing.assert_allclose(back.array, arr[:4].astype(np.int16))
    assert abs(back.geometry.spacing[2] - 2.0) < 1e-6


def test_seg_nrrd_round_trip_keeps_names_colours_and_values(tmp_path, crop):
    _, lab, geom = crop
    values = [int(v) for v in np.unique(lab) if v]
    table = LabelTable()
    remap = np.zeros(lab.max() + 1, np.uint8)
    for n, v in enumerate(values, start=1):
        table.add(n, f"AAL_{v}", (n / len(values), 0.5, 1 - n / len(values)))
        remap[v] = n
    labelmap = remap[lab]
    path = write_seg_nrrd(tmp_path / "s.seg.nrrd", labelmap, geom, table)
    seg = read_labels(path)
    assert [e.name for e in seg.labels] == [e.name for e in table]
    for a, b in zip(seg.labels, table, strict=False):
        np.testing.assert_allclose(a.color, b.color, atol=1e-3)
    np.testing.assert_array_equal(seg.labelmap, labelmap)
    assert seg.geometry.close_to(geom)


def test_labels_must_match_the_image_grid(tmp_path, crop):
    arr, lab, geom = crop
    write_volume(tmp_path / "lab.nrrd", lab, Geometry((1.0, 2.0, 3.0)))
    with pytest.raises(GeometryError, match="geometry"):
        read_labels(tmp_path / "lab.nrrd", reference=Volume(arr, geom))
    write_volume(tmp_path / "small.nrrd", lab[:5], geom)
    with pytest.raises(GeometryError, match="shape"):
        read_labels(tmp_path / "small.nrrd", reference=Volume(arr, geom))


def test_bad_images_give_clear_errors(tmp_path):
    (tmp_path / "junk.nii.gz").write_bytes(b"this is not an image")
    with pytest.raises(ImageError, match="cannot read"):
        read_volume(tmp_path / "junk.nii.gz")
    with pytest.raises(ImageError, match="no such file"):
        read_volume(tmp_path / "missing.nrrd")
    sitk.WriteImage(sitk.Image(10, 10, sitk.sitkFloat32), str(tmp_path / "flat.nrrd"))
    with pytest.raises(ImageError, match="3D"):
        read_volume(tmp_path / "flat.nrrd")
    sitk.WriteImage(sitk.Image([4, 4, 4, 3], sitk.sitkFloat32), str(tmp_path / "four.nrrd"))
    with pytest.raises(ImageError, match="3D"):
        read_volume(tmp_path / "four.nrrd")
    sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkVectorUInt8, 3), str(tmp_path / "rgb.nrrd"))
    with pytest.raises(ImageError, match="scalar"):
        read_volume(tmp_path / "rgb.nrrd")
    a = np.zeros((4, 4, 4), np.float32)
    a[1, 1, 1] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(a), str(tmp_path / "nan.nrrd"))
    with pytest.raises(ImageError, match="NaN"):
        read_volume(tmp_path / "nan.nrrd")
    with pytest.raises(ImageError, match="NaN"):
        read_labels(tmp_path / "nan.nrrd")


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(ImageError):
        write_seg_nrrd(tmp_path / "x.nrrd", np.zeros((2, 2, 2), np.uint8), Geometry(), LabelTable())
    with pytest.raises(ImageError):
        write_seg_nrrd(tmp_path / "y.seg.nrrd", np.zeros((2, 2), np.uint8), Geometry(), LabelTable())
    assert list(tmp_path.iterdir()) == []


def test_written_files_follow_the_umask_keep_a_files_mode_and_clear_what_a_kill_left(tmp_path):
    import os
    import stat
    import time

    lab = np.zeros((2, 4, 4), np.uint8)
    lab[0, 1, 1] = 1
    old = os.umask(0o022)
    try:
        out = write_seg_nrrd(tmp_path / "a.seg.nrrd", lab, Geometry(), LabelTable.default([1]))
        assert stat.S_IMODE(out.stat().st_mode) == 0o644  # readable by the site's other users
        os.chmod(out, 0o640)
        write_seg_nrrd(out, lab, Geometry(), LabelTable.default([1]))
        assert stat.S_IMODE(out.stat().st_mode) == 0o640  # an overwrite keeps the file's mode
        # a temporary file a killed write left behind goes with the next write of that output
        stale = tmp_path / ".tmp-a.seg.nrrd-killed.seg.nrrd"
        stale.write_bytes(b"partial")
        os.utime(stale, (time.time() - 3600, time.time() - 3600))
        write_seg_nrrd(out, lab, Geometry(), LabelTable.default([1]))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.seg.nrrd"]
    finally:
        os.umask(old)


def test_corrupt_files_are_refused_not_zero_filled(tmp_path):
    """ITK's reader zero-fills a truncated NIfTI and turns NaN into 0; a labelmap value above
    uint16 would wrap to another class."""
    import nibabel as nib

    a = np.random.default_rng(0).random((20, 30, 40)).astype(np.float32)
    nib.save(nib.Nifti1Image(a, np.eye(4)), tmp_path / "ok.nii.gz")
    raw = (tmp_path / "ok.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageError, match="truncated"):
        read_volume(tmp_path / "cut.nii.gz")
    ints = (a * 1000).astype(np.int16)
    for name in ("cut.nii", "cut.nrrd", "cut.mha"):  # uncompressed: ITK zero-fills the NIfTI only
        write_volume(tmp_path / name, ints, Geometry())
        raw = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(raw[: len(raw) * 2 // 3])
        with pytest.raises(ImageError, match="truncated"):
            read_volume(tmp_path / name)
    a[-1, -1, -1] = np.nan
    nib.save(nib.Nifti1Image(a, np.eye(4)), tmp_path / "nan.nii")
    with pytest.raises(ImageError, match="NaN"):
        read_volume(tmp_path / "nan.nii")
    lab = np.zeros((4, 5, 6), np.uint32)
    lab[1, 1, 1] = 70000
    write_volume(tmp_path / "big.nrrd", lab, Geometry())
    with pytest.raises(ImageError, match="above 65535"):
        read_labels(tmp_path / "big.nrrd")


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    from InteractiveSegLib.io import write_atomic

    out = tmp_path / "hints.json"
    out.write_text("[]")

    def half_then_crash(tmp):
        tmp.write_text('[{"type": "cli')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(out, half_then_crash)
    assert out.read_text() == "[]" and sorted(p.name for p in tmp_path.iterdir()) == ["hints.json"]
    write_atomic(out, lambda tmp: tmp.write_text("[1]"))
    assert out.read_text() == "[1]"
