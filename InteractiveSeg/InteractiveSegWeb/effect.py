"""The InteractiveSeg segmentation effect of the web app: the left button's press, drags and
release in a slice view, with Ctrl, as Slicer's own effects receive them.

The pipeline only reads the event (world position, screen position, Ctrl, the view's
plane normal) and hands it to ``InteractiveSegEffect.on_event``, set by the app; what a
gesture means is the Qt-free ``GestureTracker``'s business, what it does the
``InteractiveController``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slicer import (
    vtkMRMLAbstractViewNode,
    vtkMRMLAbstractWidget,
    vtkMRMLInteractionEventData,
    vtkMRMLNode,
    vtkMRMLSliceNode,
)
from trame_slicer.segmentation import SegmentationEffect, SegmentationEffectPipeline
from vtkmodules.vtkCommonCore import vtkCommand
from vtkmodules.vtkInteractionWidgets import vtkEvent

PRESS, MOVE, RELEASE, KEY = "press", "move", "release", "key"
#: Keys of the effect's list: n (next slice), Escape (cancel), Ctrl+Z / Ctrl+Y (undo / redo).
KEYS = {"n", "Escape", "z", "y"}
_KINDS = {
    int(vtkCommand.LeftButtonPressEvent): PRESS,
    int(vtkCommand.MouseMoveEvent): MOVE,
    int(vtkCommand.LeftButtonReleaseEvent): RELEASE,
}


@dataclass(frozen=True)
class ViewEvent:
    """One left-button event of a slice view: ``kind`` (press, move, release), world point,
    screen pixel, the view's plane normal (RAS), whether Ctrl was held, and the view's
    SliceToRAS matrix (row-major 4 x 4, to draw a box in its plane)."""

    kind: str
    ras: tuple[float, float, float]
    pixel: tuple[float, float]
    normal: tuple[float, float, float]
    ctrl: bool
    slice_to_ras: tuple[tuple[float, ...], ...] = ()
    key: str = ""  # for ``KEY``: the key's symbol


EventHandler = Callable[[ViewEvent], Any]


class InteractiveSegEffect(SegmentationEffect):
    """Receives the left-button events of every slice view while active (3D views get no pipeline)."""

    def __init__(self) -> None:
        super().__init__()
        self.on_event: EventHandler | None = None

    def _create_pipeline(self, view_node: vtkMRMLAbstractViewNode, _parameter: vtkMRMLNode) -> Any:
        return InteractiveSegPipeline() if isinstance(view_node, vtkMRMLSliceNode) else None

    def handle(self, event: ViewEvent) -> None:
        """Forward an event to the app (ignored while the effect is inactive)."""
        if self.is_active and self.on_event is not None:
            self.on_event(event)


class InteractiveSegPipeline(SegmentationEffectPipeline[InteractiveSegEffect]):
    """Slice-view pipeline: press, moves while the button is down, release."""

    def __init__(self) -> None:
        super().__init__()
        self._pressed = False

    def CanProcessInteractionEvent(self, eventData: vtkMRMLInteractionEventData) -> tuple[bool, float]:
        if eventData.GetType() == int(vtkCommand.KeyPressEvent):
            return bool(self.IsActive() and eventData.GetKeySym() in KEYS), 0
        kind = _KINDS.get(eventData.GetType())
        wanted = kind == PRESS or (kind is not None and self._pressed)
        return bool(self.IsActive() and wanted and self._view is not None), 0

    def ProcessInteractionEvent(self, eventData: vtkMRMLInteractionEventData) -> bool:
        if eventData.GetType() == int(vtkCommand.KeyPressEvent) and self._view is not None:
            ctrl = bool(eventData.GetModifiers() & vtkEvent.ControlModifier)
            self._effect.handle(
                ViewEvent(KEY, (0.0, 0.0, 0.0), (0.0, 0.0), (0.0, 0.0, 1.0), ctrl, key=eventData.GetKeySym())
            )
            return True
        kind = _KINDS.get(eventData.GetType())
        if kind is None or self._view is None or (kind != PRESS and not self._pressed):
            return False
        self._pressed = kind != RELEASE
        matrix = self._view.get_view_node().GetSliceToRAS()
        event = ViewEvent(
            kind,
            tuple(float(c) for c in eventData.GetWorldPosition()),  # type: ignore[arg-type]
            tuple(float(c) for c in eventData.GetDisplayPosition()),  # type: ignore[arg-type]
            tuple(float(matrix.GetElement(r, 2)) for r in range(3)),  # type: ignore[arg-type]
            bool(eventData.GetModifiers() & vtkEvent.ControlModifier),
            tuple(tuple(float(matrix.GetElement(r, c)) for c in range(4)) for r in range(4)),
        )
        self._effect.handle(event)
        return True

    def GetWidgetState(self) -> int:
        # "user" while the button is down: the view keeps sending this pipeline the drag
        return int(vtkMRMLAbstractWidget.WidgetStateUser) if self._pressed else super().GetWidgetState()

    def LoseFocus(self, eventData: vtkMRMLInteractionEventData | None) -> None:
        super().LoseFocus(eventData)
        self._pressed = False
