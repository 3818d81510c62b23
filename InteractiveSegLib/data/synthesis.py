"""Domain randomisation as in SynthSeg (Billot et al., Medical Image Analysis 2023), through
TorchIO: images drawn from label maps with random intensities per label, then deformed,
shaded, resampled to thick slices, blurred and made noisy, so that a network trained on
them has no preferred contrast, resolution or anatomy. ``augment_real`` applies the same
spatial and imaging changes to a real image.

Arrays are KJI with spacing (k, j, i) in mm; TorchIO sees them as one-channel tensors
whose affine carries that spacing, so thick slices and deformations are in millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchio as tio

from InteractiveSegLib.errors import ConfigError


@dataclass(frozen=True)
class SynthesisSettings:
    """What is randomised, and how much (SynthSeg's priors, scaled to [0, 1] intensities)."""

    mean_range: tuple[float, float] = (0.0, 1.0)  # per-label mean, uniform
    std_range: tuple[float, float] = (0.0, 0.08)  # per-label std, uniform
    spatial: bool = True  # random affine and elastic deformation of the label map
    degrees: float = 12.0
    scales: float = 0.15
    elastic_displacement_mm: float = 6.0
    bias: bool = True
    bias_coefficients: float = 0.5
    thick_slices: bool = True  # RandomAnisotropy: one axis downsampled, then back
    max_downsampling: float = 5.0  # e.g. 2 mm in-plane -> 10 mm slices
    thick_slice_probability: float = 0.5
    blur_std_mm: float = 1.0
    noise_std: float = 0.03
    log_gamma: float = 0.4

    def check(self) -> None:
        lo, hi = self.mean_range
        if not 0 <= lo <= hi or not 0 <= self.std_range[0] <= self.std_range[1]:
            raise ConfigError(f"bad intensity ranges: mean {self.mean_range}, std {self.std_range}")
        if self.max_downsampling < 1:
            raise ConfigError("max_downsampling must be at least 1")


def label_intensities(
    labels: np.ndarray, rng: np.random.Generator, settings: SynthesisSettings
) -> dict[int, tuple[float, float]]:
    """A Gaussian per label value: (mean, std) drawn from the settings' uniform priors."""
    return {
        int(v): (float(rng.uniform(*settings.mean_range)), float(rng.uniform(*settings.std_range)))
        for v in np.unique(labels)
    }


def _affine(spacing: tuple[float, float, float]) -> np.ndarray:
    return np.diag([*spacing, 1.0])


def _spatial(settings: SynthesisSettings, shape: tuple[int, ...], spacing: tuple[float, float, float]) -> list:
    if not settings.spatial:
        return []
    # at most 40% of the control-point spacing on each axis, so that the field never folds
    cap = [0.4 * n * s / 6 for n, s in zip(shape, spacing, strict=True)]
    m = settings.elastic_displacement_mm
    displacement = (min(m, cap[0]), min(m, cap[1]), min(m, cap[2]))
    return [
        tio.RandomAffine(scales=settings.scales, degrees=settings.degrees, default_pad_value="minimum"),
        tio.RandomElasticDeformation(num_control_points=7, max_displacement=displacement, locked_borders=2),
    ]


def _imaging(settings: SynthesisSettings) -> list[tio.Transform]:
    """Bias field, thick slices, blur, noise, then [0, 1] and gamma (gamma needs non-negative values)."""
    out: list[tio.Transform] = []
    if settings.bias:
        out.append(tio.RandomBiasField(coefficients=settings.bias_coefficients))
    if settings.thick_slices and settings.max_downsampling > 1:
        out.append(
            tio.RandomAnisotropy(downsampling=(1.0, settings.max_downsampling), p=settings.thick_slice_probability)
        )
    if settings.blur_std_mm > 0:
        out.append(tio.RandomBlur(std=(0, settings.blur_std_mm)))
    if settings.noise_std > 0:
        out.append(tio.RandomNoise(std=(0, settings.noise_std)))
    out.append(tio.RescaleIntensity(out_min_max=(0, 1), percentiles=(0.5, 99.5)))
    if settings.log_gamma > 0:
        out.append(tio.RandomGamma(log_gamma=(-settings.log_gamma, settings.log_gamma)))
    return out


def _seed(rng: np.random.Generator) -> None:
    """TorchIO draws from torch's generator: seed it from ``rng`` so a seed reproduces a sample."""
    torch.manual_seed(int(rng.integers(2**31)))


def synthesize(
    labels: np.ndarray,
    spacing: tuple[float, float, float],
    rng: np.random.Generator,
    settings: SynthesisSettings | None = None,
    intensities: dict[int, tuple[float, float]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """An image drawn from a label map (SynthSeg).

    Args:
        labels: KJI integer label map (every value, background included, gets an intensity).
        spacing: (k, j, i) voxel size in mm.
        rng: the source of every random draw.
        settings: what to randomise (default ``SynthesisSettings()``).
        intensities: label -> (mean, std); drawn with ``label_intensities`` when None.

    Returns:
        (image float32 in [0, 1], label map deformed with it), on the same grid.
    """
    settings = settings or SynthesisSettings()
    settings.check()
    params = intensities or label_intensities(labels, rng, settings)
    _seed(rng)
    affine = _affine(spacing)
    moved = np.asarray(labels)
    if settings.spatial:  # SynthSeg deforms the label map first, then draws the image on it
        subject = tio.Subject(label=tio.LabelMap(tensor=torch.from_numpy(moved[None].astype(np.int64)), affine=affine))
        label = tio.Compose(_spatial(settings, labels.shape, spacing))(subject)["label"]
        assert isinstance(label, tio.Image)  # what the transforms return
        moved = label.data[0].numpy()
    # TorchIO wants one intensity per label present, in order: number the labels 0..n-1
    values, index = np.unique(moved, return_inverse=True)
    new = [v for v in values if int(v) not in params]  # padding the deformation brought in
    params = {**params, **label_intensities(np.asarray(new), rng, settings)}
    subject = tio.Subject(label=tio.LabelMap(tensor=torch.from_numpy(index.reshape(moved.shape)[None]), affine=affine))
    render = tio.RandomLabelsToImage(
        label_key="label",
        image_key="image",
        mean=[params[int(v)][0] for v in values],
        std=[params[int(v)][1] for v in values],
    )
    image, _ = _arrays(tio.Compose([render, *_imaging(settings)])(subject))
    return image, moved.astype(labels.dtype)


def augment_real(
    image: np.ndarray,
    labels: np.ndarray,
    spacing: tuple[float, float, float],
    rng: np.random.Generator,
    settings: SynthesisSettings | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A real [0, 1] image and its labels under the same deformation, bias field, thick
    slices, blur, noise and gamma as a synthetic one (its own contrast kept).

    Returns:
        (image float32 in [0, 1], label map), on the same grid.
    """
    settings = settings or SynthesisSettings()
    settings.check()
    _seed(rng)
    affine = _affine(spacing)
    subject = tio.Subject(
        image=tio.ScalarImage(tensor=torch.from_numpy(np.ascontiguousarray(image, np.float32)[None]), affine=affine),
        label=tio.LabelMap(tensor=torch.from_numpy(np.ascontiguousarray(labels)[None].astype(np.int64)), affine=affine),
    )
    out = tio.Compose([*_spatial(settings, labels.shape, spacing), *_imaging(settings)])(subject)
    moved_image, moved = _arrays(out)
    return moved_image, moved.astype(labels.dtype)


def _arrays(subject: tio.Subject) -> tuple[np.ndarray, np.ndarray]:
    """(image clipped to [0, 1], label map) of a transformed subject."""
    image, label = subject["image"], subject["label"]
    assert isinstance(image, tio.Image) and isinstance(label, tio.Image)  # what the transforms return
    return np.clip(image.data[0].numpy(), 0, 1).astype(np.float32), label.data[0].numpy()
