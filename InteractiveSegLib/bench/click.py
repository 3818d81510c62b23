"""``interactiveseg bench``: every engine, same robot, same slices, one table (../shared/BENCHMARK.md).

2D engines are measured per slice: for each structure, up to ``max_slices`` slices where
it is present (fixed seed), one session per slice, the robot clicks at the centre of the
largest error region; slice Dice after each click. Figures: Dice@k, NoC@85/90 (cap 20,
a miss counts 20), ms per interaction (hint -> updated labelmap), peak RSS.
"""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from InteractiveSegLib.data import datasets
from InteractiveSegLib.engines import create_engine
from InteractiveSegLib.hints import Click
from InteractiveSegLib.hints import ijk_from_slice_point as to_ijk
from InteractiveSegLib.io import read_labels, read_volume
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.metrics import dice, noc
from InteractiveSegLib.session import Session
from InteractiveSegLib.users.robot import robot_click
from InteractiveSegLib.volume import Volume

DICE_AT = (0, 1, 2, 3, 5, 10)
NOC_CAP = 20


@dataclass
class BenchData:
    name: str
    image: Volume
    labelmap: np.ndarray
    structures: dict[int, str]


@dataclass
class SliceResult:
    structure: str
    dices: list[float] = field(default_factory=list)  # after 0, 1, 2, ... clicks
    ms: list[float] = field(default_factory=list)

    def dice_at(self, k: int) -> float:
        return self.dices[min(k, len(self.dices) - 1)]

    def noc(self, target: float) -> int:
        return noc(self.dices[1:], target, NOC_CAP)


def shipped_data(names: Iterable[str], split: str, min_voxels: int) -> list[BenchData]:
    out = []
    for name in names:
        lv = datasets.load(name)
        counts = np.bincount(lv.labels.labelmap.ravel(), minlength=max(lv.labels.labels.values) + 1)
        ids = [v for v in lv.structures(split) if counts[v] >= min_voxels]
        out.append(BenchData(name, lv.image, lv.labels.labelmap, {v: lv.labels.labels[v].name for v in ids}))
    return out


def user_data(image: str, labels: str, structures: list[str] | None) -> BenchData:
    vol = read_volume(image)
    seg = read_labels(labels, reference=vol)
    table = {e.value: e.name for e in seg.labels}
    if structures:
        table = {v: n for v, n in table.items() if n in structures or str(v) in structures}
        missing = set(structures) - set(table.values()) - {str(v) for v in table}
        if missing:
            raise SystemExit(f"structures not in the labels: {sorted(missing)}")
    return BenchData(Path(image).name.split(".")[0], vol, seg.labelmap, table)


def sample_slices(mask: np.ndarray, axis: int, max_slices: int, min_area: int, rng: np.random.Generator) -> list[int]:
    areas = mask.sum(axis=tuple(a for a in range(3) if a != axis))
    idx = np.nonzero(areas >= min_area)[0]
    if len(idx) > max_slices:
        idx = np.sort(rng.choice(idx, size=max_slices, replace=False))
    return [int(i) for i in idx]


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


def bench_engine(engine_name: str, data: BenchData, args) -> dict:
    rng = np.random.default_rng(args.seed)
    engine = create_engine(engine_name)
    engine.set_image(data.image)
    results: list[SliceResult] = []
    for value, name in data.structures.items():
        mask = data.labelmap == value
        for axis in args.axes:
            for index in sample_slices(mask, axis, args.max_slices or 20, args.min_area, rng):
                session = Session(data.image, engine, LabelTable.default([1], {1: name}))
                gt2d = np.take(mask, index, axis=axis)
                results.append(run_slice_session(session, gt2d, axis, index, name, args.max_clicks))
    return summarize(engine_name, data, results)


def summarize(engine_name: str, data: BenchData, results: list[SliceResult]) -> dict:
    by_structure: dict[str, list[SliceResult]] = {}
    for r in results:
        by_structure.setdefault(r.structure, []).append(r)
    per_structure = {
        s: {
            "dice_at": {str(k): float(np.mean([r.dice_at(k) for r in rs])) for k in DICE_AT},
            "noc85": float(np.mean([r.noc(0.85) for r in rs])),
            "noc90": float(np.mean([r.noc(0.90) for r in rs])),
            "slices": len(rs),
        }
        for s, rs in by_structure.items()
    }
    ms = np.concatenate([r.ms for r in results]) if results else np.zeros(0)

    def mean_over_structures(get):
        return float(np.mean([get(v) for v in per_structure.values()])) if per_structure else float("nan")

    return {
        "engine": engine_name,
        "mode": "2d",
        "hint": "click",
        "data": data.name,
        "structures": list(per_structure),
        "dice_at": {str(k): mean_over_structures(lambda v: v["dice_at"][str(k)]) for k in DICE_AT},
        "noc85": mean_over_structures(lambda v: v["noc85"]),
        "noc90": mean_over_structures(lambda v: v["noc90"]),
        "ms_per_interaction": {
            "median": float(np.median(ms)) if ms.size else None,
            "p95": float(np.percentile(ms, 95)) if ms.size else None,
        },
        "s_per_propagation": None,
        "peak_rss_mb": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "sessions": len(results),
        "per_structure": per_structure,
    }


def markdown(results: list[dict]) -> str:
    head = (
        "| engine | data | mode | structures | sessions | "
        + " | ".join(f"Dice@{k}" for k in DICE_AT)
        + " | NoC@85 | NoC@90 | ms median | ms p95 | peak RSS MB |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        ms = r["ms_per_interaction"]
        lines.append(
            f"| {r['engine']}{' (' + r['robot'] + ' robot)' if 'robot' in r else ''} | {r['data']} | {r['mode']} | {len(r['structures'])} | {r.get('sessions', '')} | "
            + " | ".join(f"{r['dice_at'].get(str(k), float('nan')):.3f}" for k in DICE_AT)
            + f" | {r['noc85']:.2f} | {r['noc90']:.2f} | {ms['median'] or float('nan'):.1f} | {ms['p95'] or float('nan'):.1f} | {r['peak_rss_mb']} |"
        )
    return "\n".join(lines)


def add_arguments(p) -> None:
    p.add_argument("--engines", default="click,growcut", help="comma-separated registry names")
    p.add_argument("--image", help="a volume of your own (NIfTI, NRRD, MHA, DICOM folder)")
    p.add_argument("--labels", help="its reference labels (labelmap or .seg.nrrd)")
    p.add_argument("--structures", help="comma-separated names or label values (default: all)")
    p.add_argument("--data", default="colin27,inia19,mni152", help="shipped datasets when --image is not given")
    p.add_argument("--split", default="test", choices=["test", "train", "all"], help="structures of the shipped data")
    p.add_argument("--axes", default="0", help="slice axes to sample (0 axial, 1 coronal, 2 sagittal)")
    p.add_argument(
        "--max-slices",
        type=int,
        default=None,
        help="slices per structure and axis (default 20); SIM: per axis (default: every held-out slice)",
    )
    p.add_argument("--max-clicks", type=int, default=NOC_CAP)
    p.add_argument("--min-area", type=int, default=64, help="smallest structure area (voxels) on a sampled slice")
    p.add_argument("--min-voxels", type=int, default=1000, help="smallest structure volume (voxels) benchmarked")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task", default="colin27-deep-grey", help="multi-class task of the SIM engines (tasks.py)")
    p.add_argument(
        "--ablation",
        action="store_true",
        help="SIM: run Auto, SDG-base, SDG-CIM, DDG-CIM and DDG-SIM; fine-tuning: layers, growing, iterations",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="SIM: robot clicks per slice (default 20); VMN: rounds per volume (default 6); fine-tuning: scribble rounds (default 5); online: steps per volume (default 6)",
    )
    p.add_argument(
        "--robot",
        default="largest,per-class",
        help="SIM, comma-separated: 'largest' clicks the largest region missing a class (BENCHMARK.md), 'per-class' "
        "clicks every class missing a region each interaction (the paper's test-time virtual user)",
    )
    p.add_argument("--hint", default="scribble", help="VMN: scribble, box, extreme (comma-separated for several)")
    p.add_argument(
        "--select", default="quality", help="VMN: slice to correct next: quality, random, oracle (comma-separated)"
    )
    p.add_argument(
        "--max-structures",
        type=int,
        default=8,
        help="VMN: held-out structures per shipped volume (seeded sample; 0: all)",
    )
    p.add_argument("--no-speed", action="store_true", help="VMN: skip the 256x256x100 full-sweep timing")
    p.add_argument(
        "--base-model",
        help="fine-tuning: the model to adapt (checkpoint, TorchScript, MONAI bundle; default sim_auto.pt)",
    )
    p.add_argument(
        "--base-spec", help="fine-tuning: JSON spec of --base-model (labels, preprocessing), if not beside it"
    )
    p.add_argument(
        "--stream", action="store_true", help="online learning: the stream experiment (dynamic-learning paper)"
    )
    p.add_argument(
        "--stream-length", type=int, default=40, help="online learning: training-split volumes in the stream (0: all)"
    )
    p.add_argument("--eval-volumes", type=int, default=16, help="online learning: held-out volumes (0: all)")
    p.add_argument("--json", help="write results here (format of BENCHMARK.md)")
    p.add_argument("--markdown", help="write the table here too")


def is_multiclass_run(args) -> bool:
    from InteractiveSegLib.bench.sim import ABLATION
    from InteractiveSegLib.methods.sim.engine import VARIANTS

    names = set(args.engines.split(","))
    return bool(getattr(args, "ablation", False)) or bool(names & ({"sim"} | set(ABLATION) | set(VARIANTS)))


def is_online_run(args) -> bool:
    return bool(getattr(args, "stream", False)) or any(
        e == "online" or e.startswith("online-") for e in args.engines.split(",")
    )


def is_finetune_run(args) -> bool:
    return any(e.startswith("finetune") for e in args.engines.split(","))


def is_propagation_run(args) -> bool:
    from InteractiveSegLib.bench.vmn import ENGINES

    return bool(set(args.engines.split(",")) & set(ENGINES))


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    if bool(args.image) != bool(args.labels):
        raise SystemExit("--image and --labels go together")
    if is_online_run(args):
        from InteractiveSegLib.bench import online as online_bench

        results = online_bench.run(args)
        return _report(args, results, online_bench.markdown(results))
    if is_finetune_run(args):
        from InteractiveSegLib.bench import finetune as finetune_bench

        results = finetune_bench.run(args)
        return _report(args, results, finetune_bench.markdown(results))
    if is_multiclass_run(args):
        return _run_multiclass(args)
    if is_propagation_run(args):
        from InteractiveSegLib.bench import vmn as vmn_bench

        results = vmn_bench.run(args)
        return _report(args, results, vmn_bench.markdown(results))
    args.axes = [int(a) for a in str(args.axes).split(",")]
    if args.image:
        data = [user_data(args.image, args.labels, args.structures.split(",") if args.structures else None)]
    else:
        data = shipped_data(args.data.split(","), args.split, args.min_voxels)
        if args.structures:
            want = set(args.structures.split(","))
            for d in data:
                d.structures = {v: n for v, n in d.structures.items() if n in want or str(v) in want}
    results = []
    for engine in args.engines.split(","):
        for d in data:
            t0 = time.time()
            r = bench_engine(engine, d, args)
            print(
                f"{engine} on {d.name}: Dice@5 {r['dice_at']['5']:.3f}, NoC@85 {r['noc85']:.2f} ({time.time() - t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
            results.append(r)
    return _report(args, results, markdown(results))


def _run_multiclass(args) -> dict:
    """SIM engines (and Grow from seeds as their baseline) on a multi-class task: sim_bench."""
    from InteractiveSegLib.bench import sim as sim_bench
    from InteractiveSegLib.methods.sim.engine import VARIANTS

    unsupported = [e for e in args.engines.split(",") if e not in ("sim", "growcut", *VARIANTS)]
    if unsupported:
        raise SystemExit(f"engines {unsupported} are single-class: benchmark them without the SIM engines")
    if args.axes == "0":  # the task's held-out slices of every orientation unless told otherwise
        args.axes = "0,1,2"
    results = sim_bench.run(args)
    table = sim_bench.markdown(results) + "\n\n" + markdown(results)
    return _report(args, results, table)


def _report(args, results: list[dict], table: str) -> dict:
    report = {
        "command": getattr(args, "command_line", "interactiveseg " + " ".join(sys.argv[1:])),
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "device": "cpu",
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "results": results,
    }
    print(table)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(table + "\n")
    return report
