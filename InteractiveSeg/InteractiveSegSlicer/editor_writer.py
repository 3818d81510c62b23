"""Write engine results the way the Segment Editor's own effects do.

Why: a radiologist sets masking ("editable area", intensity range) and "overwrite other
segments" in the Segment Editor and expects every tool to obey them, and Ctrl+Z there to
undo the last hint. ``vtkSlicerSegmentEditorLogic`` (Slicer >= 5.9, also in the
slicer-core wheel) is the C++ code behind ``modifySelectedSegmentByLabelmap``: writing
through it with a segment editor node gives exactly the editor's behaviour, in Slicer and
in plain Python tests alike. Qt-free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import slicer

from InteractiveSegLib.errors import InteractionError

from . import segment_io

#: Segment editor overwrite modes by name (as the Segment Editor's "Modify other segments" menu).
OVERWRITE_MODES = {"all": "OverwriteAllSegments", "visible": "OverwriteVisibleSegments", "none": "OverwriteNone"}


class EditorWriter:
    """Writes regions of a multi-class labelmap into class segments through a segment editor node.

    ``editorNode``: the Segment Editor's parameter node (its masking/overwrite settings
    apply); None makes a private, hidden one in ``scene`` (scripts, tests).
    ``save_state``: how to record an undo state before each hint; default this writer's
    own segmentation history (``undo``/``redo`` below). The Segment Editor effect passes
    ``scriptedEffect.saveStateForUndo`` so that the editor's Ctrl+Z undoes a hint.
    """

    def __init__(self, scene, editorNode=None, save_state: Callable[[], None] | None = None) -> None:
        if editorNode is None:
            editorNode = scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode", "InteractiveSegEditor")
            editorNode.HideFromEditorsOn()
            editorNode.SaveWithSceneOff()
        self.node = editorNode
        self.logic = slicer.vtkSlicerSegmentEditorLogic()
        self.logic.SetMRMLScene(scene)
        self.logic.SetSegmentEditorNode(editorNode)
        self._save_state = save_state

    # -- settings ---------------------------------------------------------------------------
    def set_overwrite(self, mode: str) -> None:
        """``"all"``, ``"visible"`` or ``"none"`` (the Segment Editor's overwrite setting)."""
        if mode not in OVERWRITE_MODES:
            raise InteractionError(f"unknown overwrite mode {mode!r}; expected one of {sorted(OVERWRITE_MODES)}")
        self.node.SetOverwriteMode(getattr(self.node, OVERWRITE_MODES[mode]))

    def set_mask(
        self,
        mode: str = "EditAllowedEverywhere",
        segmentId: str | None = None,
        intensity_range: Sequence[float] | None = None,
    ) -> None:
        """Editable area (a ``vtkMRMLSegmentationNode.EditAllowed*`` name) and optional intensity range."""
        value = getattr(slicer.vtkMRMLSegmentationNode, mode, None)
        if value is None or not mode.startswith("EditAllowed"):
            raise InteractionError(f"unknown editable area {mode!r}")
        self.node.SetMaskMode(value)
        self.node.SetMaskSegmentID(segmentId)
        self.node.SetSourceVolumeIntensityMask(intensity_range is not None)
        if intensity_range is not None:
            self.node.SetSourceVolumeIntensityMaskRange(float(intensity_range[0]), float(intensity_range[1]))

    # -- writing ----------------------------------------------------------------------------
    def bind(self, segmentationNode, volumeNode) -> None:
        """Point the editor node at the segmentation and its source volume (only when they differ)."""
        if self.node.GetSegmentationNode() is not segmentationNode:
            self.node.SetAndObserveSegmentationNode(segmentationNode)
        if self.node.GetSourceVolumeNode() is not volumeNode:
            self.node.SetAndObserveSourceVolumeNode(volumeNode)

    def save_state(self, segmentationNode, volumeNode) -> None:
        """One undo state of the segmentation (call before each hint's write)."""
        self.bind(segmentationNode, volumeNode)
        if self._save_state is not None:
            self._save_state()
        else:
            self.logic.SaveStateForUndo()

    def write(
        self, segmentationNode, segment_ids: dict[int, str], labelmap_region: np.ndarray, region, volumeNode
    ) -> list[str]:
        """Make each class segment hold its voxels of ``labelmap_region`` inside ``region`` only.

        Per class, the voxels to drop go through the editor's "Remove" and the new ones
        through "Add", both limited to the region's extent ("Set" would clear the segment
        outside it). Masking keeps locked voxels as they are; the overwrite setting decides
        what happens to other segments. Returns the IDs of the segments written.
        """
        segment_io.check_geometry(segmentationNode, volumeNode)
        dims = volumeNode.GetImageData().GetDimensions()
        extent = segment_io._region_extent(region, (dims[2], dims[1], dims[0]))
        values = np.asarray(labelmap_region)
        self.bind(segmentationNode, volumeNode)
        segmentation = segmentationNode.GetSegmentation()
        written = []
        for value, sid in segment_ids.items():
            seg = segmentation.GetSegment(sid)
            if seg is None:
                raise InteractionError(f"segmentation {segmentationNode.GetName()!r} has no segment {sid!r}")
            target = values == value
            current = segment_io._segment_voxels(seg, extent)
            for voxels, mode in (
                (current & ~target, self.logic.ModificationModeRemove),
                (target & ~current, self.logic.ModificationModeAdd),
            ):
                if voxels.any():
                    modifier = segment_io._modifier_image(voxels, extent, volumeNode)
                    self.logic.ModifySegmentByLabelmap(segmentationNode, sid, modifier, mode, extent, False, False)
                    if sid not in written:
                        written.append(sid)
        return written

    # -- undo (own history only; with an injected save_state the Segment Editor owns undo) --
    def undo(self) -> bool:
        if not self.logic.CanUndo():
            return False
        self.logic.Undo()
        return True

    def redo(self) -> bool:
        if not self.logic.CanRedo():
            return False
        self.logic.Redo()
        return True
