"""Intensities by modality: CT in Hounsfield units through one fixed curve, MRI by robust
percentiles of the body.

``preprocessing.normalize_intensity`` (percentiles of the non-zero voxels) stays for the
networks trained with it; it treats CT air (-1000 HU) as signal. Engines trained on any
scan use this module instead, and record ``"intensity": "modality"`` in their checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from skimage.filters import threshold_otsu

from InteractiveSegLib.errors import ConfigError, ImageError
from InteractiveSegLib.volume import Volume

MODALITIES = ("ct", "mr")

#: The CT tone curve (HU -> [0, 1]), linear between knots and clipped outside. A click network
#: takes one intensity channel, so one curve must serve lungs, abdomen and bone: air (-1000)
#: -> 0 and lung (-900..-500) -> 0..0.1 stay apart; fat (-150..-50) ~0.25..0.39 sits below
#: soft tissue; soft tissue (-150..250 HU), where organs differ by a few tens of HU, gets 0.55
#: of the range (~0.14 per 100 HU); bone (250..1500) keeps the top 0.2. Fixed, so a tissue has
#: the same value on every scan whatever its field of view.
CT_KNOTS_HU = (-1000.0, -500.0, -150.0, 250.0, 1500.0)
CT_KNOTS_VALUE = (0.0, 0.1, 0.25, 0.8, 1.0)

#: Fixed windows (centre, width in HU) for callers that take several channels.
CT_WINDOWS = {"lung": (-600.0, 1500.0), "soft_tissue": (40.0, 400.0), "bone": (400.0, 1800.0)}

#: DICOM Modality values (tag 0008|0060) and header words that name a modality.
#: (MetaImage writes its own ``Modality = MET_MOD_CT`` field.)
_META_WORDS = {
    "ct": ("ct", "met_mod_ct"),
    "mr": ("mr", "mri", "met_mod_mr", "t1", "t2", "flair", "dwi", "adc", "pd"),
}
_META_KEYS = ("0008|0060", "modality", "Modality", "MODALITY")

#: Values scanners write outside the reconstructed circle of a CT (HU).
_CT_PADDING = (-1000.0, -1024.0, -2000.0, -2048.0, -3024.0)

_SAMPLE = 500_000  # voxels enough for percentiles and Otsu's threshold to 3 digits


def modality_from_metadata(metadata: Mapping[str, str] | None) -> str | None:
    """The modality a header names, if it names one.

    Args:
        metadata: header fields (SimpleITK ``GetMetaData``): DICOM ``0008|0060``, an NRRD
            ``modality:=`` field, or any dict with a ``modality`` key.

    Returns:
        "ct", "mr", or None when no field names one of them (e.g. PET, or no field).
    """
    if not metadata:
        return None
    for key in _META_KEYS:
        value = str(metadata.get(key, "")).strip().lower()
        for modality, words in _META_WORDS.items():
            if value in words:
                return modality
    return None


def detect_modality(volume: Volume | np.ndarray, metadata: Mapping[str, str] | None = None) -> str:
    """The modality of an image: the header if it says, else the intensities.

    Order: ``metadata`` (the caller's header), then ``Volume.modality`` (what ``io`` read from the
    file), then Hounsfield units. MRI magnitudes are never negative in quantity, while a CT holds
    air (-1000 HU) outside the body and in the lungs, so at least 1% of voxels at or below -500
    HU together with tissue at or above water (99th percentile >= 0) means CT. A CT cropped
    close to the body may have less air, but its scanner padding (-1024, -2048, -3024...) at the
    minimum gives it away.

    Args:
        volume: the image, a Volume or an array of any real dtype and shape.
        metadata: header fields, if the caller has them.

    Returns:
        "ct" or "mr".
    """
    from_header = modality_from_metadata(metadata)
    if from_header:
        return from_header
    if isinstance(volume, Volume) and volume.modality:
        declared = modality_from_metadata({"modality": volume.modality})
        if declared:
            return declared
    a = _real_array(volume.array if isinstance(volume, Volume) else volume)
    sample = subsample(a)
    p1, p99 = (float(v) for v in np.percentile(sample, [1, 99]))
    if p99 < 0:  # no tissue at water or above: not HU
        return "mr"
    if p1 <= -500:
        return "ct"
    low = float(a.min())
    padded = any(abs(low - pad) <= 1 for pad in _CT_PADDING)
    return "ct" if padded and np.count_nonzero(sample <= low + 1) >= max(1, sample.size // 1000) else "mr"


def normalize(array: np.ndarray | Volume, modality: str) -> np.ndarray:
    """Intensities in [0, 1] by modality.

    Args:
        array: the image (any real dtype and shape), or a Volume.
        modality: "ct" (the fixed HU curve ``CT_KNOTS_HU``), "mr" (see ``mr_range``) or "auto"
            (``detect_modality``); case does not matter.

    Returns:
        float32 array of the image's shape, in [0, 1].
    """
    a = array.array if isinstance(array, Volume) else array
    return normalizer(a, modality)(a)


def normalizer(array: np.ndarray | Volume, modality: str) -> Callable[[np.ndarray], np.ndarray]:
    """The mapping :func:`normalize` applies to this image, to apply to any part of it (a
    slice, a block) with the same result: an engine that reads a slice at a time keeps no
    normalised copy of the volume (600 MB of float32 for a 512 x 512 x 600 CT).

    Args:
        array: the whole image (its MRI range is measured here), or a Volume.
        modality: as for :func:`normalize`.

    Returns:
        A function from an array of the image's intensities to float32 in [0, 1].
    """
    key = modality.strip().lower() if isinstance(modality, str) else modality
    if key not in (*MODALITIES, "auto"):
        raise ConfigError(f"unknown modality {modality!r}; use one of {[*MODALITIES, 'auto']}")
    if key == "auto":
        key = detect_modality(array)
    if key == "ct":
        return lambda part: ct_curve(_real_array(part))
    lo, hi = mr_range(_real_array(array.array if isinstance(array, Volume) else array))

    def scale(part: np.ndarray) -> np.ndarray:
        out = np.asarray(_real_array(part), np.float32) - np.float32(lo)
        out *= np.float32(1.0 / (hi - lo))
        return np.clip(out, 0.0, 1.0, out=out)

    return scale


def ct_curve(array: np.ndarray) -> np.ndarray:
    """The fixed CT tone curve (``CT_KNOTS_HU`` -> ``CT_KNOTS_VALUE``), clipped to [0, 1].

    Same values as ``np.interp`` (to 1e-7) but in float32 ramps over cache-sized chunks: several
    times faster and no float64 copy of a 512x512x300 scan.

    Args:
        array: a CT in HU.

    Returns:
        float32 array of the image's shape.
    """
    a = np.asarray(array)
    out = np.empty(a.shape, np.float32)
    flat_in, flat_out = a.reshape(-1), out.reshape(-1)
    xs = np.asarray(CT_KNOTS_HU, np.float32)
    ys = np.asarray(CT_KNOTS_VALUE, np.float32)
    widths, slopes = np.diff(xs), np.diff(ys) / np.diff(xs)
    step = 1 << 20  # chunks that stay in cache
    tmp = np.empty(min(step, flat_in.size), np.float32)
    for start in range(0, flat_in.size, step):
        src, dst = flat_in[start : start + step], flat_out[start : start + step]
        t = tmp[: src.size]
        dst.fill(ys[0])
        for x0, w, s in zip(xs[:-1], widths, slopes, strict=True):
            np.subtract(src, x0, out=t, casting="unsafe")
            np.clip(t, 0.0, w, out=t)
            t *= s
            dst += t
    return np.clip(out, 0.0, 1.0, out=out)


def mr_range(a: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """The (lo, hi) intensities an MRI is scaled between.

    ``hi`` is the ``high`` percentile of the body, the voxels above Otsu's threshold, so that a
    large empty field of view does not pull the top into the tissue. ``lo`` is the ``low``
    percentile of the whole image: the background is dark, so air maps to 0 while dark tissue
    (CSF, below Otsu's threshold) stays above it; the body's own low percentile would send CSF
    and half of a lesion to 0. On a zero-background brain this is within ~0.01 of
    ``preprocessing.normalize_intensity``. Falls back to all voxels when the body is under 1%.

    Args:
        a: the image.
        low: percentile of the whole image mapped to 0.
        high: percentile of the body mapped to 1.

    Returns:
        (lo, hi) with hi > lo.
    """
    sample = subsample(_real_array(a)).astype(np.float32, copy=False)
    lo = float(np.percentile(sample, low))
    body = sample
    if np.ptp(sample) > 0:
        inside = sample[sample > threshold_otsu(sample)]
        if inside.size >= max(16, sample.size // 100):
            body = inside
    return with_width(lo, float(np.percentile(body, high)))


def with_width(lo: float, hi: float) -> tuple[float, float]:
    """(lo, hi) as float64 scalars with hi > lo: a flat image (hi <= lo) gets a width relative
    to its magnitude, since lo + 1 rounds back to lo above about 1e16 and a scaling by
    1 / (hi - lo) would divide by zero (it maps the flat image to 0). numpy's float64, not
    Python's float: arithmetic with a float32 array then runs in float64, as it did with the
    percentiles these come from."""
    lo, hi = np.float64(lo), np.float64(hi)
    return lo, (hi if hi > lo else lo + max(1.0, abs(lo) * 1e-6))


def ct_windows(
    array: np.ndarray,
    windows: Mapping[str, tuple[float, float]] | Sequence[tuple[float, float]] | None = None,
) -> np.ndarray:
    """Stacked fixed HU windows, each scaled to [0, 1], for callers that take several channels.

    Args:
        array: a CT in HU.
        windows: (centre, width) pairs, or name -> (centre, width); default ``CT_WINDOWS``
            (lung, soft tissue, bone).

    Returns:
        float32 array (len(windows), *array.shape).
    """
    a = np.asarray(_real_array(array), np.float32)
    chosen = CT_WINDOWS if windows is None else windows
    pairs = list(chosen.values()) if isinstance(chosen, Mapping) else list(chosen)
    if not pairs or any(len(p) != 2 or float(p[1]) <= 0 for p in pairs):
        raise ConfigError(f"CT windows must be (centre, width > 0) pairs, got {windows!r}")
    out = np.empty((len(pairs), *a.shape), np.float32)
    for n, (c, w) in enumerate(pairs):
        np.subtract(a, np.float32(c - w / 2), out=out[n])
        out[n] *= np.float32(1.0 / w)
        np.clip(out[n], 0.0, 1.0, out=out[n])
    return out


def _real_array(array: np.ndarray) -> np.ndarray:
    """``array`` as a non-empty real array with finite values (ImageError otherwise)."""
    a = np.asarray(array)
    if a.dtype.kind not in "biuf":
        raise ImageError(f"unsupported pixel type {a.dtype} (a real scalar image is needed)")
    if a.size == 0:
        raise ImageError(f"empty image of shape {a.shape}")
    if a.dtype.kind == "b":
        return a.astype(np.uint8)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ImageError("the image has NaN or infinite values")
    return a


def subsample(a: np.ndarray, count: int = _SAMPLE) -> np.ndarray:
    """Every n-th voxel, about ``count`` of them (all when the image is smaller): enough for
    percentiles and quantiles without sorting a whole volume."""
    return a.reshape(-1)[:: max(1, a.size // count)]
