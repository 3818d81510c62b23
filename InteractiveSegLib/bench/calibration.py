"""``interactiveseg calibrate-prompt3d``: the 3D prompt network's logit offset, chosen on
the train split by playing the sessions the benchmark plays.

Why: the network (Dice + cross-entropy, blocks with much background) answers short of the
boundary; its probability crosses 0.5 inside the structure. The engine's region follows its
answer, so a small answer compounds: the region zooms out less, and the next round's region,
the box of the answer, is smaller again. One offset added to the logits corrects it. Grid
Dice on single training samples does not see that compounding, so the offset is chosen by
whole sessions (robot hints, quality-chosen corrections, every round) on structures of the
*train* split; the held-out structures the benchmark reports stay unseen.
"""

from __future__ import annotations

import argparse

import numpy as np

from InteractiveSegLib.bench.harness import log, shipped_data
from InteractiveSegLib.bench.vmn import run_volume
from InteractiveSegLib.checkpoints import update_checkpoint
from InteractiveSegLib.engines import create_engine
from InteractiveSegLib.errors import ConfigError
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.methods.vmn.quality_training import DEFAULT_DATASETS
from InteractiveSegLib.session import Session

OFFSETS = (-0.5, 0.0, 0.5, 1.0, 1.5, 2.0)
HINTS = ("scribble", "box", "extreme")
#: structures smaller than this are left out (as the benchmark's ``--min-voxels``)
MIN_VOXELS = 200


def calibrate(
    model: str,
    data: list[str],
    offsets: tuple[float, ...] = OFFSETS,
    hints: tuple[str, ...] = HINTS,
    rounds: int = 6,
    per_volume: int = 6,
    seed: int = 7,
    threads: int = 1,
) -> tuple[float, dict[str, float]]:
    """The offset with the highest mean volume Dice over every round of every session.

    Args:
        model: a ``prompt3d_net`` checkpoint.
        data: data set names or folders (``bench.harness.shipped_data``); their train split.
        offsets: the candidates, added to the logits.
        hints: the first hint's kinds ("scribble", "box", "extreme").
        rounds: hints per session (the first and its corrections).
        per_volume: train structures drawn per volume (0: all).
        seed: the structure draw and the robot's jitter.
        threads: torch CPU threads.
    Returns:
        (the best offset, mean Dice per offset as ``{"1": 0.41, ...}``); ties go to the
        first candidate.
    """
    volumes = shipped_data(data, "train", MIN_VOXELS)
    rng = np.random.default_rng(seed)
    for d in volumes:
        ids = sorted(d.structures)
        if per_volume and len(ids) > per_volume:
            d.structures = {int(v): d.structures[int(v)] for v in sorted(rng.choice(ids, per_volume, replace=False))}
    if not any(d.structures for d in volumes):
        raise ConfigError(f"no train structure of at least {MIN_VOXELS} voxels in {data}")
    means: dict[str, float] = {}
    for offset in offsets:
        engine = create_engine("prompt3d", model_path=model, logit_offset=offset, threads=threads)
        dices: list[float] = []
        for d in volumes:
            engine.set_image(d.image)
            for kind in hints:
                for value, name in d.structures.items():
                    session = Session(d.image, engine, LabelTable.default([1], {1: name}))
                    ref = d.labelmap == value
                    dices += run_volume(session, ref, name, kind, "quality", rounds, seed * 100003 + value).dices
        means[f"{offset:g}"] = float(np.mean(dices))
        log(f"logit offset {offset:+g}: mean Dice {means[f'{offset:g}']:.4f} over {len(dices)} rounds")
    best = max(offsets, key=lambda o: means[f"{o:g}"])
    return float(best), means


def run(args: argparse.Namespace) -> float:
    """Calibrate ``args.model`` and write it (with ``logit_offset`` in its config and the
    table in its meta) to ``args.out``, by default the model file itself."""
    data = args.data.split(",") if args.data else list(DEFAULT_DATASETS)
    offsets = tuple(float(x) for x in args.offsets.split(","))
    hints = tuple(args.hint.split(","))
    for k in hints:
        if k not in HINTS:
            raise ConfigError(f"--hint {k!r}: expected one of {HINTS}")
    best, means = calibrate(args.model, data, offsets, hints, args.rounds, args.per_volume, args.seed, args.threads)
    meta = {
        "calibration": {
            "mean_dice_by_offset": means,
            "data": " + ".join(data) + ", train split",
            "hints": list(hints),
            "rounds": args.rounds,
            "per_volume": args.per_volume,
            "seed": args.seed,
            "command": args.command_line,
        }
    }
    update_checkpoint(args.model, args.out or args.model, {"logit_offset": best}, meta)
    print(f"logit offset {best:+g} written to {args.out or args.model}")
    return best


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the prompt3d checkpoint to calibrate")
    p.add_argument("--out", help="where to write it (default: the model file itself)")
    p.add_argument("--data", help="data set names or folders, their train split (default: the trainer's)")
    p.add_argument(
        "--offsets",
        default=",".join(f"{o:g}" for o in OFFSETS),
        help="candidates, comma-separated (a negative one first: --offsets=-0.5,0,1)",
    )
    p.add_argument("--hint", default=",".join(HINTS), help="first-hint kinds, comma-separated")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--per-volume", type=int, default=6, help="train structures per volume (0: all)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
