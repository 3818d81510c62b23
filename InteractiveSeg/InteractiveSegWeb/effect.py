"""The InteractiveSeg segmentation effect of the web app: a left click in a slice view is a
positive hint, Ctrl + left click a negative one.

The pipeline only reads the event (world position, Ctrl, the view's plane normal) and
hands it to ``InteractiveSegEffect.on_click``, set by the app; what a click does is the
Qt-free ``InteractiveController``'s business.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slicer import vtkMRMLAbstractViewNode, vtkMRMLInteractionEventData, vtkMRMLNode, vtkMRMLSliceNode
from trame_slicer.segmentation import SegmentationEffect, SegmentationEffectPipeline
from vtkmodules.vtkCommonCore import vtkCommand
from vtkmodules.vtkInteractionWidgets import vtkEvent

#: ``on_click(ras, normal, positive)``: world point, the view's plane normal (RAS), inside or outside.
ClickHandler = Callable[[tuple[float, float, float], tuple[float, float, float], bool], Any]


class InteractiveSegEffect(SegmentationEffect):
    """Receives the clicks of every slice view while active (3D views get no pipeline)."""

    def __init__(self) -> None:
        super().__init__()
        self.on_click: ClickHandler | None = None

    def _create_pipeline(self, view_node: vtkMRMLAbstractViewNode, _parameter: vtkMRMLNode) -> Any:
        return InteractiveSegPipeline() if isinstance(view_node, vtkMRMLSliceNode) else None

    def click(self, ras: tuple[float, float, float], normal: tuple[float, float, float], positive: bool) -> None:
        """Forward a click to the app (ignored while the effect is inactive).

        Args:
            ras: world point of the click.
            normal: plane normal of the slice view (RAS).
            positive: False for Ctrl + click.
        """
        if self.is_active and self.on_click is not None:
            self.on_click(ras, normal, positive)


class InteractiveSegPipeline(SegmentationEffectPipeline[InteractiveSegEffect]):
    """Slice-view pipeline: left button press -> ``InteractiveSegEffect.click``."""

    def CanProcessInteractionEvent(self, eventData: vtkMRMLInteractionEventData) -> tuple[bool, float]:
        press = eventData.GetType() == int(vtkCommand.LeftButtonPressEvent)
        return bool(self.IsActive() and press and self._view is not None), 0

    def ProcessInteractionEvent(self, eventData: vtkMRMLInteractionEventData) -> bool:
        if eventData.GetType() != int(vtkCommand.LeftButtonPressEvent) or self._view is None:
            return False
        slice_node = self._view.get_view_node()
        matrix = slice_node.GetSliceToRAS()
        normal = tuple(float(matrix.GetElement(r, 2)) for r in range(3))
        ras = tuple(float(c) for c in eventData.GetWorldPosition())
        positive = not (eventData.GetModifiers() & vtkEvent.ControlModifier)
        self._effect.click(ras, normal, positive)
        return True
