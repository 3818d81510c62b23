"""The engine contract: set the image once, then many cheap hint -> mask calls.

Modelled on segment-anything's ``SamPredictor`` (``set_image`` then ``predict``) and
nnInteractive's inference session. The session owns history and the labelmap; an
engine only turns the hints of one class into a probability map for a region.

Everything a caller needs to know about an engine before it runs (what it answers, which
hints it takes, which earlier steps it must see, whether it learns from the image, its
classes and its model card) is declared here as class constants and class methods, so the
session, the Slicer glue and the benchmark never probe an engine, and never load a model
just to learn its classes (:meth:`Engine.describe`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from InteractiveSegLib.errors import EngineError, InteractionError
from InteractiveSegLib.hints import HintGroup, Interaction, kind_of, kji, members
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.volume import Volume

Region = tuple[slice, slice, slice]
#: Which earlier steps a request carries: none; the newest hint's slice, every class (a
#: multi-class memory); the hint's class on every slice (3D propagation); every step.
HistoryScope = Literal["none", "slice", "class", "all"]


@dataclass
class Request:
    """The hints of one class an engine must answer, newest last.

    ``axis`` / ``slice_index`` name the slice of the newest hint (2D engines work
    there); ``labelmap`` is the session's multi-class labelmap (KJI, read-only).
    ``history`` holds the earlier (hint, prediction) pairs the engine's ``HISTORY`` scope
    asks for, oldest first, so state kept in a prediction follows undo and redo.
    """

    label: int
    interactions: list[Interaction]
    axis: int
    slice_index: int
    labelmap: np.ndarray
    history: list[tuple[Interaction, Prediction | None]] = field(default_factory=list)

    @property
    def current(self) -> np.ndarray:
        """Binary KJI mask of ``label`` in the whole volume (computed on demand: 3D engines)."""
        return self.labelmap == self.label

    def current_slice(self) -> np.ndarray:
        """Binary mask of ``label`` on the slice of the newest hint (cheap: 2D engines)."""
        return np.take(self.labelmap, self.slice_index, axis=self.axis) == self.label

    def states(self, kind: type[EngineState]) -> list[EngineState]:
        """The engine states of type ``kind`` kept by the earlier predictions, oldest first."""
        return [p.state for _, p in self.history if p is not None and isinstance(p.state, kind)]


class EngineState:
    """Base of what an engine keeps in a prediction so that it follows undo and redo
    (VMN's corrected slice, fine-tuning's adapted weights). Each engine subclasses it."""

    @property
    def nbytes(self) -> int:
        """Memory it holds (its numpy arrays; a state holding tensors says its own)."""
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))


@dataclass
class SliceRatings:
    """A 3D engine's rating of every slice along ``axis`` (VMN's quality head, 3.3.4).

    ``predicted_iou`` is NaN where a slice was not rated; ``expected_wrong_voxels`` is what
    ``Session.suggest_slice`` ranks by (VMN: (1 - predicted IoU) x the slice's foreground;
    ``prompt3d``: the sum of min(p, 1 - p)); ``corrected`` are the slices the user drew;
    ``features``: per slice, what an engine's learnt rating reads (NaN rows where unrated),
    kept so that its calibration can fit it to the truth (``prompt3d``'s ``slice_quality``).
    """

    axis: int
    predicted_iou: np.ndarray
    expected_wrong_voxels: np.ndarray
    corrected: list[int]
    features: np.ndarray | None = None


def distance_to_slices(index: np.ndarray, slices: Sequence[int]) -> np.ndarray | None:
    """Per slice ``index``, the distance in slices to the nearest of ``slices`` (None without one)."""
    if not len(slices):
        return None
    return np.abs(np.asarray(index)[:, None] - np.asarray(slices)[None]).min(1)


def near_slices(rated: np.ndarray, slices: Sequence[int], reach: float) -> np.ndarray:
    """Weights in [0, 1] per slice: the distance to the nearest of ``slices`` (hinted, or
    looked at and left alone) over ``reach`` of the rated run's length (at least 2 slices),
    capped at 1 (1 everywhere without any). A slice that was settled speaks for its
    neighbours, so the wrong voxels that rank the next suggestion are weighed down near it.
    Written by hand: a one-line distance rule, no library needed."""
    present = np.flatnonzero(rated)
    distance = distance_to_slices(np.arange(len(rated)), slices)
    if distance is None or not len(present):
        return np.ones(len(rated))
    scale = max(2.0, reach * (present[-1] - present[0] + 1))
    return np.minimum(1.0, distance / scale)


@dataclass
class StepReport:
    """What one engine call measured (for the benchmark and the UI's status line)."""

    seconds: float | None = None


@dataclass
class Prediction:
    """Foreground probability of ``label`` inside ``region`` (KJI slices of the volume).

    A multi-class engine fills ``labels`` (class values for the region, 0 background)
    and ``classes`` (the values it owns); ``probability`` is then (N, *region shape).
    ``ratings`` rates the volume's slices (3D engines with a quality head), ``report``
    carries the call's own figures and ``state`` what the engine must get back in later
    requests (:meth:`Request.states`).
    """

    label: int
    region: Region
    probability: np.ndarray
    labels: np.ndarray | None = None
    classes: list[int] | None = None
    ratings: SliceRatings | None = None
    report: StepReport = field(default_factory=StepReport)
    state: EngineState | None = None
    released: bool = False  # ``release`` dropped the arrays once merged

    def mask(self, threshold: float = 0.5) -> np.ndarray:
        if self.released:
            raise EngineError("this prediction's probability was released once merged (Engine.KEEPS_PROBABILITY)")
        return self.probability > threshold

    def release(self) -> None:
        """Drop the probability and labels once merged: a session's history keeps the hint,
        the ratings and the engine state, not a float map of the region."""
        self.probability = np.zeros((0,), np.float32)
        self.labels = None
        self.released = True

    @property
    def nbytes(self) -> int:
        """Memory the prediction holds (its arrays and its engine state)."""
        n = self.probability.nbytes + (self.labels.nbytes if self.labels is not None else 0)
        return n + (self.state.nbytes if self.state is not None else 0)


class SeedGrower(ABC):
    """A classic region-growing engine (Slicer's Grow from seeds) that also grows a
    multi-label seed map on a 2D image: the multi-class benchmark's baseline."""

    @staticmethod
    @abstractmethod
    def grow_seeds(image2d: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Labels (H, W) grown from ``seeds`` (0: unseeded, k > 0: seed of label k)."""


@dataclass(frozen=True)
class EngineInfo:
    """What an engine declares, readable without loading its model (:meth:`Engine.describe`)."""

    name: str
    mode: str
    multiclass: bool
    hints: frozenset[str]
    history: HistoryScope
    adopts_labels: bool
    adapts_to_image: bool
    runs_network: bool
    model_card: str | None
    classes: LabelTable | None
    summary: str = ""  # the first line of the engine class's docstring


class Engine(ABC):
    """Base class of every engine. Subclasses set the class constants and implement ``predict``."""

    name: str = "engine"
    #: "2d": answers on the slice of the newest hint; "3d": whole volume
    mode: str = "2d"
    #: one prediction gives every class (``Prediction.labels``); the engine names them (``label_table``)
    multiclass: ClassVar[bool] = False
    #: hint kinds ``predict`` takes (``hints.HINT_TYPES`` names); the session refuses the others
    SUPPORTED_HINTS: ClassVar[frozenset[str]] = frozenset({"click", "scribble", "extreme_points"})
    #: which earlier steps a request carries (``HistoryScope``)
    HISTORY: ClassVar[HistoryScope] = "none"
    #: maps a given label table onto its own classes by name (``bind_labels``), so a
    #: segmentation made by any engine keeps its segments
    ADOPTS_LABELS: ClassVar[bool] = False
    #: learns from the image's hints and keeps it (``reset_adaptation`` forgets)
    ADAPTS_TO_IMAGE: ClassVar[bool] = False
    #: a 3D engine that reads each hint on one slice (VMN's f_IN) and refuses one spanning
    #: slices, as 2D engines do, instead of projecting it
    HINTS_ON_ONE_SLICE: ClassVar[bool] = False
    #: later requests read earlier predictions' ``probability`` (SIM's memory); otherwise the
    #: session releases it once merged, so its history holds no float map of a region
    KEEPS_PROBABILITY: ClassVar[bool] = False
    #: bytes per voxel of the image the engine allocates beyond the image itself (its
    #: normalised float32 copy and a predict's transients), for ``memory_budget``
    MEMORY_PER_VOXEL: ClassVar[float] = 6.0
    #: runs a network (so a device applies); False for classic algorithms
    RUNS_NETWORK: ClassVar[bool] = True
    #: its model card: a markdown file of the models folder (``checkpoints.default_models_dir``)
    MODEL_CARD: ClassVar[str | None] = None

    #: Set by a caller that shows progress (Slicer's worker): ``progress(fraction, text)`` is
    #: called between the units of a long step (propagated slices, fine-tuning iterations).
    #: It may raise to cancel; the session then stays as it was before the hint.
    progress: Callable[[float, str], None] | None = None

    def __init__(self) -> None:
        self.volume: Volume | None = None

    # -- what the engine declares ----------------------------------------------------------
    @classmethod
    def classes(cls, **kwargs: Any) -> LabelTable | None:
        """The classes a multi-class engine created with ``kwargs`` answers with, read from
        its model's metadata without building the network; None for class-agnostic engines."""
        return None

    @classmethod
    def describe(cls, **kwargs: Any) -> EngineInfo:
        """The engine's declarations (for menus, sessions and the benchmark), model not loaded."""
        return EngineInfo(
            name=cls.name,
            mode=cls.mode,
            multiclass=cls.multiclass,
            hints=cls.SUPPORTED_HINTS,
            history=cls.HISTORY,
            adopts_labels=cls.ADOPTS_LABELS,
            adapts_to_image=cls.ADAPTS_TO_IMAGE,
            runs_network=cls.RUNS_NETWORK,
            model_card=cls.MODEL_CARD,
            classes=cls.classes(**kwargs) if cls.multiclass else None,
            summary=(cls.__doc__ or "").strip().split("\n")[0],
        )

    def label_table(self) -> LabelTable | None:
        """The session labels matching a multi-class engine's classes; None when class-agnostic."""
        return None

    def bind_labels(self, labels: LabelTable) -> None:
        """Match a session's classes to the engine's own (``ADOPTS_LABELS`` engines)."""
        return None

    def reset_adaptation(self) -> None:
        """Forget what was learnt from this image (``ADAPTS_TO_IMAGE`` engines)."""
        return None

    def check_hint(self, interaction: Interaction) -> None:
        """EngineError, before anything runs, for a hint kind this engine does not take."""
        for m in members(interaction):
            kind = kind_of(m)
            if kind not in self.SUPPORTED_HINTS:
                takes = ", ".join(sorted(self.SUPPORTED_HINTS))
                raise EngineError(f"the {self.name} engine does not take {kind} hints; it takes: {takes}")
        if isinstance(interaction, HintGroup) and "group" not in self.SUPPORTED_HINTS:
            raise EngineError(f"the {self.name} engine takes one hint per step")
        if self.mode == "2d" or self.HINTS_ON_ONE_SLICE:  # else a hint spanning slices is projected onto one
            for m in members(interaction):
                spanned = sorted({kji(p)[m.axis] for p in m.points})
                if len(spanned) > 1:
                    raise InteractionError(
                        f"this {kind_of(m)} spans slices {spanned[0]}..{spanned[-1]} along axis {m.axis}; "
                        f"the {self.name} engine reads a hint on one slice: draw it on one slice"
                        + ("" if self.mode != "2d" else ", or use an engine that takes 3D hints")
                    )

    # -- the work --------------------------------------------------------------------------
    def set_image(self, volume: Volume) -> None:
        """Prepare per-image state once (normalisation, features, caches)."""
        self.volume = volume

    @abstractmethod
    def predict(self, request: Request) -> Prediction:
        """Turn the hints of one class into a probability map of a region."""

    def slice_region(self, axis: int, index: int, rows: slice | None = None, cols: slice | None = None) -> Region:
        """KJI region of (part of) one slice along ``axis``."""
        if self.volume is None:
            raise EngineError("set_image() must be called before predict()")
        full = [slice(0, n) for n in self.volume.shape]
        full[axis] = slice(index, index + 1)
        others = [a for a in range(3) if a != axis]
        if rows is not None:
            full[others[0]] = rows
        if cols is not None:
            full[others[1]] = cols
        return (full[0], full[1], full[2])
