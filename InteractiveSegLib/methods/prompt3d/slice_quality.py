"""What a slice of the 3D prompt network's result is likely worth: its predicted IoU.

Why learnt: the network's own expected IoU (its probabilities taken as independent voxels)
runs against the truth on held-out sessions; it is surest where a run of slices thins out,
which is where it is most often wrong. A logistic model reads what the slice looks like
(its cross-section against the run's largest, its distance to a hint and to the run's ends,
the network's certainty) next to what the session looks like (how large and how certain the
whole result is, the round, the first hint's kind, how much of the volume the region spans),
with their pairwise products: how a slice's features matter depends on the result it is
part of. ``interactiveseg calibrate-prompt3d`` fits it on the sessions it plays (held-out
structures the benchmark does not report) and stores it in the checkpoint's config
(``slice_quality``); without it the expected IoU stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from InteractiveSegLib.engines.base import distance_to_slices
from InteractiveSegLib.hints import Box, ExtremePoints

FEATURES = (
    # the slice
    "expected_iou",  # E[intersection] / E[union] of the thresholded slice
    "relative_area",  # its cross-section over the run's largest
    "hint_distance",  # to the nearest hinted slice, over the run's length (at most 1)
    "end_distance",  # to the nearer end of the run, over its length
    "relative_expected_wrong",  # sum of min(p, 1 - p), over the run's largest cross-section
    "hinted",  # 1 on a hinted slice
    "confidence",  # mean probability inside the thresholded cross-section
    # the result it is part of
    "log_volume",  # log(1 + voxels above 0.5)
    "uncertainty",  # sum of min(p, 1 - p) over the voxels above 0.5
    "round",  # hints of the class so far, at most 6, over 6
    "box",  # the first hint is a box
    "extreme_points",  # the first hint is extreme points
    "region_depth",  # the region's slices over the volume's along the axis
    "rated_share",  # the region's slices that expect something
)
EXPECTED_IOU = FEATURES.index("expected_iou")
#: the model reads the features and their pairwise products (``expand``)
EXPANDED = len(FEATURES) * (len(FEATURES) + 3) // 2


class SliceSums(NamedTuple):
    """Per-slice sums of a result's probability (rated axis first), read once per result."""

    area: np.ndarray  # voxels above 0.5
    inside: np.ndarray  # probability summed over them
    union: np.ndarray  # E[union]: the area plus the probability outside it
    unsure: np.ndarray  # sum of min(p, 1 - p): the expected wrong voxels


def slice_sums(p: np.ndarray) -> SliceSums:
    """``SliceSums`` of ``p`` (foreground probability with the rated axis first)."""
    on = p > 0.5
    area = on.sum((1, 2)).astype(np.float64)
    outside = np.where(on, 0, p).sum((1, 2))
    return SliceSums(area, np.where(on, p, 0).sum((1, 2)), area + outside, np.minimum(p, 1 - p).sum((1, 2)))


def slice_features(sums: SliceSums, first: int, total: int, hinted: Sequence[int], hints: Sequence) -> np.ndarray:
    """The features of every slice of a result.

    Args:
        sums: the result's ``slice_sums`` (a region's slices along the rated axis).
        first: the volume index of the region's first slice.
        total: the volume's slices along that axis.
        hinted: volume indices of the hinted slices along that axis.
        hints: every hint of the class, oldest first.
    Returns:
        (slices, len(FEATURES)) float64; NaN rows where the slice expects nothing (unrated).
    """
    area, inside, union, unsure = sums
    rated = union > 0.5
    out = np.full((len(area), len(FEATURES)), np.nan)
    if not rated.any():
        return out
    index = first + np.arange(len(area))
    run = np.flatnonzero(rated)
    start, stop = index[run[0]], index[run[-1]]
    length = float(stop - start + 1)
    near = distance_to_slices(index, hinted)
    distance = np.full(len(area), length) if near is None else near
    largest = max(float(area.max()), 1.0)
    result = (
        np.log1p(area.sum()),
        unsure.sum() / max(float(area.sum()), 1.0),
        min(len(hints), 6) / 6,
        float(bool(hints) and isinstance(hints[0], Box)),
        float(bool(hints) and isinstance(hints[0], ExtremePoints)),
        len(area) / total,
        rated.mean(),
    )
    columns = (
        inside / np.maximum(union, 1e-6),
        area / largest,
        np.minimum(distance / length, 1.0),
        np.minimum(index - start, stop - index) / length,
        unsure / largest,
        (distance == 0).astype(np.float64),
        np.where(area > 0, inside / np.maximum(area, 1.0), 0.0),
        *(np.full(len(area), v) for v in result),
    )
    out[rated] = np.stack(columns, 1)[rated]
    return out


def expand(features: np.ndarray) -> np.ndarray:
    """The features and their pairwise products (squares included), (rows, ``EXPANDED``)."""
    i, j = np.triu_indices(features.shape[1])
    return np.c_[features, features[:, i] * features[:, j]]


def check(model: Any) -> None:
    """ValueError unless ``model`` is a slice-quality model of this module's features."""
    sizes = {k: len(model.get(k, ())) for k in ("mean", "scale", "weights")} if isinstance(model, dict) else {}
    if sizes != {"mean": EXPANDED, "scale": EXPANDED, "weights": EXPANDED + 1}:
        raise ValueError(
            f"slice_quality needs mean, scale ({EXPANDED} each) and weights ({EXPANDED + 1}), got {sizes or model!r}"
        )


def predicted_iou(features: np.ndarray, model: dict[str, list[float]]) -> np.ndarray:
    """The model's IoU per slice (NaN where the features are).

    Args:
        features: (slices, len(FEATURES)) from ``slice_features``.
        model: ``fit``'s dict.
    Returns:
        (slices,) in (0, 1), NaN on unrated slices.
    """
    check(model)
    w = np.asarray(model["weights"], np.float64)
    z = (expand(features) - np.asarray(model["mean"])) / np.asarray(model["scale"])
    return expit(z @ w[:-1] + w[-1])


def fit(features: np.ndarray, iou: np.ndarray, l2: float = 1e-3) -> dict[str, list[float]]:
    """The model of ``predicted_iou`` fitted to true slice IoUs: a logistic regression on soft
    targets (cross-entropy against the IoU itself) over the standardised expanded features.
    Written with scipy's optimiser: scikit-learn's logistic regression takes class labels only.

    Args:
        features: (pairs, len(FEATURES)) of rated slices (no NaN).
        iou: (pairs,) their true IoU in [0, 1].
        l2: ridge on the weights (not the bias).
    Returns:
        {"mean", "scale": the expansion's standardisation, "weights": the bias last}.
    """
    x = expand(np.asarray(features, np.float64))
    mean, scale = x.mean(0), x.std(0) + 1e-6
    x = np.c_[(x - mean) / scale, np.ones(len(x))]
    y = np.clip(np.asarray(iou, np.float64), 0.0, 1.0)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        q = np.clip(expit(x @ w), 1e-7, 1 - 1e-7)
        ridge = np.r_[w[:-1], 0.0]
        value = -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)) + l2 * float(ridge @ ridge)
        return value, x.T @ (q - y) / len(y) + 2 * l2 * ridge

    w = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x
    return {"mean": mean.tolist(), "scale": scale.tolist(), "weights": w.tolist()}
