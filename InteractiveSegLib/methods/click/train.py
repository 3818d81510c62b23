"""Train the click-guidance FCNN with a virtual user (../shared/papers/click-guidance-fcnn.txt, III-C).

For each batch: a first click inside the structure; then up to K-1 more interactions,
the k-th taking place with linearly decreasing probability 1 - k/K; each is sampled
from the current error of the network's own prediction (no gradient through the
simulation); the final tuple is trained with the Dice loss. Data: 2D slices of all
three orientations of the *train* structures of colin27 and inia19 (see data/datasets.py).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from monai.losses import DiceLoss

from InteractiveSegLib.data import datasets
from InteractiveSegLib.methods.click.engine import encode
from InteractiveSegLib.methods.click.network import click_fcnn
from InteractiveSegLib.preprocessing import normalize_intensity
from InteractiveSegLib.training import fit
from InteractiveSegLib.users.robot import RobotClick, TrainingClickSampler


@dataclass
class SliceSample:
    volume: int
    label: int
    axis: int
    index: int


class SliceBank:
    """Every (volume, train structure, axis, slice) with enough foreground to click on."""

    def __init__(self, names: list[str], split: str = "train", min_area: int = 30, min_voxels: int = 500) -> None:
        self.images, self.labelmaps, self.samples = [], [], []
        for v, name in enumerate(names):
            lv = datasets.load(name)
            self.images.append(normalize_intensity(lv.image.array))
            self.labelmaps.append(lv.labels.labelmap)
            counts = np.bincount(lv.labels.labelmap.ravel())
            for lab in lv.structures(split):
                if counts[lab] < min_voxels:
                    continue
                m = lv.labels.labelmap == lab
                for axis in range(3):
                    other = tuple(a for a in range(3) if a != axis)
                    areas = m.sum(axis=other)
                    for idx in np.nonzero(areas >= min_area)[0]:
                        self.samples.append(SliceSample(v, int(lab), axis, int(idx)))
        self._by_volume = [[n for n, s in enumerate(self.samples) if s.volume == v] for v in range(len(names))]

    def draw(self, rng: np.random.Generator) -> SliceSample:
        """A sample with every volume equally likely, so a volume with many small labels does not dominate."""
        v = int(rng.integers(len(self.images)))
        ids = self._by_volume[v]
        return self.samples[ids[int(rng.integers(len(ids)))]]

    def slice(self, s: SliceSample) -> tuple[np.ndarray, np.ndarray]:
        img = np.take(self.images[s.volume], s.index, axis=s.axis)
        gt = np.take(self.labelmaps[s.volume], s.index, axis=s.axis) == s.label
        return img, gt


def crop_around(img: np.ndarray, gt: np.ndarray, center: tuple[int, int], size: int, rng: np.random.Generator):
    """A size x size crop containing ``center`` (jittered), zero-padded at image borders."""
    jitter = rng.integers(-size // 4, size // 4 + 1, size=2)
    r0, c0 = int(center[0] - size // 2 + jitter[0]), int(center[1] - size // 2 + jitter[1])
    out_i = np.zeros((size, size), np.float32)
    out_g = np.zeros((size, size), bool)
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + size, img.shape[0]), min(c0 + size, img.shape[1])
    out_i[rs - r0 : re - r0, cs - c0 : ce - c0] = img[rs:re, cs:ce]
    out_g[rs - r0 : re - r0, cs - c0 : ce - c0] = gt[rs:re, cs:ce]
    return out_i, out_g


def _point2d(click: RobotClick) -> tuple[int, int]:
    """The (row, col) of a click the sampler computed on a 2D slice."""
    return cast(tuple[int, int], click.point)


def augment(img: np.ndarray, gt: np.ndarray, rng: np.random.Generator):
    if rng.random() < 0.5:
        img, gt = img[:, ::-1], gt[:, ::-1]
    if rng.random() < 0.5:
        img, gt = img[::-1], gt[::-1]
    if rng.random() < 0.5:
        img, gt = img.T, gt.T
    img = np.clip(img, 0, 1) ** rng.uniform(0.7, 1.4)
    img = img * rng.uniform(0.85, 1.15) + rng.uniform(-0.1, 0.1)
    return np.ascontiguousarray(img, dtype=np.float32), np.ascontiguousarray(gt)


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    sampler = TrainingClickSampler(seed=args.seed)
    bank = SliceBank(args.datasets)
    print(f"{len(bank.samples)} training slices from {args.datasets}", flush=True)
    features = tuple(args.features)
    model = click_fcnn(features)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.iterations, pct_start=0.05)
    loss_fn = DiceLoss(sigmoid=True, batch=False)
    config = {
        "net": {"features": list(features)},
        "sigma": args.sigma,
        "roi_margin": args.margin,
        "roi_min_size": args.crop,
    }

    def step() -> torch.Tensor:
        imgs: list[np.ndarray] = []
        gts: list[np.ndarray] = []
        pos: list[list[tuple[int, int]]] = []
        neg: list[list[tuple[int, int]]] = []
        for _ in range(args.batch):
            img, gt = bank.slice(bank.draw(rng))
            # first click: innermost part of the structure (a bank slice has it, so never None)
            first = cast(RobotClick, sampler(gt, np.zeros_like(gt)))
            img, gt = crop_around(img, gt, _point2d(first), args.crop, rng)
            img, gt = augment(img, gt, rng)
            if not gt.any():
                continue
            click = cast(RobotClick, sampler(gt, np.zeros_like(gt)))  # gt has the structure: never None
            imgs.append(img)
            gts.append(gt)
            pos.append([_point2d(click)])
            neg.append([])
        active = np.ones(len(imgs), bool)
        for k in range(1, args.max_interactions):
            active &= rng.random(len(imgs)) < 1.0 - k / args.max_interactions
            if not active.any():
                break
            ids = np.nonzero(active)[0]
            x = np.stack([encode(imgs[i], pos[i], neg[i], args.sigma) for i in ids])
            model.eval()
            with torch.no_grad():
                preds = torch.sigmoid(model(torch.from_numpy(x)))[:, 0].numpy() > 0.5
            for i, p in zip(ids, preds, strict=False):
                c = sampler(gts[i], p)
                if c is not None:
                    (pos[i] if c.positive else neg[i]).append(_point2d(c))
        model.train()
        xt = torch.from_numpy(np.stack([encode(imgs[i], pos[i], neg[i], args.sigma) for i in range(len(imgs))]))
        y = torch.from_numpy(np.stack(gts)[:, None].astype(np.float32))
        return loss_fn(model(xt), y)

    meta = {"datasets": args.datasets, "split": "train structures (odd label ids) of " + ", ".join(args.datasets)}
    return fit(args, model, opt, step, "click_fcnn", config, meta, scheduler=sched, loss_name="dice-loss")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="Resources/Models/click_fcnn.pt")
    p.add_argument("--datasets", nargs="+", default=["colin27", "inia19"])
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--margin", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--sigma", type=float, default=2.0)
    p.add_argument("--max-interactions", type=int, default=5, help="K of the paper")
    p.add_argument("--features", type=int, nargs=6, default=[16, 32, 48, 96, 192, 16])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=4242)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--save-every", type=int, default=100)


def main(argv: list[str] | None = None) -> None:
    import sys

    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    args = p.parse_args(argv)
    args.command = "interactiveseg train-click " + " ".join(sys.argv[1:] if argv is None else argv)
    print(json.dumps(train(args)))


if __name__ == "__main__":
    main()
