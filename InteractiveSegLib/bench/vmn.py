"""3D benchmark of slice-propagation engines (VMN, its memory-less baseline, registration
propagation and Grow from seeds from the corrected slices): per volume and structure, round
after round.

Round 1: the robot gives a hint of the chosen type on the axial slice where the
structure is largest: a scribble (the ../shared/BENCHMARK.md stroke on the whole structure), a
box or four extreme points (from the reference, jittered by up to 10 voxels, VMN 4.2), or
``drawn``: the reference's cross-section itself, as a user who paints the slice and presses
Propagate (the interaction network is not used, so the propagation alone is measured).
Round r > 1: a slice is chosen (``--select``):

- ``quality``: ``Session.suggest_slice()``, the most expected wrong voxels,
  (1 - the quality head's predicted IoU) x the slice's foreground;
- ``random``: a random slice among those the engine propagated (the same candidates);
- ``oracle``: the slice with the most wrong voxels against the reference, among slices
  where the reference or the result has the structure (it also sees slices the
  propagation never reached).

and the robot corrects it with the same hint type: a corrective scribble on the largest
error region, a fresh jittered box / extreme points of the reference, or the slice's
cross-section drawn whole (empty where the structure is absent: the slice is cleared); with
the other types a slice where the structure is absent gets a negative scribble. Volume Dice after
each round; s/propagation is the engine's propagation time; the quality head's
predicted IoU is paired with the true IoU of every propagated slice (Pearson r).
Engines without a quality head fall back to ``random``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from InteractiveSegLib.bench.harness import (
    BenchData,
    as_acquired,
    latency,
    log,
    peak_rss_mb,
    shipped_data,
    user_data,
)
from InteractiveSegLib.bench.options import BenchOptions
from InteractiveSegLib.bench.result import BenchResult
from InteractiveSegLib.engines import create_engine, describe_engine
from InteractiveSegLib.errors import InteractiveSegError
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.metrics import dice, iou, noc, pearson
from InteractiveSegLib.session import Session
from InteractiveSegLib.users.robot import robot_slice_hint

BASELINES: tuple[str, ...] = ()  # every system of this suite is one it owns


def owns(name: str) -> bool:
    """A registered single-class 3D engine (it propagates through the volume)."""
    info = describe_engine(name)
    return info.mode == "3d" and not info.multiclass


HINTS = ("scribble", "box", "extreme", "drawn")
SELECT = ("quality", "random", "oracle")
AXIS = 0  # axial (KJI axis 0), as the paper
#: the engines the speed bar times on a 256 x 256 x 100 block (``full_sweep_seconds``): VMN's
#: propagation (timed over whole slices, the stop rule off) and the one-pass 3D network
VMN_TIMED = ("vmn", "vmn-mem0")
TIMED = (*VMN_TIMED, "prompt3d")


@dataclass
class VolumeRun:
    structure: str
    dices: list[float] = field(default_factory=list)  # after round 1, 2, ...
    ms: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    pairs: list[tuple[float, float]] = field(default_factory=list)  # (predicted, true) IoU
    features: list[np.ndarray] = field(default_factory=list)  # the engine's rating features, per pair
    slices: list[int] = field(default_factory=list)


def choose_slice(
    select: str, session: Session, ref: np.ndarray, done: set[tuple[int, int]], rng: np.random.Generator
) -> tuple[int, int] | None:
    """(axis, index) of the slice to correct next, along the axis the engine's newest round
    propagated (the hint's, or a finer one across thick slices; ``AXIS`` without ratings)."""
    pred = session.labelmap == 1
    ratings = _last_ratings(session)
    axis = ratings.axis if ratings is not None else AXIS
    skip = {i for a, i in done if a == axis}
    n = ref.shape[axis]
    if select == "quality":
        s = session.suggest_slice(exclude=tuple(sorted(skip)))
        if s is not None:
            return s.axis, s.index
        select = "random"
    if select == "random":
        q = None if ratings is None else np.array(ratings.predicted_iou, np.float64)
        if q is not None and np.isfinite(q).any():  # else (no quality head): the slices it labelled
            cand = [i for i in range(n) if i not in skip and np.isfinite(q[i])]
        else:
            cand = [i for i in range(n) if i not in skip and np.take(pred, i, axis=axis).any()]
        return (axis, int(rng.choice(cand))) if cand else None
    truth, found = np.moveaxis(ref, axis, 0), np.moveaxis(pred, axis, 0)
    cand = [i for i in range(n) if i not in skip and (truth[i].any() or found[i].any())]
    # the suggestion's rule with the truth: the most wrong voxels (the paper's lowest IoU
    # points at tips and at the far end of a run carried past the structure)
    if not cand:
        return None
    return axis, max(cand, key=lambda i: (int((truth[i] ^ found[i]).sum()), -i))


def _last_ratings(session: Session):
    """The newest step's slice ratings (None when the engine rates no slice)."""
    prediction = session.history[-1].prediction if session.history else None
    return None if prediction is None else prediction.ratings


def run_volume(
    session: Session, ref: np.ndarray, name: str, kind: str, select: str, rounds: int, seed: int
) -> VolumeRun:
    """One session: the hints' jitter and the random slice choice draw from separate
    generators seeded per structure, so every selection mode gets the same round-1 hint."""
    hint_rng, select_rng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    run = VolumeRun(name)
    done: set[tuple[int, int]] = set()
    chosen: tuple[int, int] | None = (AXIS, int(np.argmax(ref.sum((1, 2)))))
    for r in range(1, rounds + 1):
        if r > 1:
            chosen = choose_slice(select, session, ref, done, select_rng)
        hint = None
        if chosen is not None:
            axis, index = chosen
            done.add(chosen)
            previous = None if r == 1 else np.take(session.labelmap, index, axis=axis) == 1
            hint = robot_slice_hint(kind, np.take(ref, index, axis=axis), previous, axis, index, hint_rng)
        if hint is not None:
            assert chosen is not None  # a hint is drawn on a chosen slice
            run.slices.append(chosen[1])
            t0 = time.perf_counter()
            step = session.add(hint)
            run.ms.append((time.perf_counter() - t0) * 1000)
            prediction = step.prediction
            seconds = prediction.report.seconds if prediction is not None else None
            run.seconds.append(float(seconds) if seconds is not None else np.nan)
            pred = session.labelmap == 1
            ratings = prediction.ratings if prediction is not None else None
            for i, p in enumerate(ratings.predicted_iou if ratings is not None else []):
                if np.isfinite(p):
                    assert ratings is not None
                    a = ratings.axis
                    run.pairs.append((float(p), iou(np.take(ref, i, axis=a), np.take(pred, i, axis=a))))
                    if ratings.features is not None:
                        run.features.append(ratings.features[i])
        run.dices.append(dice(ref, session.labelmap == 1))
    return run


def picked(d: BenchData, max_structures: int, seed: int) -> list[int]:
    """The structures of a shipped volume the benchmark runs: at most ``max_structures``
    (0: all), a sample seeded by ``seed``."""
    ids = sorted(d.structures)
    if not max_structures or len(ids) <= max_structures:
        return ids
    return sorted(int(v) for v in np.random.default_rng(seed).choice(ids, max_structures, replace=False))


def summarize(
    engine: str, data: BenchData, kind: str, select: str, runs: list[VolumeRun], rounds: int
) -> dict[str, Any]:
    keys = list(range(1, rounds + 1))
    per_structure: dict[str, dict[str, Any]] = {
        r.structure: {
            "dice_at": {str(k): r.dices[k - 1] for k in keys},
            "noc85": noc(r.dices, 0.85, rounds),
            "noc90": noc(r.dices, 0.90, rounds),
            "s_per_propagation": float(np.nanmedian(r.seconds)) if r.seconds else None,
            "slices": r.slices,
        }
        for r in runs
    }
    ms = np.concatenate([r.ms for r in runs]) if runs else np.zeros(0)
    secs = np.array([s for r in runs for s in r.seconds], np.float64)
    pairs = np.array([p for r in runs for p in r.pairs], np.float64).reshape(-1, 2)
    quality_r = pearson(pairs[:, 0], pairs[:, 1])

    def mean(key: str, k: str | None = None) -> float:
        if not per_structure:
            return float("nan")
        return float(np.mean([v[key][k] if k is not None else v[key] for v in per_structure.values()]))

    return {
        "engine": engine,
        "mode": "3d",
        "hint": kind,
        "select": select,
        "data": data.name,
        "shape": list(data.image.shape),
        "structures": list(per_structure),
        "dice_at": {str(k): mean("dice_at", str(k)) for k in keys},
        "noc85": mean("noc85"),
        "noc90": mean("noc90"),
        "noc_cap": rounds,
        "ms_per_interaction": latency(ms),
        "s_per_propagation": float(np.nanmedian(secs)) if np.isfinite(secs).any() else None,
        "quality_pearson": quality_r,
        "quality_pairs": int(len(pairs)),
        "peak_rss_mb": peak_rss_mb(),
        "sessions": len(runs),
        "per_structure": per_structure,
    }


def full_sweep_seconds(engine_name: str, shape: tuple[int, int, int] = (100, 256, 256)) -> dict[str, float]:
    """s for one propagation over every slice of a (slices, 256, 256) block of Colin27
    (zero-padded), from a box on the middle slice, the stop rule off, on whole slices (a 3D
    network: its own region, zoomed out as it needs): the speed bar's volume. ``cold``: first
    round on the volume; ``warm``: a later round (the engine's own propagation time,
    ``Prediction.report.seconds``)."""
    from InteractiveSegLib.data import datasets
    from InteractiveSegLib.hints import Box
    from InteractiveSegLib.volume import Volume

    lv = datasets.load("colin27")
    img = np.zeros(shape, np.float32)
    src = lv.image.array[40 : 40 + shape[0]]
    img[:, : src.shape[1], : src.shape[2]] = src[:, : shape[1], : shape[2]]
    # VMN: a margin of 256 (whole slices), no stop rule; a 3D network sizes its own region
    whole_slices = {"stop_after": 10**6, "margin": 256} if engine_name in VMN_TIMED else {}
    engine = create_engine(engine_name, **whole_slices)
    volume = Volume(img, lv.image.geometry)
    mid = shape[0] // 2
    h, w = shape[1] / 256, shape[2] / 256  # the box of a 256 x 256 slice, scaled to the slice's size
    box = Box((int(90 * w), int(100 * h), mid), (int(130 * w), int(140 * h), mid), label=1, axis=AXIS)
    seconds: list[float] = []
    for _ in range(2):  # the first round computes the query encodings, later rounds reuse them
        session = Session(volume, engine, LabelTable.default([1]))
        step = session.add(box)
        report = step.prediction.report if step.prediction is not None else None
        seconds.append(report.seconds if report is not None and report.seconds is not None else float("nan"))
    return {"cold": seconds[0], "warm": seconds[1]}


def run(args: BenchOptions) -> list[BenchResult]:
    engines = args.engines.split(",")
    kinds = args.hint.split(",")
    selects = args.select.split(",")
    for k in kinds:
        if k not in HINTS:
            raise InteractiveSegError(f"--hint {k!r}: expected one of {HINTS}")
    for s in selects:
        if s not in SELECT:
            raise InteractiveSegError(f"--select {s!r}: expected one of {SELECT}")
    rounds = args.rounds or 6
    if args.image:
        assert args.labels is not None  # --image and --labels go together (bench.run)
        data = [user_data(args.image, args.labels, args.structures.split(",") if args.structures else None)]
    else:
        names = args.data if args.data != "colin27,inia19,mni152" else "colin27,inia19"
        data = shipped_data(names.split(","), args.split, args.min_voxels)
        for d in data:
            d.structures = {v: d.structures[v] for v in picked(d, args.max_structures, args.seed)}
    data = [
        as_acquired(d, finer=args.finer_voxels, thick=args.thick_slices, axis=args.thick_axis, as_mri=args.as_mri)
        for d in data
    ]
    results: list[dict[str, Any]] = []
    for engine_name in engines:
        engine = None
        for d in data:
            engine = create_engine(engine_name)
            engine.set_image(d.image)
            for kind in kinds:
                for select in selects:
                    t0 = time.time()
                    runs = []
                    for value, name in d.structures.items():
                        session = Session(d.image, engine, LabelTable.default([1], {1: name}))
                        runs.append(
                            run_volume(
                                session,
                                d.labelmap == value,
                                name,
                                kind,
                                select,
                                rounds,
                                args.seed * 100003 + int(value),
                            )
                        )
                    r = summarize(engine_name, d, kind, select, runs, rounds)
                    log(
                        f"{engine_name} {kind} {select} on {d.name}: Dice@1 {r['dice_at']['1']:.3f} "
                        f"Dice@{rounds} {r['dice_at'][str(rounds)]:.3f} ({time.time() - t0:.0f} s)"
                    )
                    results.append(r)
        if engine is not None and not args.no_speed and engine_name in TIMED:
            sweep = full_sweep_seconds(engine_name)
            for r in results:
                if r["engine"] == engine_name:
                    r["s_per_propagation_256x256x100"] = sweep
    return [BenchResult.from_figures(r) for r in results]


def _sweep(r: dict[str, Any]) -> str:
    s = r.get("s_per_propagation_256x256x100")
    return "—" if not s else f"{s['cold']:.2f} / {s['warm']:.2f}"


def markdown(results: list[dict[str, Any]]) -> str:
    rounds = max(int(k) for r in results for k in r["dice_at"]) if results else 0
    head = (
        "| engine | hint | select | data | structures | "
        + " | ".join(f"Dice@{k}" for k in range(1, rounds + 1))
        + " | s/propagation | s 256x256x100 cold / warm | Pearson Q | peak RSS MB |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    f = lambda x: "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.3f}"  # noqa: E731
    for r in results:
        lines.append(
            f"| {r['engine']} | {r['hint']} | {r['select']} | {r['data']} {tuple(r['shape'])} | "
            f"{len(r['structures'])} | "
            + " | ".join(f(r["dice_at"].get(str(k))) for k in range(1, rounds + 1))
            + f" | {f(r['s_per_propagation'])} | {_sweep(r)} | {f(r['quality_pearson'])} | {r['peak_rss_mb']} |"
        )
    return "\n".join(lines)
