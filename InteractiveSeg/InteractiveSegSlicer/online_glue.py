"""Online learning in Slicer: a task folder, a volume and one segment bound to the library's
``DynamicLearner`` (dynamic-learning paper, Algorithms 3 and 5).

The loop per volume: ``propose`` names slices (the views go there, highlighted) → the user
paints the structure on them with Slicer's own Paint/Draw effects → ``record_drawn_slice``
reads each painted slice from the segment → ``update_proxy`` writes the proxy mask (every
other slice, by registration) into the segment → ``train`` runs a round on the shared
inference thread (progress, Stop) → again, until ``finish_volume``. Once the task has
learnt, a new volume starts from the segmenter's prediction. The task (weights, replay
buffer, counters) is saved atomically in its folder after every round and locked while
open, so a second Slicer on the same task gets a message instead of corrupting it.

Qt-free: the module panel only wires buttons to this class, and pytest runs it on real
MRML nodes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from InteractiveSegLib.errors import InteractionError

from . import geometry, segment_io, slice_views
from .worker import Cancelled


@dataclass
class SliceProposal:
    """A slice the learner asks the user to draw, and what a slice view needs to go there."""

    axis: int  # KJI array axis
    index: int
    orientation: str  # the slice-view orientation showing that axis (Axial, Coronal, Sagittal)
    ras: tuple  # world point at the slice's centre (``JumpSlicesToLocation``/``JumpSliceByCentering``)
    offset: float  # position of that point along the slice's unit normal (the volume's voxel axis), mm
    highlight: str = ""  # name of its highlight plane


def class_segment(volumeNode, segmentationNode, value: int = 1, name: str | None = None):
    """(segmentation node, segment ID) of class ``value`` named ``name``, as the panel's Apply
    makes them: a new segmentation beside the volume when None, the segment added if missing."""
    if segmentationNode is None:
        geometry.scalar_image(volumeNode)  # refuse a bad volume before creating anything
        segmentationNode = segment_io.new_segmentation_node(volumeNode)
    ids = segment_io.ensure_segments(
        segmentationNode, segment_io.class_labels(segmentationNode, int(value), name), volumeNode
    )
    return segmentationNode, ids[int(value)]


def _key(volumeNode, volumes_done: int) -> str:
    """The replay sample's file name of this volume: unique in the task, readable."""
    return f"volume-{volumes_done:05d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', volumeNode.GetName() or 'volume')[:40]}"


class OnlineLearningLogic:
    """One open task and the volume being learnt.

    ``editor``: an ``editor_writer.EditorWriter`` (the Segment Editor's node: its masking,
    "Modify other segments" and undo apply); None makes a private one (scripts, tests).
    ``settings``/``registration``/``workers``/``device`` go to ``DynamicLearner`` (settings of
    an existing task are read from it when None).
    """

    def __init__(
        self,
        taskDir=None,
        volumeNode=None,
        segmentationNode=None,
        segmentId: str | None = None,
        editor=None,
        settings=None,
        registration=None,
        workers: int = 2,
        device: str = "cpu",
    ) -> None:
        self.editor = editor
        self.settings, self.registration, self.workers, self.device = settings, registration, workers, device
        self.store = None
        self.learner = None
        self.taskDir: Path | None = None
        self.volumeNode = self.segmentationNode = None
        self.segmentId: str | None = None
        self.proposals: list[SliceProposal] = []
        self.last_report = None
        self._job = None
        if taskDir is not None:
            self.open(taskDir)
            if volumeNode is not None:
                try:
                    self.start(volumeNode, segmentationNode, segmentId)
                except Exception:
                    self.close()
                    raise

    # -- task ------------------------------------------------------------------------------
    def open(self, taskDir) -> None:
        """Open (or create) the task in folder ``taskDir`` and lock it. A task open elsewhere
        raises ``TaskLockedError`` and nothing changes (a task already open here stays open)."""
        from InteractiveSegLib.methods.online.learner import DynamicLearner
        from InteractiveSegLib.methods.online.task_folder import TaskFolder

        self._check_idle()
        if not str(taskDir).strip():
            raise InteractionError("choose a task folder first")
        path = Path(taskDir).expanduser().resolve()
        if self.taskDir is not None and self.taskDir.resolve() == path:
            return  # already open here (a second lock from this process would refuse itself)
        store = TaskFolder.open(path)
        try:
            learner = DynamicLearner(
                self.settings, store=store, device=self.device, registration=self.registration, workers=self.workers
            )
        except Exception:
            store.close()
            raise
        self.close()
        self.store, self.learner, self.taskDir = store, learner, store.root

    @property
    def is_open(self) -> bool:
        return self.learner is not None

    def close(self) -> None:
        """Release the task (its lock); everything is already saved after each round. A volume
        not finished is not counted; its trained rounds are kept."""
        self._check_idle()
        if self.store is not None:
            self.store.close()
        self._hide_proposals()
        self.store = self.learner = self.taskDir = None
        self.volumeNode = self.segmentationNode = self.segmentId = None
        self.proposals, self.last_report = [], None

    # -- one volume -------------------------------------------------------------------------
    def start(self, volumeNode, segmentationNode, segmentId: str, prediction: bool = True) -> bool:
        """Start learning on this volume (any drawn slices of another unfinished volume are
        dropped). Refuses a 2D/4D/RGB volume and a segmentation on another grid, unchanged.
        With ``prediction``, once the task has learnt, an empty segment starts from the
        segmenter's prediction (one undo state). Returns True if it did."""
        learner = self._need_task()
        self._check_idle()
        array = geometry.volume_from_node(volumeNode).array  # ImageError: 2D, 4D, RGB, no data, NaN
        if segmentationNode is None:
            raise InteractionError("choose a segmentation (the segment the user paints on) first")
        if segmentationNode.GetSegmentation().GetSourceRepresentationName() != segment_io.BINARY_LABELMAP:
            raise InteractionError(
                f"segmentation {segmentationNode.GetName()!r} is not a labelmap segmentation; "
                "paint in it with the Segment Editor first"
            )
        painted = segment_io.segment_mask(segmentationNode, segmentId, volumeNode)  # GeometryError, unknown segment
        learner.start_volume(array, _key(volumeNode, learner.volumes_done))
        if self.editor is None:
            from .editor_writer import EditorWriter

            self.editor = EditorWriter(volumeNode.GetScene())
        self._hide_proposals()
        self.volumeNode, self.segmentationNode, self.segmentId = volumeNode, segmentationNode, segmentId
        self.proposals, self.last_report = [], None
        return prediction and not painted.any() and self.show_prediction()

    def is_started(self, volumeNode=None) -> bool:
        """A volume is being learnt (``volumeNode`` given: that one)."""
        if self.learner is None or self.learner.key is None or self.volumeNode is None:
            return False
        return volumeNode is None or self.volumeNode.GetID() == volumeNode.GetID()

    def propose(self) -> list[SliceProposal]:
        """The slices to draw next (random until the task has learnt, then where the proxy and
        the segmenter disagree most), each highlighted in the views."""
        learner = self._need_volume()
        self._check_idle()
        self._hide_proposals()
        proposals = []
        for axis, indices in learner.propose().items():
            for index in indices:
                proposals.append(self.proposal(axis, index, f"{slice_views.PROPOSED_SLICE} {len(proposals) + 1}"))
        self.proposals = proposals
        return proposals

    def proposal(self, axis: int, index: int, highlight: str = "") -> SliceProposal:
        """What a slice view needs to show slice ``index`` along KJI ``axis`` (highlighted when named)."""
        vol = self.volumeNode
        ras = geometry.slice_center_world(vol, axis, index)
        normal = slice_views._unit(geometry.slice_center_world(vol, axis, index + 1) - ras)  # world, transforms applied
        if highlight:
            slice_views.highlight_slice(vol, axis, index, highlight, slice_views.PROPOSED_COLOR)
        return SliceProposal(
            int(axis),
            int(index),
            slice_views.orientation_for_axis(vol, axis),
            tuple(float(c) for c in ras),
            float(normal @ ras),
            highlight,
        )

    def record_drawn_slice(self, axis: int, index: int) -> int:
        """Read the segment on slice ``index`` along KJI ``axis`` (what the user painted there;
        an empty slice says "not on this slice") and give it to the learner, which updates the
        proxy mask. Returns the number of painted voxels."""
        learner = self._need_volume()
        self._check_idle()
        shape = self.volumeNode.GetImageData().GetDimensions()[::-1]
        if axis not in (0, 1, 2) or not 0 <= index < shape[axis]:
            raise InteractionError(
                f"slice {index} along array axis {axis} is outside the volume (KJI size {tuple(shape)})"
            )
        region = tuple(slice(index, index + 1) if a == axis else slice(0, n) for a, n in enumerate(shape))
        mask = np.take(
            segment_io.segment_mask(self.segmentationNode, self.segmentId, self.volumeNode, region), 0, axis=axis
        )
        learner.add_slice(int(axis), int(index), mask)
        for p in self.proposals:
            if (p.axis, p.index) == (axis, index) and p.highlight:
                slice_views.hide_highlights(self.volumeNode.GetScene(), p.highlight, exact=True)
        return int(mask.sum())

    def record_view_slice(self, sliceNode) -> tuple[int, int, int]:
        """``record_drawn_slice`` for the slice a slice view shows; (axis, index, voxels)."""
        self._need_volume()
        axis, index = slice_views.view_slice(sliceNode, self.volumeNode)
        return axis, index, self.record_drawn_slice(axis, index)

    def update_proxy(self) -> list[str]:
        """Write the proxy mask into the segment (one undo state; the editor's masking and
        "Modify other segments" apply); drawn slices keep what the user painted."""
        return self._write_mask(self._need_volume().proxy())

    def show_prediction(self) -> bool:
        """Write the segmenter's prediction F(X) > 0.5 into the segment (one undo state; drawn
        slices kept). False, nothing written, while the task has not learnt yet."""
        learner = self._need_volume()
        self._check_idle()
        if learner.rounds_trained == 0:
            return False
        self._write_mask(learner.prediction() > 0.5)
        return True

    def _write_mask(self, mask: np.ndarray) -> list[str]:
        self._check_idle()
        vol, seg = self.volumeNode, self.segmentationNode
        current = segment_io.segment_mask(seg, self.segmentId, vol)
        target = np.asarray(mask, bool).copy()
        for axis, indices in self.learner.drawn().items():
            for index in indices:
                idx = tuple(index if a == axis else slice(None) for a in range(3))
                target[idx] = current[idx]
        changed = np.argwhere(target != current)
        if len(changed) == 0:
            return []
        region = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(changed.min(0), changed.max(0), strict=False))
        self.editor.save_state(seg, vol)
        return self.editor.write(seg, {1: self.segmentId}, target[region].astype(np.uint8), region, vol)

    def undo(self) -> bool:
        """Undo the last write (scripts; with the Segment Editor's node its own Undo does it)."""
        return self.editor is not None and self.editor.undo()

    # -- training on the inference thread ----------------------------------------------------
    def train(self, job=None):
        """One round (n_F steps) on the proxy mask and replayed past volumes; the task is saved
        after it. Meant for the inference worker: ``job`` gets the progress, and Stop ends the
        round after the current step (the round counts and is saved, ``report.stopped``)."""
        learner = self._need_volume()

        def progress(step, steps):
            if job is not None:
                try:
                    job.report(step / steps, f"training step {step} of {steps}")
                except Cancelled:  # Stop: should_stop ends the round cleanly after this step
                    pass

        report = learner.train_round(
            progress=progress, should_stop=(lambda: job.cancel_requested) if job is not None else None
        )
        self.last_report = report
        return report

    def submit_training(self, worker=None):
        """Queue ``train`` on the shared inference thread; returns its ``worker.Job``."""
        learner = self._need_volume()
        self._check_idle()
        if not any(learner.drawn().values()):
            raise InteractionError("record at least one drawn slice before training")
        if worker is None:
            from .logic import shared_worker

            worker = shared_worker()
        self._job = worker.submit(self.train, title="Online learning")
        return self._job

    @property
    def training(self) -> bool:
        return self._job is not None and not self._job.done

    def finish_volume(self) -> None:
        """This volume is done: it counts as learnt (F_prev of the next volume is F now)."""
        self._need_volume().finish_volume()
        self._hide_proposals()
        self.volumeNode = self.segmentationNode = self.segmentId = None
        self.proposals = []

    # -- status -------------------------------------------------------------------------------
    def status(self) -> dict:
        if self.learner is None:
            return {"open": False}
        lrn = self.learner
        out = {
            "open": True,
            "task": str(self.taskDir),
            "volumes_learnt": lrn.volumes_done,
            "rounds": lrn.rounds_trained,
            "volume": self.volumeNode.GetName() if self.is_started() else None,
            "training": self.training,
        }
        if self.is_started():
            out |= {"volume_round": lrn.round, "drawn_slices": sum(len(v) for v in lrn.drawn().values())}
        if self.last_report is not None and self.last_report.losses:
            out |= {"last_loss": self.last_report.losses[-1], "stopped": self.last_report.stopped}
        return out

    def status_text(self) -> str:
        s = self.status()
        if not s["open"]:
            return "No task open."
        text = f"Task {Path(s['task']).name}: {s['volumes_learnt']} volumes learnt, {s['rounds']} rounds trained"
        if s["volume"] is not None:
            text += f"; {s['volume']}: round {s['volume_round']}, {s['drawn_slices']} slices drawn"
        if "last_loss" in s:
            text += f"; last loss {s['last_loss']:.4f}" + (" (stopped)" if s["stopped"] else "")
        return text + ("; training..." if s["training"] else "")

    # -- internals ------------------------------------------------------------------------------
    def _need_task(self):
        if self.learner is None:
            raise InteractionError("open a task folder first")
        return self.learner

    def _need_volume(self):
        learner = self._need_task()
        if not self.is_started():
            raise InteractionError("start the task on a volume first")
        return learner

    def _check_idle(self) -> None:
        if self.training:
            raise InteractionError("online training is running; wait for it or press Stop")

    def _hide_proposals(self) -> None:
        scene = self.volumeNode.GetScene() if self.volumeNode is not None else None
        if scene is not None:
            slice_views.hide_highlights(scene, slice_views.PROPOSED_SLICE)
