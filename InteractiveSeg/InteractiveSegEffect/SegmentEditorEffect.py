"""The "InteractiveSeg" Segment Editor effect: hints on any slice view, results live.

Wiring only (it can only run inside Slicer): mouse and key events become world points and
calls of the Qt-free ``InteractiveSegSlicer`` (tested on real MRML classes), which decides
everything: ``GestureTracker`` what a gesture means, ``InteractiveController`` the hint, the
engine job on the shared inference thread and the write through the Segment Editor's logic,
so masking, "modify other segments" and Ctrl+Z work as for Slicer's own effects.

Mouse and keys (in a slice view, effect active):
  left click              positive click (inside the structure) on the selected segment
  Ctrl+left click         negative click (outside: removes); so does every hint with "Negative"
  left drag (Click mode)  moves the click; the result follows
  left drag (Scribble)    scribble; (Box) box from corner to corner; (Extreme) 4 clicks
  n                       next slice: jump to the slice the engine trusts least (3D engines)
  Escape                  drop the gesture in progress and the extreme points, cancel a running job
  Ctrl+Z / Ctrl+Y         the Segment Editor's undo / redo (one state per hint)
Jobs over 0.5 s show a progress bar with Cancel; a model that would run code when it loads
is only loaded once the user says yes; "Model card" and "Device" as in the module panel.
"""

import os

import ctk
import qt
import slicer
import vtk
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

from InteractiveSegSlicer import hint_marks
from InteractiveSegSlicer.controller import InteractiveController
from InteractiveSegSlicer.editor_writer import EditorWriter
from InteractiveSegSlicer.gestures import GestureTracker
from InteractiveSegSlicer.logic import SegmentationLogic
from InteractiveSegWidgets import JobPoller, askTrust, guarded, showMessage, showModelCard
from InteractiveSegWidgets.dependency_install import ensureDependencies

KIND_LABELS = {"click": "Click", "scribble": "Scribble", "box": "Box", "extreme": "Extreme points"}
MOUSE_EVENTS = (
    vtk.vtkCommand.LeftButtonPressEvent,
    vtk.vtkCommand.MouseMoveEvent,
    vtk.vtkCommand.LeftButtonReleaseEvent,
)


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    """Interactive segmentation by clicks, scribbles, boxes and extreme points."""

    def __init__(self, scriptedEffect):
        scriptedEffect.name = "InteractiveSeg"
        scriptedEffect.perSegment = True  # hints go to the selected segment
        scriptedEffect.requireSegments = True
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.logic = None
        self._sessions = {}  # (volume ID, segmentation ID) -> (controller, tracker)
        self._gesture = None  # (controller, tracker, view) while the button is down

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
            ("Propagate", self.onPropagate, "3D from the selected segment's largest axial slice (vmn)"),
            ("Next slice", self.onNextSlice, "Jump to the slice the engine trusts least (n)"),
            ("Automatic", self.onAutomatic, "Multi-class engines: every class on the Red view's slice"),
            ("Model card", self.onModelCard, "What the model was trained on and how well it does"),
        ):
            button = qt.QPushButton(text)
            button.toolTip = tip
            button.connect("clicked()", slot)
            row.addWidget(button)
        self.scriptedEffect.addOptionsWidget(row)
        self.messageLabel = qt.QLabel("")
        self.messageLabel.wordWrap = True
        self.scriptedEffect.addOptionsWidget(self.messageLabel)
        progressRow = qt.QHBoxLayout()
        self.progressBar = qt.QProgressBar()
        self.progressBar.visible = False
        self.cancelButton = qt.QPushButton("Cancel")
        self.cancelButton.visible = False
        self.cancelButton.connect("clicked()", self.onCancel)
        progressRow.addWidget(self.progressBar)
        progressRow.addWidget(self.cancelButton)
        self.scriptedEffect.addOptionsWidget(progressRow)
        self.poller = JobPoller(self.progressBar, self.cancelButton, lambda _result: None, self.messageLabel)
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

    def deactivate(self):
        self._gesture = None
        hint_marks.show_stroke(slicer.mrmlScene, [])

    # -- the controller of the editor's volume and segmentation --------------------------------
    def _session(self, selectSegment=True):
        """(controller, tracker) of the editor's source volume and segmentation, set to the
        panel's engine, model, device, mode and Negative switch (and selected segment)."""
        p = self.scriptedEffect.parameterSetNode()
        if self.logic is None or self.logic.store.editor.node is not p:  # first use, or a new scene
            editor = EditorWriter(slicer.mrmlScene, p, save_state=self.scriptedEffect.saveStateForUndo)
            self.logic, self._sessions = SegmentationLogic(editor), {}
        volume, segmentation = p.GetSourceVolumeNode(), p.GetSegmentationNode()
        key = (volume.GetID(), segmentation.GetID())
        if key not in self._sessions:
            controller = InteractiveController(volume, segmentation, logic=self.logic)
            controller.ask_trust = askTrust
            self._sessions[key] = (controller, GestureTracker(controller))
        controller, tracker = self._sessions[key]
        parameter = self.scriptedEffect.parameter
        controller.configure(parameter("Engine"), parameter("Model"), parameter("Device"))
        if selectSegment:
            controller.select_segment(p.GetSelectedSegmentID())
        tracker.set_mode(parameter("Mode"))
        tracker.negative = bool(self.scriptedEffect.integerParameter("Negative"))
        return controller, tracker

    def _start(self, submit, selectSegment=True):
        """A button's job: ``submit(controller)`` returns the operation the poller writes."""
        if not ensureDependencies():
            return
        started = guarded(lambda: self._submitWith(submit, selectSegment), self.messageLabel)
        if started is not None:
            self.poller.start(*started)

    def _submitWith(self, submit, selectSegment):
        controller, _ = self._session(selectSegment)
        return controller, submit(controller)

    # -- interaction ------------------------------------------------------------------------
    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):
        if viewWidget.className() != "qMRMLSliceWidget":
            return False
        if eventId == vtk.vtkCommand.KeyPressEvent:
            key = callerInteractor.GetKeySym()
            if key == "Escape":
                self.onCancel()
                return True
            if key == "n" and not callerInteractor.GetControlKey():
                self.onNextSlice()
                return True
            return False
        if eventId not in MOUSE_EVENTS:
            return False
        xy = callerInteractor.GetEventPosition()
        if eventId == vtk.vtkCommand.LeftButtonPressEvent:
            if ensureDependencies():
                ctrl = bool(callerInteractor.GetControlKey())
                self._act(guarded(lambda: self._press(xy, viewWidget, ctrl), self.messageLabel))
            return True
        if self._gesture is None or self._gesture[2] is not viewWidget:
            return False
        controller, tracker, _ = self._gesture
        ras = self.xyToRas(xy, viewWidget)
        if eventId == vtk.vtkCommand.MouseMoveEvent:
            action = guarded(lambda: tracker.move(ras, xy), self.messageLabel)
        else:
            self._gesture = None
            action = guarded(lambda: tracker.release(ras, xy), self.messageLabel)
        self._drawStroke(tracker, viewWidget)
        if action is not None:
            self._act((controller, action))
        return True

    def _press(self, xy, viewWidget, ctrl):
        controller, tracker = self._session()
        sliceToRAS = viewWidget.mrmlSliceNode().GetSliceToRAS()
        normal = [sliceToRAS.GetElement(r, 2) for r in range(3)]
        action = tracker.press(self.xyToRas(xy, viewWidget), xy, normal, ctrl)
        self._gesture = (controller, tracker, viewWidget)
        self._drawStroke(tracker, viewWidget)
        return controller, action

    def _act(self, acted):
        """What the tracker said: submit the hint (the poller writes it), move the click, show the message."""
        if acted is None:
            return
        controller, action = acted
        if action.message:
            showMessage(action.message, self.messageLabel)
        if action.hint is not None:
            op = guarded(lambda: controller.submit_gesture(action.hint, action.verb), self.messageLabel)
            if op is not None:
                self.poller.start(controller, op)
        elif action.move_to is not None:  # while the click computes, finish applies the move
            guarded(lambda: controller.move_click(action.move_to), self.messageLabel)

    def _drawStroke(self, tracker, viewWidget):
        """The scribble or box in progress, in every view (hidden once released)."""
        stroke = tracker.stroke
        points = []
        if stroke is not None and stroke.kind in ("scribble", "box"):
            sliceToRAS = slicer.util.arrayFromVTKMatrix(viewWidget.mrmlSliceNode().GetSliceToRAS())
            points = hint_marks.outline(stroke.kind, tracker.points, sliceToRAS)
        hint_marks.show_stroke(slicer.mrmlScene, points, stroke is None or stroke.positive)

    # -- buttons ----------------------------------------------------------------------------
    def onCancel(self):
        cancelled = [tracker.cancel() for _, tracker in self._sessions.values()]
        self._gesture = None
        hint_marks.show_stroke(slicer.mrmlScene, [])
        if any(cancelled):
            showMessage("cancelled (a running job stops after its current step)", self.messageLabel)

    def onNextSlice(self):
        result = guarded(lambda: self._session(selectSegment=False)[0].highlight_next_slice(), self.messageLabel)
        if result is None:
            return
        if result.ras is not None:
            slicer.modules.markups.logic().JumpSlicesToLocation(*result.ras, True)
        showMessage(result.message, self.messageLabel)

    def onPropagate(self):
        self._start(lambda controller: controller.submit_propagation("Axial"))

    def onAutomatic(self):
        sliceToRAS = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceNode().GetSliceToRAS()
        centre = [sliceToRAS.GetElement(r, 3) for r in range(3)]
        self._start(lambda c: c.submit(c.automatic_hint(centre, "Axial"), "automatic"), selectSegment=False)

    def onModelCard(self):
        showModelCard(self.scriptedEffect.parameter("Engine"))
