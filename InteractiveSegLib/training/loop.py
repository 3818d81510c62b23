"""The optimisation loop every trainer shares: step, log, checkpoint.

A trainer builds its batch and returns the loss in ``step()`` (setting train/eval mode
itself: the virtual users run the network with fixed weights before back-propagation);
``fit`` does the rest, and the checkpoint's ``meta`` always says how it was made.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from ..networks import save_checkpoint


def fit(args, model: torch.nn.Module, opt: torch.optim.Optimizer, step: Callable[[], torch.Tensor], arch: str, config: dict,
        meta: dict, scheduler=None, loss_name: str = "loss") -> dict:
    """Run ``args.iterations`` steps; log every ``args.log_every``, save every ``args.save_every``
    (and at the end) to ``args.out`` with ``meta`` + command, iterations, loss, minutes, seed."""
    t0, losses = time.time(), []
    for it in range(1, args.iterations + 1):
        loss = step()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(float(loss.item()))
        recent = float(np.mean(losses[-args.log_every:]))
        if it % args.log_every == 0 or it == args.iterations:
            el = time.time() - t0
            print(f"iter {it}/{args.iterations} {loss_name} {recent:.4f} {el / it:.2f}s/iter {el / 60:.1f} min", flush=True)
        if it % args.save_every == 0 or it == args.iterations:
            info = {"command": args.command, **meta, "iterations": it, "final_loss": recent,
                    "minutes": round((time.time() - t0) / 60, 1), "seed": args.seed}
            save_checkpoint(args.out, arch, config, model, info)
    return {"loss": float(np.mean(losses[-args.log_every:])), "minutes": (time.time() - t0) / 60}
