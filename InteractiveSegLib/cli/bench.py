"""``interactiveseg bench`` arguments, grouped by the suite that reads them."""

from __future__ import annotations

import argparse

from InteractiveSegLib.bench import SUITES
from InteractiveSegLib.bench.options import BenchOptions, add_acquisition_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = BenchOptions()
    p.add_argument("--engines", default=d.engines, help="comma-separated registry names (or a suite's system names)")
    p.add_argument("--suite", choices=SUITES, help="the benchmark suite (default: the one that owns the engines)")
    p.add_argument("--image", help="a volume of your own (NIfTI, NRRD, MHA, DICOM folder)")
    p.add_argument("--labels", help="its reference labels (labelmap or .seg.nrrd)")
    p.add_argument("--structures", help="comma-separated names or label values (default: all)")
    p.add_argument("--data", default=d.data, help="shipped datasets when --image is not given")
    p.add_argument("--split", default=d.split, choices=["test", "train", "all"], help="structures of the shipped data")
    p.add_argument(
        "--rounds",
        type=int,
        help="interactions per session: robot clicks on a slice (sim, default 20), propagation rounds on a volume "
        "(vmn, 6), scribble rounds (finetune, 5), annotation steps per volume (online, 6)",
    )
    p.add_argument(
        "--max-slices",
        type=int,
        help="slices per structure and axis (click: 20, finetune: 10; sim: every held-out slice)",
    )
    p.add_argument("--min-area", type=int, default=d.min_area, help="smallest structure area (voxels) on a slice")
    p.add_argument("--min-voxels", type=int, default=d.min_voxels, help="smallest structure volume (voxels)")
    p.add_argument("--no-speed", action="store_true", help="skip the suite's separate timing runs")
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--json", help="write results here (the result format of README, 'Benchmark')")
    p.add_argument("--markdown", help="write the table here too")
    c = p.add_argument_group("click (2D single-class engines)")
    c.add_argument("--axes", default=d.axes, help="slice axes to sample (0 axial, 1 coronal, 2 sagittal)")
    c.add_argument("--max-clicks", type=int, default=d.max_clicks)
    s = p.add_argument_group("sim (multi-class engines)")
    s.add_argument("--task", default=d.task, help="multi-class task (data/multiclass_tasks.py)")
    s.add_argument(
        "--ablation",
        action="store_true",
        help="sim: Auto, SDG-base, SDG-CIM, DDG-CIM and DDG-SIM; finetune: layers, growing, iterations",
    )
    s.add_argument(
        "--robot",
        default=d.robot,
        help="comma-separated: 'largest' clicks the largest region missing a class (the benchmark robot), 'per-class' "
        "clicks every class missing a region each interaction (the paper's test-time virtual user)",
    )
    v = p.add_argument_group("vmn (3D propagation engines)")
    v.add_argument("--hint", default=d.hint, help="scribble, box, extreme, drawn (the whole slice); comma-separated")
    v.add_argument("--select", default=d.select, help="slice to correct next: quality, random, oracle")
    v.add_argument("--max-structures", type=int, default=d.max_structures, help="per shipped volume (0: all)")
    add_acquisition_arguments(v)
    f = p.add_argument_group("finetune")
    f.add_argument(
        "--base-model", help="the model to adapt (checkpoint, TorchScript, MONAI bundle; default sim_auto.pt)"
    )
    f.add_argument("--base-spec", help="JSON spec of --base-model (labels, preprocessing), if not beside it")
    o = p.add_argument_group("online (learning across volumes)")
    o.add_argument("--stream", action="store_true", help="the stream experiment (dynamic-learning paper)")
    o.add_argument("--stream-length", type=int, default=d.stream_length, help="training-split volumes (0: all)")
    o.add_argument("--eval-volumes", type=int, default=d.eval_volumes, help="held-out volumes (0: all)")


def options(args: argparse.Namespace, command: str) -> BenchOptions:
    """The parsed arguments as the benchmark's options."""
    fields = BenchOptions.__dataclass_fields__
    return BenchOptions(**{k: v for k, v in vars(args).items() if k in fields}, command=command)
