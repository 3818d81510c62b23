"""One interactive session per volume: ordered hints, a multi-class labelmap, undo/redo.

Usage (as SamPredictor: set the image once, then many cheap hint -> mask calls)::

    session = Session(volume, engine="click", labels=LabelTable.default([1, 2]))
    step = session.add(Click((60, 80, 40), label=1))
    session.move_last_click((62, 80, 40))   # drag: re-run, no new history step
    session.undo(); session.redo()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from InteractiveSegLib.changes import Change
from InteractiveSegLib.engines.base import Engine, Prediction, Region, Request, near_slices
from InteractiveSegLib.engines.registry import create_engine
from InteractiveSegLib.errors import EngineError, InteractionError
from InteractiveSegLib.hints import (
    Click,
    HintGroup,
    Interaction,
    SliceAuto,
    from_json,
    members,
    slice_index,
    to_json,
    validate,
)
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.memory_budget import check_fits
from InteractiveSegLib.volume import Volume

log = logging.getLogger(__name__)

#: Undo history's default memory budget (compressed changes and kept engine state).
HISTORY_BUDGET_BYTES = 256 * 1024**2
#: a slice looked at and left alone speaks for its neighbours within this share of the rated
#: run of slices, as a hinted slice does in ``prompt3d`` (``HINT_REACH``)
SEEN_REACH = 0.2


@dataclass
class Step:
    """One applied hint, the engine's region, and what it changed in the labelmap (for undo
    and redo). ``change`` is None once the step was dropped from the undo history to keep
    it within its memory budget: its hint still counts, it can no longer be undone."""

    interaction: Interaction
    region: Region
    change: Change | None
    prediction: Prediction | None = None

    @property
    def changed(self) -> bool:
        return self.change is not None and self.change.box is not None

    @property
    def nbytes(self) -> int:
        """What the step keeps in memory beyond its hint."""
        kept = self.change.nbytes if self.change is not None else 0
        if self.prediction is not None:
            kept += self.prediction.nbytes
        return kept


@dataclass
class SliceSuggestion:
    """The slice a 3D engine rates worst: correct it next (VMN's quality head, 3.3.4)."""

    index: int
    axis: int
    score: float  # the predicted IoU
    label: int
    wrong_voxels: float  # expected: (1 - score) x the slice's foreground


class Session:
    """Interactive segmentation of one volume with one engine.

    ``overwrite_other=False`` (the default) never relabels voxels of another class:
    a new class only takes background voxels, as Slicer's "overwrite: none" does.
    ``history_budget`` bounds the undo history's memory (bytes): past it, the oldest steps
    can no longer be undone (``dropped`` counts them; a warning says so).
    """

    def __init__(
        self,
        volume: Volume,
        engine: str | Engine = "click",
        labels: LabelTable | None = None,
        overwrite_other: bool = False,
        labelmap: np.ndarray | None = None,
        history_budget: int = HISTORY_BUDGET_BYTES,
        **engine_kwargs,
    ) -> None:
        self.volume = volume
        self.history_budget = int(history_budget)
        self.dropped = 0
        self._job_lock = threading.RLock()  # held by the thread a job runs on (``job``)
        self._job_name: str | None = None
        self.labels = labels if labels is not None else LabelTable.default([1])
        self.overwrite_other = overwrite_other
        dtype = np.uint8 if max(self.labels.values or [1]) < 256 else np.uint16
        if labelmap is None:
            self.labelmap = np.zeros(volume.shape, dtype)
        else:
            if labelmap.shape != volume.shape:
                raise InteractionError(f"initial labelmap shape {labelmap.shape} differs from volume {volume.shape}")
            self.labelmap = np.array(labelmap, dtype=dtype)
        self.history: list[Step] = []
        self._redo: list[Step] = []
        #: the rated step the suggestions were for, and the slices suggested for it so far
        self._suggested: tuple[Step | None, list[int]] = (None, [])
        self.engine = create_engine(engine, **engine_kwargs) if isinstance(engine, str) else engine
        if self.engine.volume is not volume:  # an engine shared by sessions of one volume is set once
            check_fits(
                int(volume.array.size * self.engine.MEMORY_PER_VOXEL),
                f"engine {self.engine.name!r} on a {'x'.join(map(str, volume.shape))} volume",
            )
            self.engine.set_image(volume)
        own = self.engine.label_table() if labels is None else None
        if own is not None:  # a multi-class engine names its classes
            self.labels = own
        elif labels is not None and self.engine.ADOPTS_LABELS:  # it maps given classes by name
            self.engine.bind_labels(self.labels)

    # -- hints ---------------------------------------------------------------------------
    @property
    def interactions(self) -> list[Interaction]:
        return [s.interaction for s in self.history]

    @contextmanager
    def job(self, what: str = "a job") -> Iterator[None]:
        """Hold the session for a job (several steps on a worker thread): while it runs, a
        hint, undo or redo from another thread is refused with a message instead of
        interleaving with it (undo of A while B computes would lose B's history)."""
        if not self._job_lock.acquire(blocking=False):
            raise InteractionError(f"{self._job_name or 'a job'} is running on this volume: wait for it or cancel it")
        outer = self._job_name
        self._job_name = outer or what
        try:
            yield
        finally:
            self._job_name = outer
            self._job_lock.release()

    @property
    def busy(self) -> bool:
        """Whether a job (or a hint, undo or redo) holds the session now."""
        return self._job_name is not None

    def add(self, interaction: Interaction) -> Step:
        """Validate, run the engine, merge into the labelmap and record an undoable step."""
        with self.job("a hint"):
            validate(interaction, self.volume.shape, self.labels.values)
            step = self._apply(interaction, self.history)
            self.history.append(step)
            self._redo.clear()
            self._keep_within_budget()
            return step

    def add_many(self, interactions: list[Interaction]) -> Step:
        """Several hints (e.g. scribbles of several labels) as one step, one engine call and
        one undo. Engines that do not take groups see the first hint's class only."""
        return self.add(HintGroup(list(interactions)))

    def automatic(self, axis: int, index: int) -> Step:
        """Multi-class engines: the automatic result of one slice, as an undoable step."""
        return self.add(SliceAuto(index, axis))

    def suggest_slice(self, exclude: tuple[int, ...] = ()) -> SliceSuggestion | None:
        """The worst slice of the newest 3D step that rates its slices (None when no step
        does): the most expected wrong voxels. Corrected slices are never suggested, nor a
        slice already suggested for the same step: asked again without a correction, the
        user found it right, so the next one comes. A slice looked at and left alone (those,
        and ``exclude``) weighs its neighbours down as a corrected one does in the engine's
        rating (``engines.base.near_slices``): they are likely right too.

        Args:
            exclude: more slices (along the ratings' axis) the user looked at and left alone.
        Returns:
            The slice to correct next, or None when every rated slice was corrected or seen.
        """
        for step in reversed(self.history):
            ratings = step.prediction.ratings if step.prediction is not None else None
            if ratings is None:
                continue
            shown = self._suggested[1] if self._suggested[0] is step else []
            error = np.array(ratings.expected_wrong_voxels, np.float64)
            seen = sorted((set(exclude) | set(shown)) - set(ratings.corrected))
            if seen:
                error *= near_slices(np.isfinite(error), seen, SEEN_REACH)
            error[list(ratings.corrected) + seen] = np.nan
            if np.isnan(error).all():
                return None
            i = int(np.nanargmax(error))
            self._suggested = (step, [*shown, i])
            iou = float(ratings.predicted_iou[i])
            return SliceSuggestion(i, ratings.axis, iou, step.interaction.label, float(error[i]))
        return None

    def move_last_click(self, ijk) -> Step:
        """Drag-to-move: re-run with the last click moved; replaces the step, adds none."""
        with self.job("a click"):
            return self._move_last_click(ijk)

    def _move_last_click(self, ijk) -> Step:
        if not self.history or not isinstance(self.history[-1].interaction, Click):
            raise InteractionError("there is no click to move")
        old = self.history[-1]
        if old.change is None:
            raise InteractionError("the last click left the undo history (memory budget): it cannot be moved")
        moved = Click(ijk, old.interaction.label, old.interaction.positive, old.interaction.axis)
        validate(moved, self.volume.shape, self.labels.values)
        old.change.undo(self.labelmap)
        try:
            step = self._apply(moved, self.history[:-1])
        except Exception:
            old.change.redo(self.labelmap)
            raise
        self.history[-1] = step
        return step

    @property
    def can_undo(self) -> bool:
        return bool(self.history) and self.history[-1].change is not None

    def undo(self) -> Step | None:
        """Undo the newest step; None when there is none (or it left the history's budget)."""
        with self.job("undo"):
            if not self.can_undo:
                return None
            step = self.history.pop()
            assert step.change is not None
            step.change.undo(self.labelmap)
            self._redo.append(step)
            return step

    def redo(self) -> Step | None:
        with self.job("redo"):
            if not self._redo:
                return None
            step = self._redo.pop()
            assert step.change is not None  # only undoable steps reach the redo list
            step.change.redo(self.labelmap)
            self.history.append(step)
            return step

    @property
    def history_bytes(self) -> int:
        return sum(s.nbytes for s in self.history) + sum(s.nbytes for s in self._redo)

    def _keep_within_budget(self) -> None:
        """Past the budget, the oldest undoable steps lose their change (their hints stay,
        as the engines' context); the newest step always stays undoable."""
        total = self.history_bytes
        if total <= self.history_budget:
            return
        dropped = 0
        for step in self.history[:-1]:
            if total <= self.history_budget:
                break
            if step.change is not None:
                total -= step.change.nbytes
                step.change = None
                dropped += 1
        if dropped:
            self.dropped += dropped
            log.warning(
                "undo history over its %d MB budget: the %d oldest step(s) can no longer be undone",
                self.history_budget // 1024**2,
                dropped,
            )

    def discard_undone(self) -> int:
        """Drop the redo list (steps undone because their result was never shown, e.g. a
        cancelled job): they cannot come back through redo. Returns how many were dropped."""
        n = len(self._redo)
        self._redo.clear()
        return n

    def reset(self) -> None:
        with self.job("reset"):
            self.labelmap[...] = 0
            self.history.clear()
            self._redo.clear()

    def hints_json(self) -> str:
        return to_json(self.interactions)

    def replay_json(self, text: str) -> list[Step]:
        """Apply hints saved by ``hints_json`` (e.g. from a batch script)."""
        return [self.add(h) for h in from_json(text)]

    # -- internals -----------------------------------------------------------------------
    def _context(self, new: Interaction, previous: list[Interaction]) -> list[Interaction]:
        """The hints an engine sees: same class (and same slice for 2D engines), in order."""
        same = [h for h in previous if h.label == new.label]
        if self.engine.mode == "2d":
            idx = slice_index(new)
            same = [h for h in same if h.axis == new.axis and slice_index(h) == idx]
        return same + [new]

    def _history(self, new: Interaction, previous: list[Step]) -> list[tuple[Interaction, Prediction | None]]:
        """The earlier (hint, prediction) pairs the engine's ``HISTORY`` scope asks for, oldest first."""
        scope = self.engine.HISTORY
        if scope == "all":  # engines whose state spans the image
            return [(s.interaction, s.prediction) for s in previous]
        if scope == "slice":  # every class of the new hint's slice (a multi-class memory)
            idx = slice_index(new)
            return [
                (s.interaction, s.prediction)
                for s in previous
                if s.interaction.axis == new.axis and slice_index(s.interaction) == idx
            ]
        if scope == "class":  # the new hint's class on every slice (3D propagation)
            return [(s.interaction, s.prediction) for s in previous if s.interaction.label == new.label]
        return []

    def _apply(self, interaction: Interaction, previous: list[Step]) -> Step:
        if isinstance(interaction, SliceAuto) and not self.engine.multiclass:
            raise InteractionError(f"engine {self.engine.name!r} has no automatic mode; give it a hint")
        self.engine.check_hint(interaction)
        request = Request(
            label=interaction.label,
            interactions=self._context(interaction, [s.interaction for s in previous]),
            axis=interaction.axis,
            slice_index=slice_index(interaction),
            labelmap=self.labelmap,
            history=self._history(interaction, previous),
        )
        pred = self.engine.predict(request)
        if pred.probability.dtype.kind == "f" and not np.isfinite(pred.probability).all():
            # a broken model (NaN weights, an overflow) would otherwise read as "nothing here"
            raise EngineError(f"engine {self.engine.name!r} returned NaN or infinite values: its model is broken")
        region = pred.region
        before = self.labelmap[region]
        if pred.labels is not None:
            after = merge_classes(before, pred.labels, pred.classes or [], self.overwrite_other)
        else:
            after = merge_class(before, pred.mask(), interaction.label, self.overwrite_other)
        change = Change.between(region, before, after)
        self.labelmap[region] = after
        if not self.engine.KEEPS_PROBABILITY:  # no later request reads it: history keeps no float maps
            pred.release()
        return Step(interaction, region, change, pred)


def merge_classes(before: np.ndarray, labels: np.ndarray, owned: list[int], overwrite_other: bool) -> np.ndarray:
    """Write a multi-class result into a region: voxels that are background or one of the
    engine's ``owned`` classes take the new labels; other classes stay unless ``overwrite_other``."""
    labels = labels.reshape(before.shape).astype(before.dtype)
    if overwrite_other:
        return labels.copy()
    writable = (before == 0) | np.isin(before, owned)
    after = before.copy()
    after[writable] = labels[writable]
    return after


def merge_class(before: np.ndarray, mask: np.ndarray, label: int, overwrite_other: bool) -> np.ndarray:
    """Write one class's new mask into a multi-class region without touching other classes."""
    mask = mask.reshape(before.shape)
    after = before.copy()
    after[(before == label) & ~mask] = 0
    writable = (before == 0) | (before == label) if not overwrite_other else np.ones_like(mask)
    after[mask & writable] = label
    return after


def labels_for_hints(engine: Engine, hints: list[Interaction]) -> LabelTable:
    """The labels a batch of hints is segmented with: a multi-class engine's classes (and,
    when it adopts labels, every other value the hints name, as a new class); otherwise the
    values the hints name."""
    own = engine.label_table()
    if own is None:
        return LabelTable.default(sorted({h.label for h in hints}))
    if engine.ADOPTS_LABELS:  # fine-tuning: a hint may add a class the model never knew
        for v in sorted({m.label for h in hints for m in members(h)} - set(own.values)):
            own.add(v, f"label_{v}")
    return own
