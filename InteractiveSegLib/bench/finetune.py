"""Benchmark of scribble-aware fine-tuning (../shared/papers/scribble-aware-test-time-finetuning.txt,
Table 3 left, Fig. 5/6 ablations) against Grow from seeds and the click engine.

Base model (``--base-model``, default ``sim_auto.pt``): the SIM automatic network, trained
on the *left* hemisphere's deep grey nuclei of Colin27. It is deliberately mismatched
to what it is asked here: the right hemisphere's nuclei (held out, same classes) and two
structures it never learnt (``Hippocampus_R``, ``Amygdala_R``; each gets a new output
channel). ``--image/--labels``: every structure of that volume (at most
``--max-structures``), matched to the model's classes by name, else new.

2D (``finetune``, ablation variants, ``growcut``, ``click``): per structure, up to
``--max-slices`` axial slices (seeded), one session per slice and engine. Round 0 is the
un-tuned model (empty for the engines without a model); each round the robot of
../shared/BENCHMARK.md draws one scribble on the largest error region of the structure (a click for
``click``), positive on a miss, negative on a false positive. Slice Dice of the structure
(on the shipped data only in the right half of the slice). ``ms_per_interaction`` is the
time of one round through the Session (hint to updated labelmap).

3D (``finetune-3d``): one session per structure on the whole volume; round 0 runs the
model on the volume, each round the robot scribbles on the axial slice holding the
largest 3D error region; volume Dice (right hemisphere). The ROI of each round and
its time are recorded; a run with a fixed 128³ ROI gives the time bar's figure.

Ablation (``--ablation``): ``finetune-l{1,2,3,all}`` (layers l; the default is 6),
``finetune-norg`` (no region growing), ``finetune-m{5,25,50}`` (iterations M),
``finetune-anchor`` (far voxels keep their label, our option), ``finetune-bginit`` (a new
label's channel copied from the background filter instead of imprinted), next to the default.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from InteractiveSegLib.bench.harness import latency, log, padded_to_256, peak_rss_mb
from InteractiveSegLib.bench.options import BenchOptions
from InteractiveSegLib.bench.result import BenchResult
from InteractiveSegLib.data import datasets
from InteractiveSegLib.engines import create_engine
from InteractiveSegLib.engines.base import Engine
from InteractiveSegLib.errors import InteractiveSegError
from InteractiveSegLib.hints import Click, Interaction, Scribble, SliceAuto, ijk_from_slice_point
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.methods.finetune.engine import AdaptationReport, ScribbleFinetuneEngine
from InteractiveSegLib.metrics import dice, noc
from InteractiveSegLib.session import Session
from InteractiveSegLib.users.robot import robot_click, robot_scribble
from InteractiveSegLib.volume import Volume

ROUNDS = 5
NEW_STRUCTURES = ("Hippocampus_R", "Amygdala_R")
ABLATION = (
    "finetune-l1",
    "finetune-l2",
    "finetune-l3",
    "finetune-lall",
    "finetune-norg",
    "finetune-m5",
    "finetune-m25",
    "finetune-m50",
    "finetune-anchor",
    "finetune-bginit",
)
BASELINES = ("growcut", "click")
_VARIANT = re.compile(r"^finetune(-3d)?((?:-l(?:\d+|all))|(?:-norg)|(?:-m\d+)|(?:-anchor)|(?:-bginit))*$")


def owns(name: str) -> bool:
    """``finetune``, ``finetune-3d`` and their ablation variants (``finetune-l2-norg`` ...)."""
    return bool(_VARIANT.match(name))


def engine_kwargs(name: str) -> dict[str, Any]:
    """``finetune-l2-norg-m15`` -> settings of that variant (defaults elsewhere)."""
    if not _VARIANT.match(name):
        raise InteractiveSegError(f"unknown fine-tuning variant {name!r}")
    kw: dict[str, Any] = {}
    for part in name.split("-")[1:]:
        if part == "3d":
            kw["mode"] = "3d"
        elif part == "norg":
            kw["region_growing"] = False
        elif part == "anchor":
            kw["anchor_weight"] = 0.5
        elif part == "bginit":
            kw["new_label_init"] = "background"
        elif part == "lall":
            kw["layers"] = 0
        elif part.startswith("l"):
            kw["layers"] = int(part[1:])
        elif part.startswith("m"):
            kw["iterations"] = int(part[1:])
    return kw


@dataclass
class Target:
    """One structure: its reference, the session label it is drawn with, where Dice counts."""

    name: str
    reference: np.ndarray  # KJI bool, already restricted to ``window``
    value: int  # session label (model class, or a new label >= the model's class count)
    new: bool  # the base model never learnt it
    window: tuple[slice, slice, slice]


@dataclass
class Run:
    structure: str
    new: bool
    dices: list[float] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)
    converged: list[bool] = field(default_factory=list)
    rois: list[list[int] | None] = field(default_factory=list)


# -- data ----------------------------------------------------------------------------------------
def shipped_targets(classes: list[str]) -> tuple[str, Volume, list[Target]]:
    """Colin27's right hemisphere: the model's nuclei (held out) and two new structures."""
    from InteractiveSegLib.data.multiclass_tasks import load_task

    lv = datasets.load("colin27")
    task = load_task("colin27-deep-grey")
    lo, hi = task.side_cols("test")
    window = (slice(None), slice(None), slice(lo, hi))
    out = []
    for cls, cname in enumerate(task.task.classes[1:], start=1):
        ref = np.zeros(lv.image.shape, bool)
        ref[window] = task.target[window] == cls
        value = classes.index(cname) if cname in classes else len(classes) + cls
        out.append(Target(cname, ref, value, cname not in classes, window))
    by_name = {e.name: e.value for e in lv.labels.labels}
    for k, sname in enumerate(NEW_STRUCTURES):
        ref = np.zeros(lv.image.shape, bool)
        ref[window] = lv.labels.labelmap[window] == by_name[sname]
        out.append(Target(sname.split("_")[0].lower(), ref, len(classes) + 10 + k, True, window))
    return "colin27 right hemisphere", lv.image, out


def user_targets(
    image: str, labels: str, classes: list[str], structures: list[str] | None, limit: int
) -> tuple[str, Volume, list[Target]]:
    from InteractiveSegLib.bench.harness import user_data

    data = user_data(image, labels, structures)
    lower = [c.lower() for c in classes]
    full = (slice(None),) * 3
    out = []
    for k, (v, n) in enumerate(sorted(data.structures.items())[: limit or None]):
        base = re.sub(r"[_ ](l|r|left|right)$", "", n.lower())
        known = base in lower
        value = lower.index(base) if known else len(classes) + 10 + k
        out.append(Target(n, data.labelmap == v, value, not known, full))
    return data.name, data.image, out


# -- sessions ------------------------------------------------------------------------------------
def _table(engine_labels: LabelTable, t: Target) -> LabelTable:
    table = LabelTable.default(engine_labels.values, {e.value: e.name for e in engine_labels})
    if t.value not in table:
        table.add(t.value, t.name)
    return table


def _current(session: Session, t: Target, axis: int, index: int) -> np.ndarray:
    pred = np.zeros(session.labelmap.shape, bool)
    pred[t.window] = session.labelmap[t.window] == t.value
    return np.take(pred, index, axis=axis)


def run_slice(engine: Engine, kind: str, t: Target, axis: int, index: int, rounds: int) -> Run:
    """One robot session on one slice (``kind``: "finetune", "growcut" or "click")."""
    assert engine.volume is not None, "set_image() first"
    if kind == "finetune":
        assert isinstance(engine, ScribbleFinetuneEngine)
        engine.reset_adaptation()  # every session starts from the source model
        session = Session(engine.volume, engine, labels=_table(engine.label_table(), t))
        session.automatic(axis, index)
    else:
        session = Session(engine.volume, engine, labels=LabelTable.default([t.value], {t.value: t.name}))
    ref = np.take(t.reference, index, axis=axis)
    run = Run(t.name, t.new, dices=[dice(ref, _current(session, t, axis, index))])
    for _ in range(rounds):
        pred = _current(session, t, axis, index)
        hint: Interaction | None
        if kind == "click":
            c = robot_click(ref, pred)
            hint = (
                None
                if c is None
                else Click(ijk_from_slice_point(c.point, axis, index), label=t.value, positive=c.positive, axis=axis)
            )
        else:
            s = robot_scribble(ref, pred)
            hint = (
                None
                if s is None
                else Scribble(
                    [ijk_from_slice_point(p, axis, index) for p in s[0]], label=t.value, positive=s[1], axis=axis
                )
            )
        if hint is not None:
            t0 = time.perf_counter()
            step = session.add(hint)
            run.ms.append((time.perf_counter() - t0) * 1000)
            report = step.prediction.report if step.prediction is not None else None
            if isinstance(report, AdaptationReport) and report.converged is not None:
                run.iterations.append(int(report.iterations))
                run.converged.append(bool(report.converged))
        run.dices.append(dice(ref, _current(session, t, axis, index)))
    return run


def largest_error_slice(ref: np.ndarray, pred: np.ndarray) -> int:
    """Axial slice holding most of the largest 3D error component (../shared/BENCHMARK.md, 3D robot)."""
    import cc3d

    err = ref ^ pred
    lab = cc3d.connected_components(err.astype(np.uint8), connectivity=26)
    counts = np.bincount(lab.ravel())
    counts[0] = 0
    comp = lab == int(np.argmax(counts))
    return int(np.argmax(comp.sum((1, 2))))


def run_volume(engine: ScribbleFinetuneEngine, t: Target, rounds: int) -> Run:
    assert engine.volume is not None, "set_image() first"
    engine.reset_adaptation()
    session = Session(engine.volume, engine, labels=_table(engine.label_table(), t))
    session.add(SliceAuto(0, 0))  # the model on the whole volume
    pred = np.zeros_like(t.reference)

    def current() -> np.ndarray:
        pred[...] = False
        pred[t.window] = session.labelmap[t.window] == t.value
        return pred

    run = Run(t.name, t.new, dices=[dice(t.reference, current())])
    for _ in range(rounds):
        p = current()
        k = largest_error_slice(t.reference, p)
        s = robot_scribble(t.reference[k], p[k])
        if s is not None:
            t0 = time.perf_counter()
            step = session.add(
                Scribble([ijk_from_slice_point(q, 0, k) for q in s[0]], label=t.value, positive=s[1], axis=0)
            )
            run.ms.append((time.perf_counter() - t0) * 1000)
            report = step.prediction.report if step.prediction is not None else None
            assert isinstance(report, AdaptationReport)
            run.iterations.append(int(report.iterations))
            run.converged.append(bool(report.converged))
            run.rois.append(report.roi)
        run.dices.append(dice(t.reference, current()))
    return run


# -- timing bars -----------------------------------------------------------------------------
def latency_256(engine_kwargs_: dict[str, Any], rounds: int = 3, slices: int = 6) -> dict[str, Any]:
    """ms per scribble round on 256 x 256 axial slices (Colin27 padded), putamen."""
    lv = datasets.load("colin27")
    a = lv.image.array
    vol = padded_to_256(lv.image)
    engine = ScribbleFinetuneEngine(**engine_kwargs_)
    engine.set_image(vol)
    ref3d = np.zeros(vol.shape, bool)
    by_name = {e.name: e.value for e in lv.labels.labels}
    ref3d[:, : a.shape[1], : a.shape[2]] = np.isin(lv.labels.labelmap, [by_name["Putamen_L"], by_name["Putamen_R"]])
    ks = np.nonzero(ref3d.sum((1, 2)) >= 64)[0]
    t = Target("putamen", ref3d, 2, False, (slice(None),) * 3)
    runs = [run_slice(engine, "finetune", t, 0, int(k), rounds) for k in np.linspace(ks[0], ks[-1], slices).astype(int)]
    ms = np.concatenate([r.ms for r in runs])
    its = np.concatenate([r.iterations for r in runs])
    return {
        **latency(ms),
        "slice": [256, 256],
        "rounds": int(ms.size),
        "iterations_median": float(np.median(its)),
    }


def roi_128(engine_kwargs_: dict[str, Any], rounds: int = 3) -> dict[str, Any]:
    """s per round of ``finetune-3d`` with a 128³ ROI on Colin27 (caudate, held-out side)."""
    lv = datasets.load("colin27")
    kw = {**engine_kwargs_, "mode": "3d", "min_roi": (128, 128, 128)}
    engine = ScribbleFinetuneEngine(**kw)
    engine.set_image(lv.image)
    _, _, targets = shipped_targets(list(engine.spec.labels))
    run = run_volume(engine, targets[0], rounds)
    s = np.array(run.ms) / 1000
    return {
        "median_s": float(np.median(s)),
        "max_s": float(s.max()),
        "roi": run.rois[0] if run.rois else None,
        "rounds": int(s.size),
        "iterations": run.iterations,
        "converged": run.converged,
    }


# -- summary --------------------------------------------------------------------------------------
def summarize(name: str, mode: str, data: str, runs: list[Run], rounds: int, hint: str) -> dict[str, Any]:
    def mean_dice(rs: list[Run]) -> dict[str, float]:
        return {str(k): float(np.mean([r.dices[k] for r in rs])) for k in range(rounds + 1)} if rs else {}

    def noc_mean(rs: list[Run], target: float) -> float | None:
        return float(np.mean([noc(r.dices[1:], target, rounds) for r in rs])) if rs else None

    ms = np.concatenate([r.ms for r in runs]) if runs else np.zeros(0)
    its = np.concatenate([r.iterations for r in runs]) if runs else np.zeros(0)
    conv = np.concatenate([r.converged for r in runs]) if runs else np.zeros(0)
    per: dict[str, dict[str, Any]] = {}
    for s in dict.fromkeys(r.structure for r in runs):
        rs = [r for r in runs if r.structure == s]
        per[s] = {
            "dice_at": mean_dice(rs),
            "noc85": noc_mean(rs, 0.85),
            "noc90": noc_mean(rs, 0.90),
            "sessions": len(rs),
            "new_label": rs[0].new,
        }
    return {
        "engine": name,
        "mode": mode,
        "hint": hint,
        "data": data,
        "structures": list(per),
        "dice_at": mean_dice(runs),
        "dice_at_known": mean_dice([r for r in runs if not r.new]),
        "dice_at_new": mean_dice([r for r in runs if r.new]),
        "noc85": noc_mean(runs, 0.85),
        "noc90": noc_mean(runs, 0.90),
        "noc_cap": rounds,
        "ms_per_interaction": latency(ms),
        "iterations": {
            "median": float(np.median(its)),
            "mean": float(its.mean()),
            "converged_fraction": float(conv.mean()),
        }
        if its.size
        else None,
        "s_per_propagation": None,
        "peak_rss_mb": peak_rss_mb(),
        "sessions": len(runs),
        "per_structure": per,
    }


def run(args: BenchOptions) -> list[BenchResult]:
    rounds = args.rounds or ROUNDS
    names = [e for e in args.engines.split(",") if e]
    if args.ablation:
        names += [a for a in ("finetune", *ABLATION) if a not in names]
    base: dict[str, Any] = {"model": args.base_model} if args.base_model else {}
    if args.base_spec:
        import json

        base["spec"] = json.loads(open(args.base_spec).read())
    probe = ScribbleFinetuneEngine(**base)
    classes = list(probe.spec.labels)
    if args.image:
        assert args.labels is not None  # --image and --labels go together (bench.run)
        data_name, volume, targets = user_targets(
            args.image,
            args.labels,
            classes,
            args.structures.split(",") if args.structures else None,
            args.max_structures,
        )
    else:
        data_name, volume, targets = shipped_targets(classes)
    rng = np.random.default_rng(args.seed)
    axis = 0
    cases: list[tuple[Target, int]] = []
    for t in targets:
        ks = np.nonzero(t.reference.sum((1, 2)) >= args.min_area)[0]
        n = args.max_slices or 10
        if len(ks) > n:
            ks = np.sort(rng.choice(ks, n, replace=False))
        cases += [(t, int(k)) for k in ks]
    results: list[dict[str, Any]] = []
    for name in names:
        t0 = time.time()
        engine: Engine
        if name == "finetune-3d" or name.startswith("finetune-3d-"):
            engine = ScribbleFinetuneEngine(**{**base, **engine_kwargs(name)})
            engine.set_image(volume)
            runs = [run_volume(engine, t, rounds) for t in targets]
            r = summarize(name, "3d", data_name, runs, rounds, "scribble")
            r["rois"] = {x.structure: x.rois for x in runs}
            if not args.no_speed:
                r["s_per_round_roi128"] = roi_128({**base, **engine_kwargs(name)})
        else:
            if name.startswith("finetune"):
                kind, engine = "finetune", ScribbleFinetuneEngine(**{**base, **engine_kwargs(name)})
            else:
                kind, engine = name, create_engine(name)
            engine.set_image(volume)
            runs = [run_slice(engine, kind, t, axis, k, rounds) for t, k in cases]
            r = summarize(name, "2d", data_name, runs, rounds, "click" if kind == "click" else "scribble")
            if kind == "finetune" and not args.no_speed:
                r["ms_per_interaction_256"] = latency_256({**base, **engine_kwargs(name)})
        results.append(r)
        d = r["dice_at"]
        shown = ", ".join(f"@{k} {d[k]:.3f}" for k in ("0", "1", "3", str(rounds)) if k in d)
        log(f"{name}: Dice {shown} ({time.time() - t0:.0f} s)")
    return [BenchResult.from_figures(r) for r in results]


def markdown(results: list[dict[str, Any]]) -> str:
    ks = sorted({int(k) for r in results for k in r["dice_at"]})
    head = (
        "| engine | mode | structures | "
        + " | ".join(f"Dice@{k}" for k in ks)
        + " | ms/round median / p95 | iterations median (converged) |"
    )
    lines = [
        "Dice vs scribble rounds (paper Table 3 left); round 0 = the un-tuned model:",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    for r in results:
        for group, key in (("all", "dice_at"), ("known", "dice_at_known"), ("new", "dice_at_new")):
            if not r[key]:
                continue
            ms = r["ms_per_interaction"]
            msd = f"{ms['median']:.0f} / {ms['p95']:.0f}" if ms["median"] is not None else "—"
            it = r["iterations"]
            its = f"{it['median']:.0f} ({it['converged_fraction']:.0%})" if it else "—"
            lines.append(
                f"| {r['engine']} | {r['mode']} | {group} | "
                + " | ".join(f"{r[key][str(k)]:.3f}" for k in ks)
                + f" | {msd} | {its} |"
            )
    for r in results:
        if "ms_per_interaction_256" in r:
            m = r["ms_per_interaction_256"]
            lines.append(
                f"\n{r['engine']}: {m['median']:.0f} / {m['p95']:.0f} ms per round (median / p95) on 256 x 256 slices, "
                f"{m['iterations_median']:.0f} iterations median"
            )
        if "s_per_round_roi128" in r:
            m = r["s_per_round_roi128"]
            lines.append(
                f"\n{r['engine']}: {m['median_s']:.2f} s per round (median; max {m['max_s']:.2f}) on a {m['roi']} ROI, "
                f"iterations {m['iterations']}"
            )
    return "\n".join(lines)
