"""The ``interactiveseg`` console script: demo, bench, bench-memory, segment, online,
train-click, train-sim, train-vmn, pack-training-data, train-prompt3d, calibrate-prompt3d, engines, and commands
installed beside the library (``interactiveseg.commands`` entry points: ``web``, the browser app)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

from InteractiveSegLib.errors import InteractiveSegError


def read_text(path: str, what: str) -> str:
    """A UTF-8 text file given on the command line, or the project's error saying why not."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InteractiveSegError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise InteractiveSegError(f"{what} {path} is a folder, not a file") from None
    except UnicodeDecodeError:
        raise InteractiveSegError(f"{what} {path} is not UTF-8 text") from None
    except OSError as e:
        raise InteractiveSegError(f"{what} {path} cannot be read: {e.strerror}") from None


def read_json(path: str, what: str) -> dict:
    """A JSON object from a file given on the command line."""
    try:
        value = json.loads(read_text(path, what))
    except json.JSONDecodeError as e:
        raise InteractiveSegError(f"{what} {path} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise InteractiveSegError(f"{what} {path} must hold a JSON object, not {type(value).__name__}")
    return value


def one_line(error: BaseException) -> str:
    """An error's message on one line: a library's (torch's unpickling errors, say) can run to
    several, with advice meant for programmers; the first line names the problem."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else type(error).__name__
    return (
        f"{lines[0]} (more with INTERACTIVESEG_DEBUG=1)"
        if not os.environ.get("INTERACTIVESEG_DEBUG")
        else " ".join(lines)
    )


def check_output(path: str, suffix: str) -> None:
    """Refuse, before any computation, an output the command could not write."""
    out = Path(path)
    if not out.name.endswith(suffix):
        raise InteractiveSegError(f"{path}: the output must end in {suffix}")
    if out.is_dir():
        raise InteractiveSegError(f"{path} is a folder: give a file name ending in {suffix}")
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise InteractiveSegError(f"{parent} is not a folder")


def _segment(args: argparse.Namespace) -> None:
    """Apply saved hints (JSON, as the Slicer module's batch API takes them) to a volume."""
    from InteractiveSegLib.engines import create_engine, describe_engine
    from InteractiveSegLib.hints import from_json
    from InteractiveSegLib.io import read_volume, write_seg_nrrd
    from InteractiveSegLib.session import Session, labels_for_hints

    check_output(args.out, ".seg.nrrd")
    hints = from_json(read_text(args.hints, "hints file"))
    if not hints:
        raise InteractiveSegError(f"{args.hints} holds no hint: nothing to segment, {args.out} left as it was")
    kwargs: dict[str, object] = {"model": args.model} if args.model else {}
    if args.model_spec:
        kwargs["spec"] = read_json(args.model_spec, "model spec")
    if args.trust_code:
        kwargs["trust_code"] = True
    if kwargs and not describe_engine(args.engine).adapts_to_image:
        raise InteractiveSegError(
            f"--model, --model-spec and --trust-code are for the fine-tuning engines, not {args.engine!r}"
        )
    vol = read_volume(args.image)
    if args.modality != "auto":
        vol.modality = args.modality
    engine = create_engine(args.engine, **kwargs)
    labels = labels_for_hints(engine, hints)
    session = Session(vol, engine, labels)
    shown = time.monotonic()
    for n, h in enumerate(hints):
        session.add(h)
        if time.monotonic() - shown > 5:  # a long file says how far it is
            print(f"hint {n + 1} of {len(hints)}", file=sys.stderr, flush=True)
            shown = time.monotonic()
    print(f"wrote {write_seg_nrrd(args.out, session.labelmap, vol.geometry, labels)}")


def _bench_memory(args: argparse.Namespace) -> None:
    from dataclasses import asdict

    from InteractiveSegLib.bench import memory
    from InteractiveSegLib.io import write_atomic

    names = args.scenarios.split(",") if args.scenarios else list(memory.SCENARIOS)
    unknown = [n for n in names if n not in memory.SCENARIOS]
    if unknown:
        raise InteractiveSegError(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(memory.SCENARIOS)}")
    if args.json:
        check_output(args.json, ".json")
    results = memory.run(names, tuple(args.shape), args.workdir, args.threads)
    if args.json:
        text = json.dumps({"command": args.command_line, "results": [asdict(r) for r in results]}, indent=1)
        write_atomic(args.json, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _structure_mask(seg, structure: str | None):
    """The voxels of ``structure`` (a name or a label value) in a segmentation; every
    labelled voxel when it is None."""
    if not structure:
        return seg.labelmap > 0
    value = int(structure) if structure.isdigit() else seg.labels.by_name(structure).value
    return seg.labelmap == value


def _online(args: argparse.Namespace) -> None:
    """A site's online-learning task from the command line: a fully labelled volume joins
    it (``--labels``), and/or the task's segmenter segments a volume (``--predict``)."""
    import numpy as np

    from InteractiveSegLib.data import datasets
    from InteractiveSegLib.io import read_labels, read_volume, write_seg_nrrd
    from InteractiveSegLib.labels import LabelTable
    from InteractiveSegLib.methods.online.learner import DynamicLearner
    from InteractiveSegLib.methods.online.task_folder import TaskFolder

    if not args.image and not args.dataset:
        raise InteractiveSegError("give --image (with --labels or --predict) or --dataset")
    vol = read_volume(args.image) if args.image else None
    with TaskFolder.open(args.task) as store:
        learner = DynamicLearner(store=store)
        for lv in datasets.resolve(args.dataset or []):
            if not lv.in_split("train"):
                continue
            mask = _structure_mask(lv.labels, args.structure)
            if mask.any():
                report = learner.learn_volume(lv.image.array, mask, key=lv.name)
                print(f"learnt {lv.name}: loss {report.losses[0]:.3f} -> {report.losses[-1]:.3f}")
        if args.labels and vol is not None:
            mask = _structure_mask(read_labels(args.labels, reference=vol), args.structure)
            if not mask.any():
                raise InteractiveSegError(f"{args.labels} has no voxel of {args.structure or 'any structure'}")
            report = learner.learn_volume(vol.array, mask, key=Path(args.image).name.split(".")[0])
            print(
                f"learnt {args.image}: loss {report.losses[0]:.3f} -> {report.losses[-1]:.3f} "
                f"in {report.train_seconds:.1f} s"
            )
        if args.predict and vol is not None:
            if learner.rounds_trained == 0:
                raise InteractiveSegError(
                    f"the task {args.task} has not learnt anything yet: give it labelled volumes or slices first"
                )
            learner.start_volume(vol.array)
            mask = (learner.prediction() > 0.5).astype(np.uint8)
            print(f"wrote {write_seg_nrrd(args.predict, mask, vol.geometry, LabelTable.default([1], {1: args.name}))}")
        print(
            f"task {args.task}: {learner.volumes_done} volumes, {learner.rounds_trained} training rounds, "
            f"buffer {learner.buffer.buffer}"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="interactiveseg", description="Interactive segmentation engine of the InteractiveSeg Slicer extension"
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("demo", help="simulated click session on Colin27, writes .seg.nrrd + PNG")
    d.add_argument("--out", default="out/demo")
    d.add_argument("--engine", default="click")
    d.add_argument("--clicks", type=int, default=5)

    from InteractiveSegLib.cli import bench as bench_cli

    b = sub.add_parser("bench", help="robot-user benchmark (README, 'Benchmark')")
    bench_cli.add_arguments(b)

    m = sub.add_parser("bench-memory", help="peak memory of segment on a generated 512x512x600 CT")
    m.add_argument(
        "--scenarios",
        help="comma-separated (default: all): " + "click-3-clicks, vmn-box-10-corrections, "
        "finetune-3-scribbles, click-100000-hints",
    )
    m.add_argument("--shape", type=int, nargs=3, default=[600, 512, 512], metavar=("K", "J", "I"))
    m.add_argument("--threads", type=int, default=2)
    m.add_argument("--workdir", help="where the CT is written (default: the system's temporary folder)")
    m.add_argument("--json", help="write the results here")

    s = sub.add_parser("segment", help="apply a hints JSON file to a volume, write .seg.nrrd")
    s.add_argument("--image", required=True)
    s.add_argument("--hints", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--engine", default="click")
    s.add_argument(
        "--modality",
        choices=["auto", "ct", "mr"],
        default="auto",
        help="how the image's intensities are read (default: the file header, else detected from HU)",
    )
    s.add_argument("--model", help="finetune: the model to adapt (checkpoint, TorchScript, MONAI bundle directory)")
    s.add_argument("--model-spec", help="finetune: JSON spec of --model (labels, preprocessing) if not beside it")
    s.add_argument(
        "--trust-code",
        action="store_true",
        help="finetune: let --model run code it names (a spec's network outside MONAI, a bundle's $ expressions)",
    )

    o = sub.add_parser("online", help="an online-learning task: learn from a labelled volume, segment a new one")
    o.add_argument("--task", required=True, help="the task directory (created if missing; locked while in use)")
    o.add_argument("--image", help="a volume to learn (with --labels) or to segment (with --predict)")
    from InteractiveSegLib.training import add_dataset_argument

    add_dataset_argument(o, "Its train volumes join the stream; --structure names the structure (default: all)")
    o.add_argument("--labels", help="reference labels of --image: the volume joins the task's stream")
    o.add_argument("--structure", help="name or value of the structure in --labels (default: every labelled voxel)")
    o.add_argument("--predict", help="write the task segmenter's result for --image here (.seg.nrrd)")
    o.add_argument("--name", default="structure", help="segment name in --predict")

    t = sub.add_parser("train-click", help="train the click FCNN (CPU, < 45 min)")
    from InteractiveSegLib.methods.click import train as click_train

    click_train.add_arguments(t)
    ts = sub.add_parser("train-sim", help="train the SIM network or one of its ablation variants (CPU, < 60 min)")
    from InteractiveSegLib.methods.sim import train as sim_train

    sim_train.add_arguments(ts)
    tv = sub.add_parser("train-vmn", help="train the VMN interaction network or memory network (CPU, < 90 min both)")
    from InteractiveSegLib.methods.vmn import train as vmn_train

    vmn_train.add_arguments(tv)
    pk = sub.add_parser(
        "pack-training-data", help="the 3D trainers' train structures in one file (for a machine without the sources)"
    )
    vmn_train.add_pack_arguments(pk)
    tp = sub.add_parser("train-prompt3d", help="train the 3D prompt network (resumable; a GPU with --device cuda)")
    from InteractiveSegLib.methods.prompt3d import train as prompt3d_train

    prompt3d_train.add_arguments(tp)
    tc = sub.add_parser(
        "calibrate-prompt3d",
        help="choose the 3D prompt network's logit offset on held-out structures the benchmark does not report",
    )
    from InteractiveSegLib.bench import calibration

    calibration.add_arguments(tc)
    sub.add_parser("engines", help="list registered engines")

    plugins = {ep.name: ep for ep in entry_points(group="interactiveseg.commands")}
    for name in plugins:  # commands installed beside the library (``web``: the browser app)
        sub.add_parser(name, help=f"{name} (installed with the Slicer glue; --help for its options)", add_help=False)

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in plugins:
        try:
            return int(plugins[argv[0]].load()(argv[1:]) or 0)
        except ImportError as e:
            print(f"error: interactiveseg {argv[0]} cannot start: {one_line(e)}", file=sys.stderr)
            return 2
    args = p.parse_args(argv)
    args.command_line = "interactiveseg " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        if args.cmd == "demo":
            from InteractiveSegLib.cli import demo

            demo.run(args.out, args.engine, args.clicks)
        elif args.cmd == "bench":
            from InteractiveSegLib import bench

            bench.run(bench_cli.options(args, args.command_line))
        elif args.cmd == "bench-memory":
            _bench_memory(args)
        elif args.cmd == "segment":
            _segment(args)
        elif args.cmd == "online":
            _online(args)
        elif args.cmd == "train-click":
            args.command = args.command_line
            click_train.train(args)
        elif args.cmd == "train-sim":
            args.command = args.command_line
            if args.out is None:
                args.out = f"Resources/Models/sim_{args.variant.replace('-', '_')}.pt"
            sim_train.train(args)
        elif args.cmd == "train-vmn":
            args.command = args.command_line
            vmn_train.train(args)
        elif args.cmd == "pack-training-data":
            vmn_train.pack(args)
        elif args.cmd == "train-prompt3d":
            args.command = args.command_line
            prompt3d_train.train(args)
        elif args.cmd == "calibrate-prompt3d":
            calibration.run(args)
        elif args.cmd == "engines":
            from InteractiveSegLib.engines import available_engines

            print("\n".join(available_engines()))
    except InteractiveSegError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # a file or folder the command was given cannot be used
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug: one line for the user, the traceback on request
        if os.environ.get("INTERACTIVESEG_DEBUG"):
            raise
        print(
            f"error: unexpected {type(e).__name__}: {one_line(e)} "
            "(set INTERACTIVESEG_DEBUG=1 for the traceback and report it)",
            file=sys.stderr,
        )
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
