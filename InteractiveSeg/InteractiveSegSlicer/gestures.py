"""Mouse gestures of one slice view -> what the ``InteractiveController`` should do.

Why Qt-free: the Segment Editor effect (Qt events) and the web app (trame-slicer's
``vtkMRMLInteractionEventData``) feed the same press / move / release calls, so the rules
below (a click acts on press and follows a drag; a scribble or box acts on release;
extreme points act on each press, the fourth makes the hint; Ctrl or the panel's
Negative switch makes a hint negative) are written, and tested, once.

A front end submits ``Action.hint`` (``controller.submit``, then ``finish`` when its job
is done), calls ``controller.move_click(Action.move_to)`` (kept for ``finish`` while a job
runs), shows ``Action.message``, and draws ``GestureTracker.stroke`` while the button is down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from InteractiveSegLib.errors import InteractionError
from InteractiveSegLib.hints import Interaction

from .controller import AXIAL, InteractiveController, Point

#: Hint kinds a slice-view gesture makes (the panels' mode buttons).
MODES = ("click", "scribble", "box", "extreme")
DRAG_PIXELS = 3  # a press that moves more than this many screen pixels is a drag
Pixel = Sequence[float]


@dataclass
class Action:
    """What the front end does after an event: submit ``hint`` (with ``verb`` for its
    message), move the last click to ``move_to``, and/or show ``message``."""

    hint: Interaction | None = None
    verb: str = ""
    move_to: Point | None = None
    message: str = ""


@dataclass
class Stroke:
    """The gesture in progress, to draw: its kind, screen points (a box: two corners) and sign."""

    kind: str
    pixels: list[Pixel] = field(default_factory=list)
    positive: bool = True


class GestureTracker:
    """Press / move / release of one view at a time, in the mode the user chose.

    Args:
        controller: the verbs' target (hints are made by ``controller.hint``).
        mode: one of ``MODES``.
    """

    def __init__(self, controller: InteractiveController, mode: str = "click") -> None:
        self.controller = controller
        self.mode = "click"
        self.set_mode(mode)
        self.negative = False  # the panel's switch: every hint removes (Ctrl does too)
        self.stroke: Stroke | None = None
        self._points: list[Point] = []
        self._normal: Point = AXIAL
        self._moved = False

    def set_mode(self, mode: str) -> None:
        """Args: mode: one of ``MODES`` (InteractionError otherwise; the mode is unchanged)."""
        if mode not in MODES:
            raise InteractionError(f"unknown hint kind {mode!r}; one of {', '.join(MODES)}")
        self.mode = mode
        self.stroke = None

    @property
    def points(self) -> list[Point]:
        """World points of the gesture in progress (a box: its first and current corner)."""
        return list(self._points) if self.stroke is not None else []

    @property
    def active(self) -> bool:
        """True while the button is down on a gesture."""
        return self.stroke is not None

    def press(self, ras: Point, pixel: Pixel, normal: Point = AXIAL, ctrl: bool = False) -> Action:
        """Left button down at world point ``ras`` (screen ``pixel``) in a view of plane
        ``normal``; ``ctrl``: Ctrl held (a negative hint).

        Returns: the action (a click or the fourth extreme point: a hint to submit)."""
        positive = not (ctrl or self.negative)
        self.stroke = None
        takes = self.controller.takes()
        if self.mode not in takes:
            kinds = ", ".join(sorted(takes))
            engine = self.controller.engine
            raise InteractionError(f"engine {engine!r} does not take {self.mode} hints; it takes {kinds}")
        if self.mode == "extreme":
            hint = self.controller.extreme_hint(ras, normal)
            if hint is None:
                return Action(message=f"extreme point {self.controller.extreme_points_placed} of 4")
            return Action(hint, "extreme points")
        action = Action()
        if self.mode == "click":  # acts on press (bad input raises before the gesture starts)
            verb = "click" if positive else "negative click"
            action = Action(self.controller.hint("click", [ras], positive, normal), verb)
        self._points, self._normal, self._moved = [ras], normal, False
        self.stroke = Stroke(self.mode, [pixel], positive)
        return action

    def move(self, ras: Point, pixel: Pixel) -> Action:
        """The mouse moved with the button down (ignored otherwise).

        Returns: for a click dragged further than ``DRAG_PIXELS``: where to move it."""
        stroke = self.stroke
        if stroke is None:
            return Action()
        if not self._moved:
            x0, y0 = stroke.pixels[0]
            self._moved = max(abs(pixel[0] - x0), abs(pixel[1] - y0)) > DRAG_PIXELS
        if stroke.kind == "click":
            return Action(move_to=ras) if self._moved else Action()
        if stroke.kind == "box":
            stroke.pixels[1:] = [pixel]
            self._points[1:] = [ras]
        else:
            stroke.pixels.append(pixel)
            self._points.append(ras)
        return Action()

    def release(self, ras: Point, pixel: Pixel) -> Action:
        """Left button up: a scribble or box becomes its hint; a dragged click ends where
        the button was released.

        Returns: the action (nothing when no gesture was in progress)."""
        stroke, self.stroke = self.stroke, None
        if stroke is None:
            return Action()
        if stroke.kind == "click":
            return Action(move_to=ras) if self._moved else Action()
        if stroke.kind == "box":
            if not self._moved:
                return Action(message="drag from one corner of the box to the other")
            return Action(self.controller.hint("box", [self._points[0], ras], True, self._normal), "box")
        points = [*self._points, ras] if self._moved else self._points
        verb = "scribble" if stroke.positive else "negative scribble"
        return Action(self.controller.hint("scribble", points, stroke.positive, self._normal), verb)

    def cancel(self) -> bool:
        """Escape: drop the gesture in progress and the extreme points placed, and cancel
        the running job.

        Returns: True if there was something to cancel."""
        had_stroke, self.stroke = self.stroke is not None, None
        return self.controller.cancel() or had_stroke
