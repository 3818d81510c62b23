"""Interaction memories of a multi-class 2D session (../shared/papers/sim-sequential-interaction-memory.txt, 4.1.2).

A *state* pairs the user's corrections (N binary click masks, one per class including
background) with the segmentation they corrected (N probability maps; all zeros when
there was none yet). The network input is built from the states of one slice:

- ``sim``:  image + the last D states in order, oldest first, newest last (1 + 2DN channels);
  missing older states are empty (all zeros), so an empty memory is the automatic mode;
- ``cim``:  image + the union of every click mask so far (1 + N; the order is lost);
- ``base``: image + the newest click masks only (1 + N; no memory);
- ``auto``: image only (1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from InteractiveSegLib.errors import ConfigError
from InteractiveSegLib.methods.sim.network import input_channels
from InteractiveSegLib.users.multiclass import SliceClick  # defined with the users that make them

CLICK_RADIUS = 2  # a click marks a disk of this radius in its class's interaction mask


@dataclass
class State:
    """One system state: N interaction masks and the N probability maps they corrected."""

    clicks: np.ndarray  # (N, H, W) float32 in {0, 1}
    probs: np.ndarray  # (N, H, W) float32; zeros when no segmentation was shown yet

    def __post_init__(self) -> None:
        if self.clicks.shape != self.probs.shape or self.clicks.ndim != 3:
            raise ConfigError(
                f"state masks {self.clicks.shape} and probabilities {self.probs.shape} must both be (N, H, W)"
            )


def click_masks(
    clicks: Sequence[SliceClick], num_classes: int, shape: tuple[int, int], radius: int = CLICK_RADIUS
) -> np.ndarray:
    """(N, H, W) binary masks with a disk at every click of each class."""
    out = np.zeros((num_classes, *shape), np.float32)
    if not clicks:
        return out
    rr, cc = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = rr**2 + cc**2 <= radius**2
    for c in clicks:
        if not (0 <= c.cls < num_classes):
            raise ConfigError(f"click class {c.cls} outside 0..{num_classes - 1}")
        r, q = rr[disk] + c.row, cc[disk] + c.col
        ok = (r >= 0) & (r < shape[0]) & (q >= 0) & (q < shape[1])
        out[c.cls, r[ok], q[ok]] = 1.0
    return out


def empty_state(num_classes: int, shape: tuple[int, int]) -> State:
    z = np.zeros((num_classes, *shape), np.float32)
    return State(z, z.copy())


def input_parts(
    image: np.ndarray, states: Sequence[State], memory: str, num_classes: int, depth: int
) -> list[np.ndarray | None]:
    """The blocks of the network input in channel order, each (C_i, H, W), not copied; None
    marks an all-zero block of 2N channels (an empty state of the SIM's padding)."""
    shape = image.shape
    parts: list[np.ndarray | None] = [image[None].astype(np.float32)]
    if memory == "sim":
        recent = list(states)[-depth:]
        parts += [None] * (depth - len(recent))
        for s in recent:
            parts += [s.clicks, s.probs]
    elif memory == "cim":
        acc = np.zeros((num_classes, *shape), np.float32)
        for s in states:
            np.maximum(acc, s.clicks, out=acc)
        parts.append(acc)
    elif memory == "base":
        parts.append(states[-1].clicks if states else np.zeros((num_classes, *shape), np.float32))
    elif memory != "auto":
        raise ConfigError(f"unknown memory {memory!r}")
    return parts


def network_input(image: np.ndarray, states: Sequence[State], memory: str, num_classes: int, depth: int) -> np.ndarray:
    """The (C, H, W) input tensor of ``memory`` kind from the ordered states of one slice."""
    shape = image.shape
    empty = np.zeros((2 * num_classes, *shape), np.float32)
    x = np.concatenate([empty if p is None else p for p in input_parts(image, states, memory, num_classes, depth)], 0)
    assert x.shape[0] == input_channels(memory, num_classes, depth)
    return x
