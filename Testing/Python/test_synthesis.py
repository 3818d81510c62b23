"""SynthSeg-style synthesis and procedural shapes: images follow the drawn parameters,
labels stay in register, thick slices blur one axis only, shapes of every kind appear."""

from dataclasses import replace

import numpy as np
from scipy import ndimage

from InteractiveSegLib.data.shapes import procedural_labelmap
from InteractiveSegLib.data.synthesis import SynthesisSettings, augment_real, label_intensities, synthesize

QUIET = SynthesisSettings(spatial=False, bias=False, thick_slices=False, blur_std_mm=0.0, noise_std=0.0, log_gamma=0.0)


def blocks() -> np.ndarray:
    lab = np.zeros((24, 40, 40), np.uint8)
    lab[:, :20, :20], lab[:, :20, 20:], lab[:, 20:, :20], lab[:, 20:, 20:] = 1, 2, 3, 4
    lab[8:16, 14:26, 14:26] = 5
    return lab


def test_each_label_follows_its_drawn_mean_and_std():
    lab = blocks()
    rng = np.random.default_rng(7)
    params = label_intensities(lab, rng, QUIET)
    image, out = synthesize(lab, (2.0, 1.0, 1.0), rng, QUIET, intensities=params)
    np.testing.assert_array_equal(out, lab)  # intensity-only steps leave the labels alone
    drawn = np.array([params[v] for v in sorted(params)])
    seen = np.array([(image[lab == v].mean(), image[lab == v].std()) for v in sorted(params)])
    # the image is rescaled to [0, 1] at the end: one affine map a * x + b for every label
    a, b = np.polyfit(drawn[:, 0], seen[:, 0], 1)
    assert a > 0 and np.abs(a * drawn[:, 0] + b - seen[:, 0]).max() < 0.02
    np.testing.assert_allclose(seen[:, 1], a * drawn[:, 1], atol=0.02)


def test_a_seed_reproduces_a_sample_and_another_seed_does_not():
    lab = blocks()
    one = synthesize(lab, (2.0, 1.0, 1.0), np.random.default_rng(3))
    again = synthesize(lab, (2.0, 1.0, 1.0), np.random.default_rng(3))
    other = synthesize(lab, (2.0, 1.0, 1.0), np.random.default_rng(4))
    np.testing.assert_array_equal(one[0], again[0])
    np.testing.assert_array_equal(one[1], again[1])
    assert not np.array_equal(one[0], other[0])


def test_deformation_keeps_a_real_image_in_register_with_its_labels():
    lab = blocks()
    image = (lab / 5.0).astype(np.float32)  # each label its own grey
    spatial_only = replace(QUIET, spatial=True)
    moved_image, moved = augment_real(image, lab, (2.0, 1.0, 1.0), np.random.default_rng(1), spatial_only)
    assert not np.array_equal(moved, lab)  # it did deform
    inner = {v: ndimage.binary_erosion(moved == v, iterations=1) for v in range(1, 6)}
    medians = [float(np.median(moved_image[inner[v]])) for v in range(1, 6) if inner[v].any()]
    assert np.all(np.diff(medians) > 0.1)  # the grey inside each deformed label is still its own


def test_thick_slices_blur_one_axis_only():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 6, (48, 48, 48)).astype(np.uint8)
    thick = replace(QUIET, thick_slices=True, thick_slice_probability=1.0, max_downsampling=5.0)
    image, _ = synthesize(lab, (1.0, 1.0, 1.0), rng, replace(thick, std_range=(0.0, 0.0)))
    energy = np.array([np.mean(np.diff(image, axis=a) ** 2) for a in range(3)])
    assert energy.min() < 0.5 * np.sort(energy)[1], energy


def test_procedural_maps_hold_every_kind_of_shape():
    labels = procedural_labelmap((80, 80, 80), np.random.default_rng(5), n_objects=6)
    objects = [labels == v for v in np.unique(labels)[-6:]]  # objects take the highest values
    assert sum(o.any() for o in objects) >= 5
    thickness = [ndimage.distance_transform_edt(o).max() for o in objects if o.any()]
    lengths = [np.ptp(np.argwhere(o), axis=0).max() for o in objects if o.any()]
    assert any(t <= 5 and n >= 20 for t, n in zip(thickness, lengths, strict=True))  # a thin tube
    filled = [ndimage.binary_fill_holes(o).sum() / max(o.sum(), 1) for o in objects]
    assert max(filled) > 1.5  # a shell encloses much more than itself
    assert sum(f > 1.001 for f in filled) >= 2  # and an object with cavities
    parts = [ndimage.label(o)[1] for o in objects]
    assert max(parts) >= 2  # an object of several components
