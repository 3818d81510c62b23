"""Multi-class benchmark of the SIM engine and its ablation
(../shared/papers/sim-sequential-interaction-memory.txt, 5.2).

Per held-out slice of the task, one session per engine: interaction 0 is the automatic
result (empty memory); at every further interaction the deterministic robot of
../shared/BENCHMARK.md clicks once, at the centre of the largest region that misses a class,
labelled with that class (background included), and the engine answers with every class.
Figures per class and number of clicks: Dice and IoU, averaged over the slices where the
class is present; ``dice_at`` is the mean over the foreground classes; NoC on the slice's
mean foreground Dice. Grow from seeds gets the same robot, every click a seed of its class.
Latency is also measured through a ``Session`` on 256 x 256 slices.

``--robot per-class`` is the paper's test-time virtual user instead (5.2.1: "at test time,
clicks are generated via the virtual user"): every interaction clicks once in the largest
region missing each class, so k interactions give each class up to k clicks, as in its
Figure 7. DDG-SIM is compared with every other system slice by slice (paired bootstrap and
Wilcoxon), so a difference on the smallest class can be told from noise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from InteractiveSegLib.bench.harness import latency, log, padded_to_256, peak_rss_mb
from InteractiveSegLib.bench.options import BenchOptions
from InteractiveSegLib.bench.report import summary_table
from InteractiveSegLib.bench.result import BenchResult
from InteractiveSegLib.data.multiclass_tasks import TaskData, TaskSlice, get_task, load_task
from InteractiveSegLib.engines import create_engine, engine_class
from InteractiveSegLib.engines.base import SeedGrower
from InteractiveSegLib.errors import EngineError, ImageError, InteractiveSegError
from InteractiveSegLib.methods.sim.engine import VARIANTS
from InteractiveSegLib.methods.sim.memory import State, click_masks
from InteractiveSegLib.metrics import noc, paired, scores
from InteractiveSegLib.preprocessing import one_hot
from InteractiveSegLib.users.multiclass import RobotUser

ABLATION = ("auto", "sdg-base", "sdg-cim", "ddg-cim", "ddg-sim")
BASELINES = ("growcut",)


def owns(name: str) -> bool:
    """``sim`` and the systems of its ablation (``ddg-sim``, ``auto``, ``ddg-sim-d3`` ...)."""
    return name == "sim" or name in ABLATION or name in VARIANTS


CLICK_TABLE = (0, 1, 2, 3, 6)


@dataclass
class SliceRun:
    dice: list[np.ndarray] = field(default_factory=list)  # per round: (N,) Dice, NaN where the class is absent
    iou: list[np.ndarray] = field(default_factory=list)
    clicks: list[int] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)


class SIMRunner:
    """One ablation system on 2D images: ``first`` (automatic) then ``next(states)``."""

    def __init__(self, variant: str, **engine_kwargs: Any) -> None:
        from InteractiveSegLib.methods.sim.engine import SIMEngine

        engine = create_engine("sim", variant=variant, **engine_kwargs)
        assert isinstance(engine, SIMEngine)
        self.engine = engine  # its image-level API: probabilities(image, states), decide(probabilities)
        self.n = self.engine.num_classes

    def first(self, image: np.ndarray) -> np.ndarray:
        return self.engine.probabilities(image, [])

    def next(self, image: np.ndarray, states: list[State]) -> np.ndarray:
        return self.engine.probabilities(image, states)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        if self.engine.multilabel:  # overlapping classes: each class on its own, background = none
            fg = probs[1:] > 0.5
            return np.concatenate([~fg.any(0, keepdims=True), fg])
        return one_hot(self.engine.decide(probs), self.n)


class GrowCutRunner:
    """Slicer's Grow from seeds with every click so far as a seed of its class."""

    def __init__(self, num_classes: int) -> None:
        grower = engine_class("growcut")  # registered from outside the library (entry point)
        if grower is None or not issubclass(grower, SeedGrower):
            raise EngineError("the growcut baseline needs the InteractiveSegSlicer package and slicer-core")
        self.grow = grower.grow_seeds
        self.n = num_classes
        self.seeds: np.ndarray | None = None

    def first(self, image: np.ndarray) -> np.ndarray:
        self.seeds = np.zeros(image.shape, np.uint8)
        p = np.zeros((self.n, *image.shape), np.float32)
        p[0] = 1.0
        return p

    def next(self, image: np.ndarray, states: list[State]) -> np.ndarray:
        clicks = states[-1].clicks
        assert self.seeds is not None, "first() starts the session"
        for c in range(self.n):
            self.seeds[clicks[c] > 0] = c + 1
        present = np.unique(self.seeds[self.seeds > 0])
        if present.size == 0:
            return self.first(image)
        labels = self.grow(image, self.seeds) - 1  # one seed kind only: it fills the slice, as in Slicer
        return one_hot(labels.astype(np.int16), self.n).astype(np.float32)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        return probs > 0.5


def run_slice(
    runner: SIMRunner | GrowCutRunner, image: np.ndarray, target: np.ndarray, rounds: int, per_class: bool = False
) -> SliceRun:
    """One robot session on one slice; ``target`` is the (N, H, W) boolean reference.
    ``per_class``: every interaction clicks each class that misses a region (the paper's
    test-time virtual user) instead of only the largest region (../shared/BENCHMARK.md)."""
    n = target.shape[0]
    robot = RobotUser(target, per_class=per_class)
    out = SliceRun()
    probs = runner.first(image)
    states: list[State] = []
    for r in range(rounds + 1):
        pred = runner.decide(probs)
        d, j = scores(target, pred)
        out.dice.append(d)
        out.iou.append(j)
        if r == rounds:
            break
        clicks = robot.step(pred)
        out.clicks.append(len(clicks))
        if not clicks:  # nothing left to correct: the result stands
            continue
        states.append(State(click_masks(clicks, n, image.shape), probs))
        t0 = time.perf_counter()
        probs = runner.next(image, states)
        out.ms.append((time.perf_counter() - t0) * 1000)
    return out


ROBOTS = {
    "largest": "one robot click (largest region missing a class), every class answered",
    "per-class": (
        "one robot click per class that misses a region (the paper's test-time virtual user), every class answered"
    ),
}


def summarize(
    name: str, data_name: str, classes: list[str], runs: list[SliceRun], rounds: int, robot: str = "largest"
) -> dict[str, Any]:
    dice = np.array([r.dice for r in runs])  # (slices, rounds + 1, N)
    iou = np.array([r.iou for r in runs])
    with np.errstate(invalid="ignore"):
        per_d = np.nanmean(dice, 0)  # (rounds + 1, N)
        per_j = np.nanmean(iou, 0)
        slice_fg = np.nanmean(dice[:, :, 1:], 2)  # mean foreground Dice per slice and round
    keys = [k for k in (0, 1, 2, 3, 5, 6, 10, 20) if k <= rounds]

    def noc_mean(t: float) -> float:
        hits = [noc(s[1 : rounds + 1], t, rounds) for s in slice_fg]
        return float(np.mean(hits))

    ms = np.concatenate([r.ms for r in runs]) if runs else np.zeros(0)
    per_class = {
        c: {
            "dice_at": {str(k): float(per_d[k, i]) for k in keys},
            "iou_at": {str(k): float(per_j[k, i]) for k in keys},
            "slices": int(np.sum(~np.isnan(dice[:, 0, i]))),
        }
        for i, c in enumerate(classes)
    }
    return {
        "engine": name,
        "mode": "2d",
        "hint": "click",
        "data": data_name,
        "structures": classes[1:],
        "dice_at": {str(k): float(np.nanmean(per_d[k, 1:])) for k in keys},
        "iou_at": {str(k): float(np.nanmean(per_j[k, 1:])) for k in keys},
        "noc85": noc_mean(0.85),
        "noc90": noc_mean(0.90),
        "noc_cap": rounds,
        "robot": robot,
        "interaction": ROBOTS[robot],
        "clicks_per_interaction": float(np.mean(np.concatenate([r.clicks for r in runs]))) if runs else 0.0,
        "ms_per_interaction": latency(ms),
        "s_per_propagation": None,
        "peak_rss_mb": peak_rss_mb(),
        "sessions": len(runs),
        "per_class": per_class,
        "per_structure": {c: v for c, v in per_class.items() if c != classes[0]},
    }


def latency_256(variant: str, interactions: int = 40) -> dict[str, Any]:
    """Hint -> updated labelmap through a Session on 256 x 256 axial slices (Colin27 padded)."""
    from InteractiveSegLib.data import datasets
    from InteractiveSegLib.hints import Click, ijk_from_slice_point
    from InteractiveSegLib.session import Session

    lv = datasets.load("colin27")
    vol = padded_to_256(lv.image)
    session = Session(vol, "sim", variant=variant)
    n = len(session.labels) + 1
    rng = np.random.default_rng(0)
    times: list[float] = []
    for k in range(interactions):
        index = 60 + (k // 4) * 3  # four clicks per slice, then a new slice (its automatic pass included)
        rc = (int(rng.integers(60, 160)), int(rng.integers(50, 140)))
        cls = int(rng.integers(1, n))
        t0 = time.perf_counter()
        session.add(Click(ijk_from_slice_point(rc, 0, index), label=cls, axis=0))
        times.append((time.perf_counter() - t0) * 1000)
    return {**latency(times), "slice": [256, 256], "interactions": interactions}


def user_task_data(task_name: str, image: str, labels: str) -> TaskData:
    """A volume of the same task given by the user: classes found by name, else by value 1..N-1."""
    from InteractiveSegLib.io import read_labels, read_volume
    from InteractiveSegLib.preprocessing import normalize_intensity

    task = get_task(task_name)
    vol = read_volume(image)
    seg = read_labels(labels, reference=vol)
    names = {e.name.lower(): e.value for e in seg.labels}
    target = np.zeros(vol.shape, np.uint8)
    for cls, cname in enumerate(task.classes[1:], start=1):
        value = names.get(cname.lower(), cls)
        target[seg.labelmap == value] = cls
    if not target.any():
        raise ImageError(f"{labels} holds none of the classes of {task_name}: {list(task.classes[1:])}")
    return TaskData(task, normalize_intensity(vol.array), target, vol.shape[2], "low")


def slices_for(data: TaskData, args: BenchOptions, user: bool) -> list[TaskSlice]:
    """Held-out slices: the task's test split (``--split train``: its training split), or every
    slice with foreground of a user's volume; at most ``--max-slices`` per axis (fixed seed)
    when given."""
    axes = args.axis_list()
    if user:
        out = []
        for axis in axes:
            other = tuple(a for a in range(3) if a != axis)
            idx = np.nonzero((data.target > 0).sum(other) >= args.min_area)[0]
            out += [TaskSlice(axis, int(i), (0, data.image.shape[2 if axis != 2 else 1])) for i in idx]
    else:  # --split train: the training slices, to choose among snapshots without the held-out ones
        out = data.slices("train" if args.split == "train" else "test", min_area=args.min_area, axes=axes)
    if args.max_slices:
        rng = np.random.default_rng(args.seed)
        picked: list[TaskSlice] = []
        for axis in axes:
            these = [s for s in out if s.axis == axis]
            if len(these) > args.max_slices:
                these = [these[i] for i in sorted(rng.choice(len(these), args.max_slices, replace=False))]
            picked += these
        out = picked
    return out


def _class_dice(runs: list[SliceRun], cls: int) -> np.ndarray:
    """(slices, rounds + 1) Dice of one class, NaN where the slice lacks it."""
    return np.array([r.dice for r in runs])[:, :, cls]


def smallest_class(data: TaskData, slices: list[TaskSlice]) -> int:
    """The foreground class with the fewest reference pixels on the benchmarked slices."""
    area = sum(data.slice_target(s).sum((1, 2)) for s in slices)
    return 1 + int(np.argmin(area[1:]))


def run(args: BenchOptions) -> list[BenchResult]:
    """The SIM part of ``interactiveseg bench`` (engines ``sim``, ablation names, ``growcut``),
    once per robot of ``--robot``; DDG-SIM is compared slice by slice with every other system.
    Slices of every orientation unless ``axes`` names others than the default axial one."""
    if args.axes == "0":
        args = replace(args, axes="0,1,2")
    user = bool(args.image)
    if args.image:
        assert args.labels is not None  # --image and --labels go together (bench.run)
        data = user_task_data(args.task, args.image, args.labels)
        data_name = args.image
    else:
        data = load_task(args.task)
        data_name = f"{args.task} {'training' if args.split == 'train' else 'held-out'} split"
    classes = list(data.task.classes)
    slices = slices_for(data, args, user)
    small = smallest_class(data, slices)
    names = list(ABLATION) if args.ablation else []
    for e in args.engines.split(","):
        e = "ddg-sim" if e == "sim" else e
        if e not in names:
            names.append(e)
    robots = [r for r in str(args.robot).split(",") if r]
    unknown = [r for r in robots if r not in ROBOTS]
    if unknown:
        raise InteractiveSegError(f"unknown robot {unknown}; expected {sorted(ROBOTS)}")
    rounds = args.rounds or 20
    ks = [k for k in CLICK_TABLE if k <= rounds]
    results: list[dict[str, Any]] = []
    for robot in robots:
        runs_of: dict[str, list[SliceRun]] = {}
        result_of: dict[str, dict[str, Any]] = {}
        for name in names:
            t0 = time.time()
            runner: SIMRunner | GrowCutRunner = GrowCutRunner(len(classes)) if name == "growcut" else SIMRunner(name)
            runs = runs_of[name] = [
                run_slice(runner, data.slice(s)[0], data.slice_target(s), rounds, robot == "per-class") for s in slices
            ]
            r = summarize(name, data_name, classes, runs, rounds, robot)
            r["smallest_class"] = classes[small]
            if name != "growcut" and not args.no_speed and robot == robots[0]:
                r["ms_per_interaction_256"] = latency_256(name)
            results.append(r)
            result_of[name] = r
            shown = ", ".join(f"@{k} {r['dice_at'][k]:.3f}" for k in ("0", "1", "3") if k in r["dice_at"])
            log(f"{name} ({robot} robot): mean foreground Dice {shown} ({time.time() - t0:.0f} s)")
        if "ddg-sim" in runs_of:
            result_of["ddg-sim"]["paired"] = {
                other: {
                    classes[c]: paired(_class_dice(runs_of["ddg-sim"], c), _class_dice(theirs, c), ks)
                    for c in range(1, len(classes))
                }
                for other, theirs in runs_of.items()
                if other != "ddg-sim"
            }
    return [BenchResult.from_figures(r) for r in results]


def _row_name(r: dict[str, Any]) -> str:
    return f"{r['engine']} ({r.get('robot', 'largest')})"


def markdown(results: list[dict[str, Any]]) -> str:
    """The SIM tables, then ../shared/BENCHMARK.md's summary table."""
    return sim_tables(results) + "\n\n" + summary_table(results)


def sim_tables(results: list[dict[str, Any]], at: int = 3) -> str:
    """The paper's Table 1 (per-class IoU / Dice after ``at`` clicks), Figure 7 (IoU vs clicks),
    DDG-SIM's paired differences on the smallest class, and the ../shared/BENCHMARK.md summary. Rows are
    named ``engine (robot)``."""
    classes = list(results[0]["per_class"])
    at = min(at, max(int(k) for k in results[0]["dice_at"]))
    head = "| system (robot) | " + " | ".join(f"{c} IoU | {c} Dice" for c in classes) + " |"
    lines = [
        f"Per-class IoU / Dice after {at} interactions (paper Table 1):",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    for r in results:
        cells = [
            f"{r['per_class'][c]['iou_at'][str(at)]:.3f} | {r['per_class'][c]['dice_at'][str(at)]:.3f}" for c in classes
        ]
        lines.append(f"| {_row_name(r)} | " + " | ".join(cells) + " |")
    lat = [
        f"{r['engine']} {r['ms_per_interaction_256']['median']:.1f} / {r['ms_per_interaction_256']['p95']:.1f}"
        for r in results
        if "ms_per_interaction_256" in r
    ]
    if lat:
        lines += ["", "ms per interaction (median / p95) through a Session on 256 x 256 slices: " + "; ".join(lat)]
    ks = [k for k in CLICK_TABLE if str(k) in results[0]["dice_at"]]
    for metric in ("iou_at", "dice_at"):
        name = "IoU" if metric == "iou_at" else "Dice"
        lines += ["", f"Per-class {name} vs number of robot interactions (paper Figure 7):", ""]
        head = "| system (robot) | class | " + " | ".join(f"{k}" for k in ks) + " |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        for r in results:
            for c in classes:
                lines.append(
                    f"| {_row_name(r)} | {c} | "
                    + " | ".join(f"{r['per_class'][c][metric][str(k)]:.3f}" for k in ks)
                    + " |"
                )
    for r in results:
        small = r.get("smallest_class")
        if "paired" not in r or small is None:
            continue
        lines += [
            "",
            f"DDG-SIM minus each system on the smallest class ({small}), {r['robot']} robot: mean Dice difference "
            "[95 % bootstrap interval over slices] (Wilcoxon p) after k interactions:",
            "",
        ]
        head = "| vs | " + " | ".join(f"{k}" for k in ks) + " |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        for other, per in r["paired"].items():
            cells = []
            for k in ks:
                v = per[small].get(str(k))
                cells.append(
                    "—"
                    if v is None
                    else f"{v['diff']:+.3f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}] ({v['p_wilcoxon']:.2g})"
                )
            lines.append(f"| {other} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
