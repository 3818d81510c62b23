"""``interactiveseg calibrate-prompt3d``: the 3D prompt network's logit offset, chosen by
playing the sessions the benchmark plays on held-out structures it does not report.

Why: the network (Dice + cross-entropy, blocks with much background) answers short of the
boundary; its probability crosses 0.5 inside the structure. The engine's region follows its
answer, so a small answer compounds: the region zooms out less, and the next round's region,
the box of the answer, is smaller again. One offset added to the logits corrects it.

How: by whole sessions (robot hints, quality-chosen corrections, every round), since grid
Dice on single samples does not see the compounding; on structures the network never trained
on, since it is surer of those it did (on the train split the offset hardly matters); and
never on the ones the benchmark reports: the held-out split less the benchmark's own sample
(``bench.vmn.picked``, the issue-20 commands' ``--max-structures 4``) and the structures
named in its other commands (``--exclude``).

The same sessions, at the chosen offset, fit the slice-quality model (``methods.prompt3d.
slice_quality``): every rated slice of every round against its true IoU. Its Pearson r is
measured cross-fitted (fitted on half the structures, read on the other half, both ways)
and stored beside the expected IoU's.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from InteractiveSegLib.bench.harness import as_acquired, log, shipped_data
from InteractiveSegLib.bench.options import BenchOptions, add_acquisition_arguments
from InteractiveSegLib.bench.report import write_text
from InteractiveSegLib.bench.vmn import VolumeRun, picked, run_volume
from InteractiveSegLib.checkpoints import update_checkpoint
from InteractiveSegLib.engines import create_engine
from InteractiveSegLib.errors import ConfigError
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.methods.prompt3d import slice_quality
from InteractiveSegLib.methods.vmn.quality_training import DEFAULT_DATASETS
from InteractiveSegLib.metrics import pearson
from InteractiveSegLib.session import Session

OFFSETS = (-0.5, 0.0, 0.5, 1.0, 1.5, 2.0)
HINTS = ("scribble", "box", "extreme")
#: the kinds ``--hint`` takes: the default's, and the true cross-section drawn every round
#: (Slicer's Propagate, ``bench --hint drawn``), to measure an engine rule on drawn slices
KINDS = (*HINTS, "drawn")
#: structures smaller than this are left out (as the benchmark's ``--min-voxels``)
MIN_VOXELS = 200
#: the benchmark's sample per volume in the issue-20 commands, left out
REPORTED = 4
#: structures the issue-20 commands name (the CT's liver and lung lobe), left out
EXCLUDE = ("liver", "lung_lower_lobe_right")
#: the fewest rated slices the slice-quality model is fitted on
MIN_PAIRS = 10


@dataclass
class Calibration:
    """What ``calibrate`` found: the offset, the table it was chosen by, and the slice-quality
    model fitted on the chosen offset's sessions (None with too few rated slices)."""

    offset: float
    mean_dice_by_offset: dict[str, float]
    slice_quality: dict[str, list[float]] | None = None
    #: Pearson r of predicted vs true slice IoU: the expected IoU's, the model's (cross-fitted)
    pearson: dict[str, float | None] = field(default_factory=dict)
    pairs: int = 0
    #: every session of every offset: offset, volume, structure, hint, voxels, Dice per round
    sessions: list[dict] = field(default_factory=list)


def unreported(data: list[str], reported: int | None = REPORTED, exclude: tuple[str, ...] = EXCLUDE) -> list:
    """The held-out structures of ``data`` that the benchmark does not report.

    Args:
        data: data set names or folders (``bench.harness.shipped_data``).
        reported: the benchmark's ``--max-structures`` (its default seed) whose picks are left
            out; None: none (a user's folder, with no report to keep apart).
        exclude: structure names left out as well.
    Returns:
        ``BenchData`` per volume, with only those structures.
    """
    volumes = shipped_data(data, "test", MIN_VOXELS)
    for d in volumes:
        shown = set() if reported is None else set(picked(d, reported, BenchOptions().seed))
        d.structures = {v: n for v, n in d.structures.items() if v not in shown and n not in exclude}
    return volumes


def calibrate(
    model: str,
    data: list[str],
    offsets: tuple[float, ...] = OFFSETS,
    hints: tuple[str, ...] = HINTS,
    rounds: int = 6,
    per_volume: int = 12,
    seed: int = 7,
    threads: int = 1,
    reported: int | None = REPORTED,
    thick: tuple[int, int] = (1, 0),
    finer: int = 1,
    as_mri: bool = False,
) -> Calibration:
    """The offset with the highest mean volume Dice over every round of every session, and
    the slice-quality model fitted on that offset's sessions.

    Args:
        model: a ``prompt3d_net`` checkpoint.
        data: data set names or folders; their held-out structures the benchmark does not
            report (``unreported``).
        offsets: the candidates, added to the logits.
        hints: the first hint's kinds (``KINDS``).
        rounds: hints per session (the first and its corrections).
        per_volume: structures drawn per volume (0: all).
        seed: the structure draw and the robot's jitter.
        threads: torch CPU threads.
        reported: passed to ``unreported``.
        thick: (slices per thick slice, KJI axis): the sessions play on thick-slice copies
            (``bench.harness.thick_slices``; (1, 0): the volumes as they are).
        finer: fine voxels per voxel side: the sessions play on thin-slice copies
            (``bench.harness.finer_voxels``, before ``thick``; 1: the volumes as they are).
        as_mri: the CTs drawn with an MRI's contrast (``bench.harness.mri_contrast``).
    Returns:
        the best offset (ties go to the first candidate), mean Dice per offset as
        ``{"1": 0.41, ...}``, and the slice-quality model (``fit_slice_quality``).
    """
    volumes = unreported(data, reported)
    rng = np.random.default_rng(seed)
    for d in volumes:
        ids = sorted(d.structures)
        if per_volume and len(ids) > per_volume:
            d.structures = {int(v): d.structures[int(v)] for v in sorted(rng.choice(ids, per_volume, replace=False))}
    volumes = [as_acquired(d, finer=finer, thick=thick[0], axis=thick[1], as_mri=as_mri) for d in volumes]
    if not any(d.structures for d in volumes):
        raise ConfigError(
            f"no unreported held-out structure of at least {MIN_VOXELS} voxels in {data} "
            "(a folder of your own: --include-reported)"
        )
    means: dict[str, float] = {}
    sessions: list[dict] = []
    best: tuple[float, list[tuple[str, VolumeRun]]] | None = None  # the best offset so far, its sessions
    for offset in offsets:
        engine = create_engine("prompt3d", model_path=model, logit_offset=offset, threads=threads)
        played: list[tuple[str, VolumeRun]] = []
        for i, d in enumerate(volumes):
            engine.set_image(d.image)
            for kind in hints:
                for value, name in d.structures.items():
                    session = Session(d.image, engine, LabelTable.default([1], {1: name}))
                    ref = d.labelmap == value
                    run = run_volume(session, ref, name, kind, "quality", rounds, seed * 100003 + value)
                    played.append((f"{i}:{value}", run))
                    sessions.append(
                        {
                            "offset": offset,
                            "volume": d.name,
                            "structure": name,
                            "hint": kind,
                            "voxels": int(ref.sum()),
                            "dice": [float(x) for x in run.dices],
                        }
                    )
        means[f"{offset:g}"] = mean = float(np.mean([x for _, r in played for x in r.dices]))
        log(f"logit offset {offset:+g}: mean Dice {mean:.4f} over {sum(len(r.dices) for _, r in played)} rounds")
        if best is None or mean > means[f"{best[0]:g}"]:  # ties go to the first candidate
            best = (float(offset), played)
    assert best is not None  # offsets is never empty (the CLI's default or the user's list)
    return fit_slice_quality(Calibration(best[0], means, sessions=sessions), best[1])


def fit_slice_quality(found: Calibration, played: list[tuple[str, VolumeRun]]) -> Calibration:
    """``found`` with the slice-quality model fitted on every rated slice of ``played``
    ((structure key, session) pairs), and the Pearson r it reaches on structures it was not
    fitted on (two halves of the structures, each read by the model of the other).

    Args:
        found: the chosen offset and its table.
        played: the chosen offset's sessions, keyed by structure.
    Returns:
        ``found``, its ``slice_quality`` left None under ``MIN_PAIRS`` rated slices.
    """
    keys = sorted({k for k, _ in played})
    half = {k: i % 2 for i, k in enumerate(keys)}
    rows = [(half[k], f, t) for k, r in played for f, (_, t) in zip(r.features, r.pairs, strict=True)]
    found.pairs = len(rows)
    if len(rows) < MIN_PAIRS:
        return found
    side = np.array([h for h, _, _ in rows])
    features = np.array([f for _, f, _ in rows], np.float64)
    truth = np.array([t for _, _, t in rows], np.float64)
    found.pearson["expected_iou"] = pearson(features[:, slice_quality.EXPECTED_IOU], truth)
    if (side == 0).any() and (side == 1).any():
        crossed = np.empty(len(truth))
        for h in (0, 1):
            model = slice_quality.fit(features[side != h], truth[side != h])
            crossed[side == h] = slice_quality.predicted_iou(features[side == h], model)
        found.pearson["slice_quality"] = pearson(crossed, truth)
    found.slice_quality = slice_quality.fit(features, truth)
    return found


def run(args: argparse.Namespace) -> float:
    """Calibrate ``args.model`` and write it (``logit_offset`` and ``slice_quality`` in its
    config, the tables in its meta) to ``args.out``, by default the model file itself."""
    data = args.data.split(",") if args.data else list(DEFAULT_DATASETS)
    offsets = tuple(float(x) for x in args.offsets.split(","))
    hints = tuple(args.hint.split(","))
    for k in hints:
        if k not in KINDS:
            raise ConfigError(f"--hint {k!r}: expected one of {KINDS}")
    if args.sessions and not Path(args.sessions).resolve().parent.is_dir():
        # refused before the sessions are played, not after the checkpoint is written
        raise ConfigError(f"--sessions {args.sessions}: its folder does not exist")
    reported = None if args.include_reported else REPORTED
    thick = (args.thick_slices, args.thick_axis)
    found = calibrate(
        args.model,
        data,
        offsets,
        hints,
        args.rounds,
        args.per_volume,
        args.seed,
        args.threads,
        reported,
        thick=thick,
        finer=args.finer_voxels,
        as_mri=args.as_mri,
    )
    meta = {
        "calibration": {
            "mean_dice_by_offset": found.mean_dice_by_offset,
            "slice_quality": {
                "features": list(slice_quality.FEATURES),
                "pearson": found.pearson,
                "pairs": found.pairs,
            },
            "data": " + ".join(data)
            + (", held-out structures" if reported is None else ", held-out structures the benchmark does not report"),
            "hints": list(hints),
            "rounds": args.rounds,
            "per_volume": args.per_volume,
            "seed": args.seed,
            "thick_slices": list(thick),
            "finer_voxels": args.finer_voxels,
            "as_mri": args.as_mri,
            "command": args.command_line,
        }
    }
    config = {"logit_offset": found.offset, "slice_quality": found.slice_quality}
    update_checkpoint(args.model, args.out or args.model, config, meta)
    if args.sessions:
        write_text(args.sessions, json.dumps({"command": args.command_line, "sessions": found.sessions}, indent=1))
    r = found.pearson
    print(
        f"logit offset {found.offset:+g} and the slice-quality model (Pearson r {_r(r.get('expected_iou'))} "
        f"-> {_r(r.get('slice_quality'))} over {found.pairs} slices) written to {args.out or args.model}"
    )
    return found.offset


def _r(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the prompt3d checkpoint to calibrate")
    p.add_argument("--out", help="where to write it (default: the model file itself)")
    p.add_argument("--data", help="data set names or folders (default: the trainer's); held-out, unreported structures")
    p.add_argument(
        "--offsets",
        default=",".join(f"{o:g}" for o in OFFSETS),
        help="candidates, comma-separated (a negative one first: --offsets=-0.5,0,1)",
    )
    p.add_argument("--hint", default=",".join(HINTS), help=f"first-hint kinds, comma-separated (of {', '.join(KINDS)})")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument(
        "--per-volume", type=int, default=12, help="structures drawn per volume (0: all; 6 could not tell 0 from +0.5)"
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    add_acquisition_arguments(p)
    p.add_argument(
        "--sessions",
        metavar="JSON",
        help="also write every session's Dice per round (offset, volume, structure, hint), to compare two "
        "engine rules structure by structure (tools/compare_sessions.py)",
    )
    p.add_argument(
        "--include-reported",
        action="store_true",
        help="use the benchmark's reported structures too (a folder of your own, with no report to keep apart)",
    )
