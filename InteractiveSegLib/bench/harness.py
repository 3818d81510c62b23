"""What every benchmark suite shares: the data it runs on (shipped or the user's own), the
slice sampling, the timing and memory figures, and progress lines on stderr."""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.measure import block_reduce

from InteractiveSegLib.data import datasets
from InteractiveSegLib.errors import InteractiveSegError
from InteractiveSegLib.intensity import detect_modality
from InteractiveSegLib.io import read_labels, read_volume
from InteractiveSegLib.volume import Volume


@dataclass
class BenchData:
    """An image, its reference labelmap (KJI) and the structures to segment (value -> name)."""

    name: str
    image: Volume
    labelmap: np.ndarray
    structures: dict[int, str]


def shipped_data(names: Iterable[str], split: str, min_voxels: int) -> list[BenchData]:
    """The volumes of data set names and folders (``data.datasets.resolve``), with the
    structures of ``split`` that have at least ``min_voxels`` voxels.

    Args:
        names: builtin or shared data set names (``datasets.ALL_DATASETS``) or folders
            (Decathlon / nnU-Net / image-label pairs).
        split: 'train', 'test' or 'all'.
        min_voxels: smaller structures are left out.
    Returns:
        One entry per volume; a folder's cases outside ``split`` (a whole train case under
        'test') are left out without being read, named volumes are always listed.
    """
    out = []
    for lv in datasets.resolve(list(names)):
        if lv.source not in ("builtin", "shared") and not lv.in_split(split):
            continue
        values = lv.labels.labels.values
        counts = np.bincount(lv.labels.labelmap.ravel(), minlength=max(values, default=0) + 1)
        ids = [v for v in lv.structures(split) if counts[v] >= min_voxels]
        out.append(BenchData(lv.name, lv.image, lv.labels.labelmap, {v: lv.labels.labels[v].name for v in ids}))
    return out


def user_data(image: str, labels: str, structures: list[str] | None) -> BenchData:
    """A volume of the user's own and its labels; ``structures`` by name or label value."""
    vol = read_volume(image)
    seg = read_labels(labels, reference=vol)
    table = {e.value: e.name for e in seg.labels}
    if structures:
        table = {v: n for v, n in table.items() if n in structures or str(v) in structures}
        missing = set(structures) - set(table.values()) - {str(v) for v in table}
        if missing:
            raise InteractiveSegError(f"structures not in the labels: {sorted(missing)}")
    return BenchData(Path(image).name.split(".")[0], vol, seg.labelmap, table)


def only_structures(data: list[BenchData], wanted: str | None) -> None:
    """Keep the structures named (or numbered) in the comma-separated ``wanted``."""
    if not wanted:
        return
    want = set(wanted.split(","))
    for d in data:
        d.structures = {v: n for v, n in d.structures.items() if n in want or str(v) in want}


def thick_slices(d: BenchData, k: int, axis: int = 0) -> BenchData:
    """``d`` as a scan of slices ``k`` times thicker along KJI ``axis`` (0: the axial slices of
    most scans; 1 or 2: a coronal or sagittal acquisition), so one benchmark measures
    thin-slice and thick-slice acquisitions of the same anatomy (issue 20). Each run of ``k``
    slices is averaged into one, as a thick slice's partial volume; its reference is the run's
    middle slice. Trailing slices that fill no run are dropped, and so are structures left
    with no voxel.

    Args:
        d: a volume with its reference labels.
        k: slices per thick slice (1: ``d`` unchanged).
        axis: the KJI axis the slices are thickened along.
    Returns:
        The thick-slice volume, on the same physical extent (each slice centred on its run).
    """
    if axis not in (0, 1, 2):
        raise InteractiveSegError(f"--thick-axis {axis}: expected 0 (axial), 1 (coronal) or 2 (sagittal)")
    if not 1 <= k <= d.image.shape[axis]:
        raise InteractiveSegError(f"--thick-slices {k}: expected 1 to {d.image.shape[axis]} for {d.name}")
    if k == 1:
        return d
    n = d.image.shape[axis] // k
    runs = [slice(None)] * 3
    runs[axis] = slice(0, n * k)
    image = block_reduce(d.image.array[tuple(runs)], tuple(k if a == axis else 1 for a in range(3)), np.mean)
    runs[axis] = slice(k // 2, n * k, k)
    labelmap = np.ascontiguousarray(d.labelmap[tuple(runs)])
    g = d.image.geometry
    ijk = 2 - axis  # the geometry's IJK index of the KJI axis
    centre = [0.0, 0.0, 0.0]
    centre[ijk] = (k - 1) / 2
    x, y, z = (float(c) for c in g.ijk_to_ras_points([centre])[0])  # the first run's centre
    sx, sy, sz = (float(v) * (k if i == ijk else 1) for i, v in enumerate(g.spacing))
    geometry = replace(g, origin=(x, y, z), spacing=(sx, sy, sz))
    present = set(np.unique(labelmap).tolist())
    for v in sorted(set(d.structures) - present):
        log(f"{d.name}: {d.structures[v]} has no voxel left at {k}x the slice thickness; left out")
    structures = {v: name for v, name in d.structures.items() if v in present}
    volume = Volume(image, geometry, d.image.name, d.image.modality)
    name = f"{d.name}-thick{k}" + ("", "-coronal", "-sagittal")[axis]
    return BenchData(name, volume, labelmap, structures)


def finer_voxels(d: BenchData, k: int) -> BenchData:
    """``d`` as a scan of voxels ``k`` times finer along every axis: a thin-slice acquisition
    of the same anatomy, where the robot's hints, counted in voxels, are ``k`` times shorter in
    mm (issue 20: hints of any size). The image is interpolated linearly (scipy), each voxel of
    the reference is split into ``k``^3 of the same label.

    Args:
        d: a volume with its reference labels.
        k: fine voxels per voxel side, 1 to 4 (1: ``d`` unchanged).
    Returns:
        The finer volume, on the same physical extent (its voxels subdivide ``d``'s).
    """
    if not 1 <= k <= 4:
        raise InteractiveSegError(f"--finer-voxels {k}: expected 1 to 4")
    if k == 1:
        return d
    image = ndimage.zoom(d.image.array, k, order=1, mode="nearest", grid_mode=True)
    labelmap = d.labelmap.repeat(k, 0).repeat(k, 1).repeat(k, 2)
    g = d.image.geometry
    first = -(k - 1) / (2 * k)  # the first fine voxel's centre, in the coarse voxels' index
    x, y, z = (float(c) for c in g.ijk_to_ras_points([[first, first, first]])[0])
    sx, sy, sz = (float(v) / k for v in g.spacing)
    geometry = replace(g, origin=(x, y, z), spacing=(sx, sy, sz))
    volume = Volume(image, geometry, d.image.name, d.image.modality)
    return BenchData(f"{d.name}-finer{k}", volume, labelmap, dict(d.structures))


#: A T1-weighted MRI's signal by CT tissue (HU -> signal in [0, 1], linear between knots):
#: air and lung dark, fat brightest, fluid darker than soft tissue, liver brighter than muscle,
#: bone dark. Not physics: an intensity order no CT has, on a CT's own labelled anatomy, so the
#: benchmark can see an abdominal MRI's contrast (the project has no labelled abdominal MRI).
T1_FROM_HU = (
    (-1000.0, 0.02),
    (-500.0, 0.04),
    (-120.0, 0.95),
    (-60.0, 0.8),
    (0.0, 0.2),
    (40.0, 0.45),
    (80.0, 0.6),
    (200.0, 0.5),
    (400.0, 0.15),
    (1500.0, 0.1),
)


#: TorchIO's bias-field coefficient for ``mri_contrast``: on the shared CT's grid its field runs
#: from 0.77 to 1.42 between its 5th and 95th percentiles, the shading a receive coil leaves
#: (0.4, the first setting, ran from 0.59 to 2.01: more than a scanner's own correction leaves).
MRI_BIAS = 0.2


def mri_contrast(d: BenchData, seed: int = 0) -> BenchData:
    """``d``, a CT, drawn with a T1-weighted MRI's contrast (``T1_FROM_HU``), shaded by a smooth
    bias field (TorchIO) and with Rician noise, in arbitrary units, as modality "mr": the same
    anatomy and labels as an MRI (issue 20: engines judged on modalities they never saw).

    Args:
        d: a CT in Hounsfield units with its reference labels.
        seed: the bias field and the noise.
    Returns:
        The volume on the same grid, named ``<name>-as-mri``.
    """
    from InteractiveSegLib.data.synthesis import bias_field  # TorchIO, seconds to import: --as-mri only

    if detect_modality(d.image) != "ct":
        raise InteractiveSegError(f"--as-mri: {d.name} is not a CT")
    hu, signal = np.array(T1_FROM_HU, np.float32).T
    t1 = np.interp(d.image.array.astype(np.float32), hu, signal).astype(np.float32)
    t1 *= bias_field(t1.shape, MRI_BIAS, seed)
    rng = np.random.default_rng(seed)
    real, imaginary = t1 + rng.normal(0, 0.02, t1.shape), rng.normal(0, 0.02, t1.shape)
    noisy = np.hypot(real, imaginary)  # a magnitude image's (Rician) noise
    volume = Volume((1000 * noisy).astype(np.float32), d.image.geometry, d.image.name, "mr")
    return BenchData(f"{d.name}-as-mri", volume, d.labelmap, dict(d.structures))


def as_acquired(d: BenchData, *, finer: int = 1, thick: int = 1, axis: int = 0, as_mri: bool = False) -> BenchData:
    """``d`` as if acquired as the acquisition options ask (``options.add_acquisition_arguments``):
    drawn with an MRI's contrast if ``as_mri`` (``mri_contrast``), its voxels split ``finer`` times
    per side (``finer_voxels``), then every ``thick`` slices along KJI ``axis`` merged into one
    (``thick_slices``)."""
    return thick_slices(finer_voxels(mri_contrast(d) if as_mri else d, finer), thick, axis)


def sample_slices(mask: np.ndarray, axis: int, max_slices: int, min_area: int, rng: np.random.Generator) -> list[int]:
    """Up to ``max_slices`` slices along ``axis`` where ``mask`` covers ``min_area`` voxels."""
    areas = mask.sum(axis=tuple(a for a in range(3) if a != axis))
    idx = np.nonzero(areas >= min_area)[0]
    if len(idx) > max_slices:
        idx = np.sort(rng.choice(idx, size=max_slices, replace=False))
    return [int(i) for i in idx]


def padded_to_256(volume: Volume) -> Volume:
    """The volume zero-padded (or cut) to 256 x 256 in-plane: the latency bars' slice size."""
    a = volume.array
    padded = np.zeros((a.shape[0], 256, 256), np.float32)
    padded[:, : min(a.shape[1], 256), : min(a.shape[2], 256)] = a[:, :256, :256]
    return Volume(padded, volume.geometry)


def latency(ms: Iterable[float]) -> dict[str, float | None]:
    """Median and 95th percentile of per-interaction times (None when nothing was timed)."""
    a = np.fromiter(ms, np.float64)
    if not a.size:
        return {"median": None, "p95": None}
    return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95))}


def peak_rss_mb() -> int:
    """The largest resident memory of this process so far."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def log(message: str) -> None:
    """A progress line (stderr: the table goes to stdout)."""
    print(message, file=sys.stderr, flush=True)
