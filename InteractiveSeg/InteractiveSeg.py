"""InteractiveSeg: interactive multi-class segmentation of 3D images (3D Slicer scripted module).

Thin on purpose: the widget reads the user's choices; the Logic keeps one session per
volume and leaves all MRML work to ``InteractiveSegSlicer.mrml_glue`` (Qt-free, tested
with slicer-core); the engines live in ``InteractiveSegLib`` (pure Python).
"""

import importlib.util
import os
import sys
from typing import Annotated

import vtk

import slicer
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
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode


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

from InteractiveSegSlicer import mrml_glue  # noqa: E402  (needs the path set above; imports no torch)

# import name of each package of Resources/requirements.txt (older Slicer without pip_ensure)
_REQUIRED_MODULES = ["monai", "SimpleITK", "skimage", "scipy", "slicerio", "nrrd", "cc3d", "edt", "nilearn"]
ORIENTATIONS = ["Axial", "Coronal", "Sagittal"]


class InteractiveSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("InteractiveSeg")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["InteractiveSeg developers (https://github.com/interactiveseg/SlicerInteractiveSeg)"]
        self.parent.helpText = _("""
Interactive segmentation of CT and MRI volumes: place positive (inside) and negative
(outside) clicks on any slice, choose the class and the engine, and press Apply; each
Apply refines the class on the clicked slice and is undoable. Results are ordinary
segments, so the Segment Editor, undo and saving work as usual.
Scripted use: <code>InteractiveSegLogic().segment(volumeNode, hints, engine="click")</code>.
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


class InteractiveSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
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
        self.ui.resetAdaptationButton.connect("clicked()", lambda: self.logic.reset_adaptation(self._parameterNode.inputVolume))
        self.ui.undoButton.connect("clicked()", lambda: self.onUndoRedo(redo=False))
        self.ui.redoButton.connect("clicked()", lambda: self.onUndoRedo(redo=True))
        self.initializeParameterNode()

    def cleanup(self) -> None:
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
        self.setParameterNode(None)
        self.logic.reset()

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

    # -- clicks -----------------------------------------------------------------------------
    def _pointList(self, positive: bool):
        attr = "positivePoints" if positive else "negativePoints"
        node = getattr(self._parameterNode, attr)
        if node is None:
            name = _("InteractiveSeg positive clicks") if positive else _("InteractiveSeg negative clicks")
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
            node.CreateDefaultDisplayNodes()
            node.SetMarkupLabelFormat("+" if positive else "-")
            color = (0.2, 0.85, 0.3) if positive else (0.95, 0.25, 0.2)
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

    # -- actions ----------------------------------------------------------------------------
    def onApplyButton(self) -> None:
        ready = False
        with slicer.util.tryWithErrorDisplay(_("Failed to install the Python packages InteractiveSeg needs.")):
            ready = self.logic.ensureDependencies(self.resourcePath("requirements.txt"))
        if not ready:  # declined or failed (the error was shown)
            return
        with slicer.util.tryWithErrorDisplay(_("Interactive segmentation failed."), waitCursor=True):
            p = self._parameterNode
            p.segmentation = self.logic.apply_markups(
                p.inputVolume, p.positivePoints, p.negativePoints, label=p.labelValue, className=p.className,
                orientation=p.sliceOrientation, engine=p.engine, segmentationNode=p.segmentation,
            )
            self._showLastClick()
            self.onSuggestSlice()

    def onSuggestSlice(self) -> None:
        """Take the slice views to the slice a 3D engine rates worst (VMN's quality head)."""
        found = self.logic.suggest_slice(self._parameterNode.inputVolume)
        self.ui.suggestSliceButton.enabled = found is not None
        if found is None:
            return
        suggestion, ras = found
        slicer.modules.markups.logic().JumpSlicesToLocation(*ras, True)
        self.ui.suggestSliceButton.toolTip = _("Slice {index}: predicted IoU {score:.2f}").format(index=suggestion.index, score=suggestion.score)

    def onAutomaticButton(self) -> None:
        """Automatic multi-class result on the slice shown in the view of the chosen orientation."""
        if not self.logic.ensureDependencies(self.resourcePath("requirements.txt")):
            return
        with slicer.util.tryWithErrorDisplay(_("Automatic segmentation failed."), waitCursor=True):
            p = self._parameterNode
            view = {"Axial": "Red", "Sagittal": "Yellow", "Coronal": "Green"}[p.sliceOrientation]
            sliceToRAS = slicer.app.layoutManager().sliceWidget(view).mrmlSliceNode().GetSliceToRAS()
            centre = [sliceToRAS.GetElement(r, 3) for r in range(3)]
            p.segmentation = self.logic.automatic(p.inputVolume, centre, p.sliceOrientation, p.engine, p.segmentation)

    def _showLastClick(self) -> None:
        """Mirror the last applied click in a one-point list the user can drag (drag-to-move)."""
        p = self._parameterNode
        session = self.logic.store.session(p.inputVolume)
        node = slicer.mrmlScene.GetFirstNodeByName("InteractiveSeg last click")
        if node is None:
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "InteractiveSeg last click")
            node.CreateDefaultDisplayNodes()
            node.SetMarkupLabelFormat("")
            self.addObserver(node, node.PointModifiedEvent, self.onLastClickDragged)
        self._updatingLastClick = True
        node.RemoveAllControlPoints()
        if session and session.history and hasattr(session.history[-1].interaction, "ijk"):
            click = session.history[-1].interaction
            node.AddControlPoint(vtk.vtkVector3d(*mrml_glue.ijk_to_world(p.inputVolume, click.ijk)))
            node.GetDisplayNode().SetSelectedColor(*((0.2, 0.85, 0.3) if click.positive else (0.95, 0.25, 0.2)))
        self._updatingLastClick = False

    def onLastClickDragged(self, caller, event) -> None:
        if getattr(self, "_updatingLastClick", False) or caller.GetNumberOfControlPoints() != 1:
            return
        with slicer.util.tryWithErrorDisplay(_("Moving the click failed."), waitCursor=False):
            p = self._parameterNode
            self.logic.move_last_click(p.inputVolume, p.segmentation, caller.GetNthControlPointPositionWorld(0))

    def onUndoRedo(self, redo: bool) -> None:
        with slicer.util.tryWithErrorDisplay(_("Undo/redo failed."), waitCursor=True):
            p = self._parameterNode
            done = self.logic.redo(p.inputVolume, p.segmentation) if redo else self.logic.undo(p.inputVolume, p.segmentation)
            if not done:
                slicer.util.showStatusMessage(_("Nothing to redo.") if redo else _("Nothing to undo."), 3000)
            self._showLastClick()


def registerSlicerEngines() -> None:
    """Register "growcut" and "vmn-growcut": inside Slicer the package is not pip-installed,
    so their entry points are not seen."""
    from InteractiveSegLib.engines import available_engines, register_engine

    if "growcut" not in available_engines():
        from InteractiveSegSlicer.growcut_engine import GrowFromSeedsEngine, GrowFromSeedsPropagationEngine

        register_engine("growcut", GrowFromSeedsEngine)
        register_engine("vmn-growcut", GrowFromSeedsPropagationEngine)


class InteractiveSegLogic(ScriptedLoadableModuleLogic):
    """Qt-free: usable from the Python console and scripts. One session per volume node."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.store = mrml_glue.SessionStore()
        self._dependenciesChecked = False

    def getParameterNode(self):
        return InteractiveSegParameterNode(super().getParameterNode())

    @staticmethod
    def engineNames() -> list:
        try:
            registerSlicerEngines()
            from InteractiveSegLib.engines import available_engines

            return available_engines()
        except ImportError:  # torch/monai are installed on the first Apply, not at start-up
            return ["click", "growcut"]

    def ensureDependencies(self, requirementsPath: str, askConfirmation: bool = True) -> bool:
        """Install what the engines need, on first use only. False if the user declined."""
        if self._dependenciesChecked:
            return True
        if importlib.util.find_spec("torch") is None:
            # torch first, through the PyTorch extension (it picks the CUDA or CPU build),
            # so that monai below cannot pull a mismatched torch
            import PyTorchUtils

            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=askConfirmation, torchVersionRequirement=">=2.2") is None:
                return False
        packaging = getattr(slicer, "packaging", None)
        if packaging is not None and hasattr(packaging, "pip_ensure"):  # Slicer >= 5.12: asks, shows progress, offers restart
            packaging.pip_ensure(packaging.load_requirements(requirementsPath), requester="InteractiveSeg")
        elif any(importlib.util.find_spec(m) is None for m in _REQUIRED_MODULES):
            if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                _("InteractiveSeg needs a few Python packages (MONAI, SimpleITK, scikit-image, ...). Install them now?")
            ):
                return False
            slicer.util.pip_install(["-r", requirementsPath])
        self._dependenciesChecked = True
        return True

    def segment(self, volumeNode, hints, engine="click", segmentationNode=None, labels=None, **engineKwargs):
        """Scripted batch API: apply hints (InteractiveSegLib interactions, their JSON dicts or a JSON
        string) in order; returns the segmentation node (created if None), one segment per class."""
        registerSlicerEngines()
        return self.store.segment(volumeNode, hints, engine, segmentationNode, labels, **engineKwargs)

    def apply_markups(self, volumeNode, positiveNode, negativeNode, label=1, className=None, orientation="Axial",
                      engine="click", segmentationNode=None, **engineKwargs):
        """Clicks from two point lists (positive, negative) for class ``label`` on slices of ``orientation``."""
        registerSlicerEngines()
        labels = mrml_glue.class_labels(segmentationNode, int(label), className)
        axis = mrml_glue.kji_axis_for_orientation(volumeNode, orientation)
        return self.store.apply_markups(volumeNode, positiveNode, negativeNode, int(label), axis, engine, segmentationNode, labels, **engineKwargs)

    def automatic(self, volumeNode, ras, orientation="Axial", engine="sim", segmentationNode=None, **engineKwargs):
        """Multi-class engines: the automatic segmentation of the slice of ``orientation``
        through world point ``ras`` (e.g. the slice view's centre), one segment per class."""
        registerSlicerEngines()
        axis = mrml_glue.kji_axis_for_orientation(volumeNode, orientation)
        index = mrml_glue.slice_index_at(volumeNode, ras, axis)
        return self.store.automatic(volumeNode, axis, index, engine, segmentationNode, **engineKwargs)

    def finetune(self, volumeNode, hints, segmentationNode=None, model=None, **engineKwargs):
        """Scribble-aware fine-tuning on any engine's output: the segmentation keeps its
        classes (matched to the model's by name; others get a new model channel), the hints
        (scribbles, clicks, boxes; a list of several labels is one step) adapt ``model``
        (checkpoint, TorchScript or MONAI bundle; default the shipped one) to this volume."""
        if model is not None:
            engineKwargs["model"] = str(model)
        registerSlicerEngines()
        return self.store.segment(volumeNode, hints, "finetune", segmentationNode, None, group=True, **engineKwargs)

    def reset_adaptation(self, volumeNode) -> bool:
        """Forget the weights fine-tuned on this volume; the source model file is never changed."""
        return self.store.reset_adaptation(volumeNode)

    def move_last_click(self, volumeNode, segmentationNode, ras) -> bool:
        """Drag-to-move: re-run with the last click at world position ``ras``; no new undo step."""
        return self.store.move_last_click(volumeNode, segmentationNode, ras)

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


class InteractiveSegTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_click_segments_a_sample()

    def test_click_segments_a_sample(self):
        import numpy as np

        if importlib.util.find_spec("torch") is None:  # the extension factory does not install torch
            self.skipTest("PyTorch is not installed")
        self.delayDisplay("Starting the test")
        k, j, i = np.mgrid[:24, :64, :64]
        sphere = (k - 12) ** 2 * 4 + (j - 30) ** 2 + (i - 34) ** 2 < 14**2
        image = (sphere * 900.0 + 100.0 + np.random.default_rng(0).normal(0, 20, sphere.shape)).astype(np.float32)
        ijkToRAS = np.diag([0.8, 0.8, 2.0, 1.0])
        volume = slicer.util.addVolumeFromArray(image, ijkToRAS=ijkToRAS, name="InteractiveSegSphere")
        clicks = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "positive")
        clicks.AddControlPoint(vtk.vtkVector3d(*(ijkToRAS @ [34, 30, 12, 1])[:3]))

        logic = InteractiveSegLogic()
        segmentation = logic.apply_markups(volume, clicks, None, label=1, className="sphere", engine="click")
        segmentId = segmentation.GetSegmentation().GetSegmentIdBySegmentName("sphere")
        self.assertTrue(segmentId, "the class segment is named after the class")
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentId, volume)
        self.assertGreater(int(mask[12].sum()), 0)
        self.assertEqual(int(mask.sum()), int(mask[12].sum()), "a click only changes its own slice")
        self.assertTrue(logic.undo(volume, segmentation))
        self.delayDisplay("Test passed")
