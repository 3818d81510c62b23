"""Where the user should draw next, and how much to trust a proxy mask (dynamic-learning
paper, 2.4-2.5: confidence weights W, eqs. 10-12; residual map r, eq. 17; Algorithm 4).

Drawn slices are given per plane as ``{axis: [slice indices]}`` (KJI axes).
"""

from __future__ import annotations

import numpy as np

from InteractiveSegLib.engines.base import distance_to_slices
from InteractiveSegLib.errors import ConfigError


def slice_distance(shape: tuple[int, int, int], drawn: dict[int, list[int]]) -> np.ndarray:
    """Voxel distance to the nearest drawn slice of any plane (inf where nothing is drawn)."""
    out = np.full(shape, np.inf, np.float32)
    for axis, idx in drawn.items():
        d = distance_to_slices(np.arange(shape[axis]), idx)
        if d is None:  # nothing drawn on this plane
            continue
        view = [1, 1, 1]
        view[axis] = shape[axis]
        out = np.minimum(out, d.reshape(view).astype(np.float32))
    return out


def confidence_weights(
    shape, drawn: dict[int, list[int]], form: str = "exp", omega: float = 1.0, scale: float = 1.0
) -> np.ndarray:
    """W(x|Γ): ``exp`` is eq. 11, e^(−d/scale) with d the distance to the drawn slices
    (``scale`` in voxels; the paper's form is scale 1); ``indicator`` is eq. 12,
    ω on drawn slices + 1 everywhere; ``none``: all ones."""
    if form == "none":
        return np.ones(shape, np.float32)
    d = slice_distance(shape, drawn)
    if form == "exp":
        return np.exp(-d / scale).astype(np.float32)
    if form == "indicator":
        return (omega * (d == 0) + 1.0).astype(np.float32)
    raise ConfigError(f"unknown weight form {form!r}: exp, indicator or none")


def residual_map(
    proxy: np.ndarray,
    prediction: np.ndarray,
    drawn: dict[int, list[int]],
    omega1: float = 0.5,
    support: np.ndarray | None = None,
    saturation: float | None = None,
) -> np.ndarray:
    """Eq. 17: r = ω1·|Υ − F| + (1 − ω1)·d2, d2 the distance to the drawn slices scaled to
    [0, 1] (far from every drawing: least known).

    ``support`` (optional, boolean): r counts only there, e.g. near the structure Υ shows.
    Without it the farthest slices (d2) are the volume's ends and an unsure F (d1) is
    unsure everywhere, so the proposals often fall where the structure is absent: a
    drawing there costs a slice and teaches little (Resources/Models/online.md, "Model guidance").
    ``saturation`` s: d2 = 1 − e^(−d/s) instead of d / max d."""
    d1 = np.abs(proxy.astype(np.float32) - prediction.astype(np.float32))
    d = slice_distance(proxy.shape, drawn)
    finite = np.isfinite(d)
    if saturation:  # 1 − e^(−d/s): a few slices away a warped drawing is as unsure as far away
        d2 = np.where(finite, 1.0 - np.exp(-d / saturation), 1.0).astype(np.float32)
    else:
        d2 = (
            np.ones(proxy.shape, np.float32)
            if not finite.any()
            else np.where(finite, d / max(float(d[finite].max()), 1.0), 1.0)
        )
    r = omega1 * d1 + (1 - omega1) * d2
    if support is not None:
        r = r * support
    return r.astype(np.float32)


def propose_slices(residual: np.ndarray, axis: int, tau: int, drawn: list[int], rng: np.random.Generator) -> list[int]:
    """Algorithm 4: τ undrawn slices of ``axis`` sampled with probability ∝ their residual sum."""
    others = tuple(a for a in range(3) if a != axis)
    sums = residual.sum(axis=others).astype(np.float64)
    candidates = [i for i in range(residual.shape[axis]) if i not in set(drawn)]
    if not candidates:
        return []
    p = sums[candidates]
    if p.sum() <= 0:
        return []
    n = min(tau, int((p > 0).sum()))
    return sorted(int(i) for i in rng.choice(candidates, size=n, replace=False, p=p / p.sum()))


def random_slices(
    shape, axis: int, tau: int, drawn: list[int], rng: np.random.Generator, within: np.ndarray | None = None
) -> list[int]:
    """The baseline: τ undrawn slices at random (``within``: only slices where it is True)."""
    candidates = [i for i in range(shape[axis]) if i not in set(drawn) and (within is None or within[i])]
    if not candidates:
        return []
    return sorted(int(i) for i in rng.choice(candidates, size=min(tau, len(candidates)), replace=False))
