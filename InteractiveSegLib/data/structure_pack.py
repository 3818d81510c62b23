"""The training structures of some sources in one file (``interactiveseg pack-training-data``).

Why: a lent GPU machine has none of the sources (no Debian packages, no ``../shared``), and a
call may carry only a few MiB beside the repository. A pack holds what the 3D trainers read
(``methods.vmn.train.training_structures``): each volume's image scaled as the engine scales
it, its label map and the values of its train split, the split already applied. ``--dataset
PACK.npz`` then stands for the sources it was made from.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from InteractiveSegLib.errors import ConfigError

FORMAT = "interactiveseg-structures-1"


@dataclass
class PackedVolume:
    """One volume of a pack: its scaled image and label map (KJI), (k, j, i) spacing in mm,
    and the label values of its train structures."""

    name: str
    image: np.ndarray
    labelmap: np.ndarray
    spacing: tuple[float, float, float]
    values: list[int]


def write_pack(volumes: list[PackedVolume], normalization: str, path: str | Path) -> None:
    """Write ``volumes`` to ``path`` (compressed ``.npz``, arrays only).

    Args:
        volumes: the volumes and their train structures' values.
        normalization: how the images were scaled ("modality" or "percentile").
        path: the file to write.
    """
    arrays: dict[str, Any] = {"format": np.array(FORMAT), "normalization": np.array(normalization)}
    for n, v in enumerate(volumes):
        arrays[f"v{n}_name"] = np.array(v.name)
        arrays[f"v{n}_image"] = v.image.astype(np.float32)
        arrays[f"v{n}_labelmap"] = v.labelmap
        arrays[f"v{n}_spacing"] = np.array(v.spacing, np.float64)
        arrays[f"v{n}_values"] = np.array(v.values, np.int64)
    np.savez_compressed(path, **arrays)


def read_pack(path: str | Path, normalization: str) -> list[PackedVolume]:
    """The volumes of a pack written by ``write_pack``.

    Args:
        path: the ``.npz`` file.
        normalization: the scaling the caller trains with; it must be the pack's.
    Returns:
        The packed volumes, in the order written.
    """
    try:
        with np.load(path, allow_pickle=False) as data:  # arrays only: no code runs
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ConfigError(f"{path} is not a readable training pack ({e})") from None
    if str(arrays.get("format", "")) != FORMAT:
        raise ConfigError(f"{path} is not a training pack of this version ({FORMAT})")
    if str(arrays["normalization"]) != normalization:
        raise ConfigError(f"{path} holds images scaled by {arrays['normalization']}, not {normalization}")
    out, n = [], 0
    while f"v{n}_name" in arrays:
        sp = arrays[f"v{n}_spacing"]
        spacing = (float(sp[0]), float(sp[1]), float(sp[2]))
        values = [int(x) for x in arrays[f"v{n}_values"]]
        out.append(
            PackedVolume(str(arrays[f"v{n}_name"]), arrays[f"v{n}_image"], arrays[f"v{n}_labelmap"], spacing, values)
        )
        n += 1
    return out
