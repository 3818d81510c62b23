"""Train VMN's quality head Q on the engine's own propagations (``train-vmn --part quality``).

Trained jointly with f_VMN (eq. 9) on 5-slice training sequences, Q learnt little that
holds in a real propagation: on held-out structures its predicted IoU hardly correlated
with the true one (Pearson -0.03 to 0.26), because a 5-slice sequence rarely shows what
goes wrong over a whole volume (a run that floods past the structure's end, one that dies
early, one that drifts onto a neighbour). This stage keeps f_IN and f_VMN fixed and fits Q
alone, with eq. 9's L2 term, on the slices the engine itself propagates for training
structures: the benchmark's robot gives a round-one hint, then corrects random slices, and
every propagated slice pairs Q's input (F^q and the mask) with its true IoU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from InteractiveSegLib.checkpoints import load_checkpoint, save_checkpoint
from InteractiveSegLib.data import datasets
from InteractiveSegLib.errors import ImageError
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.methods.vmn.engine import VMNEngine
from InteractiveSegLib.methods.vmn.network import VMNet
from InteractiveSegLib.methods.vmn.propagation import PropagationResult
from InteractiveSegLib.metrics import iou, pearson
from InteractiveSegLib.session import Session
from InteractiveSegLib.users.robot import robot_slice_hint

AXIS = 0  # the benchmark's axis (axial)
#: Sources of the VMN networks (``--dataset`` when not given); a shared source that is not
#: beside the repository (a plain clone) is left out with a message.
DEFAULT_DATASETS = ("colin27", "inia19", "ct-abdomen")


def sources(specs) -> list[datasets.LabelledVolume]:
    """``datasets.resolve(specs)``; of the defaults, a missing shared source is skipped."""
    if tuple(specs) != DEFAULT_DATASETS:
        return datasets.resolve(list(specs))
    out = []
    for spec in specs:
        try:
            out += datasets.resolve([spec])
        except ImageError as e:
            if spec not in datasets.SHARED_DATASETS:
                raise
            print(f"left out: {e}", flush=True)
    return out


class QualityRecorder:
    """Wraps an engine: every propagation's Q inputs, paired with the true IoU of the slice."""

    def __init__(self, engine: VMNEngine, keep: float = 1.0, rng: np.random.Generator | None = None) -> None:
        self.reference: np.ndarray | None
        self.engine, self.reference, self.keep, self.rng = engine, None, keep, rng or np.random.default_rng(0)
        self.samples: list[tuple[torch.Tensor, float]] = []
        self._inputs: list[torch.Tensor] = []
        engine.net.quality.register_forward_hook(self._hook)
        engine.on_propagated = self.record

    def _hook(self, module: Any, args: Any, _output: Any) -> None:
        self._inputs.append(module.prepare(*args)[0].half())

    def start_round(self) -> None:
        """Forget Q inputs left by a propagation that raised before ``record`` paired them."""
        self._inputs.clear()

    def record(self, res: PropagationResult) -> None:
        """Pair the Q inputs of one propagation round with the true IoU of their slices."""
        assert len(self._inputs) == len(res.order), "one Q call per propagated slice"
        for q, x in zip(res.order, self._inputs, strict=False):
            if self.keep < 1 and self.rng.random() >= self.keep:  # neighbouring slices are near copies
                continue
            assert self.reference is not None, "set the reference structure before propagating"
            self.samples.append((x, iou(np.take(self.reference, q, axis=res.axis), res.probability[q] > 0.5)))
        self._inputs.clear()


def collect(args: argparse.Namespace, rng: np.random.Generator) -> list[list[tuple[torch.Tensor, float]]]:
    """Per structure, the (Q input, true IoU) pairs of its sessions (one per hint type)."""
    # fade off: the head must also see the slices a run floods past a structure's end
    engine = VMNEngine(model_path=args.init, interaction_model_path=args.interaction, threads=args.threads, fade=0.0)
    engine.net.eval()
    rec = QualityRecorder(engine, args.keep, rng)
    groups: list[list[tuple[torch.Tensor, float]]] = []
    for d in sources(args.dataset or DEFAULT_DATASETS):
        if not d.in_split("train"):
            continue
        labelmap = d.labels.labelmap
        counts = np.bincount(labelmap.ravel())
        candidates = [v for v in d.structures("train") if v < counts.size and counts[v] >= args.min_voxels]
        ids = rng.permutation(candidates)[: args.structures_per_volume]
        engine.set_image(d.image)
        for v in ids:
            ref = labelmap == v
            rec.reference = ref
            start = len(rec.samples)
            for kind in ("scribble", "box", "extreme"):
                session = Session(d.image, engine, LabelTable.default([1], {1: str(v)}))
                index = int(np.argmax(ref.sum((1, 2))))
                done: set[int] = set()
                for r in range(args.rounds):
                    if r:
                        cand = [i for i in range(ref.shape[0]) if i not in done and (session.labelmap[i] == 1).any()]
                        if not cand:
                            break
                        index = int(rng.choice(cand))
                    done.add(index)
                    hint = robot_slice_hint(
                        kind, ref[index], None if r == 0 else session.labelmap[index] == 1, AXIS, index, rng
                    )
                    if hint is not None:
                        rec.start_round()
                        session.add(hint)
            groups.append(rec.samples[start:])
            print(
                f"{d.name}:{v}: {len(rec.samples) - start} slices, "
                f"mean IoU {np.mean([s[1] for s in rec.samples[start:]] or [np.nan]):.3f}",
                flush=True,
            )
    return groups


def validation_r(head, samples) -> float:
    r = pearson(predict(head, samples), [s[1] for s in samples])
    return float("nan") if r is None else r


def by_size(samples) -> dict[tuple, list[int]]:
    """Sample indices grouped by input shape (one propagation region each): a batch stacks one group."""
    groups: dict[tuple, list[int]] = {}
    for i, (x, _) in enumerate(samples):
        groups.setdefault(tuple(x.shape), []).append(i)
    return groups


def predict(head, samples, batch: int = 64) -> np.ndarray:
    """Q on stored inputs, same-size inputs batched together."""
    head.eval()
    out = np.zeros(len(samples))
    with torch.no_grad():
        for idx in by_size(samples).values():
            for k in range(0, len(idx), batch):
                part = idx[k : k + batch]
                x = torch.stack([samples[i][0] for i in part]).float()
                out[part] = head.score(x).numpy()
    return out


def train_quality(args: argparse.Namespace) -> dict[str, Any]:
    """Collect, fit Q with L2 on four fifths of the structures, report Pearson on the rest,
    save f_VMN with the new Q."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    if args.samples and Path(args.samples).exists():
        groups = torch.load(args.samples, weights_only=True)  # tensors and numbers: no code runs
    else:
        groups = collect(args, rng)
        if args.samples:
            torch.save(groups, args.samples)
    order = rng.permutation(len(groups))
    n_val = max(1, len(groups) // 5)
    val = [s for g in order[:n_val] for s in groups[g]]
    train = [s for g in order[n_val:] for s in groups[g]]
    model, config, source_meta = load_checkpoint(args.init, "vmn_net")
    head = cast(VMNet, model).quality  # the "vmn_net" architecture
    before = validation_r(head, val)
    print(
        f"{len(train)} training / {len(val)} validation slices ({n_val} structures); Pearson before: {before:.3f}",
        flush=True,
    )
    opt = torch.optim.Adam(head.parameters(), lr=args.lr)
    groups_by_size = by_size(train)
    sizes = list(groups_by_size)
    weights = np.array([len(groups_by_size[s]) for s in sizes], float)
    losses = []
    for it in range(1, args.iterations + 1):
        head.train()
        idx = groups_by_size[sizes[rng.choice(len(sizes), p=weights / weights.sum())]]
        part = rng.choice(idx, min(args.batch, len(idx)), replace=False)
        if len(part) < 2:  # batch normalisation needs two
            continue
        x = torch.stack([train[i][0] for i in part]).float()
        y = torch.tensor([train[i][1] for i in part], dtype=torch.float32)
        loss = F.mse_loss(head.score(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if it % args.log_every == 0:
            r = validation_r(head, val)
            print(
                f"iter {it}/{args.iterations} L2 {np.mean(losses[-args.log_every :]):.4f} validation Pearson {r:.3f}",
                flush=True,
            )
    after = validation_r(head, val)
    meta = dict(source_meta)
    meta["quality_stage"] = {
        "command": args.command,
        "iterations": args.iterations,
        "lr": args.lr,
        "rounds": args.rounds,
        "structures": len(groups),
        "training_slices": len(train),
        "validation_slices": len(val),
        "validation_pearson_before": round(before, 3),
        "validation_pearson_after": round(after, 3),
        "minutes": round((time.time() - t0) / 60, 1),
        "seed": args.seed,
    }
    save_checkpoint(args.out, "vmn_net", config, model, meta)
    return meta["quality_stage"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rounds", type=int, default=4, help="quality: robot rounds per session (random slices after the first)"
    )
    p.add_argument(
        "--structures-per-volume", type=int, default=30, help="quality: training structures drawn per volume"
    )
    p.add_argument("--keep", type=float, default=0.25, help="quality: fraction of propagated slices kept as samples")
    p.add_argument(
        "--samples", default=None, help="quality: cache of the collected samples (read if it exists, else written)"
    )
    p.add_argument("--min-voxels", type=int, default=1000, help="quality: smallest training structure")
    p.add_argument("--interaction", default=None, help="quality: the f_IN checkpoint (default: the shipped one)")
