"""Train the click FCNN with a virtual user (../shared/papers/click-guidance-fcnn.txt, III-C)
on data that generalises across modality and anatomy.

Samples are 2D slices (any of the three orientations) of:

- real labelled volumes (``--dataset``: shipped names, ``../shared/data`` sources, a user's
  MSD / nnU-Net folder), train structures only, intensities by modality;
- the same volumes re-drawn with TorchIO augmentation (bias field, thick slices, elastic, ...);
- images synthesised from their label maps (SynthSeg's random intensities per label);
- procedural shapes (blobs, tubes, shells, several components, holes), so that "segment what
  I clicked" is not learnt as brain anatomy.

Each sample is seen through the engine's own zoom window (``zoom.py``). Clicks follow the
paper: a first click inside the structure, then up to K-1 more, the k-th with probability
1 - k/K, each in the error of the network's own prediction, which is also the next
previous-mask input (no gradient through the simulation); sometimes the session starts
from a corrupted mask, as one from another tool would be, and (``--p-beyond``) sometimes on a
slice just past the structure's end holding its last slice's mask, which a negative stroke or
click must clear. Loss: Dice + BCE on the last step.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from monai.losses import DiceCELoss
from scipy import ndimage

from InteractiveSegLib.checkpoints import checkpoint_weights
from InteractiveSegLib.data import datasets
from InteractiveSegLib.data.shapes import procedural_labelmap
from InteractiveSegLib.data.synthesis import SynthesisSettings, augment_real, synthesize
from InteractiveSegLib.errors import ConfigError
from InteractiveSegLib.intensity import detect_modality, normalize
from InteractiveSegLib.methods.click.network import click_fcnn
from InteractiveSegLib.methods.click.zoom import (
    Window,
    click_maps,
    negative_map,
    sample,
    slice_spacing,
    window_around,
    working_boxes,
)
from InteractiveSegLib.training import add_dataset_argument, fit, load_matching, resumed_iteration
from InteractiveSegLib.users.robot import (
    RobotClick,
    TrainingClickSampler,
    robot_box,
    robot_extreme_points,
    robot_scribble,
)

#: Kinds of pool volume and how often a sample comes from each.
KINDS = ("real", "augmented", "synthetic", "procedural")
#: Kinds of first hint (``--hints``): the click engine's network takes clicks; trained on all
#: four it serves as VMN's f_IN (``--arch``-free: the same network, cues drawn as its inputs)
HINT_KINDS = ("click", "scribble", "box", "extreme")
#: Sources when no --dataset is given: human and macaque brain MRI, abdominal CT.
DEFAULT_DATASETS = ("colin27", "inia19", "ct-abdomen")


@dataclass
class PoolVolume:
    """A normalised image, its labelmap, spacing (k, j, i mm) and the structures to sample."""

    kind: str
    name: str
    image: np.ndarray
    labelmap: np.ndarray
    spacing: tuple[float, float, float]
    structures: list[int]
    _areas: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    def slices(self, label: int, axis: int, min_area: int) -> np.ndarray:
        """Indices along ``axis`` where ``label`` covers at least ``min_area`` pixels (cached)."""
        key = (label, axis)
        if key not in self._areas:
            m = self.labelmap == label
            self._areas[key] = m.sum(axis=tuple(a for a in range(3) if a != axis))
        return np.nonzero(self._areas[key] >= min_area)[0]


def _big_enough(labelmap: np.ndarray, labels: list[int], min_voxels: int) -> list[int]:
    counts = np.bincount(labelmap.ravel(), minlength=max(labels, default=0) + 1)
    return [int(v) for v in labels if v > 0 and counts[v] >= min_voxels]


class Pool:
    """Real volumes, kept; augmented, synthetic and procedural volumes, renewed one at a time
    so that the network keeps seeing new ones at a bounded cost per iteration."""

    def __init__(self, specs: list[str], args: argparse.Namespace, rng: np.random.Generator) -> None:
        self.args, self.rng = args, rng
        self.settings = SynthesisSettings()
        self.real: list[PoolVolume] = []
        self.splits: dict[str, str] = {}  # source -> its split rule in words, for the model card
        for lv in datasets.resolve(specs):
            self.splits[lv.name] = lv.split_description()
            modality = lv.modality or detect_modality(lv.image)
            ids = _big_enough(lv.labels.labelmap, lv.structures("train"), args.min_voxels)
            if not ids:
                continue
            spacing = cast(tuple[float, float, float], tuple(lv.image.geometry.spacing[::-1]))
            image = normalize(lv.image.array, modality)
            self.real.append(PoolVolume("real", lv.name, image, lv.labels.labelmap, spacing, ids))
        if not self.real:
            raise ConfigError(f"no train structure of at least {args.min_voxels} voxels in {specs}")
        self.made: dict[str, list[PoolVolume]] = {k: [] for k in KINDS[1:]}
        for kind in KINDS[1:]:
            for _ in range(args.pool):
                self.made[kind].append(self.make(kind))

    def make(self, kind: str) -> PoolVolume:
        """One new volume of ``kind``."""
        rng = self.rng
        if kind == "procedural":
            shape = tuple(int(n) for n in rng.integers(64, 113, size=3))
            labelmap = procedural_labelmap(cast(tuple[int, int, int], shape), rng)
            spacing = (float(rng.uniform(1.0, 4.0)), float(rng.uniform(0.6, 1.5)), float(rng.uniform(0.6, 1.5)))
            image, labelmap = synthesize(labelmap, spacing, rng, self.settings)
            ids = _big_enough(labelmap, [int(v) for v in np.unique(labelmap)], self.args.min_voxels)
            return PoolVolume(kind, "procedural", image, labelmap, spacing, ids)
        src = self.real[int(rng.integers(len(self.real)))]
        src = self.block(src)
        if kind == "synthetic":
            # SynthSeg: the whole label map drawn with random intensities; only train structures
            # keep their identity so held-out anatomy never becomes a target
            image, lab = synthesize(src.labelmap, src.spacing, rng, self.settings)
            ids = _big_enough(lab, src.structures, self.args.min_voxels)
            return PoolVolume(kind, src.name, image, lab, src.spacing, ids)
        image, lab = augment_real(src.image, src.labelmap, src.spacing, rng, self.settings)
        ids = _big_enough(lab, src.structures, self.args.min_voxels)
        return PoolVolume(kind, src.name, image, lab, src.spacing, ids)

    def block(self, vol: PoolVolume) -> PoolVolume:
        """A random block of at most ``--block`` voxels a side: synthesis and deformation of a
        whole 1 mm brain take ten seconds, of a block two."""
        n = self.args.block
        starts = [int(self.rng.integers(0, max(s - n, 0) + 1)) for s in vol.image.shape]
        cut = tuple(slice(a, a + n) for a in starts)
        return PoolVolume(vol.kind, vol.name, vol.image[cut], vol.labelmap[cut], vol.spacing, vol.structures)

    def renew(self) -> None:
        """Replace one made volume of each kind."""
        for kind, vols in self.made.items():
            vols[int(self.rng.integers(len(vols)))] = self.make(kind)

    def draw(self) -> PoolVolume:
        weights = np.asarray(self.args.mix, float)
        kind = KINDS[int(self.rng.choice(len(KINDS), p=weights / weights.sum()))]
        vols = self.real if kind == "real" else self.made[kind]
        vols = [v for v in vols if v.structures] or self.real
        return vols[int(self.rng.integers(len(vols)))]


@dataclass
class Sample:
    """One training slice through its zoom window, at the working size."""

    image: np.ndarray
    truth: np.ndarray
    previous: np.ndarray
    positive: list[tuple[float, float]]
    negative: list[tuple[float, float]]
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # row0, col0, row1, col1


def _point(click: RobotClick) -> tuple[int, int]:
    return cast(tuple[int, int], click.point)


def corrupted(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible wrong mask (too small, too large, shifted or cut), as another tool's would be."""
    way = int(rng.integers(4))
    r = int(rng.integers(1, 4))
    if way == 0:
        return ndimage.binary_erosion(truth, iterations=r)
    if way == 1:
        return ndimage.binary_dilation(truth, iterations=r)
    if way == 2:
        return np.roll(truth, tuple(int(v) for v in rng.integers(-r - 1, r + 2, size=2)), axis=(0, 1))
    rows = np.nonzero(truth.any(axis=1))[0]
    cut = int(rng.integers(rows[0], rows[-1] + 1))
    out = truth.copy()
    out[cut:] = False
    return out


def merged(labels2d: np.ndarray, truth: np.ndarray, allowed: list[int] | None, rng: np.random.Generator) -> np.ndarray:
    """The clicked structure joined with some of the structures it touches on the slice.

    What a user calls one structure is often a group (the whole brain, an organ with its
    vessels); a target made of parts that look different teaches that a further click adds
    the part it lands on instead of staying inside one intensity class.
    """
    truth = truth.copy()
    for _ in range(int(rng.integers(1, 4))):
        ring = ndimage.binary_dilation(truth, iterations=2) & ~truth
        near = np.setdiff1d(np.unique(labels2d[ring]), [0])
        if allowed is not None:
            near = near[np.isin(near, allowed)]
        if not len(near):
            break
        pick = rng.choice(near, size=int(rng.integers(1, len(near) + 1)), replace=False)
        truth |= np.isin(labels2d, pick)
    return truth


def past_the_end(
    vol: PoolVolume, label: int, axis: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray] | None:
    """(image, false mask) of a slice 1-3 slices past one end of ``label`` along ``axis``,
    holding the structure's mask of its last slice: what a propagation leaves beyond the end,
    which a negative stroke must clear (the target is empty). None when no such slice exists."""
    present = vol.slices(label, axis, 1)
    if not len(present):
        return None
    step = 1 if rng.random() < 0.5 else -1
    end = int(present.max() if step > 0 else present.min())
    index = end + step * int(rng.integers(1, 4))
    if not 0 <= index < vol.labelmap.shape[axis] or index in present:
        return None
    last = np.take(vol.labelmap, end, axis=axis) == label
    return np.take(vol.image, index, axis=axis), corrupted(last, rng) if rng.random() < 0.5 else last


def draw_sample(
    pool: Pool, sampler: TrainingClickSampler, args: argparse.Namespace, rng: np.random.Generator
) -> Sample | None:
    """A slice of a structure with its first click, seen through a window like the engine's."""
    vol = pool.draw()
    label = vol.structures[int(rng.integers(len(vol.structures)))]
    axis = int(rng.integers(3))
    idx = vol.slices(label, axis, args.min_area)
    if not len(idx):
        return None
    index = int(idx[int(rng.integers(len(idx)))])
    image2d = np.take(vol.image, index, axis=axis)
    labels2d = np.take(vol.labelmap, index, axis=axis)
    truth2d = labels2d == label
    if rng.random() < args.p_merge:
        # procedural parts are all fair game; real ones only among the train structures
        allowed = None if vol.kind == "procedural" else vol.structures
        truth2d = merged(labels2d, truth2d, allowed, rng)
    spacing = slice_spacing(vol.spacing, axis)
    kind = str(rng.choice(args.hints))
    previous = corrupted(truth2d, rng) if rng.random() < args.p_previous else np.zeros_like(truth2d)
    if rng.random() < args.p_beyond:
        beyond = past_the_end(vol, label, axis, rng)
        if beyond is None:
            return None
        image2d, previous = beyond
        truth2d = np.zeros_like(previous)
        kind = "scribble" if kind != "click" else kind  # the one hint that can say "none here"
    factor = finer_factor(spacing, args, rng)
    if factor > 1:
        image2d, truth2d, previous, spacing = finer_slice(image2d, truth2d, previous, spacing, factor)
    first = first_hint(kind, truth2d, previous, sampler, rng)
    if first is None:
        return None
    click = first.points
    if rng.random() < args.p_first_window:
        # the engine's first window: clicks and current mask only, so the object may be cut
        rows, cols = np.nonzero(previous)
        window = window_around(
            np.concatenate([click[:, 0], rows]),
            np.concatenate([click[:, 1], cols]),
            spacing,
            args.context,
            args.min_side_px * min(spacing),
        )
    else:
        # the engine's window after zooming: the object with a random margin, off centre
        rows, cols = np.nonzero(truth2d | previous)
        window = window_around(
            np.concatenate([click[:, 0], rows]),
            np.concatenate([click[:, 1], cols]),
            spacing,
            float(rng.uniform(0.1, 0.8)),
            args.min_side_px * min(spacing),
        )
        shift = rng.uniform(-0.15, 0.15, size=2) * window.side_mm / np.asarray(spacing)
        window = Window((window.center[0] + shift[0], window.center[1] + shift[1]), window.side_mm, spacing)
    img, truth, prev = sample(np.stack([image2d, truth2d, previous]).astype(np.float32), window, args.size)
    working = [(float(r), float(c)) for r, c in window.to_working(first.cue_points, args.size)]
    boxes = [cast(tuple[float, float, float, float], tuple(b)) for b in working_boxes(first.boxes, window, args.size)]
    return Sample(
        augment_intensity(img, rng),
        truth > 0.5,
        prev > 0.5,
        working if first.positive else [],
        [] if first.positive else working,
        boxes,
    )


def finer_factor(spacing: tuple[float, float], args: argparse.Namespace, rng: np.random.Generator) -> float:
    """How many pixels per side a slice of ``spacing`` (row, col mm) is split into: 1, or for a
    share ``args.p_finer`` of slices a random factor up to ``args.max_finer`` that leaves no
    pixel below ``args.finest_mm`` (a scan's finest; a 0.5 mm atlas stays as it is)."""
    most = min(args.max_finer, min(spacing) / args.finest_mm)
    if most <= 1 or rng.random() >= args.p_finer:
        return 1.0
    return float(rng.uniform(1.0, most))


def finer_slice(
    image2d: np.ndarray, truth2d: np.ndarray, previous: np.ndarray, spacing: tuple[float, float], factor: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    """A slice as a scan of ``factor`` times finer pixels would show the same anatomy (scipy:
    the image linear, the masks nearest). The robot's hints are counted in pixels, so on it a
    stroke is ``factor`` times shorter in mm against the structure: the short stroke on a large
    structure of a thin-slice scan, which the pool's 1 to 3 mm volumes seldom show (issue 20).

    Args:
        image2d: the normalised slice.
        truth2d, previous: the structure's and the current mask on it (bool).
        spacing: (row, col) pixel size in mm.
        factor: pixels per pixel side, at least 1.
    Returns:
        The image, the two masks and the new pixel size.
    """
    image = ndimage.zoom(image2d.astype(np.float32), factor, order=1, mode="nearest", grid_mode=True)
    truth, prev = (
        ndimage.zoom(m.astype(np.uint8), factor, order=0, mode="nearest", grid_mode=True) > 0
        for m in (truth2d, previous)
    )
    return image, truth, prev, (spacing[0] / factor, spacing[1] / factor)


@dataclass
class FirstHint:
    """A session's first hint on a slice, in slice pixels: ``points`` bound the engine's first
    window; ``cue_points`` are drawn as clicks of the hint's sign, ``boxes`` as outlines."""

    points: np.ndarray
    cue_points: np.ndarray
    positive: bool
    boxes: list[tuple[int, int, int, int]]


def first_hint(
    kind: str, truth: np.ndarray, previous: np.ndarray, sampler: TrainingClickSampler, rng: np.random.Generator
) -> FirstHint | None:
    """The first hint of ``kind`` (``HINT_KINDS``) as the benchmark robot and VMN's users give
    it: a click in the error (the paper's sampler), a stroke on the largest error, four extreme
    points or a box of the structure jittered by up to 10 pixels (VMN 4.2)."""
    if kind == "click":
        c = sampler(truth, previous)
        if c is None:
            return None
        p = np.array([_point(c)], float)
        return FirstHint(p, p, c.positive, [])
    if kind == "scribble":
        s = robot_scribble(truth, previous, max_len=int(rng.integers(5, 41)))
        if s is None:
            return None
        p = np.array(s[0], float).reshape(-1, 2)
        return FirstHint(p, p, s[1], [])
    jitter = int(rng.integers(0, 11))
    if kind == "extreme":
        e = robot_extreme_points(truth, rng, jitter)
        if e is None:
            return None
        p = np.array(e, float)
        return FirstHint(p, p, True, [])
    b = robot_box(truth, rng, jitter)
    if b is None:
        return None
    (r0, c0), (r1, c1) = b
    return FirstHint(np.array([[r0, c0], [r1, c1]], float), np.zeros((0, 2)), True, [(r0, c0, r1, c1)])


def augment_intensity(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma, contrast, brightness and noise jitter of a [0, 1] slice."""
    img = np.clip(img, 0, 1) ** rng.uniform(0.6, 1.6)
    img = img * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1)
    return (img + rng.normal(0, rng.uniform(0, 0.03), img.shape)).astype(np.float32)


def flip(s: Sample, rng: np.random.Generator, size: int) -> Sample:
    """Random flips and transposition of the whole sample, clicks included."""
    if rng.random() < 0.5:
        s.image, s.truth, s.previous = s.image[:, ::-1], s.truth[:, ::-1], s.previous[:, ::-1]
        s.positive = [(r, size - 1 - c) for r, c in s.positive]
        s.negative = [(r, size - 1 - c) for r, c in s.negative]
        s.boxes = [(r0, size - 1 - c1, r1, size - 1 - c0) for r0, c0, r1, c1 in s.boxes]
    if rng.random() < 0.5:
        s.image, s.truth, s.previous = s.image.T, s.truth.T, s.previous.T
        s.positive = [(c, r) for r, c in s.positive]
        s.negative = [(c, r) for r, c in s.negative]
        s.boxes = [(c0, r0, c1, r1) for r0, c0, r1, c1 in s.boxes]
    s.image, s.truth, s.previous = (np.ascontiguousarray(a) for a in (s.image, s.truth, s.previous))
    return s


def encode(s: Sample, previous: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """(4, size, size) network input of a sample in working coordinates."""
    return np.stack(
        [
            s.image,
            click_maps(np.array(s.positive), size, sigma),
            negative_map(np.array(s.negative), np.array(s.boxes).reshape(-1, 4), size, sigma),
            previous,
        ]
    ).astype(np.float32)


def train(args: argparse.Namespace) -> dict[str, Any]:
    args.dataset = args.dataset or list(DEFAULT_DATASETS)
    unknown = set(args.hints) - set(HINT_KINDS)
    if unknown or not args.hints:
        raise ConfigError(f"--hints {','.join(args.hints)}: expected some of {', '.join(HINT_KINDS)}")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed + resumed_iteration(args))  # a resumed run draws new samples
    sampler = TrainingClickSampler(seed=args.seed)
    pool = Pool(args.dataset, args, rng)
    print(
        f"pool: {len(pool.real)} real volumes ({', '.join(v.name for v in pool.real)}), "
        f"{args.pool} each of {', '.join(KINDS[1:])}",
        flush=True,
    )
    features = tuple(args.features)
    model = click_fcnn(features, in_channels=4)
    if args.init:
        # the weights only: an earlier click_fcnn (three inputs) is widened by load_matching
        print(f"warm start from {args.init}: {load_matching(model, checkpoint_weights(args.init))}", flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = (  # a one-cycle schedule needs a few steps to warm up in; a smoke run keeps lr fixed
        torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.iterations, pct_start=0.05)
        if args.iterations >= 60
        else None
    )
    loss_fn = DiceCELoss(sigmoid=True, batch=False)
    config = {
        "net": {"features": list(features), "in_channels": 4},
        "size": args.size,
        "sigma": args.sigma,
        "context": args.context,
        "min_side_px": args.min_side_px,
        "zoom_steps": 3,
        "intensity": "modality",
        "hints": list(args.hints),
    }
    calls = {"n": 0}

    def step() -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] % args.renew_every == 0:
            pool.renew()
        batch: list[Sample] = []
        while len(batch) < args.batch:
            s = draw_sample(pool, sampler, args, rng)
            if s is not None and s.truth.any():
                batch.append(flip(s, rng, args.size))
        previous = [s.previous.astype(np.float32) for s in batch]
        active = np.ones(len(batch), bool)
        for k in range(1, args.max_interactions):
            active &= rng.random(len(batch)) < 1.0 - k / args.max_interactions
            if not active.any():
                break
            ids = np.nonzero(active)[0]
            x = np.stack([encode(batch[i], previous[i], args.size, args.sigma) for i in ids])
            model.eval()
            with torch.no_grad():
                preds = torch.sigmoid(model(torch.from_numpy(x)))[:, 0].numpy() > 0.5
            for i, p in zip(ids, preds, strict=True):
                previous[i] = p.astype(np.float32)
                c = sampler(batch[i].truth, p)
                if c is not None:
                    (batch[i].positive if c.positive else batch[i].negative).append(_point(c))
        model.train()
        x = np.stack([encode(s, prev, args.size, args.sigma) for s, prev in zip(batch, previous, strict=True)])
        y = torch.from_numpy(np.stack([s.truth for s in batch])[:, None].astype(np.float32))
        return loss_fn(model(torch.from_numpy(x)), y)

    meta = {
        "datasets": args.dataset,
        "split": pool.splits,
        "mix": dict(zip(KINDS, args.mix, strict=True)),
        "synthesis": pool.settings.__dict__,
        "init": args.init,
        "p_merge": args.p_merge,
        "p_finer": args.p_finer,
        "max_finer": args.max_finer,
        "finest_mm": args.finest_mm,
        "max_interactions": args.max_interactions,
        "normalization": "modality",
    }
    return fit(args, model, opt, step, "click_fcnn", config, meta, scheduler=sched, loss_name="dice+bce")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="Resources/Models/click_zoom.pt")
    add_dataset_argument(p, "Default: " + ", ".join(DEFAULT_DATASETS))
    p.add_argument("--init", default=None, help="warm start from a click_fcnn checkpoint (new inputs start at zero)")
    p.add_argument("--resume", action="store_true", help="continue a run that stopped, from <out>.state")
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=128, help="the network's working size")
    p.add_argument("--context", type=float, default=0.4, help="zoom margin on each side, fraction of the extent")
    p.add_argument("--min-side-px", type=float, default=64, help="the first window's smallest side, in pixels")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--sigma", type=float, default=3.0, help="click map sigma in working pixels")
    p.add_argument("--max-interactions", type=int, default=5, help="K of the paper")
    p.add_argument(
        "--hints",
        type=lambda v: [k for k in v.split(",") if k],
        default=["click"],
        help="comma-separated kinds of first hint, drawn evenly: " + ", ".join(HINT_KINDS) + " (default click; "
        "all four train VMN's f_IN)",
    )
    p.add_argument("--p-previous", type=float, default=0.2, help="share of sessions starting from a wrong mask")
    p.add_argument("--p-merge", type=float, default=0.3, help="share of targets joined with touching structures")
    p.add_argument(
        "--p-beyond",
        type=float,
        default=0.0,
        help="share of samples past a structure's end holding a false mask that a negative hint clears",
    )
    p.add_argument("--p-first-window", type=float, default=0.3, help="share of samples seen through a first window")
    p.add_argument(
        "--p-finer",
        type=float,
        default=0.0,
        help="share of slices seen as a thin-slice scan would show them, their pixels split by a random "
        "factor up to --max-finer per side (short strokes on large structures)",
    )
    p.add_argument("--max-finer", type=float, default=3.0, help="the largest factor of --p-finer")
    p.add_argument(
        "--finest-mm", type=float, default=0.5, help="--p-finer splits no pixel below this side in mm (a scan's finest)"
    )
    p.add_argument("--mix", type=float, nargs=4, default=[0.35, 0.2, 0.2, 0.25], help="weights of " + ", ".join(KINDS))
    p.add_argument("--pool", type=int, default=4, help="made volumes of each kind kept at once")
    p.add_argument("--renew-every", type=int, default=10, help="iterations between renewing made volumes")
    p.add_argument("--block", type=int, default=112, help="largest side of a made volume, in voxels")
    p.add_argument("--min-voxels", type=int, default=200)
    p.add_argument("--min-area", type=int, default=30)
    p.add_argument("--features", type=int, nargs=6, default=[16, 32, 48, 96, 192, 16])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=4242)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--save-every", type=int, default=50)


def main(argv: list[str] | None = None) -> None:
    import sys

    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    args = p.parse_args(argv)
    args.command = "interactiveseg train-click " + " ".join(sys.argv[1:] if argv is None else argv)
    print(json.dumps(train(args)))


if __name__ == "__main__":
    main()
