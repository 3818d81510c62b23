"""Train the SIM network and its ablation variants (../shared/papers/sim-sequential-interaction-memory.txt, 4.2, 5.1).

Variants (one network each, same architecture body, data and recipe):

- ``auto``:     image only, no clicks (the automatic baseline);
- ``sdg-base``: image + clicks, Static Data Generation, no memory (also serves SDG-CIM);
- ``ddg-cim``:  image + accumulated clicks, Dynamic Data Generation;
- ``ddg-sim``:  image + D ordered states, DDG, ConvLSTM decoder (the complete system);
- ``ddg-sim-plain``: as ddg-sim with the plain decoder;
- ``ddg-sim-norules``: as ddg-sim with DDG rules 2-4 off (the paper's Figure 9).

DDG fills the memory by running the network with fixed weights (no gradient) on the
virtual user's clicks before the back-propagated pass; a new user is drawn each time a
slice is seen. Loss: focal loss with dataset-wide class weights; Adam with a static
learning rate, as 5.1.3 (larger rate and fewer iterations: CPU-sized).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from monai.losses import FocalLoss

from InteractiveSegLib.checkpoints import load_checkpoint
from InteractiveSegLib.data.multiclass_tasks import TaskData, TaskSlice, dataset_tasks, load_task
from InteractiveSegLib.methods.sim.memory import CLICK_RADIUS, State, click_masks, network_input
from InteractiveSegLib.methods.sim.network import SIMNet, sim_net
from InteractiveSegLib.training import add_dataset_argument, fit, load_matching
from InteractiveSegLib.users.multiclass import DynamicUser, static_clicks

VARIANTS = {
    # name: (memory, decoder, generation, DDG rules 2-4 on)
    "auto": ("auto", "plain", "none", True),
    "sdg-base": ("base", "plain", "sdg", True),
    "ddg-cim": ("cim", "plain", "ddg", True),
    "ddg-sim": ("sim", "lstm", "ddg", True),
    "ddg-sim-plain": ("sim", "plain", "ddg", True),
    "ddg-sim-norules": ("sim", "lstm", "ddg", False),
}


def class_weights(samples: list[tuple[TaskData, TaskSlice]], cap: float = 10.0) -> np.ndarray:
    """Dataset-wide median-frequency weights over the training slices (class imbalance)."""
    n = samples[0][0].task.num_classes
    counts = np.zeros(n)
    for data, s in samples:
        counts += data.slice_target(s).sum((1, 2))
    freq = counts / counts.sum()
    w = np.median(freq) / np.maximum(freq, 1e-8)
    return np.clip(w, 1.0 / cap, cap).astype(np.float32)


def crop(img: np.ndarray, target: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A size x size window of image and (N, H, W) reference around a random foreground
    pixel (jittered), zero padded (padding is background)."""
    fg = np.argwhere(target[1:].any(0))
    centre = fg[rng.integers(len(fg))] if len(fg) else np.array(img.shape) // 2
    r0, c0 = (centre - size // 2 + rng.integers(-size // 4, size // 4 + 1, 2)).astype(int)
    out_i = np.zeros((size, size), np.float32)
    out_t = np.zeros((target.shape[0], size, size), bool)
    out_t[0] = True
    rs, cs, re, ce = max(r0, 0), max(c0, 0), min(r0 + size, img.shape[0]), min(c0 + size, img.shape[1])
    out_i[rs - r0 : re - r0, cs - c0 : ce - c0] = img[rs:re, cs:ce]
    out_t[:, rs - r0 : re - r0, cs - c0 : ce - c0] = target[:, rs:re, cs:ce]
    return out_i, out_t


def augment(img: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Flips, transposition, gamma and brightness, as 5.1.2 (no blur: CPU time)."""
    if rng.random() < 0.5:
        img, target = img[:, ::-1], target[:, :, ::-1]
    if rng.random() < 0.5:
        img, target = img[::-1], target[:, ::-1]
    if rng.random() < 0.5:
        img, target = img.T, target.transpose(0, 2, 1)
    img = np.clip(img, 0, 1) ** rng.uniform(0.7, 1.4) * rng.uniform(0.85, 1.15) + rng.uniform(-0.1, 0.1)
    return np.ascontiguousarray(img, np.float32), np.ascontiguousarray(target)


def predict_probs(model: torch.nn.Module, x: np.ndarray, multilabel: bool) -> np.ndarray:
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    return (torch.sigmoid(logits) if multilabel else torch.softmax(logits, 1)).numpy()


def decide(probs: np.ndarray, multilabel: bool) -> np.ndarray:
    """(B, N, H, W) probabilities -> boolean masks (argmax, or > 0.5 per class if multi-label)."""
    if multilabel:
        return probs > 0.5
    return np.stack([probs.argmax(1) == c for c in range(probs.shape[1])], 1)


def fill_memory(model, imgs, users, memory: str, n: int, depth: int, rounds, multilabel: bool) -> list[list[State]]:
    """DDG: run the network ``rounds`` times with fixed weights (no gradient), each time letting
    the virtual users click on its latest result, and return the ordered states per image.

    The first pass is the automatic result (empty memory); state r pairs the clicks of round r
    with the result they corrected. ``rounds`` may differ per image (a sequence): then every
    batch mixes memory lengths, so the batch-norm statistics seen in training match the mixed
    running statistics used at test time (why: Resources/Models/sim.md, "DDG").
    """
    per_image = [int(r) for r in (rounds if np.ndim(rounds) else [rounds] * len(imgs))]
    rounds = max(per_image, default=0)
    states: list[list[State]] = [[] for _ in imgs]
    if rounds == 0:
        return states
    shape = imgs[0].shape
    model.eval()
    probs = predict_probs(model, np.stack([network_input(i, [], memory, n, depth) for i in imgs]), multilabel)
    for r in range(rounds):
        masks = decide(probs, multilabel)
        for b, u in enumerate(users):
            clicks = u.step(masks[b])  # round 0 sees the automatic result (an initial user ignores it)
            states[b].append(State(click_masks(clicks, n, shape), probs[b]))
        if r < rounds - 1:
            x = np.stack([network_input(i, s, memory, n, depth) for i, s in zip(imgs, states, strict=False)])
            probs = predict_probs(model, x, multilabel)
    return [s[:r] for s, r in zip(states, per_image, strict=False)]


def sim_stem_from_cim(weight: torch.Tensor, n: int, depth: int) -> torch.Tensor:
    """A SIM input filter bank (1 + 2DN channels) that computes what a CIM network's
    (1 + N) computes: the image filters, and the CIM's click filters on every state's click
    masks (their sum is the union while clicks do not overlap: up to D clicks the SIM
    network starts as the CIM one); probability maps start at zero."""
    out = weight.new_zeros(weight.shape[0], 1 + 2 * depth * n, *weight.shape[2:])
    out[:, 0] = weight[:, 0]
    for d in range(depth):
        out[:, 1 + 2 * n * d : 1 + 2 * n * d + n] = weight[:, 1 : 1 + n]
    return out


def warm_start(model: SIMNet, path: str) -> dict:
    """Start from the project's own SIM weights (e.g. the automatic model): tensors of the
    same shape are copied, the input convolution keeps the image channel's filters with the
    memory channels at zero, and fresh LSTM read-outs start silent, so training begins
    exactly at the source model's automatic result."""
    source, _, _ = load_checkpoint(path, "sim_net")
    counts = load_matching(model, source.state_dict())
    own = model.state_dict()
    for name in counts["fresh"]:
        if ".proj." in name:  # a fresh LSTM read-out adds zero to the decoder
            own[name] = torch.zeros_like(own[name])
    if source.memory == "cim" and model.memory == "sim":
        own["stem.conv.weight"] = sim_stem_from_cim(
            source.state_dict()["stem.conv.weight"], model.num_classes, model.depth
        )
    model.load_state_dict(own)
    return {"copied": counts["copied"], "widened": counts["widened"], "fresh": len(counts["fresh"])}


def train(args: argparse.Namespace) -> dict:
    memory, decoder, generation, rules = VARIANTS[args.variant]
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    volumes = dataset_tasks(args.dataset) if args.dataset else [load_task(args.task)]
    task = volumes[0].task
    n = task.num_classes
    samples = [(data, s) for data in volumes for s in data.slices("train")]
    weights = class_weights(samples)
    print(
        f"{args.variant}: {len(samples)} training slices of {', '.join(d.task.name for d in volumes)}; "
        f"class weights {np.round(weights, 3).tolist()}",
        flush=True,
    )
    net_cfg = {
        "num_classes": n,
        "depth": args.depth,
        "memory": memory,
        "decoder": decoder,
        "features": list(args.features),
        "norm": args.norm,
    }
    model = sim_net(**net_cfg)
    if args.init:
        print(f"warm start from {args.init}: {warm_start(model, args.init)}", flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = FocalLoss(
        include_background=True, gamma=2.0, weight=torch.from_numpy(weights), use_softmax=not task.multilabel
    )
    config = {
        "net": net_cfg,
        "task": task.name,
        "classes": list(task.classes),
        "multilabel": task.multilabel,
        "click_radius": CLICK_RADIUS,
        "variant": args.variant,
    }

    def step() -> torch.Tensor:
        imgs, targets = [], []
        for _ in range(args.batch):
            data, s = samples[int(rng.integers(len(samples)))]
            img, target = augment(*crop(data.slice(s)[0], data.slice_target(s), args.crop, rng), rng)
            imgs.append(img)
            targets.append(target)
        states: list[list[State]] = [[] for _ in imgs]
        shape = imgs[0].shape
        if generation == "sdg":
            for b, t in enumerate(targets):
                states[b].append(State(click_masks(static_clicks(t, rng), n, shape), np.zeros((n, *shape), np.float32)))
        elif generation == "ddg":
            users = [
                DynamicUser(
                    t,
                    rng,
                    args.max_interactions,
                    3,
                    args.hold_out if rules else 0.0,
                    skip_class=rules,
                    corrective_start=bool(rng.random() < args.corrective_start),
                )
                for t in targets
            ]
            if not rules:  # rule 2 off: every round clicks every class
                for u in users:
                    u.t = 10**9
            # 0..t rounds: "any or all of the D states may remain empty both at training and
            # testing time" (4.2), so the empty memory (automatic mode) and short memories (the first
            # clicks on a slice) are trained too; with t > D the SIM keeps the last D states, so a
            # full memory whose oldest state no longer corrects the automatic result (as after the
            # 4th click at test time) is trained too; one length per image
            rounds = rng.integers(
                0, max(args.max_interactions, args.depth if memory == "sim" else 0) + 1, size=len(imgs)
            )
            states = fill_memory(model, imgs, users, memory, n, args.depth, rounds, task.multilabel)
        model.train()
        x = torch.from_numpy(
            np.stack([network_input(i, s, memory, n, args.depth) for i, s in zip(imgs, states, strict=False)])
        )
        y = torch.from_numpy(np.stack(targets).astype(np.float32))
        return loss_fn(model(x), y)

    meta = {
        "task": task.name if not args.dataset else None,
        "datasets": args.dataset,
        "split": task.description if not args.dataset else {d.task.name: d.task.description for d in volumes},
        "variant": args.variant,
        "class_weights": weights.tolist(),
        "init": args.init,
        "corrective_start": args.corrective_start,
    }
    result = fit(args, model, opt, step, "sim_net", config, meta, loss_name="focal")
    return {"variant": args.variant, **result}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", choices=sorted(VARIANTS), default="ddg-sim")
    p.add_argument("--out", default=None, help="default: Resources/Models/sim_<variant>.pt")
    p.add_argument("--task", default="colin27-deep-grey", help="a shipped multi-class task (without --dataset)")
    add_dataset_argument(p, "Instead of --task: every label a class, train volumes whole")
    p.add_argument(
        "--depth",
        type=int,
        default=4,
        help="D, the number of states in the SIM (4: the memory-depth ablation's choice, sim.md)",
    )
    p.add_argument("--max-interactions", type=int, default=3, help="t of the paper (rule 2)")
    p.add_argument("--hold-out", type=float, default=0.8, help="rule 4: fraction of generated clicks held out")
    p.add_argument("--iterations", type=int, default=1500)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--features", type=int, nargs=4, default=[16, 32, 64, 128])
    p.add_argument(
        "--norm",
        choices=["batch", "instance"],
        default="batch",
        help="normalisation layers; instance: per-slice statistics at training and test time alike",
    )
    p.add_argument(
        "--init",
        default=None,
        help="warm start from a sim_net checkpoint (tensors of equal shape; input conv widened with zeros)",
    )
    p.add_argument(
        "--corrective-start",
        type=float,
        default=0.0,
        help="DDG: fraction of virtual users whose first round corrects the automatic result "
        "instead of clicking every component",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument(
        "--keep-snapshots",
        action="store_true",
        help="keep every save as <out stem>.it<N>.pt (snapshots to choose from)",
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    if args.out is None:
        args.out = f"Resources/Models/sim_{args.variant.replace('-', '_')}.pt"
    args.command = "interactiveseg train-sim " + " ".join(sys.argv[1:] if argv is None else argv)
    print(json.dumps(train(args)))


if __name__ == "__main__":
    main()
