"""The 2D suite: single-class engines (``click``, ``growcut``, any registered 2D engine),
slice by slice (../shared/BENCHMARK.md).

For each structure, up to ``max_slices`` slices where it is present (fixed seed), one
session per slice; the robot clicks at the centre of the largest error region; slice
Dice after each click. Figures: Dice@k, NoC@85/90 (cap 20, a miss counts 20), ms per
interaction (hint -> updated labelmap), peak RSS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from InteractiveSegLib.bench.harness import (
    BenchData,
    latency,
    log,
    only_structures,
    peak_rss_mb,
    sample_slices,
    shipped_data,
    user_data,
)
from InteractiveSegLib.bench.options import BenchOptions
from InteractiveSegLib.bench.report import summary_table
from InteractiveSegLib.bench.result import BenchResult
from InteractiveSegLib.engines import create_engine, describe_engine
from InteractiveSegLib.hints import Click
from InteractiveSegLib.hints import ijk_from_slice_point as to_ijk
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.metrics import NOC_CAP, dice, noc
from InteractiveSegLib.session import Session
from InteractiveSegLib.users.robot import robot_click

DICE_AT = (0, 1, 2, 3, 5, 10)
BASELINES: tuple[str, ...] = ()  # every system of this suite is one it owns


def owns(name: str) -> bool:
    """A registered single-class 2D engine."""
    info = describe_engine(name)
    return info.mode == "2d" and not info.multiclass


@dataclass
class SliceResult:
    structure: str
    dices: list[float] = field(default_factory=list)  # after 0, 1, 2, ... clicks
    ms: list[float] = field(default_factory=list)

    def dice_at(self, k: int) -> float:
        return self.dices[min(k, len(self.dices) - 1)]

    def noc(self, target: float) -> int:
        return noc(self.dices[1:], target, NOC_CAP)


def run_slice_session(
    session: Session, gt2d: np.ndarray, axis: int, index: int, name: str, max_clicks: int
) -> SliceResult:
    """One robot session on one slice; stops early once Dice@10 and both NoCs are known."""
    res = SliceResult(name, dices=[0.0 if gt2d.any() else 1.0])
    pred2d = np.zeros_like(gt2d)
    for k in range(1, max_clicks + 1):
        click = robot_click(gt2d, pred2d)
        if click is None:
            res.dices.append(1.0)
        else:
            t0 = time.perf_counter()
            session.add(Click(to_ijk(click.point, axis, index), label=1, positive=click.positive, axis=axis))
            res.ms.append((time.perf_counter() - t0) * 1000)
            pred2d = np.take(session.labelmap, index, axis=axis) == 1
            res.dices.append(dice(gt2d, pred2d))
        if k >= max(DICE_AT) and res.dices[-1] >= 0.90:
            break
    return res


def bench_engine(engine_name: str, data: BenchData, options: BenchOptions) -> BenchResult:
    """Every sampled slice of every structure of ``data``, one session each."""
    rng = np.random.default_rng(options.seed)
    engine = create_engine(engine_name)
    engine.set_image(data.image)
    results: list[SliceResult] = []
    for value, name in data.structures.items():
        mask = data.labelmap == value
        for axis in options.axis_list():
            for index in sample_slices(mask, axis, options.max_slices or 20, options.min_area, rng):
                session = Session(data.image, engine, LabelTable.default([1], {1: name}))
                gt2d = np.take(mask, index, axis=axis)
                results.append(run_slice_session(session, gt2d, axis, index, name, options.max_clicks))
    return summarize(engine_name, data, results)


def summarize(engine_name: str, data: BenchData, results: list[SliceResult]) -> BenchResult:
    by_structure: dict[str, list[SliceResult]] = {}
    for r in results:
        by_structure.setdefault(r.structure, []).append(r)
    per_structure: dict[str, dict[str, Any]] = {
        s: {
            "dice_at": {str(k): float(np.mean([r.dice_at(k) for r in rs])) for k in DICE_AT},
            "noc85": float(np.mean([r.noc(0.85) for r in rs])),
            "noc90": float(np.mean([r.noc(0.90) for r in rs])),
            "slices": len(rs),
        }
        for s, rs in by_structure.items()
    }

    def mean_over_structures(key: str, k: str | None = None) -> float:
        if not per_structure:
            return float("nan")
        return float(np.mean([v[key][k] if k is not None else v[key] for v in per_structure.values()]))

    return BenchResult(
        engine=engine_name,
        mode="2d",
        hint="click",
        data=data.name,
        structures=list(per_structure),
        dice_at={str(k): mean_over_structures("dice_at", str(k)) for k in DICE_AT},
        noc85=mean_over_structures("noc85"),
        noc90=mean_over_structures("noc90"),
        ms_per_interaction=latency(t for r in results for t in r.ms),
        s_per_propagation=None,
        peak_rss_mb=peak_rss_mb(),
        per_structure=per_structure,
        extra={"sessions": len(results)},
    )


def markdown(results: list[dict[str, Any]]) -> str:
    """../shared/BENCHMARK.md's summary table."""
    return summary_table(results, DICE_AT)


def run(options: BenchOptions) -> list[BenchResult]:
    """The 2D suite on the user's volume or the shipped held-out structures."""
    if options.image and options.labels:
        structures = options.structures.split(",") if options.structures else None
        data = [user_data(options.image, options.labels, structures)]
    else:
        data = shipped_data(options.data.split(","), options.split, options.min_voxels)
        only_structures(data, options.structures)
    results = []
    for engine in options.engine_names():
        for d in data:
            t0 = time.time()
            r = bench_engine(engine, d, options)
            log(f"{engine} on {d.name}: Dice@5 {r.dice_at['5']:.3f}, NoC@85 {r.noc85:.2f} ({time.time() - t0:.0f} s)")
            results.append(r)
    return results
