"""The scriptable logic of the module, Qt-free (``InteractiveSegLogic`` adds only Slicer's base class).

Why here and not in InteractiveSeg.py: everything a radiologist's action or a console
script does (batch ``segment``, ``propagate``, undo, next slice, gestures from a slice
view) must be testable with pytest on real MRML classes, and InteractiveSeg.py imports
Slicer's GUI modules.
"""

from __future__ import annotations

import numpy as np

from InteractiveSegLib.errors import InteractionError, UntrustedCodeError
from InteractiveSegLib.hints import DrawnSlice, ijk_from_slice_point

from . import engine_info, geometry, segment_io, session_store, slice_hints
from .worker import InferenceWorker


def register_slicer_engines() -> None:
    """Register "growcut" and "vmn-growcut": inside Slicer the package is not pip-installed,
    so their entry points are not seen."""
    from InteractiveSegLib.engines import available_engines, register_engine

    if "growcut" not in available_engines():
        from .growcut_engine import GrowFromSeedsEngine, GrowFromSeedsPropagationEngine

        register_engine("growcut", GrowFromSeedsEngine)
        register_engine("vmn-growcut", GrowFromSeedsPropagationEngine)


_SHARED_WORKER: InferenceWorker | None = None


def shared_worker() -> InferenceWorker:
    """The process's one inference thread, shared by the module panel, the Segment Editor
    effect and console scripts (started on first use)."""
    global _SHARED_WORKER
    if _SHARED_WORKER is None or not _SHARED_WORKER.alive:
        _SHARED_WORKER = InferenceWorker()
    return _SHARED_WORKER


class SegmentationLogic:
    """One session per volume node (``store``), one inference thread (``worker``, started on
    first use), results written through ``editor`` when given (Segment Editor masking,
    overwrite and undo) else through ``segment_io.write_region``."""

    def __init__(self, editor=None) -> None:
        self.store = session_store.SessionStore(editor)
        self.device: str | None = None  # None: CUDA when available, else CPU
        self.worker = shared_worker()
        #: model paths the user said may run code when they load (asked once per session)
        self.trusted_models: set[str] = set()

    @staticmethod
    def engineNames() -> list:
        try:
            register_slicer_engines()
            from InteractiveSegLib.engines import available_engines

            return available_engines()
        except ImportError:  # torch/monai are installed on first use, not at start-up
            return ["click", "growcut"]

    def options(self, engine: str, engineKwargs: dict | None = None) -> dict:
        """Engine keyword arguments: the chosen device (networks only), then the caller's;
        ``trust_code`` for a model the user said they trust in this session."""
        kwargs = {**engine_info.engine_options(engine, self.device), **(engineKwargs or {})}
        if isinstance(kwargs.get("model"), str) and kwargs["model"] in self.trusted_models:
            kwargs.setdefault("trust_code", True)
        return kwargs

    def prepare_trusting(self, ask, volumeNode, hints, engine, segmentationNode=None, labels=None, group=False, **kw):
        """``store.prepare`` for a UI: a model that would run code when it loads is not
        loaded unasked. ``ask(message) -> bool`` puts the refusal's reason to the user; a
        yes loads it with ``trust_code`` and remembers the model for this session, a no
        re-raises the refusal (nothing changed)."""
        try:
            return self.store.prepare(
                volumeNode, hints, engine, segmentationNode, labels, group, **self.options(engine, kw)
            )
        except UntrustedCodeError as e:
            model = kw.get("model")
            if not isinstance(model, str) or not ask(str(e)):
                raise
            self.trusted_models.add(model)
        return self.store.prepare(
            volumeNode, hints, engine, segmentationNode, labels, group, **self.options(engine, kw)
        )

    def segment_class(self, segmentationNode, segmentId: str, engine: str = "click", **engineKwargs):
        """(classes, label value) for hints on the Segment Editor's selected segment: every
        segment is a class of a single-class engine; a multi-class engine (``sim``) only
        takes its own classes (InteractionError naming them otherwise)."""
        register_slicer_engines()
        labels = self.store.classes(engine, self.options(engine, engineKwargs), segmentationNode)
        for value, sid in segment_io.find_segments(segmentationNode, labels).items():
            if sid == segmentId:
                return labels, value
        names = ", ".join(e.name for e in labels)
        raise InteractionError(
            f"engine {engine!r} segments only its classes ({names}); select one of them or run 'Automatic' first"
        )

    # -- scripted batch API ---------------------------------------------------------------
    def segment(
        self, volumeNode, hints, engine="click", segmentationNode=None, labels=None, group=False, **engineKwargs
    ):
        """Apply hints (InteractiveSegLib interactions, their JSON dicts or a JSON string, as
        in the library's hints.json) in order on the inference thread (``group``: all as
        one step); returns the segmentation node (created if None), one segment per class."""
        register_slicer_engines()
        pending = self.store.prepare(
            volumeNode, hints, engine, segmentationNode, labels, group, **self.options(engine, engineKwargs)
        )
        try:
            self.worker.run(self.store.compute, pending)
        finally:  # steps computed before an error are written, so the session and the segments agree
            self.store.commit(pending)
        return pending.segmentationNode

    def propagate(self, volumeNode, segmentationNode, label=1, axis=0, index=None, engine="vmn", **engineKwargs):
        """3D from one drawn slice: the class's voxels on slice ``index`` along KJI ``axis``
        (default: its largest slice) are taken as that slice's mask (a ``DrawnSlice``) and a 3D
        engine (``vmn``, ``vmn-growcut``) propagates it through the volume. Returns the
        segmentation node."""
        hint = self.propagation_hint(volumeNode, segmentationNode, label, axis, index)
        labels = segment_io.labels_from_segmentation(segmentationNode)
        return self.segment(volumeNode, [hint], engine, segmentationNode, labels, **engineKwargs)

    @staticmethod
    def propagation_hint(volumeNode, segmentationNode, label=1, axis=0, index=None) -> DrawnSlice:
        """The class's voxels on one slice (default: its largest along ``axis``) as a drawn
        slice, which a 3D engine keeps exactly and propagates."""
        if segmentationNode is None:
            raise InteractionError("propagate needs a segmentation that holds the class on one slice")
        labels = segment_io.labels_from_segmentation(segmentationNode)
        if label not in labels:
            raise InteractionError(f"segmentation {segmentationNode.GetName()!r} has no class with label value {label}")
        mask = segment_io.labelmap_from_segmentation(segmentationNode, volumeNode, labels) == label
        area = mask.sum(axis=tuple(a for a in range(3) if a != axis))
        if index is None:
            index = int(np.argmax(area))
        if not 0 <= index < mask.shape[axis] or area[index] == 0:
            raise InteractionError(
                f"class {labels[label].name!r} has no voxel on slice {index} (axis {axis}); draw it there first"
            )
        voxels = [ijk_from_slice_point(p, axis, index) for p in np.argwhere(np.take(mask, index, axis=axis))]
        return DrawnSlice(voxels, label=label, axis=axis, index=index)

    def apply_markups(
        self,
        volumeNode,
        positiveNode,
        negativeNode,
        label=1,
        className=None,
        orientation="Axial",
        engine="click",
        segmentationNode=None,
        **engineKwargs,
    ):
        """Clicks from two point lists (positive, negative) for class ``label`` on slices of ``orientation``."""
        register_slicer_engines()
        labels = segment_io.class_labels(segmentationNode, int(label), className)
        axis = geometry.kji_axis_for_orientation(volumeNode, orientation)
        return self.store.apply_markups(
            volumeNode,
            positiveNode,
            negativeNode,
            int(label),
            axis,
            engine,
            segmentationNode,
            labels,
            **self.options(engine, engineKwargs),
        )

    def automatic(self, volumeNode, ras, orientation="Axial", engine="sim", segmentationNode=None, **engineKwargs):
        """Multi-class engines: the automatic segmentation of the slice of ``orientation``
        through world point ``ras`` (e.g. the slice view's centre), one segment per class."""
        register_slicer_engines()
        axis = geometry.kji_axis_for_orientation(volumeNode, orientation)
        index = geometry.slice_index_at(volumeNode, ras, axis)
        return self.store.automatic(
            volumeNode, axis, index, engine, segmentationNode, **self.options(engine, engineKwargs)
        )

    def finetune(self, volumeNode, hints, segmentationNode=None, model=None, **engineKwargs):
        """Scribble-aware fine-tuning on any engine's output: the segmentation keeps its
        classes (matched to the model's by name; others get a new model channel), the hints
        (scribbles, clicks, boxes; a list of several labels is one step) adapt ``model``
        (checkpoint, TorchScript or MONAI bundle; default the shipped one) to this volume."""
        if model is not None:
            engineKwargs["model"] = str(model)
        return self.segment(volumeNode, hints, "finetune", segmentationNode, None, group=True, **engineKwargs)

    # -- gestures from slice views (the Segment Editor effect) ----------------------------
    def hint_from_view(self, volumeNode, kind, points_ras, normal_ras, label=1, positive=True):
        """A hint from a gesture in a slice view: world points of the mouse positions and
        the view's plane normal. InteractionError (nothing changed) for an oblique view or
        a hint outside the image."""
        geometry.scalar_image(volumeNode)
        axis = slice_hints.view_axis(volumeNode, normal_ras)
        dims = volumeNode.GetImageData().GetDimensions()
        points_ijk = geometry.world_to_ijk(volumeNode, points_ras)
        return slice_hints.hint_from_gesture(kind, points_ijk, (dims[2], dims[1], dims[0]), axis, label, positive)

    # -- session ------------------------------------------------------------------------
    def reset_adaptation(self, volumeNode) -> bool:
        """Forget the weights fine-tuned on this volume; the source model file is never changed."""
        return self.store.reset_adaptation(volumeNode)

    def move_last_click(self, volumeNode, segmentationNode, ras) -> bool:
        """Drag-to-move: re-run with the last click at world position ``ras``; no new undo step."""
        return self.store.move_last_click(volumeNode, segmentationNode, ras, run=self.worker.run)

    def suggest_slice(self, volumeNode):
        """3D engines (VMN): (suggestion with index, axis, score; world point of the slice's
        centre) for the slice rated worst, or None."""
        return self.store.suggest_slice(volumeNode)

    def undo(self, volumeNode, segmentationNode) -> bool:
        return self.store.undo(volumeNode, segmentationNode)

    def redo(self, volumeNode, segmentationNode) -> bool:
        return self.store.redo(volumeNode, segmentationNode)

    def reset(self, volumeNode=None) -> None:
        self.store.reset(volumeNode)
