"""Real labelled volumes installed from package registries (no network at run time).

- ``colin27``: Colin27 T1 (``ch2.nii.gz``) with the hand-drawn AAL atlas, Debian ``mricron-data``.
- ``inia19``: INIA19 macaque T1 with NeuroMaps labels, Debian ``mricron-data``.
- ``mni152``: MNI ICBM152 2009a T1 with grey/white matter maps (> 127), PyPI ``nilearn``.

Split (fixed, see Resources/Models/click_fcnn.md): structures with odd label ids of colin27 and inia19
train; even ids are held out ("unseen structures"); mni152 is a held-out volume.
Nothing here is copied into the repository: the files are located where the
packages installed them (override with ``INTERACTIVESEG_MRICRON_DIR``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from InteractiveSegLib.errors import ConfigError, ImageError
from InteractiveSegLib.io import Segmentation, read_labels, read_volume
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.volume import Volume

DATASETS = ("colin27", "inia19", "mni152")


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


@dataclass
class LabelledVolume:
    name: str
    image: Volume
    labels: Segmentation

    def structures(self, split: str = "all") -> list[int]:
        return structures_for_split(self.name, self.labels.labels.values, split)

    def mask(self, value: int) -> np.ndarray:
        return self.labels.labelmap == value


def structures_for_split(name: str, values: list[int], split: str) -> list[int]:
    """Label ids of a split: 'train', 'test' or 'all'."""
    if split == "all":
        return list(values)
    if name == "mni152":  # held-out volume: all of it is test
        return list(values) if split == "test" else []
    want = 1 if split == "train" else 0
    if split not in ("train", "test"):
        raise ConfigError(f"unknown split {split!r}")
    return [v for v in values if v % 2 == want]


def _aal_names(d: Path) -> dict[int, str]:
    names = {}
    for line in (d / "aal.nii.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            names[int(parts[0])] = parts[1]
    return names


@lru_cache(maxsize=4)
def load(name: str) -> LabelledVolume:
    """Load one of ``DATASETS`` (cached)."""
    if name == "colin27":
        d = mricron_dir()
        image = read_volume(d / "ch2.nii.gz")
        seg = read_labels(d / "aal.nii.gz", reference=image)
        names = _aal_names(d)
        seg.labels = LabelTable.default(seg.labels.values, names)
        return LabelledVolume(name, image, seg)
    if name == "inia19":
        d = mricron_dir()
        image = read_volume(d / "inia19-t1-brain.nii.gz")
        seg = read_labels(d / "inia19-NeuroMaps.nii.gz", reference=image)
        seg.labels = LabelTable.default(seg.labels.values, {v: f"NeuroMaps_{v}" for v in seg.labels.values})
        return LabelledVolume(name, image, seg)
    if name == "mni152":
        d = nilearn_dir()
        image = read_volume(d / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
        gm = read_volume(d / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz").array > 127
        wm = read_volume(d / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz").array > 127
        lab = np.zeros(image.shape, np.uint8)
        lab[gm] = 1
        lab[wm & ~gm] = 2
        table = LabelTable()
        table.add(1, "grey_matter", (0.8, 0.5, 0.4))
        table.add(2, "white_matter", (0.95, 0.95, 0.85))
        return LabelledVolume(name, image, Segmentation(lab, image.geometry, table))
    raise ImageError(f"unknown dataset {name!r}; available: {list(DATASETS)}")
