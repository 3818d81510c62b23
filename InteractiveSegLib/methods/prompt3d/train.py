"""Train the 3D prompt network (``interactiveseg train-prompt3d``), CPU or GPU, resumable.

Each sample plays one step of the 3D benchmark on a training structure, in a block around it
(in a share ``P_FOV_CUT`` the block ends inside the structure, as a scan's field of view
does): a hint on one slice (a scribble, box, extreme points, click or the drawn
cross-section; the slice is the largest or any holding a fifth of its area; along a random
axis, axial more often). Half the samples are a later round: the class's mask is the
network's own answer to the first hint (``--p-own`` of them) or a made-up wrong 3D result
(eroded or dilated, shifted, cut short or run past the structure's end along the hint's
axis, a blob added or removed), and one or more corrections of it, on the slices it gets most
wrong, join the hints (after the network's own answer, each further correction is made on
its answer to the ones before, as the benchmark plays round after round; up to
``--max-corrections``).
The region is the engine's (``prompts.object_region``), zoomed out as the engine would when
the structure runs out of it. Target: the structure in the region. Loss: Dice + cross-entropy.

Data (``--dataset``, the data layer's sources, names or Decathlon / nnU-Net folders): by
default the train split of Colin27/AAL, INIA19/NeuroMaps and the abdominal CT, scaled by
modality; a share (``--p-composite``) of samples are unions of touching train structures
(``composites``: large, of several intensities, as a whole brain is); a share (``--p-large``)
come from the largest tenth of the structures and unions with a click or a stroke (a short
hint on a large structure: the ``balls`` check and the whole brain, issue 20); a share
(``--p-augment``) of samples come from blocks re-drawn by ``data.synthesis`` (SynthSeg's
random contrast per label, or the real image deformed, bias, thick slices, blur, noise,
gamma; a share ``--p-tone-curve`` of those real ones first through a random tone curve), so
the network meets contrasts and slice spacings it will see elsewhere.

``--workers N`` draws the samples in N processes (``sample_workers``) while the network
trains, for a GPU machine whose one drawing process would leave the GPU waiting.
"""

from __future__ import annotations

import argparse
import sys
import weakref
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from scipy import ndimage

from InteractiveSegLib.checkpoints import default_models_dir
from InteractiveSegLib.data.synthesis import SynthesisSettings
from InteractiveSegLib.errors import ConfigError
from InteractiveSegLib.hints import Click, ijk_from_slice_point
from InteractiveSegLib.methods.prompt3d.composites import composite_structures
from InteractiveSegLib.methods.prompt3d.network import prompt3d_net
from InteractiveSegLib.methods.prompt3d.prompts import (
    CHANNELS,
    Region3,
    encode,
    grow_to_object,
    hinted_planes,
    inside,
    mask_box,
    object_region,
    region_cut,
    to_region,
    touching_faces,
)
from InteractiveSegLib.methods.vmn.quality_training import DEFAULT_DATASETS
from InteractiveSegLib.methods.vmn.train import Structure, structure_draw, training_structures
from InteractiveSegLib.preprocessing import resample
from InteractiveSegLib.sample_workers import Own, SampleWorkers, grid_probability
from InteractiveSegLib.training import add_dataset_argument, fit, load_matching, resumed_iteration
from InteractiveSegLib.users.robot import robot_click, robot_slice_hint

KINDS = ("scribble", "box", "extreme", "click", "drawn")
KIND_P = (0.3, 0.25, 0.25, 0.1, 0.1)


#: share of blocks whose border (the scan's edge) cuts into the structure, as a field of view does
P_FOV_CUT = 0.2
#: ``--p-large``: the share of the structures (unions included), largest first, its samples come
#: from, and the first hints they get
LARGE_SHARE = 0.1
SHORT_HINTS = ("click", "scribble")


def largest(structs: list[Structure], share: float) -> list[Structure]:
    """The ``share`` of ``structs`` with the most voxels (at least one)."""
    sizes = np.array([int(s.mask.sum()) for s in structs])
    keep = max(1, int(round(share * len(structs))))
    return [structs[i] for i in np.argsort(-sizes, kind="stable")[:keep]]


def block_around(s: Structure, rng: np.random.Generator, boxes: dict) -> tuple[np.ndarray, np.ndarray, tuple] | None:
    """(image, mask) of a block around the structure (as wide again as it is per side, at
    least 16 voxels; in a share ``P_FOV_CUT`` the block's border cuts into it on some sides),
    randomly flipped: a sample needs no more of a 512^2 CT, and finding the structure's box
    once per structure keeps a sample cheap. None for an empty mask."""
    hit = boxes.get(id(s.mask))
    if hit is None or hit[0]() is not s.mask:  # a renewed re-drawn block may reuse a freed id
        hit = boxes[id(s.mask)] = (weakref.ref(s.mask), mask_box(s.mask))
    if hit[1] is None:
        return None
    cropped = rng.random() < P_FOV_CUT
    cut = []
    for a, b, n in zip(*hit[1], s.mask.shape, strict=True):
        m = max(16, int(rng.uniform(0.5, 1.0) * (b - a)))
        lo, hi = max(0, a - m), min(n, b + m)
        if cropped:  # the scan ends inside the structure on some sides (a liver at a CT's top)
            if rng.random() < 0.3:
                lo = a + int(rng.uniform(0.0, 0.3) * (b - a))
            if rng.random() < 0.3:
                hi = b - int(rng.uniform(0.0, 0.3) * (b - a))
        cut.append(slice(lo, hi))
    image, mask = s.image[tuple(cut)], s.mask[tuple(cut)]
    for a in range(3):
        if rng.random() < 0.5:
            image, mask = np.flip(image, a), np.flip(mask, a)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask), s.spacing


def wrong_result(mask: np.ndarray, axis: int, rng: np.random.Generator) -> np.ndarray:
    """A plausible wrong 3D result of an earlier round: eroded or dilated, shifted, cut short
    or carried past the structure's end along ``axis``, a blob added or removed."""
    m = mask.copy()
    r = int(rng.integers(0, 4))
    if r:
        m = (ndimage.binary_dilation if rng.random() < 0.5 else ndimage.binary_erosion)(m, iterations=r)
    m = np.roll(m, tuple(int(x) for x in rng.integers(-3, 4, 3)), axis=(0, 1, 2))
    present = np.flatnonzero(m.any(axis=tuple(b for b in range(3) if b != axis)))
    if len(present) > 2 and rng.random() < 0.4:  # the propagation stopped early
        cut = int(rng.integers(present[0], present[-1]))
        at: list[slice] = [slice(None)] * 3
        at[axis] = slice(cut, None) if rng.random() < 0.5 else slice(None, cut)
        m[tuple(at)] = False
    elif len(present) and rng.random() < 0.3:  # ... or ran past the end
        end = int(present[-1])
        for k in range(end + 1, min(m.shape[axis], end + 1 + int(rng.integers(1, 6)))):
            src: list[int | slice] = [slice(None)] * 3
            src[axis], dst = end, list(src)
            dst[axis] = k
            m[tuple(dst)] = m[tuple(src)]
    if rng.random() < 0.3 and m.any():
        p = np.argwhere(m)[int(rng.integers(int(m.sum())))]
        grid = np.ogrid[tuple(slice(0, n) for n in m.shape)]
        blob = sum((g - c) ** 2 for g, c in zip(grid, p, strict=True)) <= rng.uniform(3, 10) ** 2
        m = m & ~blob if rng.random() < 0.5 else m | blob
    return m


def robot_hint(kind: str, mask: np.ndarray, current: np.ndarray | None, axis: int, index: int, rng):
    """The benchmark robot's hint on one slice (a click: on the largest error's centre)."""
    ref = np.take(mask, index, axis=axis)
    if kind == "click":
        c = robot_click(ref, np.zeros_like(ref) if current is None else np.take(current, index, axis=axis))
        return None if c is None else Click(ijk_from_slice_point(c.point, axis, index), positive=c.positive, axis=axis)
    now = None if current is None else np.take(current, index, axis=axis)
    return robot_slice_hint(kind, ref, now, axis, index, rng)


def own_result(
    own: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    hints: list,
    previous: np.ndarray | None,
    spacing: tuple,
    size: int,
) -> np.ndarray:
    """The network's own answer to ``hints`` given ``previous`` (in the engine's region,
    not zoomed), pasted into a block-sized mask: the wrong result a later round really
    starts from."""
    region = object_region(hints, previous, spacing, image.shape)
    grid = torch.from_numpy(own(encode(image, previous, hints, region, size)))[None, None]
    prob = to_region(grid, region)[0, 0].numpy()
    out = np.zeros(image.shape, bool)
    out[region_cut(region)] = prob > 0.5
    return out


def training_sample(
    structs: list[Structure],
    rng: np.random.Generator,
    size: int,
    p_correct: float,
    max_zoom: int,
    boxes: dict,
    own: Callable[[np.ndarray], np.ndarray] | None = None,
    p_own: float = 0.0,
    max_corrections: int = 2,
    region_jitter: float = 0.0,
    kinds: tuple[str, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input (len(CHANNELS), size^3), target (1, size^3), the hinted slices' cells
    (``prompts.hinted_planes``, (1, size^3))) of one benchmark-like step.

    ``own`` (the network being trained: input -> probability on its grid) makes a
    share ``p_own`` of the later rounds start from the network's own first answer instead of
    a made-up wrong result (and each further correction, up to ``max_corrections``, from its
    answer to the ones before), so corrections are learnt on the errors the network makes,
    round after round, as long as a benchmark session goes. ``region_jitter`` widens half the
    regions by a random factor in [1, 1 + region_jitter] per axis (``widened``). ``kinds``: the
    first hint's kinds to draw from, evenly (default: ``KINDS`` at ``KIND_P``)."""
    while True:
        block = block_around(structs[int(rng.integers(len(structs)))], rng, boxes)
        if block is None:  # a re-drawn block can lose a small structure to its deformation
            continue
        image, mask, spacing = block
        axis = int(rng.choice(3, p=[0.6, 0.2, 0.2]))
        area = mask.sum(axis=tuple(b for b in range(3) if b != axis))
        good = np.flatnonzero(area >= max(1, 0.2 * area.max()))
        index = int(np.argmax(area)) if rng.random() < 0.5 else int(rng.choice(good))
        kind = str(rng.choice(KINDS, p=KIND_P)) if kinds is None else str(rng.choice(kinds))
        first = robot_hint(kind, mask, None, axis, index, rng)
        if first is not None:
            break
    hints, previous = [first], None
    if rng.random() < p_correct:
        mine = own if own is not None and rng.random() < p_own else None
        if mine is not None:
            previous = own_result(mine, image, hints, None, spacing, size)
        else:
            previous = wrong_result(mask, axis, rng)
        for c in range(int(rng.integers(1, max_corrections + 1))):
            if c and mine is not None:  # round c + 2: the network's answer to round c + 1 (so it learns not to drift)
                previous = own_result(mine, image, hints, previous, spacing, size)
            a = axis if rng.random() < 0.7 else int(rng.integers(3))
            err = (mask ^ previous).sum(axis=tuple(b for b in range(3) if b != a))
            if not err.any():
                break
            i = int(np.argmax(err)) if rng.random() < 0.5 else int(rng.choice(np.flatnonzero(err)))
            again = kind if rng.random() < 0.8 else str(rng.choice(KINDS, p=KIND_P))
            h = robot_hint(again, mask, previous, a, i, rng)
            if h is not None:
                hints.append(h)
    region = object_region(hints, previous, spacing, mask.shape)
    for _ in range(int(rng.integers(0, max_zoom + 1))):  # the regions the engine zooms out to
        cut = region_cut(region)
        faces = touching_faces(mask[cut], region, mask.shape)
        if not faces:
            break
        region = grow_to_object(region, faces, mask.shape)
    if region_jitter > 0 and rng.random() < 0.5:
        region = widened(region, rng.uniform(1.0, 1.0 + region_jitter, 3), mask.shape)
    cut = region_cut(region)
    x = encode(image, previous, hints, region, size)
    y = (resample(mask[cut].astype(np.float32), size) > 0.5).astype(np.float32)
    return x, y[None], hinted_planes(hints, region, size)[None]


def widened(region: Region3, factors: np.ndarray, shape: tuple[int, ...]) -> Region3:
    """``region`` scaled by ``factors`` (KJI) about its centre, inside ``shape``. The engine's
    region grows with the hint, and a network trained on it alone answers in proportion to
    the region; wider ones show it regions larger than their structure (stage 6 of
    Resources/Models/prompt3d.md: no gain on the held-out sessions, so off by default)."""
    lo, hi = np.asarray(region[0], float), np.asarray(region[1], float)
    centre, half = (lo + hi) / 2, (hi - lo) / 2 * factors
    return inside(centre - half, centre + half, shape)


def train(args: argparse.Namespace) -> dict:
    """Train (or continue, ``--resume`` / ``--init``) and save ``args.out`` with its meta."""
    args.command = getattr(args, "command", "interactiveseg train-prompt3d " + " ".join(sys.argv[2:]))
    args.out = args.out or str(default_models_dir() / "prompt3d.pt")
    if args.workers < 0 or args.sync_every < 1:
        raise ConfigError(f"--workers must be 0 or more and --sync-every 1 or more ({args.workers}, {args.sync_every})")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    net_cfg = {"features": list(args.features)}
    model = prompt3d_net(**net_cfg)
    if args.init:
        counts = load_matching(model, torch.load(args.init, map_location="cpu", weights_only=True)["state_dict"])
        print(f"warm start from {args.init}: {counts}", flush=True)
    done = [resumed_iteration(args)]
    rng = np.random.default_rng([args.seed, done[0]])  # a resumed run draws new samples, not the first ones again
    structs = training_structures(args.dataset or DEFAULT_DATASETS, normalization="modality")
    unions = composite_structures(structs, rng, per_volume=16) if args.p_composite > 0 else []
    large = largest(structs + unions, LARGE_SHARE) if args.p_large > 0 else []
    settings = SynthesisSettings(tone_curve_probability=args.p_tone_curve)

    def make_sampler(r: np.random.Generator) -> Callable[[Own], tuple]:
        """``sample(own)``: one training sample drawn with ``r``; its re-drawn blocks are its own."""
        single = structure_draw(args, structs, r, settings)
        boxes: dict = {}

        def sample(own: Own) -> tuple:
            # a share --p-large: the largest structures with a click or a stroke (a short hint on a
            # large structure, issue 20's balls and whole brain); else unions of neighbouring
            # structures in a share --p-composite; else single's
            if large and r.random() < args.p_large:
                pool, kinds = large, SHORT_HINTS
            else:
                pool, kinds = (unions if unions and r.random() < args.p_composite else single(r)), None
            return training_sample(
                pool,
                r,
                size=args.size,
                p_correct=args.p_correct,
                max_zoom=args.max_zoom,
                boxes=boxes,
                own=own,
                p_own=args.p_own,
                max_corrections=args.max_corrections,
                region_jitter=args.region_jitter,
                kinds=kinds,
            )

        return sample

    # workers fork before the model goes to a GPU: a forked CUDA context is unusable
    workers = SampleWorkers(make_sampler, model, args.workers, [args.seed, done[0]]) if args.workers else None
    start = done[0]
    device = torch.device(args.device)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = DiceCELoss(sigmoid=True)

    def own(x: np.ndarray) -> np.ndarray:
        model.eval()
        prob = grid_probability(model, x, device)
        model.train()
        return prob

    if workers is None:
        sample = make_sampler(rng)

        def next_sample() -> tuple:
            return sample(own)

    else:
        next_sample = workers.get

    def step() -> torch.Tensor:
        model.train()
        done[0] += 1  # the step's own iteration, so a resumed run keeps its schedule
        for group in opt.param_groups:
            group["lr"] = args.lr * (args.lr_drop if args.lr_drop_at and done[0] > args.lr_drop_at else 1.0)
        if workers is not None and (done[0] - start - 1) % args.sync_every == 0:
            workers.sync(model)  # the answers workers correct from now on are this step's network's
        batch = [next_sample() for _ in range(args.batch)]
        x = torch.from_numpy(np.stack([b[0] for b in batch])).to(device)
        y = torch.from_numpy(np.stack([b[1] for b in batch])).to(device)
        logits = model(x)
        loss = loss_fn(logits, y)
        if args.slice_weight > 0:  # the hinted slices' own answer, which the whole volume's loss barely sees
            planes = torch.from_numpy(np.stack([b[2] for b in batch])).to(device)
            ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
            loss = loss + args.slice_weight * ce[planes].mean()
        return loss

    print(f"prompt3d_net: {len(structs)} structures, {len(unions)} unions; {args.iterations} iterations", flush=True)
    config = {"net": net_cfg, "size": args.size, "channels": list(CHANNELS)}
    meta = {
        "data": " + ".join(args.dataset or DEFAULT_DATASETS) + ", train split of each (data.splits)",
        "normalization": "modality",
        "randomisation": {
            "p_augment": args.p_augment,
            "p_tone_curve": args.p_tone_curve,
            "block": args.block,
            "p_correct": args.p_correct,
            "p_own": args.p_own,
            "p_composite": args.p_composite,
            "p_large": args.p_large,
            "max_corrections": args.max_corrections,
        },
        "slice_weight": args.slice_weight,
        "region_jitter": args.region_jitter,
        "lr": {"base": args.lr, "drop_at": args.lr_drop_at, "drop": args.lr_drop},
        "init": args.init,
        "workers": args.workers,
    }
    try:
        return fit(args, model, opt, step, "prompt3d_net", config, meta)
    finally:
        if workers is not None:
            workers.close()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="default: Resources/Models/prompt3d.pt")
    add_dataset_argument(p, "Default: " + ", ".join(DEFAULT_DATASETS))
    p.add_argument("--iterations", type=int, default=5400)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-drop-at", type=int, default=3500, help="iteration after which the learning rate is lowered")
    p.add_argument("--lr-drop", type=float, default=0.2, help="the factor it is lowered by")
    p.add_argument("--size", type=int, default=64, help="side of the network's grid (a multiple of 16)")
    p.add_argument(
        "--features",
        type=int,
        nargs=6,
        default=[8, 16, 32, 64, 128, 8],
        help="U-Net widths; with --init from a narrower network, each the same whole multiple of its own "
        "(the wider network starts as the narrower one: training.grown_tensor)",
    )
    p.add_argument("--p-correct", type=float, default=0.5, help="share of samples that correct a wrong result")
    p.add_argument("--p-own", type=float, default=0.5, help="share of those that correct the network's own result")
    p.add_argument(
        "--max-corrections", type=int, default=2, help="most corrections a later-round sample adds (its rounds - 1)"
    )
    p.add_argument(
        "--slice-weight",
        type=float,
        default=0.0,
        help="weight of a cross-entropy on the hinted slices' cells, added to the volume's Dice + CE",
    )
    p.add_argument(
        "--region-jitter",
        type=float,
        default=0.0,
        help="half the samples' regions widened by up to 1 + this per axis (0: the engine's regions only)",
    )
    p.add_argument("--p-composite", type=float, default=0.2, help="share of samples on unions of touching structures")
    p.add_argument(
        "--p-large",
        type=float,
        default=0.0,
        help="share of samples on the largest tenth of the structures (unions too), from a click or a stroke",
    )
    p.add_argument("--max-zoom", type=int, default=3, help="zoom-outs a sample's region may take (the engine's)")
    p.add_argument("--p-augment", type=float, default=0.5, help="share of samples from re-drawn blocks")
    p.add_argument(
        "--p-tone-curve",
        type=float,
        default=0.0,
        help="share of re-drawn real blocks first sent through a random tone curve: a real texture, another contrast",
    )
    p.add_argument("--pool", type=int, default=4, help="re-drawn blocks kept at once")
    p.add_argument("--renew-every", type=int, default=10, help="draws between renewing one re-drawn block")
    p.add_argument("--block", type=int, default=96, help="largest side of a re-drawn block, in voxels")
    p.add_argument("--init", default=None, help="start from the weights of a prompt3d checkpoint")
    p.add_argument("--resume", action="store_true", help="continue a run that stopped, from <out>.state")
    p.add_argument("--minutes", type=float, default=None, help="save and stop after this many minutes of training")
    p.add_argument("--device", default="cpu", help="torch device (cuda on a GPU machine)")
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes that draw samples while the network trains (a GPU machine's cores; 0: in-process)",
    )
    p.add_argument(
        "--sync-every", type=int, default=10, help="steps between publishing the weights the workers answer with"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--save-every", type=int, default=50)
