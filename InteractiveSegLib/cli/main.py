"""The ``interactiveseg`` console script: demo, bench, segment, online, train-click, train-sim,
train-vmn, engines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from InteractiveSegLib.errors import InteractiveSegError


def _segment(args: argparse.Namespace) -> None:
    """Apply saved hints (JSON, as the Slicer module's batch API takes them) to a volume."""
    from InteractiveSegLib.engines import create_engine
    from InteractiveSegLib.hints import from_json
    from InteractiveSegLib.io import read_volume, write_seg_nrrd
    from InteractiveSegLib.session import Session, labels_for_hints

    vol = read_volume(args.image)
    hints = from_json(Path(args.hints).read_text())
    kwargs = {"model": args.model} if args.model else {}
    if args.model_spec:
        import json

        kwargs["spec"] = json.loads(Path(args.model_spec).read_text())
    engine = create_engine(args.engine, **kwargs)
    labels = labels_for_hints(engine, hints)
    session = Session(vol, engine, labels)
    for h in hints:
        session.add(h)
    print(f"wrote {write_seg_nrrd(args.out, session.labelmap, vol.geometry, labels)}")


def _online(args: argparse.Namespace) -> None:
    """A site's online-learning task from the command line: a fully labelled volume joins
    it (``--labels``), and/or the task's segmenter segments a volume (``--predict``)."""
    import numpy as np

    from InteractiveSegLib.io import read_labels, read_volume, write_seg_nrrd
    from InteractiveSegLib.labels import LabelTable
    from InteractiveSegLib.methods.online.learner import DynamicLearner
    from InteractiveSegLib.methods.online.task_folder import TaskStore

    vol = read_volume(args.image)
    with TaskStore.open(args.task) as store:
        learner = DynamicLearner(store=store)
        if args.labels:
            seg = read_labels(args.labels, reference=vol)
            if args.structure:
                value = int(args.structure) if args.structure.isdigit() else seg.labels.by_name(args.structure).value
                mask = seg.labelmap == value
            else:
                mask = seg.labelmap > 0
            if not mask.any():
                raise InteractiveSegError(f"{args.labels} has no voxel of {args.structure or 'any structure'}")
            report = learner.learn_volume(vol.array, mask, key=Path(args.image).name.split(".")[0])
            print(
                f"learnt {args.image}: loss {report.losses[0]:.3f} -> {report.losses[-1]:.3f} "
                f"in {report.train_seconds:.1f} s"
            )
        if args.predict:
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

    b = sub.add_parser("bench", help="robot-user benchmark (see BENCHMARK.md)")
    bench_cli.add_arguments(b)

    s = sub.add_parser("segment", help="apply a hints JSON file to a volume, write .seg.nrrd")
    s.add_argument("--image", required=True)
    s.add_argument("--hints", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--engine", default="click")
    s.add_argument("--model", help="finetune: the model to adapt (checkpoint, TorchScript, MONAI bundle directory)")
    s.add_argument("--model-spec", help="finetune: JSON spec of --model (labels, preprocessing) if not beside it")

    o = sub.add_parser("online", help="an online-learning task: learn from a labelled volume, segment a new one")
    o.add_argument("--task", required=True, help="the task directory (created if missing; locked while in use)")
    o.add_argument("--image", required=True)
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
    sub.add_parser("engines", help="list registered engines")

    args = p.parse_args(argv)
    args.command_line = "interactiveseg " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        if args.cmd == "demo":
            from InteractiveSegLib.cli import demo

            demo.run(args.out, args.engine, args.clicks)
        elif args.cmd == "bench":
            from InteractiveSegLib import bench

            bench.run(bench_cli.options(args, args.command_line))
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
        elif args.cmd == "engines":
            from InteractiveSegLib.engines import available_engines

            print("\n".join(available_engines()))
    except InteractiveSegError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
