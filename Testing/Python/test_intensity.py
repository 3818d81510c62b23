"""Intensities by modality on real files: the abdominal CT in HU, brain and lesion MRI; the
modality from file headers (NRRD, MetaImage, DICOM series) winning over the intensities."""

import numpy as np
import pytest
import SimpleITK as sitk

from InteractiveSegLib.data import datasets
from InteractiveSegLib.errors import ConfigError, ImageError
from InteractiveSegLib.intensity import (
    CT_KNOTS_HU,
    CT_KNOTS_VALUE,
    ct_windows,
    detect_modality,
    modality_from_metadata,
    normalize,
    normalizer,
)
from InteractiveSegLib.io import read_modality, read_volume, write_volume
from InteractiveSegLib.preprocessing import normalize_intensity
from InteractiveSegLib.volume import Volume


@pytest.fixture(scope="module")
def ct(shared_data) -> np.ndarray:
    return read_volume(shared_data / "ct-abdomen" / "ct.nii.gz").array


def test_ct_tissues_map_to_increasing_separated_values_whatever_the_field_of_view(ct):
    assert detect_modality(ct) == "ct"
    n = normalize(ct, "ct")
    assert n.dtype == np.float32 and n.shape == ct.shape and 0.0 <= n.min() and n.max() <= 1.0
    tissues = [(-1100, -600), (-150, -50), (30, 80), (400, 3000)]  # lung/air, fat, liver-ish, bone
    means = [float(n[(ct >= lo) & (ct < hi)].mean()) for lo, hi in tissues]
    assert all(b - m > 0.15 for m, b in zip(means, means[1:], strict=False)), means
    # the curve is np.interp through the documented knots
    np.testing.assert_allclose(n, np.interp(ct, CT_KNOTS_HU, CT_KNOTS_VALUE), atol=1e-6)
    # a fixed curve: the same HU gives the same value on a cropped scan and on one padded with air
    sl = np.s_[20:60, 30:70, 40:90]
    np.testing.assert_array_equal(normalize(ct[sl], "ct"), n[sl])
    padded = np.pad(ct, 10, constant_values=-1024)
    np.testing.assert_array_equal(normalize(padded, "auto")[10:-10, 10:-10, 10:-10], n)
    # integer HU (as scanners store them) give the same values as float HU
    np.testing.assert_array_equal(normalize(ct.astype(np.int16), "CT"), n)


def test_ct_windows_are_fixed_stacked_channels(ct):
    w = ct_windows(ct)
    assert w.shape == (3, *ct.shape) and w.dtype == np.float32 and w.min() >= 0 and w.max() <= 1
    lung, soft, bone = w
    assert float(lung[ct < -600].mean()) < 0.5 and float(soft[(ct > 30) & (ct < 80)].mean()) > 0.4
    assert float(bone[ct > 1000].min()) > 0.5
    two = ct_windows(ct, [(40.0, 400.0), (-600.0, 1500.0)])
    np.testing.assert_array_equal(two[0], soft)
    with pytest.raises(ConfigError, match="centre, width"):
        ct_windows(ct, [(40.0, 0.0)])


def test_brain_and_lesion_mri_are_detected_and_their_body_spans_the_range(shared_data):
    colin = datasets.load("colin27").image
    assert detect_modality(colin) == "mr"
    n = normalize(colin.array, "mr")
    assert n.dtype == np.float32 and n.min() == 0.0 and n.max() == 1.0
    body = colin.array > 20  # the head; background is 0
    assert 0.2 < float(np.median(n[body])) < 0.8
    # a zero-background T1: close to the non-zero percentile scaling the older networks use
    assert float(np.abs(n - normalize_intensity(colin.array)).mean()) < 0.03
    for name in ("mr-brain-tumor/t1gd.nrrd", "mr-breast/image.nrrd"):
        image = read_volume(shared_data / name)
        assert detect_modality(image) == "mr", name
        assert 0.0 <= normalize(image.array, "auto").min() and normalize(image.array, "auto").max() == 1.0


def test_a_dark_background_stays_dark_and_a_small_body_is_not_flattened():
    rng = np.random.default_rng(0)
    a = rng.normal(5, 2, (20, 100, 100)).clip(0)  # air
    a[:, 40:60, 40:60] = rng.normal(600, 80, (20, 20, 20))  # body: 4% of the field of view
    n = normalize(a, "auto")
    assert float(n[:, :30].mean()) < 0.05
    body = n[:, 40:60, 40:60]
    assert 0.3 < float(np.median(body)) < 0.8 and float(body.std()) > 0.05
    assert float(body.max()) == 1.0  # the body's top, not a background percentile, maps to 1
    # integer MR (uint16 as stored) gives the same scaling
    np.testing.assert_allclose(normalize(np.round(a).astype(np.uint16), "mr"), normalize(np.round(a), "mr"), atol=1e-6)


def test_detection_copes_with_padding_dtypes_constant_and_tiny_volumes():
    rng = np.random.default_rng(1)
    crop = rng.normal(40, 60, (30, 64, 64)).astype(np.int16)  # a CT cropped to soft tissue: no air...
    assert detect_modality(crop) == "mr"
    crop[:, :1, :10] = -2048  # ...but scanner padding at the minimum (0.3%) says CT
    assert detect_modality(crop) == "ct"
    assert detect_modality(np.full((4, 8, 8), 7, np.uint8)) == "mr"
    assert detect_modality(np.full((4, 8, 8), -1000, np.int16)) == "mr"  # no tissue: not a CT
    assert detect_modality(np.zeros((1, 1, 1), np.float32)) == "mr"
    assert detect_modality(np.array([[[-1000.0, 40.0]]])) == "ct"
    const = normalize(np.full((3, 4, 5), 12.0), "mr")
    assert const.shape == (3, 4, 5) and np.isfinite(const).all()
    for huge in (1e30, -1e30, 3e38):  # lo + 1 == lo in floating point: still a width, no division by zero
        flat = np.full((3, 4, 5), huge, np.float32)
        assert np.isfinite(normalize(flat, "mr")).all() and np.isfinite(normalize_intensity(flat)).all()


def test_header_and_volume_modality_win_over_intensities_and_bad_input_is_refused():
    a = np.full((4, 8, 8), 100.0, np.float32)
    a[0] = -1000.0  # looks like HU
    assert detect_modality(a) == "ct"
    assert detect_modality(a, {"0008|0060": "MR"}) == "mr"
    assert detect_modality(Volume(a, modality="mr")) == "mr"
    assert detect_modality(Volume(a, modality="mr"), {"modality": "CT"}) == "ct"  # the caller's header first
    assert modality_from_metadata({"Modality": "MET_MOD_CT"}) == "ct"
    assert modality_from_metadata({"0008|0060": "PT"}) is None
    with pytest.raises(ConfigError, match="'ct', 'mr', 'auto'"):
        normalize(a, "pet")
    a[0, 0, 0] = np.nan
    with pytest.raises(ImageError, match="NaN"):
        normalize(a, "mr")
    with pytest.raises(ImageError, match="pixel type"):
        detect_modality(np.ones((2, 2, 2), np.complex64))


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_a_written_modality_comes_back_from_the_header(tmp_path, suffix):
    mr_like = np.random.default_rng(2).uniform(0, 500, (6, 16, 16)).astype(np.float32)
    path = write_volume(tmp_path / f"x{suffix}", Volume(mr_like, modality="ct"))
    back = read_volume(path)
    assert back.modality == "ct" and read_modality(path) == "ct"
    assert detect_modality(back) == "ct" and detect_modality(back.array) == "mr"
    # a header written by another tool (NRRD ``modality:=MR``)
    img = sitk.GetImageFromArray(np.full((4, 8, 8), -1000, np.int16))
    img.SetMetaData("modality", "MR")
    sitk.WriteImage(img, str(tmp_path / "other.nrrd"))
    assert read_volume(tmp_path / "other.nrrd").modality == "mr"
    assert read_volume(write_volume(tmp_path / "plain.nii.gz", Volume(mr_like))).modality is None


def test_a_dicom_series_keeps_its_modality_tag(tmp_path):
    img = sitk.GetImageFromArray(np.random.default_rng(3).integers(0, 300, (3, 16, 16)).astype(np.int16))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(img.GetDepth()):
        s = img[:, :, k]
        s.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.7")
        s.SetMetaData("0020|0032", f"0\\0\\{float(k)}")
        s.SetMetaData("0020|0013", str(k))
        s.SetMetaData("0008|0060", "CT")
        writer.SetFileName(str(tmp_path / f"{k}.dcm"))
        writer.Execute(s)
    assert read_modality(tmp_path) == "ct"
    volume = read_volume(tmp_path)
    assert volume.modality == "ct" and detect_modality(volume) == "ct"


@pytest.mark.parametrize("modality", ["ct", "mr"])
def test_the_normalizer_gives_on_a_slice_what_normalize_gives_on_the_volume(modality):
    rng = np.random.default_rng(3)
    a = rng.normal(300 if modality == "mr" else -200, 300, (6, 20, 24)).astype(np.float32)
    whole = normalize(a, modality)
    scale = normalizer(a, modality)
    for axis in range(3):
        np.testing.assert_array_equal(scale(np.take(a, 2, axis=axis)), np.take(whole, 2, axis=axis))
