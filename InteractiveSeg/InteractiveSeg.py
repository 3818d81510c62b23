"""InteractiveSeg: interactive multi-class segmentation of 3D images (3D Slicer scripted module).

Thin on purpose: the widget reads the user's choices; the Logic keeps one session per
volume and leaves all MRML work to ``InteractiveSegSlicer`` (Qt-free, tested with
slicer-core: ``geometry``, ``segment_io``, ``session_store``...); self-contained panel
sections (online learning, installing dependencies) are in ``InteractiveSegWidgets``; the
engines live in ``InteractiveSegLib`` (pure Python).
"""

import importlib.util
import os
import sys
from typing import Annotated

import slicer
import vtk
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


def _addLibraryToPath():
    """Make ``InteractiveSegLib`` importable when Slicer runs this module from a source tree.

    In the built extension the library is installed beside this file
    (qt-scripted-modules/InteractiveSegLib), a folder Slicer already puts on sys.path.
    From a source checkout (this folder added under "Additional module paths") Slicer
    only adds this folder, so add its parent, which holds the sibling InteractiveSegLib/.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    for root in (here, os.path.dirname(here)):
        if os.path.isfile(os.path.join(root, "InteractiveSegLib", "__init__.py")):
            if root not in sys.path:
                sys.path.append(root)
            return


_addLibraryToPath()

# needs the path set above; no torch
from InteractiveSegSlicer import engine_info  # noqa: E402
from InteractiveSegSlicer.controller import InteractiveController  # noqa: E402
from InteractiveSegSlicer.hint_marks import NEGATIVE_COLOR, POSITIVE_COLOR  # noqa: E402
from InteractiveSegSlicer.logic import SegmentationLogic, register_slicer_engines  # noqa: E402
from InteractiveSegSlicer.slice_views import VIEW_OF_ORIENTATION  # noqa: E402
from InteractiveSegWidgets import JobPoller, askTrust, guarded, showMessage, showModelCard  # noqa: E402
from InteractiveSegWidgets.dependency_install import REQUIREMENTS, ensureDependencies  # noqa: E402
from InteractiveSegWidgets.online_panel import OnlineLearningPanel  # noqa: E402

ORIENTATIONS = ["Axial", "Coronal", "Sagittal"]


class InteractiveSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("InteractiveSeg")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = [
            "InteractiveSeg developers (https://github.com/interactiveseg/SlicerInteractiveSeg)"
        ]
        self.parent.helpText = _("""
Interactive segmentation of CT and MRI volumes: place positive (inside) and negative
(outside) clicks on any slice, choose the class and the engine, and press Apply; each
Apply refines the class on the clicked slice and is undoable. Results are ordinary
segments, so the Segment Editor, undo and saving work as usual.
In the Segment Editor, the "InteractiveSeg" effect takes hints directly in any slice view:
left click inside, Ctrl+left click outside, drag a click to move it, scribble, box or
extreme points; "n" jumps to the slice to check next; Ctrl+Z undoes the last hint; the
editor's masking and overwrite settings apply.
"Online learning" teaches a segmenter a new structure from the slices you paint, volume
after volume; the task is kept in a folder on this computer.
Scripted use: <code>InteractiveSegLogic().segment(volumeNode, hints, engine="click")</code>,
<code>.propagate(volumeNode, segmentationNode, label, engine="vmn")</code>.
See <a href="https://github.com/interactiveseg/SlicerInteractiveSeg">the documentation</a>.
""")
        self.parent.acknowledgementText = _("""
The engines implement or build on: Akkus Z, Xu Z, Xu D, Erickson BJ, "Interactive segmentation of
medical images through fully convolutional neural networks"; the Sequential Interaction Memory (SIM)
multi-class interactive framework that feeds the ordered user corrections to the network;
Sambaturu B, Gupta A, Jawahar CV, Arora C, "Efficient and generic interactive segmentation framework
to correct mispredictions during clinical evaluation of medical images" (MICCAI 2021);
Zhou T, Li L, Bredell G, Li J, Unkelbach J, Konukoglu E, "Volumetric memory network for interactive
medical image segmentation", Medical Image Analysis (doi:10.1016/j.media.2022.102599);
Tian M, Chen X, Gao Y, "A dynamic interactive learning framework for automated 3D medical image
segmentation". The "growcut" baseline is Slicer's Grow from seeds.
""")
        slicer.app.connect("startupCompleted()", registerEditorEffect)


def registerEditorEffect() -> None:
    """Add the "InteractiveSeg" effect to the Segment Editor (Slicer's scripted-effect registration)."""
    import qSlicerSegmentationsEditorEffectsPythonQt as effects

    effect = effects.qSlicerSegmentEditorScriptedEffect(None)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "InteractiveSegEffect", "SegmentEditorEffect.py")
    effect.setPythonSource(path.replace("\\", "/"))
    effect.self().register()


@parameterNodeWrapper
class InteractiveSegParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    engine: str = "click"
    className: str = "Segment_1"
    labelValue: Annotated[int, WithinRange(1, 255)] = 1
    sliceOrientation: Annotated[str, Choice(ORIENTATIONS)] = "Axial"
    positivePoints: vtkMRMLMarkupsFiducialNode
    negativePoints: vtkMRMLMarkupsFiducialNode


class InteractiveSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin, OnlineLearningPanel):
    """The module panel: wiring over an ``InteractiveController`` (InteractiveSegSlicer, where
    every decision is made); its "Online learning" section is ``OnlineLearningPanel``."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.controller = None  # of the panel's volume (made on first use)
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/InteractiveSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = InteractiveSegLogic()

        # engine names are only known at run time (registry + entry points): filled here, synced by hand
        for name in self.logic.engineNames():
            self.ui.engineComboBox.addItem(name)
        self.ui.engineComboBox.currentTextChanged.connect(self.onEngineChanged)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        interactionNode = slicer.app.applicationLogic().GetInteractionNode()
        self.addObserver(interactionNode, interactionNode.InteractionModeChangedEvent, self.onInteractionModeChanged)

        self.ui.placePositiveButton.connect("toggled(bool)", lambda on: self.onPlace(True, on))
        self.ui.placeNegativeButton.connect("toggled(bool)", lambda on: self.onPlace(False, on))
        self.ui.clearClicksButton.connect("clicked()", self.onClearClicks)
        self.ui.applyButton.connect("clicked()", self.onApplyButton)
        self.ui.automaticButton.connect("clicked()", self.onAutomaticButton)
        self.ui.suggestSliceButton.connect("clicked()", self.onSuggestSlice)
        self.ui.resetAdaptationButton.connect(
            "clicked()", lambda: self.logic.reset_adaptation(self._parameterNode.inputVolume)
        )
        self.ui.modelCardButton.connect("clicked()", lambda: showModelCard(self._parameterNode.engine))
        self.ui.deviceComboBox.currentTextChanged.connect(self.onDeviceChanged)
        self.ui.propagateButton.connect("clicked()", self.onPropagate)
        self.ui.cancelButton.connect("clicked()", lambda: self.controller is not None and self.controller.cancel())
        self.poller = JobPoller(self.ui.progressBar, self.ui.cancelButton, self._jobDone)
        self.ui.undoButton.connect("clicked()", lambda: self.onUndoRedo(redo=False))
        self.ui.redoButton.connect("clicked()", lambda: self.onUndoRedo(redo=True))
        self._setupOnline()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self._closeOnline()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self.ui.placePositiveButton.checked = False
        self.ui.placeNegativeButton.checked = False
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self._closeOnline()  # its nodes and the segment editor node go with the scene; the task is saved
        self.setParameterNode(None)
        self.logic.reset()
        self.logic.store.editor = None  # its segment editor node goes with the scene
        self.controller = None

    def _dependenciesReady(self) -> bool:
        """Packages installed (asks on first use), and results routed through the Segment
        Editor's settings: its masking and "modify other segments" apply to the panel too,
        and each Apply is one undo state of the panel's Undo/Redo."""
        with slicer.util.tryWithErrorDisplay(_("Failed to install the Python packages InteractiveSeg needs.")):
            if not ensureDependencies():
                return False
            if self.logic.store.editor is None:
                from InteractiveSegSlicer.editor_writer import EditorWriter

                editorWidget = slicer.modules.segmenteditor.widgetRepresentation().self().editor
                self.logic.store.editor = EditorWriter(slicer.mrmlScene, editorWidget.mrmlSegmentEditorNode())
            return True
        return False  # the error was shown

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self.ui.engineComboBox.currentText = self._parameterNode.engine
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        ready = bool(self._parameterNode and self._parameterNode.inputVolume)
        self.ui.applyButton.enabled = ready
        self.ui.automaticButton.enabled = ready and self._parameterNode.engine == "sim"
        self.ui.applyButton.toolTip = _("Segment from the placed clicks") if ready else _("Select a volume")

    def onEngineChanged(self, name) -> None:
        if self._parameterNode and name:
            self._parameterNode.engine = name
        self._checkCanApply()

    def onDeviceChanged(self, text) -> None:
        self.ui.deviceComboBox.toolTip = _("Networks run on: {device}").format(device=engine_info.device_summary())

    # -- clicks -----------------------------------------------------------------------------
    def _pointList(self, positive: bool):
        attr = "positivePoints" if positive else "negativePoints"
        node = getattr(self._parameterNode, attr)
        if node is None:
            name = _("InteractiveSeg positive clicks") if positive else _("InteractiveSeg negative clicks")
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
            node.CreateDefaultDisplayNodes()
            node.SetMarkupLabelFormat("+" if positive else "-")
            color = POSITIVE_COLOR if positive else NEGATIVE_COLOR
            node.GetDisplayNode().SetSelectedColor(*color)
            node.GetDisplayNode().SetColor(*color)
            setattr(self._parameterNode, attr, node)
        return node

    def onPlace(self, positive: bool, on: bool) -> None:
        other = self.ui.placeNegativeButton if positive else self.ui.placePositiveButton
        selectionNode = slicer.app.applicationLogic().GetSelectionNode()
        interactionNode = slicer.app.applicationLogic().GetInteractionNode()
        if on:
            other.checked = False
            selectionNode.SetReferenceActivePlaceNodeClassName("vtkMRMLMarkupsFiducialNode")
            selectionNode.SetActivePlaceNodeID(self._pointList(positive).GetID())
            interactionNode.SetPlaceModePersistence(1)
            interactionNode.SetCurrentInteractionMode(interactionNode.Place)
        elif not other.checked:
            interactionNode.SetCurrentInteractionMode(interactionNode.ViewTransform)

    def onInteractionModeChanged(self, caller, event) -> None:
        if caller.GetCurrentInteractionMode() != caller.Place:  # left place mode from the toolbar
            self.ui.placePositiveButton.checked = False
            self.ui.placeNegativeButton.checked = False

    def onClearClicks(self) -> None:
        for node in (self._parameterNode.positivePoints, self._parameterNode.negativePoints):
            if node:
                node.RemoveAllControlPoints()

    # -- the controller -----------------------------------------------------------------------
    def _controller(self) -> InteractiveController:
        """The controller of the panel's volume, set to the panel's segmentation, class, engine and device."""
        p = self._parameterNode
        if self.controller is None or self.controller.volumeNode is not p.inputVolume:
            self.controller = InteractiveController(p.inputVolume, p.segmentation, logic=self.logic)
            self.controller.ask_trust = askTrust
        c = self.controller
        c.segmentationNode, c.label, c.segment_name, c.labels = p.segmentation, p.labelValue, p.className, None
        c.configure(p.engine, "", self.ui.deviceComboBox.currentText)
        return c

    def _start(self, submit) -> None:
        """A button's job: ``submit(controller)`` returns the operation the poller writes."""
        if not self._dependenciesReady():
            return
        controller = guarded(self._controller)
        op = controller and guarded(lambda: submit(controller))
        if op is None:
            return
        self._parameterNode.segmentation = controller.segmentationNode  # created on the first hint
        self.ui.propagateButton.enabled = self.ui.undoButton.enabled = self.ui.redoButton.enabled = False
        self.poller.start(controller, op)

    def _jobDone(self, result) -> None:
        self.ui.propagateButton.enabled = self.ui.undoButton.enabled = self.ui.redoButton.enabled = True
        if result is not None:
            self._showLastClick()
            self.onSuggestSlice()

    # -- actions ----------------------------------------------------------------------------
    def onApplyButton(self) -> None:
        p = self._parameterNode
        self._start(lambda c: c.submit_markups(p.positivePoints, p.negativePoints, p.sliceOrientation))

    def onPropagate(self) -> None:
        """3D from the class's largest slice, on the inference thread (progress bar, Cancel)."""
        self._start(lambda c: c.submit_propagation(self._parameterNode.sliceOrientation))

    def onAutomaticButton(self) -> None:
        """Automatic multi-class result on the slice shown in the view of the chosen orientation."""
        orientation = self._parameterNode.sliceOrientation
        sliceToRAS = slicer.app.layoutManager().sliceWidget(VIEW_OF_ORIENTATION[orientation]).mrmlSliceNode()
        centre = [sliceToRAS.GetSliceToRAS().GetElement(r, 3) for r in range(3)]
        self._start(lambda c: c.submit(c.automatic_hint(centre, orientation), "automatic"))

    def onSuggestSlice(self) -> None:
        """Take the slice views to the slice a 3D engine rates worst (VMN's quality head)."""
        result = guarded(lambda: self._controller().highlight_next_slice())
        if result is None:
            return
        self.ui.suggestSliceButton.enabled = result.ras is not None
        self.ui.suggestSliceButton.toolTip = result.message
        self.ui.nextSliceLabel.text = "<b>" + result.message + "</b>" if result.ras is not None else ""
        if result.ras is not None:
            slicer.modules.markups.logic().JumpSlicesToLocation(*result.ras, True)
            showMessage(result.message)

    def onUndoRedo(self, redo: bool) -> None:
        result = guarded(lambda: self._controller().redo() if redo else self._controller().undo())
        if result is not None:
            showMessage(result.message)
            self._showLastClick()

    def _showLastClick(self) -> None:
        """Mirror the last applied click in a one-point list the user can drag (drag-to-move)."""
        node = slicer.mrmlScene.GetFirstNodeByName("InteractiveSeg last click")
        if node is None:
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "InteractiveSeg last click")
            node.CreateDefaultDisplayNodes()
            node.SetMarkupLabelFormat("")
            self.addObserver(node, node.PointModifiedEvent, self.onLastClickDragged)
        self._updatingLastClick = True
        node.RemoveAllControlPoints()
        click = self.controller.last_click() if self.controller is not None else None
        if click is not None:
            node.AddControlPoint(vtk.vtkVector3d(*click[0]))
            node.GetDisplayNode().SetSelectedColor(*(POSITIVE_COLOR if click[1] else NEGATIVE_COLOR))
        self._updatingLastClick = False

    def onLastClickDragged(self, caller, event) -> None:
        if getattr(self, "_updatingLastClick", False) or caller.GetNumberOfControlPoints() != 1:
            return
        guarded(lambda: self._controller().move_click(caller.GetNthControlPointPositionWorld(0)))


registerSlicerEngines = register_slicer_engines  # kept for scripts written against earlier versions


class InteractiveSegLogic(ScriptedLoadableModuleLogic, SegmentationLogic):
    """Slicer's logic base class + the Qt-free ``SegmentationLogic`` (InteractiveSegSlicer/logic.py):
    ``segment``, ``propagate``, ``apply_markups``, ``automatic``, ``finetune``, ``suggest_slice``,
    ``undo``/``redo``... usable from the Python console. One session per volume node; engines run
    on one persistent inference thread."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        SegmentationLogic.__init__(self)

    def getParameterNode(self):
        return InteractiveSegParameterNode(super().getParameterNode())

    def ensureDependencies(self, requirementsPath: str = REQUIREMENTS, askConfirmation: bool = True) -> bool:
        """See the module-level ``ensureDependencies`` (requirementsPath is the shipped file)."""
        return ensureDependencies(askConfirmation)


class InteractiveSegTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer only (Slicer's SelfTests module, or ctest in an extension build):
    loads the MRHead sample, places hints through the scripted API and through the
    Segment Editor effect with simulated mouse clicks, and checks the segment and undo."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_batch_api_on_a_sample_volume()
        self.setUp()
        self.test_segment_editor_effect_click()

    def _sampleVolume(self):
        if importlib.util.find_spec("torch") is None:  # the extension factory does not install torch
            self.skipTest("PyTorch is not installed")
        import SampleData

        return SampleData.SampleDataLogic().downloadSample("MRHead")

    def test_batch_api_on_a_sample_volume(self):
        import numpy as np

        from InteractiveSegLib.errors import InteractionError

        volume = self._sampleVolume()
        self.delayDisplay("Hints on MRHead through the scripted API")
        dims = volume.GetImageData().GetDimensions()
        centre = [d // 2 for d in dims]
        hints = [
            {"type": "click", "ijk": centre, "label": 1, "positive": True, "axis": 0},
            {"type": "click", "ijk": [2, 2, centre[2]], "label": 1, "positive": False, "axis": 0},
        ]
        logic = InteractiveSegLogic()
        segmentation = logic.segment(volume, hints, engine="growcut")
        segmentId = segmentation.GetSegmentation().GetNthSegmentID(0)
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentId, volume)
        self.assertGreater(int(mask[centre[2]].sum()), 0, "the clicked slice is segmented")
        self.assertEqual(int(mask.sum()), int(mask[centre[2]].sum()), "a click only changes its own slice")
        self.assertTrue(mask[centre[2], centre[1], centre[0]], "the positive click is inside the result")
        self.assertTrue(logic.undo(volume, segmentation) and logic.undo(volume, segmentation))
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentId, volume)
        self.assertEqual(int(np.count_nonzero(mask)), 0, "undo restores the empty segment")
        with self.assertRaises(InteractionError):  # a hint outside the image changes nothing
            logic.segment(
                volume,
                [{"type": "click", "ijk": [dims[0] + 5, 0, 0], "label": 1}],
                engine="growcut",
                segmentationNode=segmentation,
            )
        self.delayDisplay("Batch API passed")

    def test_segment_editor_effect_click(self):
        volume = self._sampleVolume()
        self.delayDisplay("A click in the Red slice view with the InteractiveSeg effect")
        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        segmentation.CreateDefaultDisplayNodes()
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        segmentId = segmentation.GetSegmentation().AddEmptySegment("", "structure")
        slicer.util.setSliceViewerLayers(background=volume, fit=True)
        editorWidget = slicer.qMRMLSegmentEditorWidget()
        editorWidget.setMRMLScene(slicer.mrmlScene)
        editorNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
        editorWidget.setMRMLSegmentEditorNode(editorNode)
        editorWidget.setSegmentationNode(segmentation)
        editorWidget.setSourceVolumeNode(volume)
        editorWidget.setCurrentSegmentID(segmentId)
        editorWidget.setActiveEffectByName("InteractiveSeg")
        effect = editorWidget.activeEffect()
        self.assertIsNotNone(effect, "the effect is registered in the Segment Editor")
        effect.setParameter("Engine", "growcut")
        effect.setParameter("Mode", "click")
        sliceWidget = slicer.app.layoutManager().sliceWidget("Red")
        view = sliceWidget.sliceView()
        centre = (view.width // 2, view.height // 2)
        slicer.util.clickAndDrag(sliceWidget, start=centre, end=centre, steps=1)
        poller = effect.self().poller
        if poller.op is not None:  # not yet written by the poller's timer
            poller.op.job.wait(60)
            poller.poll()
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentId, volume)
        self.assertGreater(int(mask.sum()), 0, "the click segmented the slice under the mouse")
        editorWidget.undo()
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentId, volume)
        self.assertEqual(int(mask.sum()), 0, "the Segment Editor's undo removes the hint's result")
        editorWidget.setActiveEffect(None)
        self.delayDisplay("Segment Editor effect passed")
