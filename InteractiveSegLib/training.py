"""The optimisation loop every trainer shares: step, log, checkpoint.

A trainer builds its batch and returns the loss in ``step()`` (setting train/eval mode
itself: the virtual users run the network with fixed weights before back-propagation);
``fit`` does the rest, and the checkpoint's ``meta`` always says how it was made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from InteractiveSegLib.checkpoints import save_checkpoint
from InteractiveSegLib.errors import ConfigError


def fit(
    args,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    step: Callable[[], torch.Tensor],
    arch: str,
    config: dict,
    meta: dict,
    scheduler=None,
    loss_name: str = "loss",
) -> dict:
    """Run ``args.iterations`` steps; log every ``args.log_every``, save every ``args.save_every``
    (and at the end) to ``args.out`` with ``meta`` + command, iterations, loss, minutes, seed;
    with ``args.keep_snapshots`` each save is also kept as ``<out stem>.it<N>.pt``.

    With ``args.minutes`` the run saves and stops after the first step past that many minutes.

    Each save also writes ``<out>.state`` (optimiser, scheduler, iteration, minutes); with
    ``args.resume`` a run that stopped continues from there, so a long CPU training can span
    several sessions. The trainer's own random draws restart from its seed and the iteration.
    """
    state_path = Path(str(args.out) + ".state")
    first, minutes_before = 1, 0.0
    if getattr(args, "resume", False) and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)  # tensors and numbers: no code runs
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        first, minutes_before = int(state["iteration"]) + 1, float(state["minutes"])
        print(f"resumed from {state_path} at iteration {first - 1}", flush=True)
    t0, losses = time.time(), []
    minutes = getattr(args, "minutes", None)  # a run that must end by a deadline (a lent GPU's call)
    if minutes is not None and not minutes > 0:
        raise ConfigError(f"--minutes must be more than 0 (got {minutes})")
    limit = 60.0 * minutes if minutes is not None else None
    for it in range(first, args.iterations + 1):
        loss = step()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(float(loss.item()))
        recent = float(np.mean(losses[-args.log_every :]))
        if it % args.log_every == 0 or it == args.iterations:
            el = time.time() - t0
            print(
                f"iter {it}/{args.iterations} {loss_name} {recent:.4f} {el / (it - first + 1):.2f}s/iter "
                f"{minutes_before + el / 60:.1f} min",
                flush=True,
            )
        out_of_time = limit is not None and time.time() - t0 >= limit
        if it % args.save_every == 0 or it == args.iterations or out_of_time:
            info = {
                "command": args.command,
                **meta,
                "iterations": it,
                "final_loss": recent,
                "minutes": round(minutes_before + (time.time() - t0) / 60, 1),
                "seed": args.seed,
            }
            save_checkpoint(args.out, arch, config, model, info)
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "iteration": it,
                    "minutes": info["minutes"],
                },
                state_path,
            )
            if getattr(args, "keep_snapshots", False):  # every save kept too, to choose among them later
                out = Path(args.out)
                save_checkpoint(out.with_name(f"{out.stem}.it{it}{out.suffix}"), arch, config, model, info)
        if out_of_time:
            print(f"stopped after {it} iterations: --minutes {minutes} spent (--resume goes on)", flush=True)
            break
    return {
        "loss": float(np.mean(losses[-args.log_every :])) if losses else None,
        "minutes": minutes_before + (time.time() - t0) / 60,
    }


def add_dataset_argument(parser, use: str) -> None:
    """``--dataset``, the same for every command that learns: a shipped name or a folder,
    repeatable (``data.datasets.resolve`` reads them); ``use`` says what the command does with it."""
    parser.add_argument(
        "--dataset",
        action="append",
        help="a labelled source: a shipped name (colin27, ct-abdomen, ...) or a folder (Medical Segmentation "
        f"Decathlon / nnU-Net, or image/label pairs); repeatable. {use}",
    )


def resumed_iteration(args) -> int:
    """The iteration a ``--resume`` run continues after (0 for a fresh run)."""
    state_path = Path(str(args.out) + ".state")
    if not getattr(args, "resume", False) or not state_path.exists():
        return 0
    return int(torch.load(state_path, map_location="cpu", weights_only=True)["iteration"])


def load_matching(model: torch.nn.Module, source: dict) -> dict:
    """Warm start from the project's own weights: every tensor of the same shape is copied; a
    convolution with more input channels keeps the source filters and starts the new input
    channels at zero; a network whose every width is the source's times one whole factor
    starts as the source (``grown_tensor``). Either way the model starts as the same function
    as the source. Returns counts and the names of the tensors left fresh."""
    own = model.state_dict()
    deconvs = (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)
    transposed = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, deconvs)}
    # a wider network (more output channels somewhere): its inputs grow as copies, not zeros
    wider = any(n in source and v.dim() and source[n].shape[0] < v.shape[0] for n, v in own.items())
    copied, widened, grown, fresh = 0, 0, 0, []
    for name, value in own.items():
        w = source.get(name)
        if w is not None and w.shape == value.shape:
            own[name] = w.clone()
            copied += 1
        elif wider and w is not None and (bigger := grown_tensor(w, value, name in transposed)) is not None:
            own[name] = bigger
            grown += 1
        elif (
            w is not None
            and w.dim() in (4, 5)  # a 2D or 3D convolution
            and w.shape[0] == value.shape[0]
            and w.shape[2:] == value.shape[2:]
            and w.shape[1] < value.shape[1]
        ):
            more = torch.zeros_like(value)
            more[:, : w.shape[1]] = w
            own[name] = more
            widened += 1
        else:
            fresh.append(name)
    model.load_state_dict(own)
    return {"copied": copied, "widened": widened, "grown": grown, "fresh": fresh}


def grown_tensor(w: torch.Tensor, like: torch.Tensor, transposed: bool = False) -> torch.Tensor | None:
    """``w`` of a narrower network as the same layer of one whose channels are each repeated a
    whole number of times (Net2WiderNet, Chen et al. 2016; written by hand: no library widens a
    trained MONAI network). Output channel ``a`` copies the source's ``a // r``; an input
    channel's weights are split among its ``r`` copies at random shares that sum to one, so
    the copies compute the same values as the source (per-channel instance norm and max
    pooling included) and learn apart. A concatenation of two widened parts stays right
    when both grew by the same factor.

    Args:
        w: the source tensor (a convolution's weight, a bias, a norm's scale or shift).
        like: the target tensor of the wider network.
        transposed: ``w`` is a transposed convolution's weight (input channels first).
    Returns:
        The grown tensor, or None when the shapes are equal or not whole multiples of each other.
    """
    if w.dim() != like.dim() or w.shape[2:] != like.shape[2:] or w.dim() not in (1, 3, 4, 5):
        return None
    ratios = [b // a if a and b % a == 0 else 0 for a, b in zip(w.shape[:2], like.shape[:2], strict=False)]
    if 0 in ratios or ratios == [1] * len(ratios):
        return None
    g = w
    for dim, r in enumerate(ratios):
        g = g.repeat_interleave(r, dim=dim)
    in_dim = 0 if transposed else 1
    if w.dim() > 1 and ratios[in_dim] > 1:
        share = torch.rand(like.shape, dtype=like.dtype) + 0.5
        groups = share.unflatten(in_dim, (w.shape[in_dim], ratios[in_dim]))
        g = g * (groups / groups.sum(in_dim + 1, keepdim=True)).flatten(in_dim, in_dim + 1)
    return g
