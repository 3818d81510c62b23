"""What an engine is: set the image once, then many cheap hint -> mask calls.

Modelled on segment-anything's ``SamPredictor`` (``set_image`` then ``predict``) and
nnInteractive's inference session. The session owns history and the labelmap; an
engine only turns the hints of one class into a probability map for a region.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from InteractiveSegLib.hints import Interaction
from InteractiveSegLib.volume import Volume

Region = tuple[slice, slice, slice]


@dataclass
class Request:
    """The hints of one class an engine must answer, newest last.

    ``axis`` / ``slice_index`` name the slice of the newest hint (2D engines work
    there); ``labelmap`` is the session's multi-class labelmap (KJI, read-only).
    Multi-class engines also get ``history``: the earlier (hint, prediction) pairs of
    that slice, every class, oldest first (their interaction memory). 3D engines get the
    earlier (hint, prediction) pairs of the class on every slice, oldest first, so state
    kept in a prediction (e.g. VMN's corrected slices) follows undo and redo.
    """

    label: int
    interactions: list[Interaction]
    axis: int
    slice_index: int
    labelmap: np.ndarray
    history: list[tuple[Interaction, Prediction]] = field(default_factory=list)

    @property
    def current(self) -> np.ndarray:
        """Binary KJI mask of ``label`` in the whole volume (computed on demand: 3D engines)."""
        return self.labelmap == self.label

    def current_slice(self) -> np.ndarray:
        """Binary mask of ``label`` on the slice of the newest hint (cheap: 2D engines)."""
        return np.take(self.labelmap, self.slice_index, axis=self.axis) == self.label


@dataclass
class Prediction:
    """Foreground probability of ``label`` inside ``region`` (KJI slices of the volume).

    A multi-class engine fills ``labels`` (class values for the region, 0 background)
    and ``classes`` (the values it owns); ``probability`` is then (N, *region shape).
    ``quality`` carries an engine's own figures (VMN: per-slice predicted IoU).
    """

    label: int
    region: Region
    probability: np.ndarray
    quality: dict | None = field(default=None)
    labels: np.ndarray | None = field(default=None)
    classes: list[int] | None = field(default=None)

    def mask(self, threshold: float = 0.5) -> np.ndarray:
        return self.probability > threshold


class Engine(ABC):
    """Base class of every engine. Subclasses set ``name`` and implement ``predict``."""

    name: str = "engine"
    mode: str = "2d"  # "2d": answers on the slice of the newest hint; "3d": whole volume
    multiclass: bool = False  # True: one prediction gives every class (Prediction.labels)
    #: Set by a caller that shows progress (Slicer's worker): ``progress(fraction, text)`` is
    #: called between the units of a long step (propagated slices, fine-tuning iterations).
    #: It may raise to cancel; the session then stays as it was before the hint.
    progress: Callable[[float, str], None] | None = None

    def __init__(self) -> None:
        self.volume: Volume | None = None

    def set_image(self, volume: Volume) -> None:
        """Prepare per-image state once (normalisation, features, caches)."""
        self.volume = volume

    def report_progress(self, fraction: float, text: str = "") -> None:
        if self.progress is not None:
            self.progress(fraction, text)

    @abstractmethod
    def predict(self, request: Request) -> Prediction:
        """Turn the hints of one class into a probability map of a region."""

    def slice_region(self, axis: int, index: int, rows: slice | None = None, cols: slice | None = None) -> Region:
        """KJI region of (part of) one slice along ``axis``."""
        assert self.volume is not None
        full = [slice(0, n) for n in self.volume.shape]
        full[axis] = slice(index, index + 1)
        others = [a for a in range(3) if a != axis]
        if rows is not None:
            full[others[0]] = rows
        if cols is not None:
            full[others[1]] = cols
        return tuple(full)  # type: ignore[return-value]
