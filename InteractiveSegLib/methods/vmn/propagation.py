"""Bidirectional propagation of slice masks through a volume with a memory (VMN 3.4, 4.3).

From a corrected slice (the newest interactive slice first) the mask travels up and down
the volume, one slice at a time. The memory of each query holds, in order of priority
(4.3): the slice the run started from, the previous slice, every other slice the user
corrected that holds the structure (nearest first), and one item saved every ``every``
(S = 5) slices of the run (newest first), capped at ``cap`` items (default 20; 0 is
Table 5's memory-less baseline). The previous slice's mask is also handed to the network
as the mask its decoder corrects.

With several corrected slices, each one that holds the structure carries its mask to
half-way to the next such slice (beyond the outermost ones, to the volume's end), never
past an empty corrected slice. An empty corrected slice is in no memory: the read is a
softmax over every memory position, where its cells (all background) would compete with
the structure's in every query. A run stops once the structure has ended: ``stop_after``
consecutive slices that are empty, or hold less than ``vanish`` of the foreground of the
slice the run started from (stray voxels the network leaves beyond a structure's end), or
that the quality head rates below ``fade`` times the run's best predicted IoU (a network that
copies the previous slice's mask past a structure's end, as f_VMN does on the CT, keeps the
mask large but its predicted IoU falls); those trailing slices are cleared. Corrected
slices keep their mask. Every propagated slice gets the quality head's predicted IoU.

The network is reached through :class:`Propagator` (``encode_memory`` / ``segment``), so
the order and memory contents are testable without weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from InteractiveSegLib.errors import ConfigError
from InteractiveSegLib.methods.vmn.network import STRIDE, VMNet
from InteractiveSegLib.preprocessing import Roi


class Propagator(Protocol):
    def encode_memory(self, index: int, prob: np.ndarray) -> Any: ...

    def segment(self, index: int, memory: list[Any], prior: np.ndarray | None = None) -> tuple[np.ndarray, float]: ...


@dataclass
class PropagationResult:
    """Probabilities (slices first), predicted IoU per slice (nan: not propagated, i.e.
    corrected or beyond where the structure ended), and the trace of the run."""

    probability: np.ndarray
    quality: np.ndarray
    order: list[int] = field(default_factory=list)
    memory: dict[int, list[int]] = field(default_factory=dict)
    seconds: float = 0.0
    #: the in-plane region ``probability`` covers (None: whole slices); outside it, 0
    roi: Roi | None = None
    #: the KJI axis the slices run along
    axis: int = 0

    def whole_slices(self, shape: tuple[int, int]) -> np.ndarray:
        """``probability`` on whole slices of in-plane ``shape``."""
        if self.roi is None:
            return self.probability
        full = np.zeros((self.probability.shape[0], *shape), np.float32)
        full[(slice(None), *self.roi.slices)] = self.probability
        return full


def memory_slices(
    start: int, previous: int | None, annotated: list[int], periodic: list[int], query: int, cap: int
) -> list[int]:
    """The slice indices in a query's memory, most important first, at most ``cap``."""
    order = [start]
    if previous is not None:
        order.append(previous)
    order += sorted(annotated, key=lambda a: (abs(a - query), a))
    order += periodic[::-1]
    seen: list[int] = []
    for i in order:
        if i not in seen:
            seen.append(i)
    return seen[:cap]


def propagate(
    prop: Propagator,
    n_slices: int,
    annotated: dict[int, np.ndarray],
    start: int,
    cap: int = 20,
    every: int = 5,
    stop_after: int = 3,
    threshold: float = 0.5,
    progress: Callable[[float, str], None] | None = None,
    vanish: float = 0.0,
    fade: float = 0.0,
) -> PropagationResult:
    """Propagate the ``annotated`` slice masks both ways (see module doc), the newest
    interactive slice ``start`` first. ``progress(fraction, text)`` is called after each
    slice (it may raise to cancel)."""
    if start not in annotated:
        raise ConfigError(f"the start slice {start} has no mask")
    t0 = time.perf_counter()
    shape = annotated[start].shape
    prob = np.zeros((n_slices, *shape), np.float32)
    quality = np.full(n_slices, np.nan, np.float32)
    for i, m in annotated.items():
        prob[i] = m
    result = PropagationResult(prob, quality)
    present = {a for a, m in annotated.items() if (m > threshold).any()}
    cells = {i: prop.encode_memory(i, annotated[i]) for i in present} if cap > 0 else {}
    todo = max(1, n_slices - len(annotated))

    def run(origin: int, step: int, end: int) -> None:
        """Slices origin + step ... up to ``end`` (excluded), until ``stop_after`` empty in a row."""
        periodic: list[int] = []
        previous, empty = origin, 0
        # a slice with at most this many foreground pixels counts as one where the structure has ended
        ended = vanish * float((prob[origin] > threshold).sum())
        best = 0.0  # the run's highest predicted IoU so far
        q = origin + step
        while q != end:
            mem = memory_slices(origin, previous, [a for a in annotated if a in present], periodic, q, cap)
            for i in mem:
                if i not in cells:
                    cells[i] = prop.encode_memory(i, prob[i])
            # the previous slice's mask is the decoder's prior; with no memory (cap 0) no slice is carried
            p, score = prop.segment(q, [cells[i] for i in mem], prob[previous] if mem else None)
            prob[q], quality[q] = p, score
            result.order.append(q)
            result.memory[q] = mem
            if abs(q - origin) % every == 0:
                periodic.append(q)
            previous = q
            area = int((p > threshold).sum())
            best = max(best, score) if np.isfinite(score) else best
            faded = fade > 0 and np.isfinite(score) and score < fade * best
            empty = 0 if area > 0 and area > ended and not faded else empty + 1
            if progress is not None:
                progress(min(1.0, len(result.order) / todo), f"slice {q}")
            if empty >= stop_after:
                # the structure ended where these slices began: what they hold is residue
                for e in range(empty):
                    prob[q - e * step] = 0.0
                break
            q += step

    origins = [start] + sorted((a for a in annotated if a != start), key=lambda a: (abs(a - start), a))
    for origin in origins:
        if origin not in present:
            continue  # an empty corrected slice carries nothing: it bounds the runs of the others
        for step in (1, -1):
            # each corrected slice carries its mask up to half-way to the next corrected slice of
            # that direction that holds the structure (the farther half is that slice's; a slice
            # exactly half-way goes to the lower one), and never past an empty corrected slice:
            # a correction re-segments the slices nearest to it, and a later correction
            # elsewhere cannot undo it
            ahead = [a for a in annotated if (a - origin) * step > 0]
            ends = [n_slices if step > 0 else -1]
            full = [a for a in ahead if a in present]
            if full:
                mid = (origin + min(full, key=lambda a: abs(a - origin))) // 2
                ends.append(mid + 1 if step > 0 else mid)
            ends += [a for a in ahead if a not in present]
            run(origin, step, min(ends, key=lambda e: abs(e - origin)))
    result.seconds = time.perf_counter() - t0
    return result


class VMNPropagator:
    """:class:`Propagator` over a trained :class:`VMNet` and one normalised volume
    (slices first). Query encodings depend on the image alone: they are computed once per
    slice and kept for every later round."""

    def __init__(self, net: VMNet, slices: np.ndarray, device: torch.device | str = "cpu") -> None:
        self.net = net
        self.device = torch.device(device)
        h, w = slices.shape[1:]
        self.shape = (h, w)
        t = torch.from_numpy(np.ascontiguousarray(slices, np.float32))[:, None]
        self.images = F.pad(t, (0, (-w) % STRIDE, 0, (-h) % STRIDE))
        self._queries: dict[int, tuple] = {}

    def _pad(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None]
        return F.pad(t, (0, self.images.shape[3] - a.shape[1], 0, self.images.shape[2] - a.shape[0])).to(self.device)

    @torch.no_grad()
    def encode_memory(self, index: int, prob: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.encode_memory(self.images[index : index + 1].to(self.device), self._pad(prob))

    @torch.no_grad()
    def query(self, index: int) -> tuple:
        if index not in self._queries:
            self._queries[index] = self.net.encode_query(self.images[index : index + 1].to(self.device))
        return self._queries[index]

    @torch.no_grad()
    def segment(
        self, index: int, memory: list[tuple[torch.Tensor, torch.Tensor]], prior: np.ndarray | None = None
    ) -> tuple[np.ndarray, float]:
        image = self.images[index : index + 1].to(self.device)
        q = self.query(index)
        if memory:
            key_m = torch.stack([k for k, _ in memory], 1)
            value_m = torch.stack([v for _, v in memory], 1)
        else:
            key_m = q[0].new_zeros(1, 0, *q[0].shape[1:])
            value_m = q[1].new_zeros(1, 0, q[1].shape[1] + 1, *q[1].shape[2:])  # values end with the mask
        logit, score = self.net.segment(image, q, key_m, value_m, None if prior is None else self._pad(prior))
        h, w = self.shape
        return torch.sigmoid(logit)[0, 0, :h, :w].cpu().numpy(), float(score[0])
