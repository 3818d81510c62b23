"""``InteractiveController``: the verbs of an interactive segmentation UI (click, box,
scribble, extreme points, undo, redo, next slice, cancel) on one volume and one segment.

Why Qt-free: the Segment Editor effect (Qt) and the web app (trame-slicer) turn their
mouse events into the same calls. A gesture's world points and the view's plane normal
become a hint (``logic.hint_from_view``), checked and prepared on the caller's thread
(``store.prepare``), computed on the inference thread (``logic.worker``), written on the
caller's thread (``store.commit``). Bad input raises ``InteractiveSegError`` (one line)
before anything changed. ``submit`` + ``finish`` split a hint for event loops that poll
``Operation.job.done``; the verbs block.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from InteractiveSegLib.errors import InteractionError, InteractiveSegError
from InteractiveSegLib.hints import Interaction
from InteractiveSegLib.session import Step

from . import segment_io
from .logic import SegmentationLogic, register_slicer_engines
from .session_store import Pending
from .worker import Cancelled, Job

#: Plane normal of an axial view (RAS), the default of the verbs.
AXIAL = (0.0, 0.0, 1.0)
Point = Sequence[float]
#: The library hint type (``Engine.SUPPORTED_HINTS``) each gesture kind makes.
HINT_OF_GESTURE = {"click": "click", "scribble": "scribble", "box": "box", "extreme": "extreme_points"}


@dataclass
class Result:
    """What one verb did: ``changed`` voxels (of any class), the selected class's ``voxels``
    afterwards, a one-line ``message``, the engine ``seconds``, and for ``next_slice`` the
    suggestion (``slice``: KJI axis, index, predicted IoU) and the world point (``ras``) to
    take the views to."""

    changed: int
    voxels: int
    message: str
    seconds: float = 0.0
    ras: tuple[float, float, float] | None = None
    slice: tuple[int, int, float] | None = None


@dataclass
class Operation:
    """A hint accepted by ``submit`` and computing on the worker; ``finish`` writes it."""

    pending: Pending
    job: Job
    verb: str
    started: float


def _changed_voxels(steps: Sequence[Step]) -> int:
    """Voxels the steps changed (each step keeps its changed box, before and after)."""
    total = 0
    for step in steps:
        if step.change is not None and step.change.box is not None:
            total += int(np.count_nonzero(step.change.before() != step.change.after()))
    return total


class InteractiveController:
    """One volume, one segmentation, one selected class (``label``) and engine.

    Args:
        volumeNode: the scalar volume node to segment.
        segmentationNode: where results go; None creates one beside the volume on first use.
        label: label value of the selected class (its segment is made if missing).
        engine: engine name (``click``, ``growcut``, ...: ``engine_names()``).
        logic: a ``SegmentationLogic`` (default: a new one, on the shared inference thread).
        segment_name: name of the class's segment when it is created.

    Attributes a front end may set: ``engine_kwargs`` (e.g. ``{"model": path}`` for the
    finetune engines) and ``ask_trust(message) -> bool`` (asked before a model that would
    run code loads; None: refused).
    """

    def __init__(
        self,
        volumeNode: Any,
        segmentationNode: Any = None,
        label: int = 1,
        engine: str = "click",
        logic: SegmentationLogic | None = None,
        segment_name: str | None = None,
    ) -> None:
        self.volumeNode = volumeNode
        self.segmentationNode = segmentationNode
        self.label = int(label)
        self.segment_name = segment_name
        self.logic = logic or SegmentationLogic()
        self.labels: Any = None  # the engine's class table once a segment is selected (None: from the segments)
        self.engine_kwargs: dict = {}
        self.ask_trust: Callable[[str], bool] | None = None
        self.engine = "click"
        self.set_engine(engine)
        self._extreme: list[Point] = []
        self._extreme_normal: Point = AXIAL
        self._running: Operation | None = None
        self._marks_shown = False  # a front end shows the placed hints (``hint_marks``)
        self._move_after_job: Point | None = None  # a click dragged while it computed

    # -- selection ----------------------------------------------------------------------
    def engine_names(self) -> list[str]:
        """Returns: the engines this process can run."""
        return list(self.logic.engineNames())

    def set_engine(self, engine: str) -> None:
        """Args: engine: one of ``engine_names()`` (InteractiveSegError otherwise, nothing changed)."""
        names = self.engine_names()
        if engine not in names:
            raise InteractiveSegError(f"unknown engine {engine!r}; available: {', '.join(names)}")
        self.engine = engine

    def takes(self) -> set[str]:
        """Returns: the gesture kinds (``click``, ``scribble``, ``box``, ``extreme``) the
        engine takes, from its declaration (its model is not loaded)."""
        from .session_store import engine_declaration

        hints = engine_declaration(self.engine, self.logic.options(self.engine, self.engine_kwargs)).hints
        return {kind for kind, name in HINT_OF_GESTURE.items() if name in hints}

    def select_segment(self, segment_id: str) -> int:
        """Select an existing segment (by ID) as the class to edit.

        Returns: its class's label value (InteractionError if the engine cannot edit it)."""
        self.labels, self.label = self.logic.segment_class(
            self.segmentationNode, segment_id, self.engine, **self.engine_kwargs
        )
        return self.label

    def ensure_segmentation(self) -> str:
        """Create the segmentation node (if None) and the selected class's segment.

        Returns: the segment ID of the selected class."""
        if self.segmentationNode is None:
            self.segmentationNode = segment_io.new_segmentation_node(self.volumeNode)
        labels = segment_io.class_labels(self.segmentationNode, self.label, self.segment_name)
        return segment_io.ensure_segments(self.segmentationNode, labels, self.volumeNode)[self.label]

    def voxel_count(self) -> int:
        """Returns: voxels of the selected class's segment (0 if there is none yet)."""
        if self.segmentationNode is None:
            return 0
        labels = segment_io.class_labels(self.segmentationNode, self.label)
        sid = segment_io.find_segments(self.segmentationNode, labels).get(self.label)
        return 0 if sid is None else int(segment_io.segment_mask(self.segmentationNode, sid, self.volumeNode).sum())

    # -- hints ----------------------------------------------------------------------------
    def hint(self, kind: str, points_ras: Sequence[Point], positive: bool = True, normal: Point = AXIAL) -> Interaction:
        """The library hint of a gesture.

        Args:
            kind: ``click``, ``scribble``, ``box`` or ``extreme``; points_ras: its world points;
            positive: inside (True) or outside; normal: the slice view's plane normal (RAS).
        Returns: the hint (InteractionError for an oblique view or a point outside the image)."""
        return self.logic.hint_from_view(self.volumeNode, kind, points_ras, normal, self.label, positive)

    def submit(self, hint: Interaction, verb: str = "hint") -> Operation:
        """Check the hint and start computing it on the inference thread (nothing written yet).

        Args: hint: a library hint (e.g. from ``hint``); verb: for the result's message.
        Returns: the running operation, for ``finish``."""
        return self.submit_all([hint], verb)

    def finish(self, op: Operation) -> Result:
        """Wait for the operation and write its result into the segmentation (caller's thread).

        Args: op: from ``submit``.
        Returns: the result (a cancelled operation changes nothing); engine errors are re-raised."""
        try:
            op.job.wait()
        except Cancelled:
            pass
        except Exception:
            self.logic.store.commit(op.pending)
            raise
        finally:
            if self._running is op:
                self._running = None
        seconds = time.perf_counter() - op.started
        move, self._move_after_job = self._move_after_job, None
        if op.job.cancel_requested:
            self.logic.store.discard(op.pending)
            return Result(0, self.voxel_count(), f"{op.verb}: cancelled", seconds)
        self.logic.store.commit(op.pending)
        if move is not None:  # the click was dragged while it computed: it ends where the drag did
            return self.move_click(move)
        changed = _changed_voxels(op.pending.done)
        return Result(changed, self.voxel_count(), f"{op.verb}: {changed} voxels changed", seconds)

    def apply(self, hint: Interaction, verb: str = "hint") -> Result:
        """``submit`` then ``finish``: blocks until the hint is written."""
        return self.finish(self.submit(hint, verb))

    # -- verbs ----------------------------------------------------------------------------
    def click(self, ras: Point, positive: bool = True, normal: Point = AXIAL) -> Result:
        """A click at world point ``ras``; ``positive`` False for Ctrl+click (outside);
        ``normal``: the view's plane normal (RAS)."""
        verb = "click" if positive else "negative click"
        return self.apply(self.hint("click", [ras], positive, normal), verb)

    def box(self, ras_a: Point, ras_b: Point, normal: Point = AXIAL) -> Result:
        """A box from corner ``ras_a`` to corner ``ras_b`` (world points, the slice of ``ras_a``)."""
        return self.apply(self.hint("box", [ras_a, ras_b], True, normal), "box")

    def scribble(self, ras_points: Sequence[Point], positive: bool = True, normal: Point = AXIAL) -> Result:
        """A stroke through the world points ``ras_points`` (on the slice of the first)."""
        return self.apply(self.hint("scribble", list(ras_points), positive, normal), "scribble")

    def move_click(self, ras: Point) -> Result | None:
        """Drag a click: the last click moves to world point ``ras`` and the engine re-runs
        (no new undo step; blocks for one engine call).

        Returns: the result ("no click to move" when the last step is not a click of this
        session); None while a hint computes: the move is kept (the latest wins) and ``finish``
        applies it after writing."""
        if self._running is not None:
            self._move_after_job = ras
            return None
        before = self.voxel_count()
        if not self.logic.move_last_click(self.volumeNode, self.segmentationNode, ras):
            return Result(0, before, "no click to move")
        self._redraw_marks()
        after = self.voxel_count()
        return Result(abs(after - before), after, "click moved")

    def propagation_hint(self, axis: int = 0) -> Interaction:
        """The selected class's largest slice along KJI ``axis`` as a hint for a 3D engine
        (Propagate: draw or correct one slice, then carry it through the volume)."""
        if self.segmentationNode is None:
            raise InteractionError("nothing to propagate: draw the structure on one slice first")
        return self.logic.propagation_hint(self.volumeNode, self.segmentationNode, self.label, axis)

    def extreme_point(self, ras: Point, normal: Point = AXIAL) -> Result:
        """One of four extreme points; the fourth makes the hint (the first three change nothing).

        Args: ras: world point; normal: the view's plane normal (the first point's is kept).
        Returns: the result (``changed`` is 0 until the fourth point)."""
        hint = self.extreme_hint(ras, normal)
        if hint is None:
            return Result(0, self.voxel_count(), f"extreme point {len(self._extreme)} of 4")
        return self.apply(hint, "extreme points")

    def extreme_hint(self, ras: Point, normal: Point = AXIAL) -> Interaction | None:
        """Collect one extreme point; the fourth gives the hint (None before it).

        Args: ras: world point; normal: the view's plane normal (the first point's is kept).
        Returns: the four points' hint, or None while fewer are placed."""
        self.hint("click", [ras], True, normal)  # refuses a point outside the image, keeps none
        if not self._extreme:
            self._extreme_normal = normal
        self._extreme.append(ras)
        if len(self._extreme) < 4:
            return None
        points, self._extreme = self._extreme, []
        return self.hint("extreme", points, True, self._extreme_normal)

    @property
    def extreme_points_placed(self) -> int:
        return len(self._extreme)

    @property
    def running(self) -> bool:
        """True from ``submit`` until ``finish`` wrote (or dropped) the result."""
        return self._running is not None

    def undo(self) -> Result:
        """Undo the last hint ("nothing to undo", nothing changed, when there is none)."""
        return self._history(redo=False)

    def redo(self) -> Result:
        """Redo the last undone hint."""
        return self._history(redo=True)

    def next_slice(self) -> Result:
        """The slice a 3D engine rates worst: ``ras`` is its centre (None if it suggests none)."""
        found = self.logic.suggest_slice(self.volumeNode)
        if found is None:
            return Result(0, self.voxel_count(), f"engine {self.engine!r} suggests no slice")
        suggestion, ras = found
        message = f"next slice: {suggestion.index} (axis {suggestion.axis}), predicted IoU {suggestion.score:.2f}"
        where = (int(suggestion.axis), int(suggestion.index), float(suggestion.score))
        return Result(0, self.voxel_count(), message, ras=tuple(float(c) for c in ras), slice=where)

    def cancel(self) -> bool:
        """Drop the extreme points placed so far and cancel the running hint (its result is dropped).

        Returns: True if there was something to cancel."""
        dropped = bool(self._extreme)
        self._extreme, self._move_after_job = [], None
        if self._running is not None and not self._running.job.done:
            self._running.job.cancel()
            return True
        return dropped

    # -- front-end helpers (the Segment Editor effect, the module panel) ----------------------
    def configure(self, engine: str, model: str = "", device: str | None = None) -> None:
        """A panel's engine settings in one call.

        Args:
            engine: one of ``engine_names()`` (InteractiveSegError otherwise, nothing changed).
            model: the user's model file or folder, passed only to the engines that adapt a
                model of the user's (``finetune*``); "" the shipped one.
            device: "cpu" or "cuda"; None, "" or "Automatic": CUDA when available.
        """
        self.set_engine(engine)
        self.engine_kwargs = {"model": model} if model and engine.startswith("finetune") else {}
        self.logic.device = None if device in (None, "", "Automatic") else device

    def submit_gesture(self, hint: Interaction, verb: str = "hint") -> Operation:
        """``submit`` for a slice-view gesture's hint, which is also marked where it was
        placed (``hint_marks``, every view); the suggested slice's highlight is hidden (it is
        acted upon)."""
        from . import hint_marks, slice_views

        op = self.submit(hint, verb)
        slice_views.hide_highlights(self.volumeNode.GetScene())
        hint_marks.show_hint(self.volumeNode, hint)
        self._marks_shown = True
        return op

    def submit_all(self, hints: Sequence[Interaction], verb: str = "hints") -> Operation:
        """``submit`` for several hints, computed in order as one job (one step and one undo
        state each; ``finish`` writes them all, Cancel drops those not yet written)."""
        if self._running is not None:
            raise InteractionError("InteractiveSeg is still computing the previous hint; wait or cancel it")
        if not hints:
            raise InteractionError("no hint to apply")
        register_slicer_engines()
        ask = self.ask_trust or (lambda _reason: False)
        pending = self.logic.prepare_trusting(
            ask,
            self.volumeNode,
            list(hints),
            self.engine,
            self.segmentationNode,
            self.labels,
            False,
            **self.engine_kwargs,
        )
        self.segmentationNode = pending.segmentationNode
        job = self.logic.worker.submit(self.logic.store.compute, pending, title=f"InteractiveSeg {verb}")
        self._running = Operation(pending, job, verb, time.perf_counter())
        return self._running

    def submit_markups(self, positiveNode: Any, negativeNode: Any, orientation: str = "Axial") -> Operation:
        """Apply (the module panel): the points of a positive and a negative point list become
        clicks on the volume slices of ``orientation`` (positives first), computed as one job;
        the lists are emptied so that the next Apply sends only new clicks.

        Raises InteractionError (nothing changed, the points kept) when no point is placed,
        a point is outside the image or a hint is still computing."""
        from . import geometry, slice_hints

        if self._running is not None:
            raise InteractionError("InteractiveSeg is still computing the previous hint; wait or cancel it")
        axis = geometry.kji_axis_for_orientation(self.volumeNode, orientation)
        hints = slice_hints.interactions_from_markups(positiveNode, self.volumeNode, self.label, True, axis)
        hints += slice_hints.interactions_from_markups(negativeNode, self.volumeNode, self.label, False, axis)
        if not hints:
            raise InteractionError("place at least one click first")
        if self.labels is None:
            self.ensure_segmentation()  # the class's segment, under the panel's name
        op = self.submit_all(hints, "apply")
        for node in (positiveNode, negativeNode):
            if node is not None:
                node.RemoveAllControlPoints()
        return op

    def submit_propagation(self, orientation: str = "Axial") -> Operation:
        """Propagate: the selected class's largest slice of ``orientation`` carried through
        the volume by a 3D engine: the engine if it is one that takes a drawn slice (``vmn*``,
        ``prompt3d``), else ``vmn`` becomes the engine. InteractionError (nothing changed)
        when the class has no voxel yet."""
        from InteractiveSegLib.engines import describe_engine

        from . import geometry

        hint = self.propagation_hint(geometry.kji_axis_for_orientation(self.volumeNode, orientation))
        info = describe_engine(self.engine)
        if info.mode != "3d" or "drawn_slice" not in info.hints:
            self.set_engine("vmn")
        return self.submit(hint, "propagate")

    def automatic_hint(self, ras: Point, orientation: str = "Axial") -> Interaction:
        """Automatic (multi-class engines, e.g. ``sim``): the hint asking for every class on
        the volume slice of ``orientation`` through world point ``ras`` (e.g. a slice view's
        centre); submit it like any hint (other engines refuse it there, nothing changed)."""
        from InteractiveSegLib.hints import SliceAuto

        from . import geometry

        axis = geometry.kji_axis_for_orientation(self.volumeNode, orientation)
        return SliceAuto(geometry.slice_index_at(self.volumeNode, ras, axis), axis)

    def highlight_next_slice(self) -> Result:
        """``next_slice`` with that slice highlighted in every view (``slice_views``), or the
        old highlight hidden when the engine suggests none; the caller takes its views to
        ``Result.ras``."""
        from . import slice_views

        result = self.next_slice()
        if result.slice is None:
            slice_views.hide_highlights(self.volumeNode.GetScene())
        else:
            slice_views.highlight_slice(self.volumeNode, result.slice[0], result.slice[1])
        return result

    def last_click(self) -> tuple[tuple[float, float, float], bool] | None:
        """The last step's click (world point, positive), to show as a point the user can
        drag (``move_click``); None when the last step is not a click."""
        from InteractiveSegLib.hints import Click

        from . import geometry

        session = self.logic.store.session(self.volumeNode)
        hint = session.history[-1].interaction if session is not None and session.history else None
        if not isinstance(hint, Click):
            return None
        ras = geometry.ijk_to_world(self.volumeNode, hint.ijk)
        return (float(ras[0]), float(ras[1]), float(ras[2])), bool(hint.positive)

    def _history(self, redo: bool) -> Result:
        if self._running is not None:
            raise InteractionError("InteractiveSeg is still computing; wait or cancel before undo/redo")
        session = self.logic.store.session(self.volumeNode)
        step = session.history[-1] if session is not None and session.can_undo and not redo else None
        store = self.logic.store
        done = (store.redo if redo else store.undo)(self.volumeNode, self.segmentationNode)
        verb = "redo" if redo else "undo"
        if not done:
            return Result(0, self.voxel_count(), f"nothing to {verb}")
        if redo and session is not None:
            step = session.history[-1]
        self._redraw_marks()
        changed = _changed_voxels([step])
        return Result(changed, self.voxel_count(), f"{verb}: {changed} voxels changed")

    def _redraw_marks(self) -> None:
        """The placed-hint marks as the history now stands (after undo, redo, a moved click),
        once a front end showed marks (``submit_gesture``); scripts draw none."""
        from . import hint_marks

        session = self.logic.store.session(self.volumeNode)
        if not self._marks_shown or session is None:
            return
        hint_marks.clear_hints(self.volumeNode.GetScene())
        for step in session.history:
            hint = step.interaction
            if getattr(hint, "label", None) == self.label and getattr(hint, "points", None):
                hint_marks.show_hint(self.volumeNode, hint)
