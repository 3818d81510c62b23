"""SynthSeg-style synthesis and procedural shapes: images follow the drawn parameters, labels
stay in register, thick slices blur one axis only, shapes of every kind appear."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import ndimage

from InteractiveSegLib.data.shapes import OBJECT_KINDS, procedural_labelmap
from InteractiveSegLib.data.synthesis import (
    SynthesisSettings,
    augment_real,
    label_intensities,
    random_tone_curve,
    synthesize,
)
from InteractiveSegLib.errors import ConfigError, GeometryError, ImageError

# labels-to-image only, and a plain min-max to [0, 1]: the image is a * (drawn Gaussian) + b
QUIET = SynthesisSettings(
    spatial=False, bias=False, thick_slices=False, blur=False, noise=False, gamma=False, percentiles=(0.0, 100.0)
)
SPACING = (2.0, 1.0, 1.0)


def blocks() -> np.ndarray:
    lab = np.zeros((24, 40, 40), np.uint8)
    lab[:, :20, 20:], lab[:, 20:, :20], lab[:, 20:, 20:] = 1, 2, 3
    lab[8:16, 14:26, 14:26] = 4
    lab[4:20, 4:12, 28:36] = 5
    return lab


def follows(image: np.ndarray, lab: np.ndarray, params: dict[int, tuple[float, float]]) -> None:
    """Each label's mean and std in ``image`` are its drawn ones under one map a * x + b (the rescaling)."""
    values = sorted(int(v) for v in np.unique(lab))
    drawn = np.array([params[v] for v in values])
    seen = np.array([(image[lab == v].mean(), image[lab == v].std()) for v in values])
    a, b = np.polyfit(drawn[:, 0], seen[:, 0], 1)
    assert a > 0
    np.testing.assert_allclose(seen[:, 0], a * drawn[:, 0] + b, atol=0.01)
    np.testing.assert_allclose(seen[:, 1], a * drawn[:, 1], rtol=0.1, atol=0.005)


def test_each_label_follows_its_drawn_mean_and_std():
    lab = blocks()
    image, out, params = synthesize(lab, SPACING, np.random.default_rng(7), QUIET, return_params=True)
    assert image.dtype == np.float32 and image.shape == lab.shape and image.min() == 0 and image.max() == 1
    np.testing.assert_array_equal(out, lab)
    assert sorted(params) == [0, 1, 2, 3, 4, 5]
    lo, hi = QUIET.std_range
    assert all(0 <= m <= 1 and lo <= s <= hi for m, s in params.values())  # SynthSeg's uniform priors
    assert np.ptp([m for m, _ in params.values()]) > 0.3
    follows(image, lab, params)


def test_given_intensities_are_used_and_missing_ones_drawn():
    lab = blocks()
    given = label_intensities(lab[lab > 0], np.random.default_rng(1), QUIET)  # no intensity for 0
    image, _, params = synthesize(lab, SPACING, np.random.default_rng(2), QUIET, given, return_params=True)
    assert all(params[v] == given[v] for v in given) and 0 in params
    follows(image, lab, params)


def test_a_seed_reproduces_a_sample_and_another_seed_does_not():
    lab = blocks()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    one = synthesize(lab, SPACING, np.random.default_rng(3))
    np.testing.assert_array_equal(torch.rand(3), expected)  # the caller's torch stream is left alone
    again = synthesize(lab, SPACING, np.random.default_rng(3))
    other = synthesize(lab, SPACING, np.random.default_rng(4))
    np.testing.assert_array_equal(one[0], again[0])
    np.testing.assert_array_equal(one[1], again[1])
    assert not np.array_equal(one[0], other[0])
    real = augment_real(one[0], one[1], SPACING, np.random.default_rng(5))
    np.testing.assert_array_equal(real[0], augment_real(one[0], one[1], SPACING, np.random.default_rng(5))[0])


def test_intensity_steps_leave_the_labels_alone():
    lab = blocks()
    every = replace(SynthesisSettings(), spatial=False, thick_slice_probability=1.0)
    image, out = synthesize(lab, SPACING, np.random.default_rng(8), every)
    np.testing.assert_array_equal(out, lab)
    assert out.dtype == lab.dtype and image.shape == lab.shape
    assert image.dtype == np.float32 and image.min() >= 0 and image.max() <= 1
    real, out = augment_real(image, lab, SPACING, np.random.default_rng(9), every)
    np.testing.assert_array_equal(out, lab)
    assert not np.array_equal(real, image)


def test_the_image_is_drawn_on_the_deformed_labels():
    lab = blocks()
    spatial = replace(QUIET, spatial=True)
    image, out, params = synthesize(lab, SPACING, np.random.default_rng(11), spatial, return_params=True)
    assert not np.array_equal(out, lab)  # it did deform
    assert set(np.unique(out)) <= set(np.unique(lab))  # nearest neighbour: no new label values
    # objects moved, not lost (0 also gains the padding that rotation brings in)
    assert all(abs(int((out == v).sum()) / int((lab == v).sum()) - 1) < 0.5 for v in range(1, 6))
    follows(image, out, params)  # each label's Gaussian sits exactly where the label is


def test_deformation_keeps_a_real_image_in_register_with_its_labels():
    lab = blocks()
    grey = np.array([0.2, 0.4, 0.5, 0.7, 0.85, 1.0], np.float32)
    spatial = replace(QUIET, spatial=True)
    image, out = augment_real(grey[lab], lab, SPACING, np.random.default_rng(1), spatial)
    assert not np.array_equal(out, lab)
    expected = (grey - grey.min()) / np.ptp(grey)  # min-max; padding takes the minimum
    for v in range(6):
        inner = ndimage.binary_erosion(out == v, iterations=2)  # linear image vs nearest labels
        if inner.sum() > 20:
            assert abs(float(image[inner].mean()) - expected[v]) < 0.02, v
    with pytest.raises(GeometryError):
        augment_real(grey[lab][:-1], lab, SPACING, np.random.default_rng(1))


def test_a_tone_curve_gives_each_tissue_one_new_intensity_in_any_order():
    """``random_tone_curve``: a function of the intensity (each tissue's voxels stay equal to
    each other), in [0, 1], that over a few seeds puts some darker tissue above a brighter one
    (a CT's fat over its liver); ``augment_real`` applies it only where asked."""
    lab = blocks()
    grey = np.array([0.1, 0.3, 0.45, 0.6, 0.8, 0.95], np.float32)
    flips = 0
    for seed in range(6):
        out = random_tone_curve(grey[lab], np.random.default_rng(seed))
        assert out.shape == lab.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
        tissue = np.array([out[lab == v].mean() for v in range(6)])
        assert all(np.ptp(out[lab == v]) == 0 for v in range(6))
        flips += int((np.diff(tissue) < 0).any())
    assert flips >= 3
    flat = np.full((4, 4, 4), 7.0, np.float32)
    np.testing.assert_array_equal(random_tone_curve(flat, np.random.default_rng(0)), flat)
    image, _ = augment_real(grey[lab], lab, SPACING, np.random.default_rng(3), QUIET)
    toned, _ = augment_real(
        grey[lab], lab, SPACING, np.random.default_rng(3), replace(QUIET, tone_curve_probability=1.0)
    )
    seen = [np.array([a[lab == v].mean() for v in range(6)]) for a in (image, toned)]
    assert (np.diff(seen[0]) > 0).all() and not np.allclose(seen[0], seen[1], atol=0.05)


def test_thick_slices_blur_one_axis_only():
    lab = np.random.default_rng(0).integers(0, 6, (48, 48, 48)).astype(np.uint8)
    fine = replace(QUIET, std_range=(0.0, 0.0))
    thick = replace(fine, thick_slices=True, thick_slice_probability=1.0, max_slice_mm=6.0)

    def energy(settings: SynthesisSettings) -> np.ndarray:
        image, out = synthesize(lab, (1.0, 1.0, 1.0), np.random.default_rng(2), settings)
        np.testing.assert_array_equal(out, lab)
        return np.array([np.mean(np.diff(image, axis=a) ** 2) for a in range(3)]) / image.var()

    before, after = energy(fine), energy(thick)
    ratio = after / before
    axis = int(np.argmin(ratio))
    assert ratio[axis] < 0.5, ratio
    assert np.all(np.abs(np.delete(ratio, axis) - 1) < 0.2), ratio


def test_procedural_maps_hold_every_kind_of_shape():
    n = len(OBJECT_KINDS)
    labels = procedural_labelmap((80, 80, 80), np.random.default_rng(1), n_objects=n)
    np.testing.assert_array_equal(labels, procedural_labelmap((80, 80, 80), np.random.default_rng(1), n_objects=n))
    assert labels.dtype == np.uint16 and labels.shape == (80, 80, 80)
    assert 0 in labels and (labels > n).any()  # background and tissue regions around the objects
    objects = [labels == v for v in range(1, n + 1)]
    assert sum(o.sum() > 50 for o in objects) >= n - 1
    thickness = [ndimage.distance_transform_edt(o).max() if o.any() else 0 for o in objects]
    lengths = [np.ptp(np.argwhere(o), axis=0).max() if o.any() else 0 for o in objects]
    assert any(0 < t <= 2.5 and n >= 30 for t, n in zip(thickness, lengths, strict=True))  # a thin tube
    filled = [ndimage.binary_fill_holes(o).sum() / max(o.sum(), 1) for o in objects]
    assert max(filled) > 1.5  # a shell encloses much more than itself
    assert sum(f > 1.005 for f in filled) >= 2  # and an object with cavities
    sizes = [np.sort(np.bincount(ndimage.label(o)[0].ravel())[1:])[::-1] for o in objects]
    assert sum(len(s) >= 2 and s[1] >= 20 for s in sizes) >= 2  # objects of several sizeable components
    spans = [np.ptp(np.argwhere(o), axis=0).min() / 80 if o.any() else 0 for o in objects]
    assert max(spans) > 0.5 and min(o.sum() for o in objects if o.any()) < 0.01 * labels.size  # large and small


def test_bad_settings_and_inputs_are_refused():
    with pytest.raises(ConfigError):
        SynthesisSettings(std_range=(0.2, 0.1))
    with pytest.raises(ConfigError):
        replace(QUIET, thick_slice_probability=2.0)
    with pytest.raises(ConfigError):
        SynthesisSettings(max_slice_mm=0.0)
    with pytest.raises(ConfigError):
        SynthesisSettings(tone_curve_probability=1.5)
    with pytest.raises(ConfigError):
        SynthesisSettings(tone_knots=1)
    with pytest.raises(ImageError):
        synthesize(blocks().astype(np.float32), SPACING, np.random.default_rng(0))
    with pytest.raises(ImageError):
        synthesize(blocks(), (1.0, 0.0, 1.0), np.random.default_rng(0))
