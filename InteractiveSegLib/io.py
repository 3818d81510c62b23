"""Reading and writing volumes and segmentations.

Images go through SimpleITK (NIfTI, NRRD, MHA, DICOM series folder); segmentations
with segment names and colours through slicerio (``.seg.nrrd``). Every reader
validates before returning, and every writer writes to a temporary file that is
renamed into place, so a failure never leaves a partial file behind.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import SimpleITK as sitk

from InteractiveSegLib.errors import GeometryError, ImageError
from InteractiveSegLib.intensity import modality_from_metadata
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.volume import Geometry, Volume, check_same_grid, validate_image_array

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def geometry_from_sitk(img: sitk.Image) -> Geometry:
    d = np.asarray(img.GetDirection(), float).reshape(3, 3)
    origin = _LPS_TO_RAS @ np.asarray(img.GetOrigin(), float)
    spacing = cast(tuple[float, float, float], tuple(float(s) for s in img.GetSpacing()))
    return Geometry(tuple(origin), spacing, tuple(map(tuple, _LPS_TO_RAS @ d)))


def geometry_to_sitk(img: sitk.Image, geometry: Geometry) -> sitk.Image:
    img.SetOrigin(tuple(_LPS_TO_RAS @ np.asarray(geometry.origin)))
    img.SetSpacing(tuple(geometry.spacing))
    img.SetDirection(tuple((_LPS_TO_RAS @ np.asarray(geometry.direction)).ravel()))
    return img


def ijk_to_lps(geometry: Geometry) -> np.ndarray:
    m = geometry.ijk_to_ras.copy()
    m[:3, :] = _LPS_TO_RAS @ m[:3, :]
    return m


def _series_files(folder: Path) -> list[str]:
    """The files of the DICOM series in ``folder``; ImageError when it holds none."""
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    if not files:
        raise ImageError(f"{folder}: folder holds no DICOM series")
    return files


def _check_nifti_data(path: Path) -> None:
    """Refuse a NIfTI file whose voxel data is cut short or not finite. ITK's reader fills a
    truncated file with zeros and turns NaN/Inf into 0 without a word, so the data is read
    once more, as stored, with nibabel."""
    import nibabel as nib

    try:
        image = nib.load(str(path))
        proxy = image.dataobj  # type: ignore[attr-defined]  # NIfTI images have it
        shape, dtype = proxy.shape, image.get_data_dtype()  # type: ignore[attr-defined]
        if not path.name.endswith(".gz") and dtype.kind not in "fc":
            # integers cannot hold NaN: the file's size tells whether the data is all there
            needed = int(proxy.offset) + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if path.stat().st_size < needed:
                raise ValueError(f"{path.stat().st_size} bytes of the {needed} its header announces")
            return
        # slab by slab along the last axis, so the check costs a slab's memory, not the image's
        step = max(1, (32 * 1024**2) // max(int(np.prod(shape[:-1], dtype=np.int64)) * dtype.itemsize, 1))
        for start in range(0, shape[-1] if len(shape) else 1, step):
            slab = np.asanyarray(proxy[..., start : start + step]) if len(shape) else np.asanyarray(proxy)
            if slab.dtype.kind in "fc" and not np.isfinite(slab).all():
                raise ImageError(f"{path}: the image holds NaN or infinite values")
    except (EOFError, OSError, ValueError) as e:  # nibabel's words for missing bytes
        raise ImageError(f"{path}: the file is truncated or corrupt ({e})") from None
    except ImageError:
        raise
    except Exception:  # not a file nibabel reads (e.g. an unusual header): ITK decides
        return


def _read_sitk(path: str | os.PathLike) -> sitk.Image:
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{p}: no such file or folder")
    try:
        if p.is_dir():
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(_series_files(p))
            return reader.Execute()
        if p.name.endswith((".nii", ".nii.gz")):
            _check_nifti_data(p)
        return sitk.ReadImage(str(p))
    except RuntimeError as e:
        # ITK's last line is often vague (a truncated MetaImage says "No such file or directory")
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown reason"
        raise ImageError(f"{p}: cannot read image: not an image, truncated or corrupt ({first})") from None


def _sitk_to_array(img: sitk.Image, name: str) -> np.ndarray:
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise ImageError(
            f"{name}: expected a scalar image, "
            f"got {img.GetNumberOfComponentsPerPixel()} components per voxel (RGB/vector)"
        )
    if img.GetDimension() != 3:
        raise ImageError(f"{name}: expected a 3D image, got a {img.GetDimension()}D image of size {img.GetSize()}")
    # a view, valid while ``img`` lives: each caller makes the one copy it keeps
    return sitk.GetArrayViewFromImage(img)


def read_volume(path: str | os.PathLike) -> Volume:
    """Read a 3D scalar image; ImageError if unreadable, not 3D, not scalar or not finite."""
    img = _read_sitk(path)
    name = Path(path).name
    arr = np.array(_sitk_to_array(img, name), np.float32)  # the one copy, owned (the view dies with img)
    header = {k: img.GetMetaData(k) for k in img.GetMetaDataKeys()}
    modality = modality_from_metadata(header)
    if modality is None and Path(path).is_dir():  # a series reader keeps no tags: read the first file's
        modality = read_modality(path)
    return Volume(
        validate_image_array(arr, name),
        geometry_from_sitk(img),
        name=name.split(".")[0],
        modality=modality,
    )


def read_modality(path: str | os.PathLike) -> str | None:
    """The modality a file's header names, reading the header only.

    Args:
        path: an image file (DICOM tag ``0008|0060``, NRRD ``modality:=`` field) or a DICOM
            series folder (its first file).

    Returns:
        "ct", "mr", or None when the header does not say (NIfTI has no such field).
    """
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{p}: no such file or folder")
    try:
        if p.is_dir():
            p = Path(_series_files(p)[0])
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(p))
        reader.ReadImageInformation()
        return modality_from_metadata({k: reader.GetMetaData(k) for k in reader.GetMetaDataKeys()})
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown reason"
        raise ImageError(f"{p}: cannot read image header ({first})") from None


@dataclass
class Segmentation:
    """A multi-class labelmap (KJI, uint8/uint16) on an image grid plus its label table."""

    labelmap: np.ndarray
    geometry: Geometry
    labels: LabelTable = field(default_factory=LabelTable)


#: Labelmaps are uint16 (as Slicer's): a larger value would wrap round to another class.
MAX_LABEL = 65535


def read_labels(path: str | os.PathLike, reference: Volume | None = None) -> Segmentation:
    """Read reference labels from a labelmap image or a ``.seg.nrrd``.

    With ``reference``, the labels must lie on the image grid (GeometryError otherwise).
    Overlapping segments of a multi-layer ``.seg.nrrd`` are flattened, later segments on top.
    """
    p = Path(path)
    if str(p).endswith(".seg.nrrd"):
        seg = _read_seg_nrrd(p)
    else:
        img = _read_sitk(p)
        arr = _sitk_to_array(img, p.name)
        if arr.dtype.kind == "f":
            if not np.isfinite(arr).all():
                raise ImageError(f"{p.name}: labelmap contains NaN or infinite values")
            if not np.allclose(arr, np.round(arr)):
                raise ImageError(f"{p.name}: labelmap has non-integer values; pass a thresholded mask")
        if arr.min() < 0:
            raise ImageError(f"{p.name}: labelmap has negative values")
        if arr.max() > MAX_LABEL:
            raise ImageError(f"{p.name}: label value {int(arr.max())} is above {MAX_LABEL}, the largest a label can be")
        arr = arr.astype(np.uint16 if arr.max() > 255 else np.uint8)
        values = [int(v) for v in np.unique(arr) if v != 0]
        seg = Segmentation(arr, geometry_from_sitk(img), LabelTable.default(values))
    if reference is not None:
        check_same_grid(reference, seg.labelmap.shape, seg.geometry)
    return seg


def _read_seg_nrrd(p: Path) -> Segmentation:
    import slicerio

    try:
        seg = slicerio.read_segmentation(str(p))
    except Exception as e:  # slicerio raises plain exceptions of several kinds
        raise ImageError(f"{p}: cannot read segmentation ({e})") from None
    voxels = np.asarray(seg["voxels"])
    if voxels.ndim not in (3, 4):
        raise ImageError(f"{p}: segmentation voxels must be 3D (or layered 4D), got shape {voxels.shape}")
    m = np.asarray(seg["ijkToLPS"], float)
    m[:3, :] = _LPS_TO_RAS @ m[:3, :]
    geometry = Geometry.from_ijk_to_ras(m)
    shape_ijk = voxels.shape[-3:]
    labelmap = np.zeros(shape_ijk[::-1], np.uint16)
    table = LabelTable()
    segments = seg["segments"]
    file_values = [int(s.get("labelValue", 0)) for s in segments]
    if max(file_values, default=0) > MAX_LABEL or len(segments) > MAX_LABEL:
        raise ImageError(f"{p}: a segment's label value is above {MAX_LABEL}, the largest a label can be")
    # Keep the file's label values when they identify the segments; renumber overlapping layers.
    keep = voxels.ndim == 3 and len(set(file_values)) == len(file_values) and min(file_values, default=1) >= 1
    for n, s in enumerate(segments, start=1):
        value = file_values[n - 1] if keep else n
        mask = slicerio.segment_mask(seg, s)
        labelmap[np.transpose(mask, (2, 1, 0))] = value
        table.add(value, s.get("name", s.get("id", f"Segment_{n}")), s.get("color"))
    if labelmap.max() < 256:
        labelmap = labelmap.astype(np.uint8)
    return Segmentation(labelmap, geometry, table)


#: A temporary file of an earlier write older than this was left by a killed process.
STALE_TEMP_SECONDS = 600


def _atomic_path(path: Path) -> Path:
    """A temporary file beside ``path`` to write into, then ``_publish``. Its name says which
    output it is for, so the next write of that output removes what a killed run left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".tmp-{path.name}-"
    now = time.time()
    for old in path.parent.glob(prefix + "*"):
        try:
            if now - old.stat().st_mtime > STALE_TEMP_SECONDS:  # a live writer's file is recent
                old.unlink()
        except OSError:
            pass
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix="".join(path.suffixes), dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _publish(tmp: Path, path: Path) -> None:
    """Move a finished temporary file into place with the mode a plain write would give: the
    existing file's, else 0666 less the umask (``mkstemp`` creates 0600, unreadable to others)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)  # reading the umask means setting it: put it straight back
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Write a file all at once or not at all: ``write`` fills a temporary file beside
    ``path`` (same suffixes, so format-by-suffix writers work), which then replaces it.

    Args:
        path: the output.
        write: called with the temporary path.

    Returns:
        ``path``.
    """
    path = Path(path)
    tmp = _atomic_path(path)
    try:
        write(tmp)
        _publish(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_seg_nrrd(path: str | os.PathLike, labelmap: np.ndarray, geometry: Geometry, labels: LabelTable) -> Path:
    """Write a multi-class labelmap as a Slicer ``.seg.nrrd`` with one named, coloured segment per class."""
    import slicerio

    path = Path(path)
    if not str(path).endswith(".seg.nrrd"):
        raise ImageError(f"{path}: a segmentation file must end in .seg.nrrd")
    labelmap = np.asarray(labelmap)
    if labelmap.ndim != 3:
        raise ImageError(f"labelmap must be 3D, got shape {labelmap.shape}")
    seg = slicerio.create_segmentation(
        labelmap.shape[::-1], ijk_to_lps(geometry), dtype="uint8" if labelmap.max() < 256 else "uint16"
    )
    seg["voxels"][...] = np.transpose(labelmap, (2, 1, 0))
    seg["segments"] = [
        {"id": f"Segment_{e.value}", "name": e.name, "color": list(e.color), "labelValue": int(e.value), "layer": 0}
        for e in labels
    ]
    return write_atomic(path, lambda tmp: slicerio.write_segmentation(str(tmp), seg))


def write_volume(path: str | os.PathLike, volume: Volume | np.ndarray, geometry: Geometry | None = None) -> Path:
    """Write an image (or a labelmap array with ``geometry``) with SimpleITK, atomically.

    A Volume's ``modality`` goes into the header where the format keeps custom fields (NRRD
    ``modality:=``, MetaImage), so ``read_volume`` gives it back.
    """
    path = Path(path)
    modality = None
    if isinstance(volume, Volume):
        arr, geometry, modality = volume.array, volume.geometry, volume.modality
    else:
        arr = np.asarray(volume)
        if arr.ndim != 3:
            raise ImageError(f"array must be 3D, got shape {arr.shape}")
    img = geometry_to_sitk(sitk.GetImageFromArray(arr), geometry or Geometry())
    if modality:
        img.SetMetaData("modality", str(modality))
    return write_atomic(path, lambda tmp: sitk.WriteImage(img, str(tmp), True))


__all__ = [
    "GeometryError",
    "ImageError",
    "Segmentation",
    "read_labels",
    "read_modality",
    "read_volume",
    "write_seg_nrrd",
    "write_volume",
]
