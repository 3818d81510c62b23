"""The classes of a segmentation: label value, name and display colour."""

from __future__ import annotations

import colorsys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from InteractiveSegLib.errors import InteractionError


@dataclass(frozen=True)
class LabelEntry:
    value: int
    name: str
    color: tuple[float, float, float]


def default_color(value: int) -> tuple[float, float, float]:
    """Distinct colours by golden-angle hue steps (stable for a given value)."""
    h = (value * 0.618033988749895) % 1.0
    return tuple(round(c, 4) for c in colorsys.hsv_to_rgb(h, 0.65, 0.95))  # type: ignore[return-value]


class LabelTable:
    """Ordered map label value -> (name, colour); value 0 is background and never listed."""

    def __init__(self, entries: Iterable[LabelEntry] = ()) -> None:
        self._entries: dict[int, LabelEntry] = {}
        for e in entries:
            self.add(e.value, e.name, e.color)

    @classmethod
    def default(cls, values: Iterable[int], names: dict[int, str] | None = None) -> LabelTable:
        t = cls()
        for v in values:
            t.add(int(v), (names or {}).get(int(v), f"Segment_{int(v)}"))
        return t

    def add(self, value: int, name: str, color: Sequence[float] | None = None) -> LabelEntry:
        if int(value) < 1:
            raise InteractionError(f"label value must be >= 1, got {value}")
        c = tuple(float(x) for x in (color if color is not None else default_color(int(value))))
        e = LabelEntry(int(value), str(name), c)  # type: ignore[arg-type]
        self._entries[int(value)] = e
        return e

    def __iter__(self) -> Iterator[LabelEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, value: object) -> bool:
        return value in self._entries

    def __getitem__(self, value: int) -> LabelEntry:
        return self._entries[value]

    @property
    def values(self) -> list[int]:
        return list(self._entries)

    def by_name(self, name: str) -> LabelEntry:
        for e in self._entries.values():
            if e.name == name:
                return e
        raise InteractionError(f"unknown class {name!r}; known: {[e.name for e in self]}")

    def to_dict(self) -> list[dict]:
        return [{"value": e.value, "name": e.name, "color": list(e.color)} for e in self]

    @classmethod
    def from_dict(cls, items: list[dict]) -> LabelTable:
        t = cls()
        for d in items:
            t.add(d["value"], d["name"], d.get("color"))
        return t
