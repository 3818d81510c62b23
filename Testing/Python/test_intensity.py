"""Intensities by modality on real files: the abdominal CT in HU, brain and lesion MRI."""

import numpy as np
import pytest

from InteractiveSegLib.data import datasets
from InteractiveSegLib.errors import ConfigError, ImageError
from InteractiveSegLib.intensity import ct_windows, detect_modality, normalize
from InteractiveSegLib.volume import Volume


def shared(name):
    try:
        return datasets.load(name)
    except ImageError as e:  # a plain clone has no ../shared/data
        pytest.skip(str(e))


def test_ct_tissues_map_to_increasing_separated_values_whatever_the_field_of_view():
    ct = shared("ct-abdomen")
    a = ct.image.array
    assert detect_modality(ct.image) == "ct"
    n = normalize(a, "ct")
    tissues = [(-1100, -600), (-150, -50), (30, 80), (400, 3000)]  # lung/air, fat, liver-ish, bone
    means = [float(n[(a >= lo) & (a < hi)].mean()) for lo, hi in tissues]
    assert all(b - m > 0.1 for m, b in zip(means, means[1:], strict=False)), means
    # a fixed curve: the same HU gives the same value on a cropped scan
    crop = a[20:60, 30:70, 40:90]
    np.testing.assert_array_equal(normalize(crop, "ct"), n[20:60, 30:70, 40:90])
    assert ct_windows(a).shape == (3, *a.shape)


def test_brain_and_lesion_mri_are_detected_and_their_body_spans_the_range():
    colin = datasets.load("colin27")
    assert detect_modality(colin.image) == "mr"
    n = normalize(colin.image.array, "mr")
    assert n.min() == 0.0 and n.max() == 1.0
    brain = colin.labels.labelmap > 0
    assert 0.2 < float(np.median(n[brain])) < 0.8
    tumour = shared("mr-brain-tumor")
    assert detect_modality(tumour.image) == "mr"


def test_a_dark_background_stays_dark_and_a_small_body_is_not_flattened():
    rng = np.random.default_rng(0)
    a = rng.normal(5, 2, (20, 100, 100)).clip(0)  # air
    a[:, 40:60, 40:60] = rng.normal(600, 80, (20, 20, 20))  # body: 4% of the field of view
    n = normalize(a, "auto")
    assert float(n[:, :30].mean()) < 0.05
    body = n[:, 40:60, 40:60]
    assert 0.3 < float(np.median(body)) < 0.8 and float(body.std()) > 0.05


def test_header_and_volume_modality_win_over_intensities_and_bad_input_is_refused():
    a = np.full((4, 8, 8), 100.0, np.float32)
    assert detect_modality(a, {"0008|0060": "CT"}) == "ct"
    assert detect_modality(Volume(a, modality="ct")) == "ct"
    with pytest.raises(ConfigError, match="unknown modality"):
        normalize(a, "pet")
    a[0, 0, 0] = np.nan
    with pytest.raises(ImageError, match="NaN"):
        normalize(a, "mr")
