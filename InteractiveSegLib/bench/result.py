"""The result schema of every benchmark suite: one ``BenchResult`` per row of a report,
whose JSON is the result object of ../shared/BENCHMARK.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from InteractiveSegLib.errors import ConfigError


@dataclass
class BenchResult:
    """One engine (or system) on one data set with one kind of hint.

    The fields are the figures every report carries (../shared/BENCHMARK.md); a suite's own figures
    (the SIM ablation's per-class tables, VMN's quality correlation, fine-tuning iterations)
    go in ``extra`` and are written beside them, under their own keys.
    """

    engine: str
    mode: str  # "2d" (per slice) or "3d" (per volume)
    hint: str  # click | scribble | box | extreme | slice
    data: str
    structures: list[str]
    dice_at: dict[str, float]
    noc85: float | None
    noc90: float | None
    ms_per_interaction: dict[str, float | None]
    s_per_propagation: float | None
    peak_rss_mb: int
    per_structure: dict[str, dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ../shared/BENCHMARK.md: the common keys, then the suite's own."""
        common = {k: v for k, v in self.__dict__.items() if k != "extra"}
        clash = set(common) & set(self.extra)
        if clash:
            raise ConfigError(f"extra figures may not reuse the common keys {sorted(clash)}")
        return {**common, **self.extra}

    @classmethod
    def from_figures(cls, figures: dict[str, Any]) -> BenchResult:
        """A result from a suite's figures: the common keys (all required), the rest as extra."""
        common = [f for f in cls.__dataclass_fields__ if f != "extra"]
        missing = [k for k in common if k not in figures]
        if missing:
            raise ConfigError(f"a benchmark result needs {missing}")
        return cls(**{k: figures[k] for k in common}, extra={k: v for k, v in figures.items() if k not in common})
