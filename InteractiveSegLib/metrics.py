"""Metrics of every benchmark and training report: Dice, IoU, number of clicks (NoC),
Pearson correlation and the paired comparison of two systems on the same cases."""

from __future__ import annotations

import numpy as np

NOC_CAP = 20


def dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Dice of two binary masks; 1.0 when both are empty."""
    ref, pred = reference.astype(bool), prediction.astype(bool)
    s = int(ref.sum()) + int(pred.sum())
    return 1.0 if s == 0 else 2.0 * int((ref & pred).sum()) / s


def iou(ref: np.ndarray, pred: np.ndarray) -> float:
    """Intersection over union of two binary masks; 1.0 when both are empty."""
    union = int((ref | pred).sum())
    return 1.0 if union == 0 else int((ref & pred).sum()) / union


def pearson(predicted, true) -> float | None:
    """Pearson r of predicted vs true slice IoU (None with under 3 pairs or no spread)."""
    predicted, true = np.asarray(predicted, np.float64), np.asarray(true, np.float64)
    if len(predicted) < 3 or predicted.std() == 0 or true.std() == 0:
        return None
    return float(np.corrcoef(predicted, true)[0, 1])


def scores(target: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class Dice and IoU of (N, H, W) masks; NaN where the class is not in the reference."""
    inter = (target & pred).sum((1, 2)).astype(float)
    t, p = target.sum((1, 2)).astype(float), pred.sum((1, 2)).astype(float)
    present = t > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(present, 2 * inter / (t + p), np.nan)
        j = np.where(present, inter / (t + p - inter), np.nan)
    return d, j


def paired(a: np.ndarray, b: np.ndarray, ks, seed: int = 0, resamples: int = 2000) -> dict:
    """Paired comparison of two systems on the same cases (same slices, same robot).

    Args:
        a: (cases, rounds + 1) Dice of our system, NaN where the case does not count.
        b: the other system's Dice on the same cases.
        ks: the rounds (numbers of clicks) to compare.
        seed, resamples: of the bootstrap.

    Returns:
        Per round k: the mean difference (a - b), its 95 % bootstrap interval over cases, the
        two-sided Wilcoxon signed-rank p (scipy) and the cases a won and lost.
    """
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(seed)
    out = {}
    for k in ks:
        d = (a[:, k] - b[:, k])[~np.isnan(a[:, k])]
        if d.size == 0:
            continue
        boot = rng.choice(d, (resamples, d.size)).mean(1)
        p = float(wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
        out[str(k)] = {
            "diff": float(d.mean()),
            "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            "p_wilcoxon": p,
            "slices": int(d.size),
            "better": int((d > 0).sum()),
            "worse": int((d < 0).sum()),
        }
    return out


def noc(dices, target: float, cap: int = NOC_CAP) -> int:
    """Number of clicks to reach ``target``: the first k >= 1 with ``dices[k - 1] >= target``
    (``dices`` starts after the first click); ``cap`` when never reached."""
    return next((k for k, d in enumerate(dices, 1) if d >= target), cap)
