"""User hints as plain dataclasses, in voxel (IJK) space of the source volume.

Every hint carries the class (``label``, a positive integer of the session's label
table) it is for and whether it adds (positive) or removes (negative). Hints that
live on one slice (clicks, scribbles, 2D boxes) say which slice axis they were drawn
on: ``axis`` is the KJI array axis held constant (0 = axial/K, 1 = coronal/J,
2 = sagittal/I). JSON round-trip with ``to_json`` / ``from_json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from InteractiveSegLib.errors import InteractionError

AXIS_NAMES = {0: "axial", 1: "coronal", 2: "sagittal"}


def _ijk(p, what: str) -> tuple[int, int, int]:
    try:
        values = [float(v) for v in p]
    except (TypeError, ValueError):
        raise InteractionError(f"{what}: point {p!r} is not numeric") from None
    if not all(math.isfinite(v) for v in values):
        raise InteractionError(f"{what}: point {p!r} has a coordinate that is not a finite number")
    t = tuple(int(round(v)) for v in values)
    if len(t) != 3:
        raise InteractionError(f"{what}: point {p!r} must have 3 coordinates (i, j, k), got {len(t)}")
    return t


def kji(ijk: Sequence[int]) -> tuple[int, int, int]:
    """Array index of an IJK point."""
    return (int(ijk[2]), int(ijk[1]), int(ijk[0]))


@dataclass
class Click:
    ijk: tuple[int, int, int]
    label: int = 1
    positive: bool = True
    axis: int = 0

    def __post_init__(self) -> None:
        self.ijk = _ijk(self.ijk, "click")

    @property
    def points(self) -> list[tuple[int, int, int]]:
        return [self.ijk]


@dataclass
class Scribble:
    voxels: list[tuple[int, int, int]]
    label: int = 1
    positive: bool = True
    axis: int = 0

    def __post_init__(self) -> None:
        self.voxels = [_ijk(v, "scribble") for v in self.voxels]
        if not self.voxels:
            raise InteractionError("scribble has no voxels")

    @property
    def points(self) -> list[tuple[int, int, int]]:
        return list(self.voxels)


@dataclass
class Box:
    """Axis-aligned box from ``min_ijk`` to ``max_ijk`` inclusive (flat along ``axis`` for a 2D box)."""

    min_ijk: tuple[int, int, int]
    max_ijk: tuple[int, int, int]
    label: int = 1
    positive: bool = True
    axis: int = 0

    def __post_init__(self) -> None:
        a, b = _ijk(self.min_ijk, "box"), _ijk(self.max_ijk, "box")
        self.min_ijk = tuple(min(x, y) for x, y in zip(a, b, strict=False))  # type: ignore[assignment]
        self.max_ijk = tuple(max(x, y) for x, y in zip(a, b, strict=False))  # type: ignore[assignment]

    @property
    def points(self) -> list[tuple[int, int, int]]:
        return [self.min_ijk, self.max_ijk]


@dataclass
class ExtremePoints:
    """The 4 (one slice) or 6 (3D) extreme points of a structure."""

    points_ijk: list[tuple[int, int, int]]
    label: int = 1
    positive: bool = True
    axis: int = 0

    def __post_init__(self) -> None:
        self.points_ijk = [_ijk(p, "extreme points") for p in self.points_ijk]
        if len(self.points_ijk) not in (4, 6):
            raise InteractionError(f"extreme points: expected 4 or 6 points, got {len(self.points_ijk)}")

    @property
    def points(self) -> list[tuple[int, int, int]]:
        return list(self.points_ijk)


@dataclass
class DrawnSlice:
    """A structure's whole cross-section on one slice, drawn by the user (Paint, or a slice of an
    existing segment): an engine that propagates slices takes it as that slice's mask as it
    is, where a scribble would be read by a network (which may widen or trim it). With no
    voxels (``index`` then names the slice) it says the structure is not there: the slice is
    cleared and bounds the propagation, which a negative stroke left to a network may not do."""

    voxels: list[tuple[int, int, int]]
    label: int = 1
    positive: bool = True
    axis: int = 0
    #: the slice along ``axis`` (taken from the voxels when not given)
    index: int | None = None

    def __post_init__(self) -> None:
        if not self.positive:
            raise InteractionError("a drawn slice is the structure itself: it cannot be negative")
        if self.axis not in AXIS_NAMES:
            raise InteractionError(f"axis must be 0, 1 or 2 (KJI array axis), got {self.axis}")
        self.voxels = [_ijk(v, "drawn slice") for v in self.voxels]
        if self.index is None:  # voxels on several slices are refused by ``validate``
            if not self.voxels:
                raise InteractionError("an empty drawn slice (the structure is not there) needs its slice index")
            self.index = kji(self.voxels[0])[self.axis]
            return
        try:
            self.index = int(self.index)
        except (TypeError, ValueError):
            raise InteractionError(f"drawn slice: slice index {self.index!r} is not an integer") from None
        off = sorted({kji(v)[self.axis] for v in self.voxels} - {self.index})
        if off:
            raise InteractionError(f"drawn slice {self.index}: voxels on other {AXIS_NAMES[self.axis]} slices {off}")

    @property
    def points(self) -> list[tuple[int, int, int]]:
        """Its voxels (none on an empty slice: ``slice_index`` reads ``index``)."""
        return list(self.voxels)


@dataclass
class SliceAuto:
    """No hint at all: ask a multi-class engine for its automatic result on one slice.

    ``index`` is the slice along KJI ``axis``; ``label`` 0 means every class of the engine.
    """

    index: int
    axis: int = 0
    label: int = 0
    positive: bool = True

    def __post_init__(self) -> None:
        try:
            self.index = int(self.index)
        except (TypeError, ValueError):
            raise InteractionError(f"automatic: slice index {self.index!r} is not an integer") from None

    @property
    def points(self) -> list[tuple[int, int, int]]:
        """One point on the slice (its corner), so slice helpers work on it."""
        return [ijk_from_slice_point((0, 0), self.axis, self.index)]


@dataclass
class HintGroup:
    """Several hints applied as one step: scribbles of several labels corrected at once
    (scribble-aware fine-tuning). Class, axis and slice are those of the first hint."""

    hints: list

    def __post_init__(self) -> None:
        self.hints = [from_dict(h) if isinstance(h, dict) else h for h in self.hints]
        if not self.hints:
            raise InteractionError("a hint group needs at least one hint")
        if any(isinstance(h, (HintGroup, SliceAuto, DrawnSlice)) for h in self.hints):
            raise InteractionError("a hint group holds clicks, scribbles, boxes or extreme points only")

    @property
    def label(self) -> int:
        return self.hints[0].label

    @property
    def axis(self) -> int:
        return self.hints[0].axis

    @property
    def positive(self) -> bool:
        return True

    @property
    def points(self) -> list[tuple[int, int, int]]:
        return self.hints[0].points


def members(interaction) -> list:
    """The hints inside a step: a group's members, or the hint itself."""
    return list(interaction.hints) if isinstance(interaction, HintGroup) else [interaction]


Interaction = Click | Scribble | Box | ExtremePoints | DrawnSlice | SliceAuto | HintGroup
#: The hint types by their JSON type name (``to_dict`` / ``from_dict``); engines name the
#: hints they take with these names (``Engine.SUPPORTED_HINTS``).
HINT_TYPES: dict[str, type] = {
    "click": Click,
    "scribble": Scribble,
    "box": Box,
    "extreme_points": ExtremePoints,
    "drawn_slice": DrawnSlice,
    "auto": SliceAuto,
    "group": HintGroup,
}
_NAMES = {v: k for k, v in HINT_TYPES.items()}


def kind_of(interaction: Interaction) -> str:
    """The JSON type name of a hint (``click``, ``scribble``, ``box``, ...)."""
    return _NAMES[type(interaction)]


def to_dict(interaction: Interaction) -> dict:
    if isinstance(interaction, HintGroup):
        return {"type": "group", "hints": [to_dict(h) for h in interaction.hints]}
    d = asdict(interaction)
    for k, v in d.items():
        if isinstance(v, tuple):
            d[k] = list(v)
        elif isinstance(v, list):
            d[k] = [list(p) for p in v]
    return {"type": kind_of(interaction), **d}


#: JSON keys of a hint that hold one point, or a list of points.
_POINT_KEYS = {"ijk", "min_ijk", "max_ijk"}
_POINTS_KEYS = {"voxels", "points_ijk"}


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))


def _check_json_types(kind: str, fields: dict) -> None:
    """JSON types as the format says: "positive" a boolean (the string "false" is not False),
    class, axis and slice index integers, coordinates numbers. Python's own casts would
    accept all of these silently."""
    if "positive" in fields and not isinstance(fields["positive"], (bool, np.bool_)):
        raise InteractionError(f"{kind}: 'positive' must be true or false, got {fields['positive']!r}")
    for key in ("label", "axis", "index"):
        if key in fields and not _is_int(fields[key]):
            raise InteractionError(f"{kind}: {key!r} must be an integer, got {fields[key]!r}")
    points = [fields[k] for k in _POINT_KEYS & fields.keys()]
    for k in _POINTS_KEYS & fields.keys():
        if not isinstance(fields[k], (list, tuple)):
            raise InteractionError(f"{kind}: {k!r} must be a list of points, got {fields[k]!r}")
        points += fields[k]
    for p in points:
        if not isinstance(p, (list, tuple)) or not all(_is_number(v) for v in p):
            raise InteractionError(f"{kind}: a point must be a list of numbers, got {p!r}")


def from_dict(d: dict) -> Interaction:
    if not isinstance(d, dict) or "type" not in d:
        raise InteractionError(f"hint must be an object with a 'type' key, got {d!r}")
    cls = HINT_TYPES.get(d["type"])
    if cls is None:
        raise InteractionError(f"unknown hint type {d['type']!r}; expected one of {sorted(HINT_TYPES)}")
    kwargs = {k: v for k, v in d.items() if k != "type"}
    _check_json_types(d["type"], kwargs)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise InteractionError(f"malformed {d['type']} hint: {e}") from None


def to_json(interactions: Iterable[Interaction]) -> str:
    return json.dumps([to_dict(x) for x in interactions])


def from_json(text: str) -> list[Interaction]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InteractionError(f"hints are not valid JSON: {e}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise InteractionError(f"hints must be an object or a list of objects, got {data!r:.80}")
    if len(data) > MAX_HINTS:
        raise InteractionError(
            f"{len(data)} hints in one file: at most {MAX_HINTS} are taken (a session's hints are a person's "
            "clicks and strokes; split a batch into one file per structure or volume)"
        )
    hints = [from_dict(d) for d in data]
    points = sum(len(m.points) for h in hints for m in members(h))
    if points > MAX_POINTS:
        raise InteractionError(f"the hints hold {points} points: at most {MAX_POINTS} are taken")
    return hints


#: Most hints one file (or one replay) may hold, and most points (scribble voxels) in all:
#: beyond them a session's time and memory grow with no use to a person.
MAX_HINTS = 10_000
MAX_POINTS = 1_000_000


def validate(interaction: Interaction, shape_kji: Sequence[int], labels: Iterable[int] | None = None) -> None:
    """Raise InteractionError unless the hint fits a volume of ``shape_kji`` and a known class."""
    if len(shape_kji) != 3:
        raise InteractionError(f"hints need a 3D volume, got shape {tuple(shape_kji)}")
    if isinstance(interaction, HintGroup):
        for h in interaction.hints:
            validate(h, shape_kji, labels)
        return
    if isinstance(interaction.label, bool) or not isinstance(interaction.label, (int, np.integer)):
        raise InteractionError(f"class must be an integer label, got {interaction.label!r}")
    if isinstance(interaction, SliceAuto):
        if interaction.axis not in AXIS_NAMES:
            raise InteractionError(f"axis must be 0, 1 or 2 (KJI array axis), got {interaction.axis}")
        if not 0 <= interaction.index < shape_kji[interaction.axis]:
            raise InteractionError(
                f"automatic: slice {interaction.index} is outside the volume "
                f"({shape_kji[interaction.axis]} {AXIS_NAMES[interaction.axis]} slices)"
            )
        return
    if interaction.label < 1:
        raise InteractionError(f"class label must be >= 1 (0 is background), got {interaction.label}")
    if labels is not None and interaction.label not in set(labels):
        raise InteractionError(f"unknown class {interaction.label}; known classes: {sorted(labels)}")
    if interaction.axis not in AXIS_NAMES:
        raise InteractionError(f"axis must be 0, 1 or 2 (KJI array axis), got {interaction.axis}")
    size_ijk = (shape_kji[2], shape_kji[1], shape_kji[0])
    for p in interaction.points:
        if any(c < 0 or c >= n for c, n in zip(p, size_ijk, strict=False)):
            raise InteractionError(
                f"{type(interaction).__name__.lower()} point {p} is outside the volume (IJK size {size_ijk})"
            )
    if isinstance(interaction, DrawnSlice) and not 0 <= slice_index(interaction) < shape_kji[interaction.axis]:
        raise InteractionError(
            f"drawn slice {interaction.index} is outside the volume ({shape_kji[interaction.axis]} "
            f"{AXIS_NAMES[interaction.axis]} slices)"
        )
    if isinstance(interaction, (Click, Scribble, DrawnSlice)) and interaction.axis is not None:
        ax = interaction.axis
        idx = {kji(p)[ax] for p in interaction.points}
        if len(idx) > 1:
            raise InteractionError(
                f"{type(interaction).__name__.lower()} spans several {AXIS_NAMES[ax]} slices: {sorted(idx)}"
            )


def slice_points(points_ijk: Sequence[Sequence[int]], axis: int) -> list[tuple[int, int]]:
    """IJK points -> (row, col) on a slice held constant along KJI ``axis``."""
    others = [a for a in range(3) if a != axis]
    return [tuple(kji(p)[o] for o in others) for p in points_ijk]  # type: ignore[misc]


def ijk_from_slice_point(point2d: Sequence[int], axis: int, index: int) -> tuple[int, int, int]:
    """(row, col) on slice ``index`` along KJI ``axis`` -> IJK (inverse of ``slice_points``)."""
    k_j_i = [int(c) for c in point2d]
    k_j_i.insert(axis, int(index))
    return (k_j_i[2], k_j_i[1], k_j_i[0])


def slice_index(interaction: Interaction) -> int:
    """Index along ``interaction.axis`` of the slice the hint was drawn on."""
    if isinstance(interaction, DrawnSlice):  # it names its slice, voxels or none
        assert interaction.index is not None  # set in __post_init__
        return interaction.index
    return kji(interaction.points[0])[interaction.axis]
