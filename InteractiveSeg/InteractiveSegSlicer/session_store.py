"""The per-volume ``SessionStore``: one library ``Session`` per volume node, each step written
into the segmentation at once (the Qt-free core of the module's Logic).

Why a separate, Qt-free module: the module panel, the Segment Editor effect and console
scripts all drive the same sessions; here it is decided when a session can be reused
(same engine, segmentation, classes, volume, and segments not edited elsewhere) or must
be rebuilt from what the segmentation holds, which classes a session has, and how engine
work (worker thread) is split from scene changes (main thread). pytest runs it on real
MRML nodes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from InteractiveSegLib.engines import EngineInfo, describe_engine
from InteractiveSegLib.errors import InteractionError
from InteractiveSegLib.hints import HINT_TYPES, Interaction, SliceAuto, from_dict, from_json, validate
from InteractiveSegLib.labels import LabelTable

from .geometry import ijk_to_ras, scalar_image, slice_center_world, volume_from_node, world_to_ijk
from .segment_io import (
    BINARY_LABELMAP,
    check_geometry,
    ensure_segments,
    labelmap_from_segmentation,
    labels_from_segmentation,
    new_segmentation_node,
    write_region,
)
from .slice_hints import interactions_from_markups


def parse_hints(hints: Any) -> list[Interaction]:
    """Interactions from interaction objects, their JSON dicts, a list of those, or a JSON string."""
    if hints is None:
        return []
    if isinstance(hints, str):
        return from_json(hints)
    if isinstance(hints, dict) or not isinstance(hints, (list, tuple)):
        hints = [hints]
    out = []
    for h in hints:
        if isinstance(h, dict):
            out.append(from_dict(h))
        elif isinstance(h, str):
            out.extend(from_json(h))
        elif isinstance(h, tuple(HINT_TYPES.values())):
            out.append(h)
        else:
            raise InteractionError(f"cannot read hint {h!r}: expected an interaction, its JSON dict or a JSON string")
    return out


_DECLARATIONS: dict[str, EngineInfo] = {}


def engine_declaration(engine: str, engine_kwargs: dict | None = None) -> EngineInfo:
    """What an engine with these options declares (``describe_engine``), asked once per engine
    and options: its classes come from the model's metadata, the model is not loaded."""
    key = json.dumps([engine, engine_kwargs or {}], sort_keys=True, default=str)
    if key not in _DECLARATIONS:
        _DECLARATIONS[key] = describe_engine(engine, **(engine_kwargs or {}))
    return _DECLARATIONS[key]


def adopt_labels(existing: LabelTable, model: LabelTable) -> LabelTable:
    """The segmentation's classes, then the model's classes it does not name yet (free values)."""
    import re

    table = LabelTable.from_dict(existing.to_dict())
    have = {re.sub(r"[_ ](l|r|left|right)$", "", e.name.lower()) for e in table} | {e.name.lower() for e in table}
    for e in model:
        if e.name.lower() not in have:
            table.add(max(table.values or [0]) + 1, e.name, e.color)
    return table


@dataclass
class _Entry:
    session: Any
    engine: str
    segmentation_id: str
    segment_ids: dict[int, str]
    labels_key: str
    volume_key: tuple
    content_key: tuple = field(default=())
    kwargs_key: str = "{}"


@dataclass
class Pending:
    """Hints accepted by ``SessionStore.prepare``, computed by ``compute``, written by ``commit``."""

    entry: _Entry
    segmentationNode: Any
    volumeNode: Any
    steps: list
    done: list = field(default_factory=list)
    written: int = 0


class SessionStore:
    """One ``Session`` per volume node; every step is written into the segmentation at once.

    A session is rebuilt (starting from what the segmentation holds) when the engine,
    the segmentation, the classes or the volume change, or when the class segments were
    edited outside InteractiveSeg (e.g. in the Segment Editor), so the session never
    overwrites newer work from its stale copy.
    """

    def __init__(self, editor=None) -> None:
        self._entries: dict[str, _Entry] = {}
        #: ``editor_writer.EditorWriter`` or None. With one, results go through the Segment
        #: Editor's logic (its masking, overwrite and undo states); without, through
        #: ``write_region`` (other segments are never overwritten, undo replays the session).
        self.editor = editor

    # -- public ---------------------------------------------------------------------------
    def session(self, volumeNode):
        entry = self._entries.get(volumeNode.GetID()) if volumeNode is not None else None
        return entry.session if entry else None

    def segment(
        self,
        volumeNode,
        hints,
        engine: str = "click",
        segmentationNode=None,
        labels: LabelTable | None = None,
        group: bool = False,
        **engine_kwargs,
    ):
        """Apply hints in order (``group``: all of them as one step, one undo); returns the
        segmentation node (created if None).

        A multi-class engine (e.g. ``sim``) brings its own classes: one segment per class,
        named after the model's classes, whatever ``labels`` says."""
        pending = self.prepare(volumeNode, hints, engine, segmentationNode, labels, group, **engine_kwargs)
        self.compute(pending)
        return self.commit(pending)

    def prepare(
        self,
        volumeNode,
        hints,
        engine: str = "click",
        segmentationNode=None,
        labels: LabelTable | None = None,
        group: bool = False,
        **engine_kwargs,
    ) -> Pending:
        """Main thread, before the engine runs: check everything, create the segments and
        the session. Raises (scene unchanged) on bad input."""
        interactions = parse_hints(hints)
        scalar_image(volumeNode)  # fail early, before any node is created
        if segmentationNode is not None:
            check_geometry(segmentationNode, volumeNode)
        labels = self.classes(engine, engine_kwargs, segmentationNode, labels, interactions)
        dims = volumeNode.GetImageData().GetDimensions()
        for h in interactions:
            validate(h, (dims[2], dims[1], dims[0]), labels.values)
        created = segmentationNode is None
        if created:
            segmentationNode = new_segmentation_node(volumeNode)
        try:
            entry = self._entry(volumeNode, segmentationNode, labels, engine, engine_kwargs)
        except Exception:
            if created:  # e.g. unknown engine or missing model: leave the scene as it was
                segmentationNode.GetScene().RemoveNode(segmentationNode)
            raise
        steps = [interactions] if group and interactions else [[h] for h in interactions]
        return Pending(entry, segmentationNode, volumeNode, steps)

    @staticmethod
    def compute(pending: Pending, job=None) -> Pending:
        """Engine work only (no MRML): safe on the inference worker thread. With a
        ``worker.Job``, progress is reported between steps and inside a long step (the
        engine's propagated slices or fine-tuning iterations); Cancel stops there, the
        interrupted hint leaves the session as it was, the steps already computed are
        kept and written."""
        engine = pending.entry.session.engine
        total = len(pending.steps)
        try:
            with pending.entry.session.job("a propagation" if total == 1 else f"a job of {total} hints"):
                SessionStore._compute_steps(pending, job, engine, total)
        finally:
            engine.progress = None
        return pending

    @staticmethod
    def _compute_steps(pending: Pending, job, engine, total: int) -> None:
        for n, hs in enumerate(pending.steps[len(pending.done) :], start=len(pending.done)):
            if job is not None:
                job.report(n / total, f"hint {n + 1} of {total}")
                engine.progress = lambda f, text, n=n: job.report((n + f) / total, f"hint {n + 1} of {total}: {text}")
            pending.done.append(pending.entry.session.add_many(hs) if len(hs) > 1 else pending.entry.session.add(hs[0]))

    def commit(self, pending: Pending):
        """Main thread, after ``compute``: write each computed step's region (one undo state
        per step when writing through the Segment Editor). Returns the segmentation node."""
        for step in pending.done[pending.written :]:
            if self.editor is not None:
                self.editor.save_state(
                    pending.segmentationNode, pending.volumeNode
                )  # one undo state per hint, as the Segment Editor's effects do
            # the step's own result (only what it changed): later steps of the same call may
            # already be in the session's labelmap
            if step.change is not None and step.change.box is not None:
                self._write(
                    pending.entry, pending.segmentationNode, pending.volumeNode, step.change.box, step.change.after()
                )
            pending.written += 1
        return pending.segmentationNode

    @staticmethod
    def discard(pending: Pending) -> int:
        """Cancel: forget the computed steps that were not written (newest first), so the
        session matches the untouched segmentation again. Returns how many were dropped."""
        dropped = pending.done[pending.written :]
        for _ in dropped:
            pending.entry.session.undo()
        # undone steps must not come back through Redo: the segmentation never held them
        pending.entry.session.discard_undone()
        del pending.done[pending.written :]
        return len(dropped)

    def apply_markups(
        self,
        volumeNode,
        positiveNode=None,
        negativeNode=None,
        label: int = 1,
        axis: int = 0,
        engine: str = "click",
        segmentationNode=None,
        labels: LabelTable | None = None,
        clear: bool = True,
        **engine_kwargs,
    ):
        """Turn the points of a positive and a negative point list into clicks and apply them.

        Points are applied in list order, positives first; with ``clear`` the point lists
        are emptied afterwards so that the next Apply only sends new clicks.
        """
        hints = interactions_from_markups(positiveNode, volumeNode, label, True, axis)
        hints += interactions_from_markups(negativeNode, volumeNode, label, False, axis)
        if not hints:
            raise InteractionError("place at least one click first")
        segmentationNode = self.segment(volumeNode, hints, engine, segmentationNode, labels, **engine_kwargs)
        if clear:
            for node in (positiveNode, negativeNode):
                if node is not None:
                    node.RemoveAllControlPoints()
        return segmentationNode

    def move_last_click(self, volumeNode, segmentationNode, ras, run=None) -> bool:
        """Drag-to-move: the last click moved to ``ras`` (a dragged markup point or mouse);
        the engine re-runs and the segment follows, without a new history step.
        ``run``: how to run the engine call, e.g. ``InferenceWorker.run`` (default: here)."""
        entry = self._entries.get(volumeNode.GetID()) if volumeNode is not None else None
        if entry is None or segmentationNode is None or entry.segmentation_id != segmentationNode.GetID():
            return False
        if entry.content_key != self._content_key(segmentationNode, entry.segment_ids):
            raise InteractionError("the segments were edited outside InteractiveSeg since the last step")
        ijk = tuple(int(round(c)) for c in world_to_ijk(volumeNode, [ras])[0])
        old_region = entry.session.history[-1].region if entry.session.history else None
        step = run(lambda job=None: entry.session.move_last_click(ijk)) if run else entry.session.move_last_click(ijk)
        for region in (old_region, step.region):
            self._write(entry, segmentationNode, volumeNode, region)
        return True

    def automatic(self, volumeNode, axis: int, index: int, engine: str = "sim", segmentationNode=None, **engine_kwargs):
        """A multi-class engine's automatic result on one slice (no hint), as an undoable step."""
        return self.segment(volumeNode, [SliceAuto(index, axis)], engine, segmentationNode, None, **engine_kwargs)

    def suggest_slice(self, volumeNode):
        """(suggestion, world point at the slice's centre) from the volume's session: the
        slice a 3D engine (VMN) rates worst, to take the view there; None if it has none."""
        session = self.session(volumeNode)
        suggestion = session.suggest_slice() if session is not None else None
        if suggestion is None:
            return None
        return suggestion, slice_center_world(volumeNode, suggestion.axis, suggestion.index)

    def undo(self, volumeNode, segmentationNode) -> bool:
        return self._undo_redo(volumeNode, segmentationNode, redo=False)

    def redo(self, volumeNode, segmentationNode) -> bool:
        return self._undo_redo(volumeNode, segmentationNode, redo=True)

    def reset(self, volumeNode=None) -> None:
        if volumeNode is None:
            self._entries.clear()
        else:
            self._entries.pop(volumeNode.GetID(), None)

    # -- internals ------------------------------------------------------------------------
    def reset_adaptation(self, volumeNode) -> bool:
        """Scribble fine-tuning: forget the weights adapted on this volume (the next hint
        starts from the source model again). False if the session has no such engine."""
        session = self.session(volumeNode)
        if session is None or not session.engine.ADAPTS_TO_IMAGE:
            return False
        session.engine.reset_adaptation()
        return True

    def classes(
        self, engine: str, engine_kwargs: dict, segmentationNode, labels: LabelTable | None = None, interactions=()
    ) -> LabelTable:
        """The session's classes: a multi-class engine's own (or, for engines that adopt
        labels, the segmentation's plus the model's), else ``labels``, else the segmentation's
        segments plus the hints' label values."""
        declared = engine_declaration(engine, engine_kwargs)
        model_labels = declared.classes  # None for single-class engines
        # engines that adopt labels take the segmentation's own classes and match them to
        # their model by name (scribble fine-tuning: it works on any engine's output)
        if model_labels is not None and declared.adopts_labels:
            return adopt_labels(
                self._resolve_labels(labels, segmentationNode, interactions, fallback=False), model_labels
            )
        if model_labels is not None:
            return model_labels
        return self._resolve_labels(labels, segmentationNode, interactions)

    @staticmethod
    def _resolve_labels(labels, segmentationNode, interactions, fallback: bool = True) -> LabelTable:
        if labels is not None:
            return labels
        table = labels_from_segmentation(segmentationNode)
        for h in interactions:
            if isinstance(h.label, int) and h.label >= 1 and h.label not in table:
                table.add(h.label, f"Segment_{h.label}")
        if len(table) == 0 and fallback:
            table.add(1, "Segment_1")
        return table

    @staticmethod
    def _volume_key(volumeNode) -> tuple:
        return (volumeNode.GetImageData().GetMTime(), tuple(np.round(ijk_to_ras(volumeNode), 6).ravel()))

    @staticmethod
    def _content_key(segmentationNode, segment_ids: dict[int, str]) -> tuple:
        segmentation = segmentationNode.GetSegmentation()
        key = []
        for sid in segment_ids.values():
            seg = segmentation.GetSegment(sid)
            lm = seg.GetRepresentation(BINARY_LABELMAP) if seg is not None else None
            key.append(
                (
                    sid,
                    seg.GetLabelValue() if seg else -1,
                    lm.GetMTime() if lm else -1,
                    tuple(lm.GetExtent()) if lm else (),
                )
            )
        return tuple(key)

    def _entry(self, volumeNode, segmentationNode, labels: LabelTable, engine: str, engine_kwargs) -> _Entry:
        from InteractiveSegLib.session import Session

        labels_key = json.dumps([(e.value, e.name, [round(c, 3) for c in e.color]) for e in labels])
        kwargs_key = json.dumps(engine_kwargs or {}, sort_keys=True, default=repr)
        entry = self._entries.get(volumeNode.GetID())
        if entry is not None:
            same = (
                entry.engine == engine
                and entry.segmentation_id == segmentationNode.GetID()
                and entry.labels_key == labels_key
                and entry.volume_key == self._volume_key(volumeNode)
                and entry.kwargs_key == kwargs_key
                and all(
                    segmentationNode.GetSegmentation().GetSegment(s) is not None for s in entry.segment_ids.values()
                )
                and entry.content_key == self._content_key(segmentationNode, entry.segment_ids)
            )
            if same:
                return entry
        # the engine (and its model file) loads before any segment is added: a model that
        # does not load leaves the segmentation as it was
        initial = labelmap_from_segmentation(segmentationNode, volumeNode, labels)
        session = Session(volume_from_node(volumeNode), engine=engine, labels=labels, labelmap=initial, **engine_kwargs)
        segment_ids = ensure_segments(segmentationNode, labels, volumeNode)
        entry = _Entry(
            session,
            engine,
            segmentationNode.GetID(),
            segment_ids,
            labels_key,
            self._volume_key(volumeNode),
            kwargs_key=kwargs_key,
        )
        entry.content_key = self._content_key(segmentationNode, segment_ids)
        self._entries[volumeNode.GetID()] = entry
        return entry

    def _write(self, entry: _Entry, segmentationNode, volumeNode, region, values=None) -> None:
        """``values``: the region's labels to write (a step's own result); default the session's current ones."""
        writer = self.editor.write if self.editor is not None else write_region
        writer(
            segmentationNode,
            entry.segment_ids,
            entry.session.labelmap[region] if values is None else values,
            region,
            volumeNode,
        )
        entry.content_key = self._content_key(segmentationNode, entry.segment_ids)

    def _undo_redo(self, volumeNode, segmentationNode, redo: bool) -> bool:
        entry = self._entries.get(volumeNode.GetID()) if volumeNode is not None else None
        if entry is None or segmentationNode is None or entry.segmentation_id != segmentationNode.GetID():
            return False
        if entry.content_key != self._content_key(segmentationNode, entry.segment_ids):
            raise InteractionError(
                "the segments were edited outside InteractiveSeg since the last step; use the Segment Editor's undo"
            )
        step = entry.session.redo() if redo else entry.session.undo()
        if step is None:
            return False
        if self.editor is not None:
            # the editor's saved state restores the segments bit-exactly (masking included)
            (self.editor.redo if redo else self.editor.undo)()
            entry.content_key = self._content_key(segmentationNode, entry.segment_ids)
        else:
            self._write(entry, segmentationNode, volumeNode, step.region)
        return True
