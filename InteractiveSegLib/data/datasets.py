"""Every labelled volume the project can train or validate on, by name or by folder.

Builtin volumes, installed from package registries (no network at run time):

- ``colin27``: Colin27 T1 (``ch2.nii.gz``) with the hand-drawn AAL atlas, Debian ``mricron-data``.
- ``inia19``: INIA19 macaque T1 with NeuroMaps labels, Debian ``mricron-data``.
- ``mni152``: MNI ICBM152 2009a T1 with grey/white matter maps (> 127), PyPI ``nilearn``;
  ``mni152-brain`` the same T1 with one whole-brain mask (grey + white matter, ventricles filled).
- ``balls``: a CT made here, three bright balls 24, 50 and 90 mm across in air (1 x 1 x 2 mm
  voxels): the image alone draws every boundary, so any engine should find each whole from a
  short stroke, as Grow from seeds would from seeds inside and outside (a check of size, not
  of anatomy; generated, seeded, nothing read).

Shared volumes, read in place from ``../shared/data/`` beside the repository (override with
``INTERACTIVESEG_SHARED_DATA``; see its README.md): ``ct-abdomen`` (CT, 58 named organs, HU),
``mr-brain-tumor`` (glioma), ``mr-breast`` (breast lesion), ``mr-prostate-phantom``.

A user's folder (Medical Segmentation Decathlon, nnU-Net v2, or image/label pairs) is read by
``data.folders``. ``resolve`` turns names and folders into volumes: every training and
benchmark command goes through it.

Splits (explicit, ``data.splits.SPLIT_RULES``; see Resources/Models/click_zoom.md): structures
with odd label ids of colin27 and inia19 train, even ids are held out ("unseen structures");
mni152 is a held-out volume; ct-abdomen trains odd-numbered and left-sided structures and holds
out even-numbered, right-sided and unpaired organs; the shared MR volumes are validation only.
Nothing here is copied into the repository: the files are located where the packages installed
them (override with ``INTERACTIVESEG_MRICRON_DIR``) or where ../shared/ keeps them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from InteractiveSegLib.data import folders
from InteractiveSegLib.data.splits import (
    HELD_OUT_VOLUME,
    ODD_LABEL_ID,
    ODD_NUMBER_OR_LEFT,
    SPLIT_RULES,
    LabelledVolume,
    split_structures,
)
from InteractiveSegLib.errors import ImageError
from InteractiveSegLib.io import Segmentation, read_labels, read_volume
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.volume import Geometry, Volume

DATASETS = ("colin27", "inia19", "mni152", "mni152-brain", "balls")
"""The builtin volumes (installed from package registries)."""


@dataclass(frozen=True)
class SharedSource:
    """One labelled volume of ``../shared/data/<name>/``: its files, modality, split rule and
    the names given to unnamed label values."""

    name: str
    image: str
    labels: str
    modality: str
    rule: str
    names: dict[int, str] = field(default_factory=dict)


SHARED_SOURCES: dict[str, SharedSource] = {
    s.name: s
    for s in (
        SharedSource("ct-abdomen", "ct.nii.gz", "organs.seg.nrrd", "ct", ODD_NUMBER_OR_LEFT),
        SharedSource("mr-brain-tumor", "t1gd.nrrd", "tumour-label.nrrd", "mr", HELD_OUT_VOLUME, {1: "glioma"}),
        SharedSource("mr-breast", "image.nrrd", "lesion-label.nrrd", "mr", HELD_OUT_VOLUME, {1: "breast_lesion"}),
        SharedSource("mr-prostate-phantom", "image.nrrd", "label.nrrd", "mr", HELD_OUT_VOLUME),
    )
}
SHARED_DATASETS = tuple(SHARED_SOURCES)
"""The volumes of ../shared/data/ (present beside the repository, not in a plain clone)."""

ALL_DATASETS = DATASETS + SHARED_DATASETS
"""Every name ``load`` and ``resolve`` accept."""

DATASET_RULES: dict[str, str] = {
    "colin27": ODD_LABEL_ID,
    "inia19": ODD_LABEL_ID,
    "mni152": HELD_OUT_VOLUME,
    "mni152-brain": HELD_OUT_VOLUME,
    "balls": HELD_OUT_VOLUME,
    **{s.name: s.rule for s in SHARED_SOURCES.values()},
}
"""Data set name -> its split rule (a key of ``data.splits.SPLIT_RULES``)."""


def mricron_dir() -> Path:
    d = Path(os.environ.get("INTERACTIVESEG_MRICRON_DIR", "/usr/share/mricron/templates"))
    if not (d / "ch2.nii.gz").exists():
        raise ImageError(
            f"mricron-data not found in {d}: install it with 'apt-get install mricron-data' (the Makefile does)"
        )
    return d


def nilearn_dir() -> Path:
    try:
        import nilearn.datasets
    except ImportError:
        raise ImageError("nilearn is not installed: pip install nilearn") from None
    return Path(nilearn.datasets.__file__).parent / "data"


def shared_data_dir() -> Path:
    """The folder of the shared volumes: ``INTERACTIVESEG_SHARED_DATA``, else ../shared/data/
    beside the repository root (it is not part of a plain clone).

    Returns:
        The folder (it may not exist: ``shared_source_files`` says so).
    """
    env = os.environ.get("INTERACTIVESEG_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def shared_source_files(name: str) -> tuple[Path, Path]:
    """The image and label files of a shared source, checked to exist.

    Args:
        name: one of ``SHARED_DATASETS``.
    Returns:
        (image path, labels path).
    """
    src = SHARED_SOURCES[name]
    d = shared_data_dir() / name
    image, labels = d / src.image, d / src.labels
    missing = [str(p) for p in (image, labels) if not p.is_file()]
    if missing:
        raise ImageError(
            f"shared data set {name!r} is missing: {', '.join(missing)} not found (looked in {shared_data_dir()}, "
            "../shared/data/ beside the repository; set INTERACTIVESEG_SHARED_DATA to the folder holding "
            f"{name}/)"
        )
    return image, labels


def structures_for_split(name: str, values: list[int], split: str) -> list[int]:
    """Label ids of a builtin volume's split: 'train', 'test' or 'all' (by id only).

    Args:
        name: a builtin or shared data set name (its rule is ``DATASET_RULES[name]``).
        values: label values.
        split: 'train', 'test' or 'all'.
    Returns:
        The values of ``split``; name-based rules see the default names (Segment_<id>).
    """
    return split_structures(DATASET_RULES.get(name, ODD_LABEL_ID), LabelTable.default(values), split)


def _aal_names(d: Path) -> dict[int, str]:
    names = {}
    for line in (d / "aal.nii.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            names[int(parts[0])] = parts[1]
    return names


def _load_shared(name: str) -> LabelledVolume:
    src = SHARED_SOURCES[name]
    image_path, labels_path = shared_source_files(name)
    image = read_volume(image_path)
    image.name = name
    seg = read_labels(labels_path, reference=image)
    if src.names:
        table = LabelTable()
        for e in seg.labels:
            table.add(e.value, src.names.get(e.value, e.name), e.color)
        seg.labels = table
    return LabelledVolume(name, image, seg, src.modality, src.rule, source="shared")


#: the balls' (centre K, J, I in voxels, radius in mm) in ``balls``
BALLS = ((50, 50, 50, 12.0), (50, 60, 150, 25.0), (50, 170, 110, 45.0))
BALLS_SHAPE, BALLS_SPACING_KJI = (100, 240, 240), (2.0, 1.0, 1.0)


def bright_balls(
    shape: tuple[int, int, int], balls: tuple, spacing_kji: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """A CT of balls: soft tissue (60 HU) in air (-800 HU), noise of 10 HU (seeded).

    Args:
        shape: KJI shape.
        balls: (centre K, J, I in voxels, radius in mm) each; ball i is labelled i + 1.
        spacing_kji: voxel size along K, J, I in mm.
    Returns:
        (image float32, labelmap uint8), KJI.
    """
    grid = np.indices(shape, sparse=True)
    lab = np.zeros(shape, np.uint8)
    for value, (*centre, radius) in enumerate(balls, 1):
        mm2 = sum(((g - c) * sp) ** 2 for g, c, sp in zip(grid, centre, spacing_kji, strict=True))
        lab[mm2 < radius**2] = value
    noise = np.random.default_rng(0).normal(0.0, 10.0, shape).astype(np.float32)
    return np.where(lab > 0, 60.0, -800.0).astype(np.float32) + noise, lab


def _balls() -> LabelledVolume:
    """``balls``: ``BALLS`` in a ``BALLS_SHAPE`` CT (``bright_balls``)."""
    array, lab = bright_balls(BALLS_SHAPE, BALLS, BALLS_SPACING_KJI)
    table = LabelTable()
    for value, (*_, radius) in enumerate(BALLS, 1):
        table.add(value, f"ball_{2 * radius:.0f}mm", (0.9, 0.6, 0.3))
    geometry = Geometry(spacing=BALLS_SPACING_KJI[::-1])
    image = Volume(array, geometry, name="balls", modality="ct")
    return LabelledVolume("balls", image, Segmentation(lab, geometry, table), "ct", HELD_OUT_VOLUME)


@lru_cache(maxsize=8)
def load(name: str) -> LabelledVolume:
    """Load one of ``ALL_DATASETS`` (cached).

    Args:
        name: a builtin (``DATASETS``) or shared (``SHARED_DATASETS``) name.
    Returns:
        The volume, read in place (never copied).
    """
    if name == "colin27":
        d = mricron_dir()
        image = read_volume(d / "ch2.nii.gz")
        seg = read_labels(d / "aal.nii.gz", reference=image)
        names = _aal_names(d)
        seg.labels = LabelTable.default(seg.labels.values, names)
        return LabelledVolume(name, image, seg, "mr", ODD_LABEL_ID)
    if name == "inia19":
        d = mricron_dir()
        image = read_volume(d / "inia19-t1-brain.nii.gz")
        seg = read_labels(d / "inia19-NeuroMaps.nii.gz", reference=image)
        seg.labels = LabelTable.default(seg.labels.values, {v: f"NeuroMaps_{v}" for v in seg.labels.values})
        return LabelledVolume(name, image, seg, "mr", ODD_LABEL_ID)
    if name in ("mni152", "mni152-brain"):
        d = nilearn_dir()
        image = read_volume(d / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
        gm = read_volume(d / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz").array
        wm = read_volume(d / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz").array
        lab = np.zeros(image.shape, np.uint8)
        table = LabelTable()
        if name == "mni152-brain":
            # the whole brain as one mask: grey and white matter, ventricles filled in
            lab[ndimage.binary_fill_holes(gm + wm > 127)] = 1
            table.add(1, "whole_brain", (0.9, 0.7, 0.6))
        else:
            lab[gm > 127] = 1
            lab[(wm > 127) & ~(gm > 127)] = 2
            table.add(1, "grey_matter", (0.8, 0.5, 0.4))
            table.add(2, "white_matter", (0.95, 0.95, 0.85))
        return LabelledVolume(name, image, Segmentation(lab, image.geometry, table), "mr", HELD_OUT_VOLUME)
    if name == "balls":
        return _balls()
    if name in SHARED_SOURCES:
        return _load_shared(name)
    raise ImageError(f"unknown dataset {name!r}; available: {list(ALL_DATASETS)}")


def resolve(specs: list[str]) -> list[LabelledVolume]:
    """The volumes of data set names and folders: the one entry point of training and benchmarks.

    Args:
        specs: each a name of ``ALL_DATASETS`` (builtin or shared), or a folder: Medical
            Segmentation Decathlon / nnU-Net v2 (dataset.json, imagesTr/, labelsTr/) or
            image/label pairs (see ``data.folders``). A spec that is not an existing path may
            hold several comma-separated entries.
    Returns:
        The volumes in the order given; named ones are read now (cached), folder cases are
        listed now and read on first use.
    """
    out: list[LabelledVolume] = []
    for spec in specs:
        if spec in ALL_DATASETS:
            out.append(load(spec))
        elif Path(spec).is_dir():
            out.extend(folders.load_folder(spec))
        elif "," in spec and not Path(spec).exists():
            out.extend(resolve([s.strip() for s in spec.split(",") if s.strip()]))
        elif Path(spec).exists():
            raise ImageError(
                f"{spec}: a file, not a data set: give a data set name or a folder "
                "(for one image and its labels use --image and --labels)"
            )
        else:
            raise ImageError(
                f"{spec!r} is neither a data set name nor a folder; names: {list(ALL_DATASETS)}; a folder must "
                "be a Medical Segmentation Decathlon / nnU-Net folder or hold image/label pairs"
            )
    return out


def describe_splits() -> dict[str, str]:
    """Every split rule in words (``data.splits.SPLIT_RULES``) and which named data set uses it.

    Returns:
        Data set name -> rule description, for a model card.
    """
    return {name: SPLIT_RULES[rule] for name, rule in DATASET_RULES.items()}


__all__ = [
    "ALL_DATASETS",
    "DATASETS",
    "DATASET_RULES",
    "SHARED_DATASETS",
    "SHARED_SOURCES",
    "LabelledVolume",
    "describe_splits",
    "load",
    "resolve",
    "shared_data_dir",
    "structures_for_split",
]
