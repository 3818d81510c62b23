"""The "InteractiveSeg" Segment Editor effect: hints on any slice view, results live.

Thin on purpose (it can only run inside Slicer): mouse events become world points, and
``InteractiveSegSlicer`` (Qt-free, tested on real MRML classes) turns them into hints,
runs the engine on the shared inference thread and writes the changed extent through
the Segment Editor's logic, so masking, "modify other segments" and Ctrl+Z work as for
Slicer's own effects.

Mouse and keys (in a slice view, effect active):
  left click              positive click (inside the structure) on the selected segment
  Ctrl+left click         negative click (outside: removes)
  left drag (Click mode)  moves the click; the result follows
  left drag (Scribble)    scribble; (Box) box from corner to corner; (Extreme) 4 clicks
  n                       next slice: jump to the slice the engine trusts least (3D engines)
  Escape                  drop the gesture in progress, cancel a running job
  Ctrl+Z / Ctrl+Y         the Segment Editor's undo / redo (one state per hint)
"""

import os
import time

import ctk
import qt
import slicer
import vtk
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

from InteractiveSegSlicer import engine_info, slice_views
from InteractiveSegSlicer.editor_writer import EditorWriter
from InteractiveSegSlicer.logic import SegmentationLogic

KIND_LABELS = {"click": "Click", "scribble": "Scribble", "box": "Box", "extreme": "Extreme points"}
POSITIVE_COLOR, NEGATIVE_COLOR = (0.2, 0.85, 0.3), (0.95, 0.25, 0.2)
DRAG_PIXELS = 3  # a press that moves more than this is a drag


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    """Interactive segmentation by clicks, scribbles, boxes and extreme points."""

    def __init__(self, scriptedEffect):
        scriptedEffect.name = "InteractiveSeg"
        scriptedEffect.perSegment = True  # hints go to the selected segment
        scriptedEffect.requireSegments = True
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.logic = None
        self._gesture = None  # (kind, viewWidget, [ras points], [xy points], positive)
        self._extreme = []
        self._job = None
        self._pending = None
        self._lineActors = {}
        self._timer = qt.QTimer()
        self._timer.setInterval(30)
        self._timer.timeout.connect(self._poll)

    def clone(self):
        import qSlicerSegmentationsEditorEffectsPythonQt as effects

        clonedEffect = effects.qSlicerSegmentEditorScriptedEffect(None)
        clonedEffect.setPythonSource(__file__.replace("\\", "/"))
        return clonedEffect

    def icon(self):
        path = os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Resources", "Icons", "InteractiveSeg.png"
        )
        return qt.QIcon(path) if os.path.exists(path) else qt.QIcon()

    def helpText(self):
        return (
            "<html>Deep-learning interactive segmentation of the selected segment.<br>"
            "<b>Left click</b>: inside (add). <b>Ctrl+left click</b>: outside (remove). "
            "<b>Drag</b> a click to move it; Scribble/Box/Extreme points modes from the buttons. "
            "<b>n</b>: next slice to check. <b>Esc</b>: cancel. Ctrl+Z undoes the last hint.<br>"
            "Masking and 'Modify other segments' settings apply.</html>"
        )

    # -- options panel -----------------------------------------------------------------------
    def setupOptionsFrame(self):
        self.engineCombo = qt.QComboBox()
        self.engineCombo.toolTip = "Engine that turns hints into segments"
        self.scriptedEffect.addLabeledOptionsWidget("Engine:", self.engineCombo)
        self.modelPath = ctk.ctkPathLineEdit()
        self.modelPath.filters = ctk.ctkPathLineEdit.Files | ctk.ctkPathLineEdit.Dirs
        self.modelPath.toolTip = (
            "finetune engines: your model (checkpoint, TorchScript or MONAI bundle folder); empty = the shipped one"
        )
        self.scriptedEffect.addLabeledOptionsWidget("Model:", self.modelPath)
        self.modelPath.connect("currentPathChanged(QString)", lambda path: self._setParameter("Model", path))
        self.deviceCombo = qt.QComboBox()
        self.deviceCombo.addItems(["Automatic", "cpu", "cuda"])
        self.deviceCombo.toolTip = "Automatic: CUDA when available, CPU otherwise"
        self.scriptedEffect.addLabeledOptionsWidget("Device:", self.deviceCombo)
        self.modeButtons = {}
        modeRow = qt.QHBoxLayout()
        group = qt.QButtonGroup(self.engineCombo)
        for kind, text in KIND_LABELS.items():
            button = qt.QToolButton()
            button.text, button.checkable = text, True
            button.connect("clicked()", lambda k=kind: self._setParameter("Mode", k))
            group.addButton(button)
            modeRow.addWidget(button)
            self.modeButtons[kind] = button
        self.scriptedEffect.addLabeledOptionsWidget("Hint:", modeRow)
        self.negativeCheck = qt.QCheckBox("Negative (remove); Ctrl+click also removes")
        self.scriptedEffect.addOptionsWidget(self.negativeCheck)
        row = qt.QHBoxLayout()
        for text, slot, tip in (
            (
                "Propagate",
                self.onPropagate,
                "3D from the selected segment's largest slice in this view's orientation (vmn)",
            ),
            ("Next slice", self.onNextSlice, "Jump to the slice the engine trusts least (n)"),
            (
                "Automatic",
                self.onAutomatic,
                "Multi-class engines: every class on the slice under the mouse's last view",
            ),
            ("Model card", self.onModelCard, "What the model was trained on and how well it does"),
        ):
            button = qt.QPushButton(text)
            button.toolTip = tip
            button.connect("clicked()", slot)
            row.addWidget(button)
        self.scriptedEffect.addOptionsWidget(row)
        self.nextSliceLabel = qt.QLabel("")
        self.scriptedEffect.addOptionsWidget(self.nextSliceLabel)
        progressRow = qt.QHBoxLayout()
        self.progressBar = qt.QProgressBar()
        self.progressBar.visible = False
        self.cancelButton = qt.QPushButton("Cancel")
        self.cancelButton.visible = False
        self.cancelButton.connect("clicked()", self.onCancel)
        progressRow.addWidget(self.progressBar)
        progressRow.addWidget(self.cancelButton)
        self.scriptedEffect.addOptionsWidget(progressRow)
        self.engineCombo.connect(
            "currentIndexChanged(int)", lambda _: self._setParameter("Engine", self.engineCombo.currentText)
        )
        self.deviceCombo.connect(
            "currentIndexChanged(int)", lambda _: self._setParameter("Device", self.deviceCombo.currentText)
        )
        self.negativeCheck.connect("toggled(bool)", lambda on: self._setParameter("Negative", int(on)))

    def createCursor(self, widget):
        return slicer.util.mainWindow().cursor

    def setMRMLDefaults(self):
        self.scriptedEffect.setParameterDefault("Engine", "click")
        self.scriptedEffect.setParameterDefault("Device", "Automatic")
        self.scriptedEffect.setParameterDefault("Mode", "click")
        self.scriptedEffect.setParameterDefault("Negative", 0)
        self.scriptedEffect.setParameterDefault("Model", "")

    def _setParameter(self, name, value):
        self.scriptedEffect.setParameter(name, value)

    def updateGUIFromMRML(self):
        if self.engineCombo.count == 0:
            self.engineCombo.addItems(SegmentationLogic.engineNames())
        for widget, value in (
            (self.engineCombo, self.scriptedEffect.parameter("Engine")),
            (self.deviceCombo, self.scriptedEffect.parameter("Device")),
        ):
            was = widget.blockSignals(True)
            widget.currentText = value
            widget.blockSignals(was)
        mode = self.scriptedEffect.parameter("Mode")
        for kind, button in self.modeButtons.items():
            button.checked = kind == mode
        was = self.modelPath.blockSignals(True)
        self.modelPath.currentPath = self.scriptedEffect.parameter("Model")
        self.modelPath.blockSignals(was)
        was = self.negativeCheck.blockSignals(True)
        self.negativeCheck.checked = bool(self.scriptedEffect.integerParameter("Negative"))
        self.negativeCheck.blockSignals(was)

    def activate(self):
        self._extreme = []

    def deactivate(self):
        self._endGesture()

    # -- helpers ----------------------------------------------------------------------------
    def _logic(self):
        """One logic per effect, writing through the Segment Editor's node and undo stack."""
        editorNode = self.scriptedEffect.parameterSetNode()
        if self.logic is None or self.logic.store.editor.node is not editorNode:  # first use, or a new scene
            editor = EditorWriter(slicer.mrmlScene, editorNode, save_state=self.scriptedEffect.saveStateForUndo)
            self.logic = SegmentationLogic(editor)
        device = (
            self.scriptedEffect.parameter("Device") if self.scriptedEffect.parameterDefined("Device") else "Automatic"
        )
        self.logic.device = None if device == "Automatic" else device
        return self.logic

    def _engineKwargs(self, engine):
        """The chosen model file, for engines that adapt a model of the user's (finetune)."""
        path = self.scriptedEffect.parameter("Model") if self.scriptedEffect.parameterDefined("Model") else ""
        return {"model": path} if path and engine.startswith("finetune") else {}

    def _nodes(self):
        p = self.scriptedEffect.parameterSetNode()
        return p.GetSourceVolumeNode(), p.GetSegmentationNode(), p.GetSelectedSegmentID()

    def _ready(self):
        """Dependencies installed (asks the user on first use) and nothing else running."""
        import InteractiveSeg

        if self._job is not None and not self._job.done:
            slicer.util.showStatusMessage("InteractiveSeg is still working on the previous hint (Esc cancels).", 2000)
            return False
        return InteractiveSeg.ensureDependencies()

    def _run(self, hints, engine=None, labels=None, group=False):
        """Prepare (main thread), compute on the inference thread, commit when done (_poll)."""
        volume, segmentation, _ = self._nodes()
        engine = engine or self.scriptedEffect.parameter("Engine")
        logic = self._logic()
        self._pending = logic.prepare_trusting(
            self._askTrust, volume, hints, engine, segmentation, labels, group, **self._engineKwargs(engine)
        )
        self._job = logic.worker.submit(logic.store.compute, self._pending, title=f"InteractiveSeg {engine}")
        self._jobStart = time.monotonic()
        self._timer.start()

    @staticmethod
    def _askTrust(reason):
        """A model that would run code when it loads: the user decides (default no)."""
        return slicer.util.confirmYesNoDisplay(
            f"{reason}.\n\nLoad it and let it run that code? Say yes only for a model from an author you trust.",
            windowTitle="InteractiveSeg: the model runs code",
        )

    def _poll(self):
        """Progress while the job runs; on the main thread, write its result when done."""
        job = self._job
        if job is None:
            self._timer.stop()
            return
        # a click is done in well under a second: show progress and Cancel only for long jobs
        self.progressBar.visible = self.cancelButton.visible = not job.done and time.monotonic() - self._jobStart > 0.5
        self.progressBar.setRange(0, 0 if job.progress == 0 else 100)  # busy bar until the job reports
        self.progressBar.value = int(100 * job.progress)
        self.progressBar.format = job.message or "%p%"
        if not job.done:
            return
        self._timer.stop()
        self.progressBar.visible = self.cancelButton.visible = False
        with slicer.util.tryWithErrorDisplay("InteractiveSeg: writing the result failed."):
            if job.cancel_requested:
                self._logic().store.discard(self._pending)
            else:
                self._logic().store.commit(self._pending)
        if job.cancel_requested:
            slicer.util.showStatusMessage("Cancelled; the segmentation is unchanged.", 3000)
        elif job.error is not None:
            slicer.util.errorDisplay(f"InteractiveSeg: {job.error}")

    def _showHint(self, hint, volume):
        """A locked markup per placed hint (green inside, red outside), in every view."""
        from InteractiveSegSlicer import geometry

        name = "InteractiveSeg hints +" if hint.positive else "InteractiveSeg hints -"
        node = slicer.mrmlScene.GetFirstNodeByName(name)
        if node is None:
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
            node.CreateDefaultDisplayNodes()
            node.SetLocked(True)
            node.SetMarkupLabelFormat("")
            color = POSITIVE_COLOR if hint.positive else NEGATIVE_COLOR
            node.GetDisplayNode().SetSelectedColor(*color)
            node.GetDisplayNode().SetColor(*color)
            node.GetDisplayNode().SetGlyphScale(1.5)
        points = hint.points if len(hint.points) <= 8 else hint.points[:: max(1, len(hint.points) // 8)]
        for ijk in points:
            node.AddControlPoint(vtk.vtkVector3d(*geometry.ijk_to_world(volume, ijk)))

    def _strokeActor(self, viewWidget):
        """The in-progress stroke/box drawn in the view (2D actor, removed on release)."""
        if viewWidget not in self._lineActors:
            polyData = vtk.vtkPolyData()
            mapper = vtk.vtkPolyDataMapper2D()
            mapper.SetInputData(polyData)
            actor = vtk.vtkActor2D()
            actor.SetMapper(mapper)
            actor.GetProperty().SetLineWidth(2)
            self.scriptedEffect.addActor2D(viewWidget, actor)
            self._lineActors[viewWidget] = (actor, polyData)
        return self._lineActors[viewWidget]

    def _drawGesture(self):
        kind, viewWidget, _, xys, positive = self._gesture
        actor, polyData = self._strokeActor(viewWidget)
        if kind == "box" and len(xys) > 1:
            (x0, y0), (x1, y1) = xys[0], xys[-1]
            xys = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
        points, lines = vtk.vtkPoints(), vtk.vtkCellArray()
        lines.InsertNextCell(len(xys))
        for n, (x, y) in enumerate(xys):
            points.InsertNextPoint(x, y, 0)
            lines.InsertCellPoint(n)
        polyData.SetPoints(points)
        polyData.SetLines(lines)
        actor.GetProperty().SetColor(*(POSITIVE_COLOR if positive else NEGATIVE_COLOR))
        actor.VisibilityOn()
        self.scriptedEffect.forceRender(viewWidget)

    def _endGesture(self):
        for viewWidget, (actor, _) in self._lineActors.items():
            actor.VisibilityOff()
            self.scriptedEffect.forceRender(viewWidget)
        self._gesture = None

    # -- interaction ------------------------------------------------------------------------
    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):
        if viewWidget.className() != "qMRMLSliceWidget":
            return False
        if eventId == vtk.vtkCommand.KeyPressEvent:
            key = callerInteractor.GetKeySym()
            if key == "Escape":
                self._extreme = []
                self._endGesture()
                self.onCancel()
                return True
            if key == "n" and not callerInteractor.GetControlKey():
                self.onNextSlice()
                return True
            return False
        xy = callerInteractor.GetEventPosition()
        if eventId == vtk.vtkCommand.LeftButtonPressEvent:
            if not self._ready():
                return True
            negative = bool(callerInteractor.GetControlKey()) or bool(self.scriptedEffect.integerParameter("Negative"))
            self._gesture = (
                self.scriptedEffect.parameter("Mode"),
                viewWidget,
                [self.xyToRas(xy, viewWidget)],
                [xy],
                not negative,
            )
            if self._gesture[0] == "click":
                self._finishGesture()  # a click acts on press: the result shows while the button is down
                self._gesture = ("drag", viewWidget, [], [xy], not negative)
            return True
        if eventId == vtk.vtkCommand.MouseMoveEvent and self._gesture is not None:
            kind, gestureView, ras, xys, _ = self._gesture
            if gestureView is not viewWidget:
                return False
            if kind == "drag":
                if max(abs(xy[0] - xys[0][0]), abs(xy[1] - xys[0][1])) > DRAG_PIXELS and (
                    self._job is None or self._job.done
                ):
                    volume, segmentation, _ = self._nodes()
                    with slicer.util.tryWithErrorDisplay("InteractiveSeg: moving the click failed."):
                        self._logic().move_last_click(volume, segmentation, self.xyToRas(xy, viewWidget))
                return True
            ras.append(self.xyToRas(xy, viewWidget))
            xys.append(xy)
            self._drawGesture()
            return True
        if eventId == vtk.vtkCommand.LeftButtonReleaseEvent and self._gesture is not None:
            if self._gesture[0] != "drag":
                self._finishGesture()
            self._endGesture()
            return True
        return False

    def _finishGesture(self):
        kind, viewWidget, ras, _, positive = self._gesture
        volume, segmentation, segmentId = self._nodes()
        normal = [viewWidget.mrmlSliceNode().GetSliceToRAS().GetElement(r, 2) for r in range(3)]
        with slicer.util.tryWithErrorDisplay("InteractiveSeg: the hint was not applied (nothing changed)."):
            engine = self.scriptedEffect.parameter("Engine")
            labels, label = self._logic().segment_class(segmentation, segmentId, engine, **self._engineKwargs(engine))
            if kind == "extreme":
                self._extreme.append(ras[0])
                if len(self._extreme) < 4:
                    slicer.util.showStatusMessage(f"Extreme point {len(self._extreme)} of 4 placed.", 2000)
                    return
                ras, self._extreme = self._extreme, []
            hint = self._logic().hint_from_view(volume, kind, ras, normal, label, positive)
            self._run([hint], engine, labels)
            self._showHint(hint, volume)
            slice_views.hide_highlights(slicer.mrmlScene)  # the suggested slice is acted upon

    # -- buttons ----------------------------------------------------------------------------
    def onCancel(self):
        if self._job is not None and not self._job.done:
            self._job.cancel()
            slicer.util.showStatusMessage("Cancelling after the current step...", 3000)

    def onNextSlice(self):
        volume, _, _ = self._nodes()
        found = self._logic().suggest_slice(volume)
        if found is None:
            slice_views.hide_highlights(slicer.mrmlScene)
            self.nextSliceLabel.text = "This engine does not rate slices yet (use vmn after a first hint)."
            return
        suggestion, ras = found
        slicer.modules.markups.logic().JumpSlicesToLocation(*ras, True)
        slice_views.highlight_slice(volume, suggestion.axis, suggestion.index)  # where that slice is, in every view
        axis_name = {0: "axial (K)", 1: "coronal (J)", 2: "sagittal (I)"}.get(suggestion.axis, str(suggestion.axis))
        self.nextSliceLabel.text = (
            f"<b>Next slice {suggestion.index}</b> ({axis_name}): predicted IoU {suggestion.score:.2f}"
        )
        slicer.util.showStatusMessage(
            f"InteractiveSeg: check slice {suggestion.index}, predicted IoU {suggestion.score:.2f}", 5000
        )

    def onPropagate(self):
        if not self._ready():
            return
        volume, segmentation, segmentId = self._nodes()
        with slicer.util.tryWithErrorDisplay("InteractiveSeg: propagation failed (nothing changed)."):
            engine = self.scriptedEffect.parameter("Engine")
            engine = engine if engine in ("vmn", "vmn-mem0", "vmn-growcut") else "vmn"
            labels, label = self._logic().segment_class(segmentation, segmentId, engine)
            hint = self._logic().propagation_hint(volume, segmentation, label, axis=0)
            self._run([hint], engine, labels)
            slice_views.hide_highlights(slicer.mrmlScene)

    def onAutomatic(self):
        if not self._ready():
            return
        volume, segmentation, _ = self._nodes()
        with slicer.util.tryWithErrorDisplay("InteractiveSeg: automatic segmentation failed."):
            sliceNode = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceNode()
            centre = [sliceNode.GetSliceToRAS().GetElement(r, 3) for r in range(3)]
            self._logic().automatic(volume, centre, "Axial", self.scriptedEffect.parameter("Engine"), segmentation)

    def onModelCard(self):
        engine = self.scriptedEffect.parameter("Engine")
        text = engine_info.model_card(engine)
        box = qt.QMessageBox(slicer.util.mainWindow())
        box.setWindowTitle(f"Model card: {engine} ({engine_info.device_summary()})")
        box.setTextFormat(qt.Qt.MarkdownText)
        box.setText(text)
        box.exec_()
