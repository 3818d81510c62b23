"""Domain randomisation as in SynthSeg (Billot et al., Medical Image Analysis 2023), through
TorchIO: the label map is deformed, then an image is drawn from it with a random Gaussian
per label, shaded by a bias field, resampled to thick slices, blurred, made noisy and
gamma-corrected, so that a network trained on such images has no preferred contrast,
resolution or anatomy. ``augment_real`` applies the same spatial and imaging changes (not
the intensities per label) to a real image, to mix real and synthetic samples, and can first
send it through a random tone curve (``random_tone_curve``): a real texture in another contrast.

Arrays are KJI with spacing (k, j, i) in mm; TorchIO sees them as one-channel tensors whose
affine carries that spacing, so slice thickness, blur and deformation are in millimetres.
Every random draw comes from the ``numpy.random.Generator`` passed in (TorchIO's through a
torch seed drawn from it), so a seed reproduces a sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
import torch
import torchio as tio

from InteractiveSegLib.errors import ConfigError, GeometryError, ImageError
from InteractiveSegLib.intensity import subsample

Spacing = tuple[float, float, float]
Intensities = dict[int, tuple[float, float]]


@dataclass(frozen=True)
class SynthesisSettings:
    """What is randomised, and how much. Defaults are SynthSeg's priors scaled to [0, 1] images.

    Attributes:
        mean_range: per-label mean ~ U(range); SynthSeg's U(0, 255).
        std_range: per-label std ~ U(range); SynthSeg's U(0, 35) / 255.
        spatial: random affine then elastic deformation (labels nearest-neighbour).
        degrees: rotation about each axis ~ U(-degrees, degrees).
        scales: scaling along each axis ~ U(1 - scales, 1 + scales).
        elastic_displacement_mm: largest elastic displacement (capped so that the field never folds).
        elastic_control_points: control points of the elastic B-spline grid along each axis.
        bias: a smooth multiplicative bias field.
        bias_coefficients: largest coefficient of its polynomial (TorchIO's default).
        thick_slices: one random axis resampled to thick slices and back (TorchIO's RandomAnisotropy).
        max_slice_mm: thickest slice; a thickness ~ U(spacing, max_slice_mm) along that axis.
        thick_slice_probability: how often a sample gets thick slices.
        blur: an isotropic-in-mm Gaussian blur.
        blur_std_mm: its std ~ U(0, blur_std_mm).
        noise: additive Gaussian noise, after the image is drawn (values about [0, 1]).
        noise_std: its std ~ U(0, noise_std).
        gamma: a random gamma on the [0, 1] image.
        log_gamma: log of gamma ~ U(-log_gamma, log_gamma).
        percentiles: the intensities mapped to 0 and 1 at the end (robust min-max), then clipped.
        tone_curve_probability: how often ``augment_real`` first maps the real image through a
            random tone curve (``random_tone_curve``): its own texture under another contrast.
        tone_knots: the curve's knots, at evenly spaced quantiles of the image.
    """

    mean_range: tuple[float, float] = (0.0, 1.0)
    std_range: tuple[float, float] = (0.0, 35 / 255)
    spatial: bool = True
    degrees: float = 15.0
    scales: float = 0.2
    elastic_displacement_mm: float = 6.0
    elastic_control_points: int = 7
    bias: bool = True
    bias_coefficients: float = 0.5
    thick_slices: bool = True
    max_slice_mm: float = 10.0
    thick_slice_probability: float = 0.5
    blur: bool = True
    blur_std_mm: float = 1.0
    noise: bool = True
    noise_std: float = 0.03
    gamma: bool = True
    log_gamma: float = 0.4
    percentiles: tuple[float, float] = (0.5, 99.5)
    tone_curve_probability: float = 0.0
    tone_knots: int = 6

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ``ConfigError`` for a setting TorchIO would reject or that makes no sense.

        Raises:
            ConfigError: naming the setting.
        """
        for name in ("mean_range", "std_range", "percentiles"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ConfigError(f"{name} must be (low, high) with 0 <= low <= high, not {(lo, hi)}")
        if self.percentiles[1] > 100:
            raise ConfigError(f"percentiles must lie in [0, 100], not {self.percentiles}")
        for name in (
            "degrees",
            "elastic_displacement_mm",
            "bias_coefficients",
            "blur_std_mm",
            "noise_std",
            "log_gamma",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, not {getattr(self, name)}")
        if not 0 <= self.scales < 1:
            raise ConfigError(f"scales must lie in [0, 1), not {self.scales}")
        if self.elastic_control_points < 5:
            raise ConfigError(f"elastic_control_points must be at least 5, not {self.elastic_control_points}")
        if self.max_slice_mm <= 0:
            raise ConfigError(f"max_slice_mm must be positive, not {self.max_slice_mm}")
        for name in ("thick_slice_probability", "tone_curve_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must lie in [0, 1], not {getattr(self, name)}")
        if self.tone_knots < 2:
            raise ConfigError(f"tone_knots must be at least 2, not {self.tone_knots}")


def label_intensities(
    labelmap: np.ndarray, rng: np.random.Generator, settings: SynthesisSettings | None = None
) -> Intensities:
    """A Gaussian per label value, drawn from the settings' uniform priors.

    Args:
        labelmap: integer labels (or just the label values).
        rng: the source of the draws.
        settings: the priors (default ``SynthesisSettings()``).

    Returns:
        label -> (mean, std), for every value in ``labelmap`` in increasing order.
    """
    s = settings or SynthesisSettings()
    return {int(v): (float(rng.uniform(*s.mean_range)), float(rng.uniform(*s.std_range))) for v in np.unique(labelmap)}


def _checked(labelmap: np.ndarray, spacing: Spacing) -> np.ndarray:
    """``labelmap`` as a contiguous 3D array of non-negative integers (what TorchIO and the lookup need)."""
    lab = np.ascontiguousarray(labelmap)
    if lab.ndim != 3 or not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == bool):
        raise ImageError(f"a label map must be a 3D integer array, not {lab.ndim}D {lab.dtype}")
    if lab.size and lab.min() < 0:
        raise ImageError("label values must not be negative")
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ImageError(f"spacing must be three positive sizes in mm, not {spacing}")
    return lab


def _affine(spacing: Spacing) -> np.ndarray:
    return np.diag([*map(float, spacing), 1.0])


def _spatial(settings: SynthesisSettings, shape: tuple[int, ...], spacing: Spacing) -> list[tio.Transform]:
    """Random affine then elastic deformation; label maps are resampled nearest-neighbour, padded with 0."""
    if not settings.spatial:
        return []
    # at most 40% of the control-point spacing on each axis, so that the field never folds
    gaps = settings.elastic_control_points - 1
    m = settings.elastic_displacement_mm
    d = [min(m, 0.4 * n * s / gaps) for n, s in zip(shape, spacing, strict=True)]
    return [
        tio.RandomAffine(scales=settings.scales, degrees=settings.degrees, default_pad_value="minimum"),
        tio.RandomElasticDeformation(
            num_control_points=settings.elastic_control_points,
            max_displacement=(d[0], d[1], d[2]),
            locked_borders=2,
        ),
    ]


def _thick_slices(settings: SynthesisSettings, spacing: Spacing, rng: np.random.Generator) -> list[tio.Transform]:
    """Thick slices along one random axis, a thickness ~ U(spacing, max_slice_mm): a blur over the
    slice profile (the partial volume a thick slice averages; SynthSeg blurs before it
    downsamples), then RandomAnisotropy's down- and up-sampling (nearest, then linear).

    RandomAnisotropy's coarse grid covers only ``floor(n / factor)`` slices, so the last few
    slices at either end would be extrapolated as a constant: the axis is padded (edge values)
    by more than a slice on each side first, and cropped back after.
    """
    apply, axis = rng.random() < settings.thick_slice_probability, int(rng.integers(3))
    thickness = float(rng.uniform(spacing[axis], max(spacing[axis], settings.max_slice_mm)))
    factor = thickness / spacing[axis]
    if not (settings.thick_slices and apply and factor > 1.01):
        return []
    std = [0.0, 0.0, 0.0]
    std[axis] = 0.425 * float(np.sqrt(thickness**2 - spacing[axis] ** 2))  # FWHM: the extra thickness
    margin = [0, 0, 0, 0, 0, 0]
    margin[2 * axis] = margin[2 * axis + 1] = int(np.ceil(factor)) + 1
    return [
        tio.Pad(tuple(margin), padding_mode="edge"),
        tio.Blur(std=(std[0], std[1], std[2])),
        tio.RandomAnisotropy(axes=axis, downsampling=(factor, factor)),
        tio.Crop(tuple(margin)),
    ]


def _imaging(settings: SynthesisSettings, spacing: Spacing, rng: np.random.Generator) -> list[tio.Transform]:
    """Bias field, thick slices, blur, noise, then [0, 1] and gamma (gamma needs non-negative values)."""
    out: list[tio.Transform] = []
    if settings.bias and settings.bias_coefficients > 0:
        out.append(tio.RandomBiasField(coefficients=settings.bias_coefficients))
    out += _thick_slices(settings, spacing, rng)
    if settings.blur and settings.blur_std_mm > 0:
        out.append(tio.RandomBlur(std=(0, settings.blur_std_mm)))
    if settings.noise and settings.noise_std > 0:
        out.append(tio.RandomNoise(std=(0, settings.noise_std)))
    out.append(tio.RescaleIntensity(out_min_max=(0, 1), percentiles=settings.percentiles))
    if settings.gamma and settings.log_gamma > 0:
        out.append(tio.RandomGamma(log_gamma=(-settings.log_gamma, settings.log_gamma)))
    return out


def _run(transforms: list[tio.Transform], subject: tio.Subject, rng: np.random.Generator) -> tio.Subject:
    """Apply ``transforms`` with torch's generator seeded from ``rng`` (``_torch_seeded``)."""
    seed = int(rng.integers(2**31))
    if not transforms:
        return subject
    with _torch_seeded(seed):
        out = tio.Compose(transforms)(subject)
    assert isinstance(out, tio.Subject)  # what Compose returns for a Subject
    return out


@contextmanager
def _torch_seeded(seed: int) -> Iterator[None]:
    """Torch's generator seeded with ``seed`` (TorchIO draws from it), in a forked generator
    state so that the caller's torch random stream is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def bias_field(shape: tuple[int, ...], coefficients: float, seed: int) -> np.ndarray:
    """A smooth multiplicative bias field of ``shape`` (TorchIO's ``RandomBiasField``, seeded),
    the shading an MRI's receive coils leave.

    Args:
        shape: KJI.
        coefficients: the largest coefficient of its polynomial (TorchIO's default 0.5).
        seed: torch's seed for the draw.
    Returns:
        float32 of ``shape``, about 1.
    """
    with _torch_seeded(seed):
        field = tio.RandomBiasField(coefficients=coefficients)(tio.ScalarImage(tensor=torch.ones((1, *shape))))
    return field.data[0].numpy().astype(np.float32)


def _data(subject: tio.Subject, key: str) -> np.ndarray:
    image = subject[key]
    assert isinstance(image, tio.Image)  # what the transforms return
    return image.data[0].numpy()


def _to_unit(image: np.ndarray) -> np.ndarray:
    """float32 in [0, 1]: gamma and rescaling leave it there but for rounding, or NaN on a flat image."""
    return np.clip(np.nan_to_num(image, nan=0.0), 0, 1).astype(np.float32)


@overload
def synthesize(
    labelmap: np.ndarray,
    spacing: Spacing,
    rng: np.random.Generator,
    settings: SynthesisSettings | None = ...,
    intensities: Intensities | None = ...,
    return_params: Literal[False] = ...,
) -> tuple[np.ndarray, np.ndarray]: ...


@overload
def synthesize(
    labelmap: np.ndarray,
    spacing: Spacing,
    rng: np.random.Generator,
    settings: SynthesisSettings | None = ...,
    intensities: Intensities | None = ...,
    *,
    return_params: Literal[True],
) -> tuple[np.ndarray, np.ndarray, Intensities]: ...


def synthesize(
    labelmap: np.ndarray,
    spacing: Spacing,
    rng: np.random.Generator,
    settings: SynthesisSettings | None = None,
    intensities: Intensities | None = None,
    return_params: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, Intensities]:
    """An image drawn from a label map, SynthSeg's way: deform the labels, draw a Gaussian per
    label on the deformed map, then bias, thick slices, blur, noise, [0, 1], gamma.

    Args:
        labelmap: KJI non-negative integer labels; every value, background included, gets an intensity.
        spacing: (k, j, i) voxel size in mm.
        rng: the source of every random draw (a seed reproduces the sample).
        settings: what to randomise (default ``SynthesisSettings()``).
        intensities: label -> (mean, std) to use; labels it lacks (0 brought in by the
            deformation's padding, say) are drawn from the settings' priors.
        return_params: also return the intensities used.

    Returns:
        (image float32 in [0, 1], deformed label map of ``labelmap``'s dtype), on the input
        grid; with ``return_params``, the label -> (mean, std) used as a third item (before
        bias, noise, rescaling and gamma).

    Raises:
        ImageError: ``labelmap`` is not a 3D non-negative integer array, or ``spacing`` is bad.
    """
    s = settings or SynthesisSettings()
    lab = _checked(labelmap, spacing)
    params = dict(intensities) if intensities is not None else label_intensities(lab, rng, s)
    affine = _affine(spacing)
    moved = lab
    if s.spatial:
        subject = tio.Subject(label=tio.LabelMap(tensor=torch.from_numpy(lab[None].astype(np.int64)), affine=affine))
        moved = _data(_run(_spatial(s, lab.shape, spacing), subject, rng), "label").astype(lab.dtype)
    # RandomLabelsToImage wants labels 0..n-1 with one mean and std each: renumber through a lookup
    codes = moved.astype(np.int64)
    values = np.flatnonzero(np.bincount(codes.ravel()))
    lookup = np.zeros(int(values[-1]) + 1, np.int64)
    lookup[values] = np.arange(len(values))
    missing = values[[int(v) not in params for v in values]]
    params |= label_intensities(missing, rng, s)
    subject = tio.Subject(label=tio.LabelMap(tensor=torch.from_numpy(lookup[codes][None]), affine=affine))
    render = tio.RandomLabelsToImage(
        label_key="label",
        image_key="image",
        mean=[params[int(v)][0] for v in values],
        std=[params[int(v)][1] for v in values],
    )
    image = _to_unit(_data(_run([render, *_imaging(s, spacing, rng)], subject, rng), "image"))
    return (image, moved, params) if return_params else (image, moved)


def random_tone_curve(image: np.ndarray, rng: np.random.Generator, knots: int = 6) -> np.ndarray:
    """``image`` through a random piecewise-linear tone curve: knots at evenly spaced quantiles
    of its intensities, each sent to a value drawn from U(0, 1), so the curve need not rise. A
    CT's fat may come out brighter than its liver and its fluid darker, as in a T1-weighted MRI;
    a brain's grey matter brighter than its white, as in a T2. SynthSeg draws one intensity per
    label from its label map; this keeps the real image's texture and partial volumes, and
    reaches tissue no label names (hand-written: neither TorchIO nor MONAI has a non-monotone
    intensity remap).

    Args:
        image: KJI intensities of any range.
        rng: draws the knots' values.
        knots: at least 2.
    Returns:
        float32 in [0, 1], of ``image``'s shape (``image`` itself, as float32, if it is flat).
    """
    a = np.asarray(image, np.float32)
    at = np.unique(np.quantile(subsample(a, 100_000), np.linspace(0, 1, knots)))
    if at.size < 2:
        return a
    return np.interp(a, at, rng.uniform(0, 1, at.size)).astype(np.float32)


def augment_real(
    image: np.ndarray,
    labelmap: np.ndarray,
    spacing: Spacing,
    rng: np.random.Generator,
    settings: SynthesisSettings | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A real image and its labels under the same deformation, bias field, thick slices, blur,
    noise and gamma as a synthetic sample (its own contrast kept, but in a share
    ``settings.tone_curve_probability`` sent through ``random_tone_curve``), to mix real and
    synthetic data.

    Args:
        image: KJI intensities, normalised (``InteractiveSegLib.intensity``), on the label grid.
        labelmap: KJI non-negative integer labels.
        spacing: (k, j, i) voxel size in mm.
        rng: the source of every random draw.
        settings: what to randomise (default ``SynthesisSettings()``; the intensity priors are unused).

    Returns:
        (image float32 in [0, 1], label map of ``labelmap``'s dtype), on the input grid.

    Raises:
        ImageError: bad label map or spacing; GeometryError: image and labels differ in shape.
    """
    s = settings or SynthesisSettings()
    lab = _checked(labelmap, spacing)
    if image.shape != lab.shape:
        raise GeometryError(f"image {image.shape} and label map {lab.shape} must share a grid")
    if s.tone_curve_probability > 0 and rng.random() < s.tone_curve_probability:
        image = random_tone_curve(image, rng, s.tone_knots)
    affine = _affine(spacing)
    subject = tio.Subject(
        image=tio.ScalarImage(tensor=torch.from_numpy(np.ascontiguousarray(image, np.float32)[None]), affine=affine),
        label=tio.LabelMap(tensor=torch.from_numpy(lab[None].astype(np.int64)), affine=affine),
    )
    spatial = _spatial(s, lab.shape, spacing)
    out = _run([*spatial, *_imaging(s, spacing, rng)], subject, rng)
    return _to_unit(_data(out, "image")), _data(out, "label").astype(lab.dtype)
