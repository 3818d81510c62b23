"""Intensities by modality: CT in Hounsfield units through one fixed curve, MRI by robust
percentiles of the body.

``preprocessing.normalize_intensity`` (percentiles of the non-zero voxels) stays for the
networks trained with it; it treats CT air (-1000 HU) as signal. Engines trained on any
scan use this module instead, and record ``"intensity": "modality"`` in their checkpoint.
"""

from __future__ import annotations

import numpy as np
from skimage.filters import threshold_otsu

from InteractiveSegLib.errors import ConfigError, ImageError
from InteractiveSegLib.volume import Volume

MODALITIES = ("ct", "mr")

#: The CT tone curve (HU -> [0, 1]). One channel must show lung against air, fat against
#: soft tissue and bone against both; soft tissue (-150..250 HU), where organs differ by a few
#: tens of HU, gets most of the range. Fixed, so a tissue has the same value on every scan.
CT_KNOTS_HU = (-1000.0, -500.0, -150.0, 250.0, 1500.0)
CT_KNOTS_VALUE = (0.0, 0.1, 0.25, 0.8, 1.0)

#: Fixed windows (centre, width in HU) for callers that take several channels.
CT_WINDOWS = {"lung": (-600.0, 1500.0), "soft_tissue": (40.0, 400.0), "bone": (400.0, 1800.0)}

#: DICOM Modality values (tag 0008|0060) and header words that name a modality.
_META_WORDS = {"ct": ("ct",), "mr": ("mr", "mri", "t1", "t2", "flair", "dwi", "adc", "pd")}


def modality_from_metadata(metadata: dict[str, str] | None) -> str | None:
    """ "ct" or "mr" from a header (DICOM ``0008|0060``, NRRD/NIfTI ``modality``), else None."""
    if not metadata:
        return None
    for key in ("0008|0060", "modality", "Modality"):
        value = str(metadata.get(key, "")).strip().lower()
        for modality, words in _META_WORDS.items():
            if value in words:
                return modality
    return None


def detect_modality(volume: Volume | np.ndarray, metadata: dict[str, str] | None = None) -> str:
    """The modality of an image: its header if it says, else its intensities.

    CT is recognised by Hounsfield units: air and lung lie at or below -500 HU, which no
    MRI reconstruction produces in quantity, and soft tissue lies around 0..100 HU.

    Args:
        volume: the image (a Volume, whose ``modality`` wins when set, or an array).
        metadata: header fields, if the caller has them.

    Returns:
        "ct" or "mr".
    """
    declared = getattr(volume, "modality", None) if isinstance(volume, Volume) else None
    if declared in MODALITIES:
        return str(declared)
    from_header = modality_from_metadata(metadata)
    if from_header:
        return from_header
    a = np.asarray(volume.array if isinstance(volume, Volume) else volume)
    sample = a.ravel()[:: max(1, a.size // 200_000)].astype(np.float32)  # percentiles of a subsample suffice
    p1, p99 = np.percentile(sample, [1, 99])
    # air/lung/padding at <= -500 HU on at least 1% of voxels, and tissue at or above water
    return "ct" if p1 <= -500 and p99 >= 0 else "mr"


def normalize(array: np.ndarray, modality: str) -> np.ndarray:
    """Intensities in [0, 1] by modality (float32, same shape).

    Args:
        array: the image.
        modality: "ct" (the fixed HU curve ``CT_KNOTS_HU``), "mr" (0.5 / 99.5 percentiles of
            the body, found by Otsu's threshold) or "auto" (detected).

    Returns:
        The normalised image.
    """
    if modality == "auto":
        modality = detect_modality(array)
    a = np.asarray(array, np.float32)
    if not np.isfinite(a).all():
        raise ImageError("the image has NaN or infinite values")
    if modality == "ct":
        return np.interp(a, CT_KNOTS_HU, CT_KNOTS_VALUE).astype(np.float32)
    if modality == "mr":
        lo, hi = body_percentiles(a)
        return np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    raise ConfigError(f"unknown modality {modality!r}; use one of {[*MODALITIES, 'auto']}")


def body_percentiles(a: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """The ``low`` percentile of the whole image (MRI background is dark: air maps to 0) and the
    ``high`` percentile of the body, the voxels above Otsu's threshold, so that a large empty
    field of view does not pull the top of the range into the tissue."""
    sample = a.ravel()[:: max(1, a.size // 500_000)]
    lo = float(np.percentile(sample, low))
    body = sample
    if np.ptp(sample) > 0:
        inside = sample[sample > threshold_otsu(sample)]
        if inside.size >= max(16, sample.size // 100):
            body = inside
    hi = float(np.percentile(body, high))
    return lo, (hi if hi > lo else lo + 1.0)


def ct_windows(array: np.ndarray, windows: dict[str, tuple[float, float]] | None = None) -> np.ndarray:
    """Stacked fixed HU windows, each in [0, 1]: (len(windows), *array.shape) float32.

    Args:
        array: a CT in HU.
        windows: name -> (centre, width); default ``CT_WINDOWS`` (lung, soft tissue, bone).
    """
    a = np.asarray(array, np.float32)
    out = [np.clip((a - (c - w / 2)) / w, 0.0, 1.0) for c, w in (windows or CT_WINDOWS).values()]
    return np.stack(out).astype(np.float32)
