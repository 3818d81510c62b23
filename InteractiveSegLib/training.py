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
        if it % args.save_every == 0 or it == args.iterations:
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
    channels at zero (the same function as the source at the start). Returns counts and the
    names of the tensors left fresh."""
    own = model.state_dict()
    copied, widened, fresh = 0, 0, []
    for name, value in own.items():
        w = source.get(name)
        if w is not None and w.shape == value.shape:
            own[name] = w.clone()
            copied += 1
        elif (
            w is not None
            and w.dim() in (4, 5)  # a 2D or 3D convolution
            and w.shape[0] == value.shape[0]
            and w.shape[2:] == value.shape[2:]
            and w.shape[1] < value.shape[1]
        ):
            grown = torch.zeros_like(value)
            grown[:, : w.shape[1]] = w
            own[name] = grown
            widened += 1
        else:
            fresh.append(name)
    model.load_state_dict(own)
    return {"copied": copied, "widened": widened, "fresh": fresh}
