"""Where ``finetune-3d`` works: the box around a session's hints, and the patches that cover
every scribbled voxel of it (a 3D network trains on patches of its own size)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from InteractiveSegLib.hints import Interaction, kji
from InteractiveSegLib.methods.finetune.adaptation import UNLABELLED

Block = tuple[slice, slice, slice]


def hint_box(
    hints: list[Interaction], margin: Sequence[int], min_size: Sequence[int] | None, shape: Sequence[int]
) -> Block:
    """KJI box around every hint point, + ``margin``, at least ``min_size``, shifted inside ``shape``."""
    pts = np.array([kji(p) for h in hints for p in h.points])
    lo, hi = pts.min(0) - np.asarray(margin), pts.max(0) + np.asarray(margin) + 1
    if min_size:
        grow = np.maximum(np.array(min_size) - (hi - lo), 0)
        lo, hi = lo - grow // 2, hi + (grow - grow // 2)
    size = np.array(shape)
    shift = np.maximum(-lo, 0) - np.maximum(hi - size, 0)
    lo, hi = np.maximum(lo + shift, 0), np.minimum(hi + shift, size)
    return (slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1])), slice(int(lo[2]), int(hi[2])))


def covering_tiles(cons: np.ndarray, patch: Sequence[int] | None, factors: Sequence[float]) -> list[Block]:
    """Patches (the model's ``patch`` size, in voxels of the image: / ``factors``) covering every
    constrained voxel of a block; the whole block when the model has no patch size. Greedy:
    each new patch is centred on the first voxel not yet covered."""
    if not patch:
        return [(slice(0, cons.shape[0]), slice(0, cons.shape[1]), slice(0, cons.shape[2]))]
    size = [min(n, int(np.ceil(p / z))) for n, p, z in zip(cons.shape, patch, factors, strict=False)]
    pts = np.argwhere(cons != UNLABELLED)
    tiles: list[Block] = []
    covered = np.zeros(len(pts), bool)
    while not covered.all():
        c = pts[np.argmax(~covered)]
        lo = np.clip(c - np.array(size) // 2, 0, np.array(cons.shape) - size)
        tiles.append(
            (
                slice(int(lo[0]), int(lo[0] + size[0])),
                slice(int(lo[1]), int(lo[1] + size[1])),
                slice(int(lo[2]), int(lo[2] + size[2])),
            )
        )
        covered |= np.all((pts >= lo) & (pts < lo + size), axis=1)
    return tiles
