"""Train the VMN engine's two networks on the shipped data (CPU).

``interactiveseg train-vmn --part interaction``: f_IN (VMN 3.2, 4.2). Each sample is a
training structure on a random slice of a random orientation, with a robot hint of a
random type: a scribble (the benchmark robot's stroke), a box or four extreme points
(jittered up to 10 pixels). Half the samples are round one (previous mask 0.5), half
correct a perturbed mask (eroded/dilated/shifted, parts dropped), with a corrective
scribble on the largest error or a fresh box / extreme points. One shared network for
every hint type (the paper's Table 6 "shared"). Loss: Dice + cross-entropy.

``interactiveseg train-vmn --part memory``: f_VMN (VMN 3.3, 4.3). Each sample is 5
ordered slices of one structure (stride 1-2, either direction; half the samples, ``--run-off``,
start near the structure's end and run past it, so that "it has ended" is learnt too); the first carries the reference
mask (sometimes perturbed, as f_IN would give it), each later slice is segmented with
the first and every earlier prediction in memory, and its prediction joins the memory.
Loss (eq. 9): cross-entropy (plus a batch Dice) + L2 between the quality head and the true
IoU. One step in ten reads an empty memory, which defines the memory-size-0 baseline.

Data (``--dataset``, through ``data.datasets.resolve``): by default the train split of
Colin27/AAL and INIA19/NeuroMaps (odd label ids) and of the abdominal CT (odd-numbered and
left-sided organs), scaled by modality (``intensity.normalize``). Randomisation: a share of
samples (``--p-augment``) comes from blocks around training structures re-drawn by the data
layer's TorchIO chain (``data.synthesis``: SynthSeg's random contrast per label, or the real
image under deformation, bias field, thick slices, blur, noise and gamma); f_VMN's sequences
take a random axis and a random slice stride (1 to ``--max-stride``, thick slices).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from scipy import ndimage

from InteractiveSegLib.checkpoints import default_models_dir
from InteractiveSegLib.data.structure_pack import PackedVolume, read_pack, write_pack
from InteractiveSegLib.data.synthesis import SynthesisSettings, augment_real, synthesize
from InteractiveSegLib.errors import ConfigError
from InteractiveSegLib.intensity import detect_modality, normalize
from InteractiveSegLib.methods.vmn import quality_training as vmn_quality
from InteractiveSegLib.methods.vmn.engine import NORMALIZATIONS, checkpoint_normalization
from InteractiveSegLib.methods.vmn.interaction import ROI_SIZE, interaction_input
from InteractiveSegLib.methods.vmn.network import interaction_net, vmn_net
from InteractiveSegLib.methods.vmn.quality_training import DEFAULT_DATASETS, sources
from InteractiveSegLib.preprocessing import crop_resize, normalize_intensity
from InteractiveSegLib.training import add_dataset_argument, fit, load_matching
from InteractiveSegLib.users.robot import robot_slice_hint

HINTS = ("scribble", "box", "extreme")


@dataclass
class Structure:
    """One training structure: its volume's normalised image and its mask (KJI); the volume's
    label map (shared, not copied), the structure's value and the (k, j, i) spacing in mm
    let the augmentation re-draw a block around it."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    labelmap: np.ndarray | None = None
    value: int = 0
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)


#: the intensity scaling of the images the networks are trained on by default (checkpoint meta):
#: "modality" (``intensity.normalize``) or "percentile" (``preprocessing.normalize_intensity``,
#: what the first f_VMN was trained with: a fine-tune of it keeps its scaling)
NORMALIZATION = "modality"


def training_volumes(specs=DEFAULT_DATASETS, normalization: str = NORMALIZATION) -> list[PackedVolume]:
    """The volumes of every source with a train split (``datasets.resolve``: names or folders),
    each image scaled as the engine scales it for a checkpoint of ``normalization``: by its
    modality (the source's, else detected) or by its percentiles; with the values of its train
    structures. A ``.npz`` spec is a pack of such volumes (``data.structure_pack``), read as it is."""
    packs = [str(s) for s in specs if str(s).endswith(".npz")]
    rest = [s for s in specs if str(s) not in packs]
    volumes = [v for p in packs for v in read_pack(p, normalization)]
    for d in sources(rest) if rest else []:
        if not d.in_split("train"):
            continue
        if normalization == "modality":
            image = normalize(d.image.array, d.modality or detect_modality(d.image))
        else:
            image = normalize_intensity(d.image.array)
        spacing = cast(tuple[float, float, float], tuple(float(x) for x in d.image.geometry.spacing[::-1]))
        volumes.append(PackedVolume(d.name, image, d.labels.labelmap, spacing, list(d.structures("train"))))
    return volumes


def training_structures(
    specs=DEFAULT_DATASETS, min_voxels: int = 1000, normalization: str = NORMALIZATION
) -> list[Structure]:
    """The train structures of at least ``min_voxels`` voxels of ``training_volumes``."""
    out = []
    for vol in training_volumes(specs, normalization):
        for v in vol.values:
            m = vol.labelmap == v
            if int(m.sum()) >= min_voxels:
                out.append(Structure(f"{vol.name}:{v}", vol.image, m, vol.labelmap, int(v), vol.spacing))
    if not out:
        raise ConfigError(f"no train structure of at least {min_voxels} voxels in {list(specs)}")
    return out


def pack(args: argparse.Namespace) -> None:
    """``interactiveseg pack-training-data``: the train volumes of ``--dataset`` in one file,
    which ``--dataset FILE.npz`` of the 3D trainers reads in place of the sources."""
    volumes = training_volumes(args.dataset or DEFAULT_DATASETS, args.normalization)
    write_pack(volumes, args.normalization, args.out)
    counts = ", ".join(f"{v.name} {len(v.values)}" for v in volumes)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 2**20:.1f} MiB): train structures {counts}")


def add_pack_arguments(p: argparse.ArgumentParser) -> None:
    add_dataset_argument(p, "Default: colin27, inia19 and ct-abdomen.")
    p.add_argument("--out", required=True, help="the pack to write (.npz)")
    p.add_argument("--normalization", choices=NORMALIZATIONS, default=NORMALIZATION, help="the images' scaling")


class AugmentedStructures:
    """Training structures re-drawn by the data layer (``data.synthesis``), renewed one at a
    time: a block of at most ``block`` voxels a side around a structure, either synthesised
    from its label map (SynthSeg's random contrast per label, then bias, thick slices, blur,
    noise, gamma) or its real image under the same spatial and imaging changes. A whole
    volume takes seconds to re-draw, a block a fraction of one, so a small pool is kept and
    one member replaced every few iterations."""

    def __init__(
        self,
        structs: list[Structure],
        rng: np.random.Generator,
        size: int = 4,
        block: int = 96,
        min_voxels: int = 200,
        settings: SynthesisSettings | None = None,
    ) -> None:
        self.source = [s for s in structs if s.labelmap is not None]
        self.rng, self.block, self.min_voxels = rng, block, min_voxels
        self.settings = settings or SynthesisSettings()
        self.pool = [self.make() for _ in range(size)] if self.source else []

    def make(self) -> Structure:
        for _ in range(20):
            s = self.source[int(self.rng.integers(len(self.source)))]
            assert s.labelmap is not None
            centre = np.argwhere(s.mask)[int(self.rng.integers(int(s.mask.sum())))]
            top = np.maximum(np.array(s.mask.shape) - self.block, 0)
            lo = np.clip(centre - self.block // 2, 0, top)
            cut = tuple(slice(int(a), int(a) + self.block) for a in lo)
            if self.rng.random() < 0.5:
                image, lab = synthesize(s.labelmap[cut], s.spacing, self.rng, self.settings)
            else:
                image, lab = augment_real(s.image[cut], s.labelmap[cut], s.spacing, self.rng, self.settings)
            mask = lab == s.value
            if int(mask.sum()) >= self.min_voxels:
                return Structure(f"{s.name}:augmented", image, mask)
        return self.source[int(self.rng.integers(len(self.source)))]

    def renew(self) -> None:
        if self.pool:
            self.pool[int(self.rng.integers(len(self.pool)))] = self.make()


def structure_draw(args, structs: list[Structure], rng: np.random.Generator, settings: SynthesisSettings | None = None):
    """``draw(rng) -> list`` of structures to sample from: the augmented pool (re-drawn with
    ``settings``) with probability ``args.p_augment`` (renewed every ``args.renew_every``
    draws), else the real ones."""
    pool = AugmentedStructures(structs, rng, args.pool, args.block, settings=settings) if args.p_augment > 0 else None
    calls = [0]

    def draw(r: np.random.Generator) -> list[Structure]:
        calls[0] += 1
        if pool is None or not pool.pool or r.random() >= args.p_augment:
            return structs
        if calls[0] % args.renew_every == 0:
            pool.renew()
        return pool.pool

    return draw


def perturb(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible wrong mask of a previous round: eroded or dilated, shifted, a part dropped."""
    m = mask.copy()
    r = int(rng.integers(0, 4))
    if r:
        m = (ndimage.binary_dilation if rng.random() < 0.5 else ndimage.binary_erosion)(m, iterations=r)
    m = np.roll(m, tuple(int(x) for x in rng.integers(-3, 4, 2)), axis=(0, 1))
    if rng.random() < 0.4 and m.any():
        p = np.argwhere(m)[int(rng.integers(int(m.sum())))]
        yy, xx = np.ogrid[: m.shape[0], : m.shape[1]]
        rad = rng.uniform(3, 10)
        blob = (yy - p[0]) ** 2 + (xx - p[1]) ** 2 <= rad**2
        m = m & ~blob if rng.random() < 0.5 else m | blob
    return m


def interaction_sample(
    structs: list[Structure], rng: np.random.Generator, size: int, encoding: str, beyond: float = 0.0
):
    """(input (4, size, size), target (1, size, size)) for f_IN."""
    while True:
        s = structs[int(rng.integers(len(structs)))]
        axis = int(rng.integers(3))
        area = s.mask.sum(axis=tuple(a for a in range(3) if a != axis))
        idx = np.flatnonzero(area >= 20)
        if len(idx):
            break
    index = int(idx[int(rng.integers(len(idx)))])
    ref = np.take(s.mask, index, axis=axis)
    kind = HINTS[int(rng.integers(3))]
    previous = perturb(ref, rng) if rng.random() < 0.5 else None
    if rng.random() < beyond:
        # a slice just past the structure's end, still holding a propagated mask (the
        # propagation's typical false positive): the robot's negative stroke there must clear it
        step = 1 if rng.random() < 0.5 else -1
        edge = idx.max() if step > 0 else idx.min()
        past = int(edge + step * rng.integers(1, 9))
        if 0 <= past < s.mask.shape[axis] and not np.take(s.mask, past, axis=axis).any():
            previous = perturb(np.take(s.mask, int(edge), axis=axis), rng)
            index, ref = past, np.zeros_like(ref)
    img = np.take(s.image, index, axis=axis)
    hint = robot_slice_hint(kind, ref, previous, 0, 0, rng)
    if hint is None:  # the perturbation changed nothing: round one instead
        previous, hint = None, robot_slice_hint(kind, ref, None, 0, 0, rng)
    if hint is None:  # past the end with nothing left to clear: draw again
        return interaction_sample(structs, rng, size, encoding, beyond)
    x, roi = interaction_input(img, previous, [hint], 0, size, encoding)
    y = (crop_resize(ref.astype(np.float32), roi, size) > 0.5).astype(np.float32)
    return x, y[None]


def memory_sample(
    structs: list[Structure],
    rng: np.random.Generator,
    crop: int,
    frames: int = 5,
    max_stride: int = 3,
    run_off: float = 0.5,
):
    """(images (T, 1, crop, crop), masks (T, 1, crop, crop), first mask as given) of T ordered
    slices along a random axis, every ``stride``-th slice (1 to ``max_stride``: thick slices);
    a share ``run_off`` of them starts near the structure's end and runs past it."""
    s = structs[int(rng.integers(len(structs)))]
    axis = int(rng.integers(3))
    img, mask = np.moveaxis(s.image, axis, 0), np.moveaxis(s.mask, axis, 0)
    present = np.flatnonzero(mask.any((1, 2)))
    stride, step = int(rng.integers(1, max_stride + 1)), (1 if rng.random() < 0.5 else -1)
    if rng.random() < run_off:  # samples that run off the structure's end: learn where it stops
        end = present.max() if step > 0 else present.min()
        start = int(np.clip(end - step * stride * int(rng.integers(0, frames)), present.min(), present.max()))
        start = int(present[np.argmin(np.abs(present - start))])
    else:
        start = int(present[int(rng.integers(len(present)))])
    idx = np.clip(start + step * stride * np.arange(frames), 0, len(mask) - 1)
    # the crop is centred on the first slice's structure, as the engine's region on the corrected slice
    rows, cols = np.nonzero(mask[start])
    centre = np.array([(rows.min() + rows.max()) // 2, (cols.min() + cols.max()) // 2]) + rng.integers(-8, 9, 2)
    lo = np.clip(centre - crop // 2, 0, np.maximum(np.array(mask.shape[1:]) - crop, 0))
    sl = (slice(lo[0], lo[0] + crop), slice(lo[1], lo[1] + crop))
    images = np.zeros((frames, 1, crop, crop), np.float32)
    masks = np.zeros((frames, 1, crop, crop), np.float32)
    for t, i in enumerate(idx):
        a, m = img[i][sl], mask[i][sl]
        images[t, 0, : a.shape[0], : a.shape[1]] = a
        masks[t, 0, : m.shape[0], : m.shape[1]] = m
    first = masks[0, 0].astype(bool)
    if rng.random() < 0.5 and first.any():
        first = perturb(first, rng) & (ndimage.binary_dilation(masks[0, 0] > 0, iterations=4))
    if rng.random() < 0.5:  # flips: orientation-agnostic
        images, masks = images[..., ::-1].copy(), masks[..., ::-1].copy()
        first = first[:, ::-1].copy()
    return images, masks, first.astype(np.float32)


def iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel IoU per batch item of binary (B, 1, H, W) maps; 1 when both are empty."""
    inter = (pred * target).sum((1, 2, 3))
    union = ((pred + target) > 0).float().sum((1, 2, 3))
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def _setup(args, factory, net_cfg: dict):
    """Seeded rng, the training structures, a fresh network and its Adam optimiser."""
    torch.manual_seed(args.seed)
    model = factory(**net_cfg)
    if args.init:  # continue from the project's own checkpoint of the same network
        checkpoint = torch.load(args.init, map_location="cpu", weights_only=True)
        scaled = checkpoint_normalization(checkpoint.get("meta") or {}, checkpoint.get("config"))
        if scaled != args.normalization:
            # a network fed differently scaled images starts from a broken point: earlier
            # fine-tunes of vmn_memory.pt did, and only ever got worse (Resources/Models/vmn.md)
            raise ConfigError(
                f"--init {args.init} was trained on {scaled!r}-scaled images: pass --normalization {scaled}"
            )
        counts = load_matching(model, checkpoint["state_dict"])
        print(f"warm start from {args.init}: {counts}", flush=True)
    rng = np.random.default_rng(args.seed)
    structs = training_structures(args.dataset or DEFAULT_DATASETS, normalization=args.normalization)
    return rng, structure_draw(args, structs, rng), model, torch.optim.Adam(model.parameters(), lr=args.lr), structs


def train_interaction(args) -> dict:
    net_cfg = {"features": list(args.in_features)}
    rng, draw, model, opt, structs = _setup(args, interaction_net, net_cfg)
    loss_fn = seg_loss  # batch Dice: slices past the structure's end have empty targets
    config = {"net": net_cfg, "encoding": args.encoding, "roi_size": args.roi_size, "hints": list(HINTS)}
    return _loop(
        args,
        model,
        opt,
        config,
        "vmn_interaction",
        lambda: _interaction_step(args, model, loss_fn, draw, rng),
        f"{len(structs)} structures",
    )


def _interaction_step(args, model, loss_fn, draw, rng) -> torch.Tensor:
    batch = [interaction_sample(draw(rng), rng, args.roi_size, args.encoding, args.beyond) for _ in range(args.batch)]
    x = torch.from_numpy(np.stack([b[0] for b in batch]))
    y = torch.from_numpy(np.stack([b[1] for b in batch]))
    return loss_fn(model(x), y)


def train_memory(args) -> dict:
    net_cfg = {"features": list(args.features), "key_stride": args.key_stride, "prior": args.prior}
    rng, draw, model, opt, structs = _setup(args, vmn_net, net_cfg)
    config = {"net": net_cfg, "frames": args.frames, "crop": args.crop}
    return _loop(
        args,
        model,
        opt,
        config,
        "vmn_net",
        lambda: _memory_step(args, model, draw, rng),
        f"{len(structs)} structures",
    )


#: eq. 9's cross-entropy plus Dice, because a small structure covers ~3% of a crop. The Dice
#: is over the whole batch: per slice, a slice beyond the structure's end (empty target) gives
#: a Dice loss of ~1 whatever is predicted and so cannot teach the network to stop; over the
#: batch its false positives count (Resources/Models/vmn.md, change 6)
seg_loss = DiceCELoss(sigmoid=True, batch=True)


def _memory_step(args, model, draw, rng) -> torch.Tensor:
    # the engine propagates inside a region around the structure: train on such sizes
    crop = int(rng.choice([c for c in (64, 96, 128) if c <= args.crop] or [args.crop]))
    batch = [memory_sample(draw(rng), rng, crop, args.frames, args.max_stride, args.run_off) for _ in range(args.batch)]
    images = torch.from_numpy(np.stack([b[0] for b in batch]))  # (B, T, 1, H, W)
    masks = torch.from_numpy(np.stack([b[1] for b in batch]))
    first = torch.from_numpy(np.stack([b[2] for b in batch]))[:, None]
    keys, values = [], []
    k, v = model.encode_memory(images[:, 0], first)
    keys.append(k)
    values.append(v)
    previous = first  # the previous slice's mask, as the engine hands it on (the decoder's prior)
    loss = images.new_zeros(())
    for t in range(1, images.shape[1]):
        query = model.encode_query(images[:, t])
        if rng.random() < args.empty_memory:
            key_m, value_m = k.new_zeros(k.shape[0], 0, *k.shape[1:]), v.new_zeros(v.shape[0], 0, *v.shape[1:])
            prior = None  # no memory, no slice carried (the memory-less baseline)
        else:
            key_m, value_m, prior = torch.stack(keys, 1), torch.stack(values, 1), previous
        logit, quality = model.segment(images[:, t], query, key_m, value_m, prior)
        target = masks[:, t]
        prob = torch.sigmoid(logit)
        true_iou = iou((prob > 0.5).float(), target).detach()
        loss = loss + seg_loss(logit, target) + F.mse_loss(quality, true_iou)
        previous = prob.detach()
        k, v = model.encode_memory(images[:, t], previous)
        keys.append(k)
        values.append(v)
    return loss / (images.shape[1] - 1)


def _loop(args, model, opt, config: dict, arch: str, step, what: str) -> dict:
    torch.set_num_threads(args.threads)
    print(f"{arch}: {what}; {args.iterations} iterations", flush=True)

    def train_step() -> torch.Tensor:
        model.train()
        return step()

    sources = list(args.dataset or DEFAULT_DATASETS)
    meta = {
        "data": " + ".join(sources) + ", train split of each (data.splits)",
        "normalization": args.normalization,
        "randomisation": {"p_augment": args.p_augment, "max_stride": args.max_stride, "block": args.block},
        "init": args.init,
    }
    result = fit(args, model, opt, train_step, arch, config, meta)
    return {"arch": arch, **result}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--part",
        choices=["interaction", "memory", "quality"],
        required=True,
        help="f_IN, f_VMN, or f_VMN's quality head alone on the engine's own propagations (from --init)",
    )
    p.add_argument("--out", default=None, help="default: Resources/Models/vmn_interaction.pt or vmn_memory.pt")
    add_dataset_argument(p, "Default: " + ", ".join(DEFAULT_DATASETS))
    p.add_argument("--iterations", type=int, default=1500)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--encoding", choices=["geodesic", "exp_geodesic", "gaussian"], default="geodesic", help="f_IN cue maps"
    )
    p.add_argument("--roi-size", type=int, default=ROI_SIZE, help="f_IN: side of the resized ROI")
    p.add_argument(
        "--beyond",
        type=float,
        default=0.2,
        help="f_IN: fraction of samples past the structure's end (a false mask to clear)",
    )
    p.add_argument("--in-features", type=int, nargs=6, default=[16, 32, 64, 128, 256, 16], help="f_IN U-Net widths")
    p.add_argument("--features", type=int, nargs=4, default=[16, 32, 64, 128], help="f_VMN encoder widths")
    p.add_argument("--key-stride", type=int, choices=[8, 16], default=8, help="f_VMN: stride of keys and values")
    p.add_argument("--frames", type=int, default=5, help="f_VMN: ordered slices per sample (4.3)")
    p.add_argument(
        "--normalization",
        choices=NORMALIZATIONS,
        default=NORMALIZATION,
        help="image scaling; a fine-tune (--init) must keep its checkpoint's (vmn_memory.pt: percentile)",
    )
    p.add_argument(
        "--run-off", type=float, default=0.5, help="f_VMN: share of sequences that run past the structure's end"
    )
    p.add_argument(
        "--prior",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="f_VMN: the decoder corrects the previous slice's mask",
    )
    p.add_argument(
        "--crop", type=int, default=128, help="f_VMN: largest in-plane crop of a sample (64, 96 or 128 per batch)"
    )
    p.add_argument("--empty-memory", type=float, default=0.1, help="f_VMN: fraction of steps read with an empty memory")
    p.add_argument("--init", default=None, help="continue from a checkpoint of the same part")
    p.add_argument("--resume", action="store_true", help="continue a run that stopped, from <out>.state")
    p.add_argument(
        "--p-augment", type=float, default=0.3, help="share of samples from re-drawn blocks (data.synthesis)"
    )
    p.add_argument("--pool", type=int, default=4, help="re-drawn blocks kept at once")
    p.add_argument("--renew-every", type=int, default=10, help="draws between renewing one re-drawn block")
    p.add_argument("--block", type=int, default=96, help="largest side of a re-drawn block, in voxels")
    p.add_argument("--max-stride", type=int, default=3, help="f_VMN: largest slice stride of a sequence")
    p.add_argument("--threads", type=int, default=2)
    vmn_quality.add_arguments(p)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--save-every", type=int, default=100)


def train(args: argparse.Namespace) -> dict:
    args.command = getattr(args, "command", "interactiveseg train-vmn " + " ".join(sys.argv[2:]))
    if args.out is None:
        args.out = str(default_models_dir() / ("vmn_interaction.pt" if args.part == "interaction" else "vmn_memory.pt"))
    if args.part == "quality":
        args.init = args.init or str(default_models_dir() / "vmn_memory.pt")
        return vmn_quality.train_quality(args)
    return train_interaction(args) if args.part == "interaction" else train_memory(args)
