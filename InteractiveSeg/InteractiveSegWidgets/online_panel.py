"""The "Online learning" section of the InteractiveSeg module panel (Slicer GUI only).

Why a separate module: the section is self-contained (its own buttons, timer, progress
bar and job) and all its decisions are in the Qt-free ``InteractiveSegSlicer.online_glue``;
keeping its wiring here keeps InteractiveSeg.py to Slicer's module template.

``OnlineLearningPanel`` is a mixin of ``InteractiveSegWidget``: it uses the widget's
``ui`` (the panel's widgets), ``logic`` (its inference ``worker``), ``_parameterNode``
and ``_dependenciesReady()``; the widget calls ``_setupOnline`` from ``setup`` and
``_closeOnline`` when the scene closes or the module is cleaned up.
"""

import ctk
import qt
import slicer
from slicer.i18n import tr as _

from InteractiveSegSlicer import slice_views
from InteractiveSegSlicer.slice_views import VIEW_OF_ORIENTATION


class OnlineLearningPanel:
    """The widget's online-learning buttons, wired to ``OnlineLearningLogic`` (``self.online``)."""

    def _setupOnline(self) -> None:
        self.online = None  # OnlineLearningLogic, made on the first Open task (it needs torch)
        self._onlineJob = None
        self.ui.onlineTaskPathLineEdit.filters = ctk.ctkPathLineEdit.Dirs
        self.ui.onlineTaskPathLineEdit.settingKey = "InteractiveSeg/OnlineTaskFolder"  # remembers recent tasks
        for button, slot in (
            (self.ui.onlineOpenButton, self.onOnlineOpen),
            (self.ui.onlineCloseButton, self._closeOnline),
            (self.ui.onlineProposeButton, self.onOnlinePropose),
            (self.ui.onlineSliceDrawnButton, self.onOnlineSliceDrawn),
            (
                self.ui.onlineUpdateProxyButton,
                lambda: self._onlineAction(_("Updating the proxy mask failed."), lambda o: o.update_proxy()),
            ),
            (self.ui.onlineTrainButton, self.onOnlineTrain),
            (
                self.ui.onlineFinishButton,
                lambda: self._onlineAction(_("Finishing the volume failed."), lambda o: o.finish_volume()),
            ),
        ):
            button.connect("clicked()", slot)
        self.ui.onlineStopButton.connect("clicked()", lambda: self._onlineJob is not None and self._onlineJob.cancel())
        self._onlineTimer = qt.QTimer()
        self._onlineTimer.setInterval(100)
        self._onlineTimer.timeout.connect(self._pollOnline)
        self._updateOnlineStatus()

    def _updateOnlineStatus(self) -> None:
        online = self.online
        self.ui.onlineStatusLabel.text = online.status_text() if online is not None else _("No task open.")
        isOpen = online is not None and online.is_open and not online.training
        for button in (self.ui.onlineProposeButton, self.ui.onlineCloseButton):
            button.enabled = isOpen
        started = isOpen and online.is_started()
        for button in (
            self.ui.onlineSliceDrawnButton,
            self.ui.onlineUpdateProxyButton,
            self.ui.onlineTrainButton,
            self.ui.onlineFinishButton,
        ):
            button.enabled = started
        self.ui.onlineOpenButton.enabled = online is None or not online.training

    def _onlineVolume(self) -> None:
        """Start (or keep) the task on the panel's volume and class segment, and point the
        Segment Editor at that segment so that Paint/Draw draw into it."""
        p = self._parameterNode
        if self.online.is_started(p.inputVolume):
            return
        from InteractiveSegSlicer.online_glue import class_segment

        p.segmentation, segmentId = class_segment(p.inputVolume, p.segmentation, p.labelValue, p.className)
        if self.online.start(p.inputVolume, p.segmentation, segmentId):
            slicer.util.showStatusMessage(
                _("Started from the task's prediction: correct it on the proposed slices."), 5000
            )
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(p.segmentation)
        editor.setSourceVolumeNode(p.inputVolume)
        editor.setCurrentSegmentID(segmentId)

    def onOnlineOpen(self) -> None:
        if not self._dependenciesReady():
            return
        with slicer.util.tryWithErrorDisplay(_("Opening the task failed; nothing was changed."), waitCursor=True):
            if self.online is None:
                from InteractiveSegSlicer.editor_writer import EditorWriter
                from InteractiveSegSlicer.online_glue import OnlineLearningLogic

                # written like a Segment Editor effect: its masking and overwrite settings, its Undo
                editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
                self.online = OnlineLearningLogic(
                    editor=EditorWriter(
                        slicer.mrmlScene, editor.mrmlSegmentEditorNode(), save_state=editor.saveStateForUndo
                    )
                )
            self.online.open(self.ui.onlineTaskPathLineEdit.currentPath)
            self.ui.onlineTaskPathLineEdit.addCurrentPathToHistory()
            self._onlineVolume()
        self._updateOnlineStatus()

    def _onlineAction(self, failure: str, action) -> None:
        with slicer.util.tryWithErrorDisplay(failure, waitCursor=True):
            action(self.online)
        self._updateOnlineStatus()

    def onOnlinePropose(self) -> None:
        def propose(online):
            self._onlineVolume()
            volume = self._parameterNode.inputVolume
            proposals = online.propose()
            for proposal in proposals:
                sliceNode = (
                    slicer.app.layoutManager().sliceWidget(VIEW_OF_ORIENTATION[proposal.orientation]).mrmlSliceNode()
                )
                slice_views.show_slice(sliceNode, volume, proposal.axis, proposal.index)
            where = ", ".join(
                _("{view} view slice {index}").format(view=VIEW_OF_ORIENTATION[q.orientation], index=q.index)
                for q in proposals
            )
            slicer.util.showStatusMessage(
                _("Draw the structure on: {where}; then Slice drawn for each view.").format(where=where), 10000
            )

        self._onlineAction(_("Proposing slices failed."), propose)

    def onOnlineSliceDrawn(self) -> None:
        def record(online):
            sliceNode = slicer.app.layoutManager().sliceWidget(self.ui.onlineViewComboBox.currentText).mrmlSliceNode()
            axis, index, voxels = online.record_view_slice(sliceNode)
            slicer.util.showStatusMessage(
                _("Slice {index} (array axis {axis}) recorded: {voxels} voxels.").format(
                    index=index, axis=axis, voxels=voxels
                ),
                5000,
            )

        self._onlineAction(_("Recording the slice failed."), record)

    def onOnlineTrain(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Training could not start."), waitCursor=False):
            self._onlineJob = self.online.submit_training(self.logic.worker)
            self.ui.onlineProgressBar.setRange(0, 100)
            self.ui.onlineProgressBar.value = 0
            self.ui.onlineProgressBar.visible = self.ui.onlineStopButton.visible = True
            self._onlineTimer.start()
        self._updateOnlineStatus()

    def _pollOnline(self) -> None:
        job = self._onlineJob
        if job is not None and not job.done:
            self.ui.onlineProgressBar.value = int(100 * job.progress)
            self.ui.onlineProgressBar.format = job.message or "%p%"
            return
        self._onlineTimer.stop()
        self.ui.onlineProgressBar.visible = self.ui.onlineStopButton.visible = False
        if job is not None and job.error is not None and not job.cancelled:
            slicer.util.errorDisplay(_("Training failed: {error}").format(error=job.error))
        elif job is not None and job.cancel_requested:
            slicer.util.showStatusMessage(_("Training stopped; the steps done are saved in the task."), 5000)
        self._updateOnlineStatus()

    def _closeOnline(self) -> None:
        """Release the task (a running round is stopped first; everything is saved)."""
        if self.online is None:
            return
        if self.online.training:
            self._onlineJob.cancel()
            try:
                self._onlineJob.wait(120)
            except Exception:  # cancelled before it started, or failed: nothing more to save
                pass
        self.online.close()
        self.online = None  # a new scene brings a new segment editor node
        self._updateOnlineStatus()
