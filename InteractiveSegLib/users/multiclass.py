"""Multi-class virtual users for the SIM engine (../shared/papers/sim-sequential-interaction-memory.txt, 4.2).

``DynamicUser`` is Dynamic Data Generation (DDG) for one training image: it sees the
latest prediction and clicks where it is wrong, following the paper's routine and its
rules 1-4. ``static_clicks`` is Static Data Generation (SDG) for the ablation: clicks
drawn from the ground truth alone. ``RobotUser`` is the deterministic test-time user of
the benchmark (one click per interaction). All work per class and per connected component (multi-class,
multi-instance, multi-component); targets are (N, H, W) boolean one-hot or multi-label
masks, channel 0 the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

MIN_COMPONENT = 4  # pixels: smaller specks get no click of their own


@dataclass(frozen=True)
class SliceClick:
    """A click on a 2D slice: (row, col) and the class index (0 = background). The SIM
    engine's interaction memory (methods.sim.memory) re-exports it."""

    row: int
    col: int
    cls: int


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a 2D mask (scipy)."""
    return ndimage.label(mask, structure=np.ones((3, 3), bool))


def largest_component(mask: np.ndarray) -> np.ndarray | None:
    lab, n = components(mask)
    if n == 0:
        return None
    return lab == int(np.argmax(np.bincount(lab.ravel())[1:])) + 1


def centre_weighted_point(region: np.ndarray, rng: np.random.Generator | None) -> tuple[int, int]:
    """A point in ``region`` drawn with probability proportional to the distance to its
    boundary (largest at the centre, zero outside); the most central point if ``rng`` is None."""
    dist = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    flat = dist.ravel()
    if rng is None:
        idx = int(np.argmax(flat))
    else:
        p = flat / flat.sum()
        idx = int(rng.choice(flat.size, p=p))
    return divmod(idx, region.shape[1])


def missed(target: np.ndarray, pred: np.ndarray, cls: int) -> np.ndarray:
    """Pixels of class ``cls`` the prediction does not give it (under-segmented for ``cls``,
    which is where another class is over-segmented)."""
    return target[cls] & ~pred[cls]


class DynamicUser:
    """DDG for one image (the paper's routine, rules 1-4).

    1. at most ``max_per_component`` clicks per component of each class;
    2. click probability p starts at 1 and drops by 1/t after every round;
    3. one random class gets no clicks for this image (``skip_class``);
    4. a fraction ``hold_out`` of all generated clicks is not given to the network.

    Round one (p = 1) clicks every component of every class; later rounds click, for each
    class with probability p, the largest region missing that class. With
    ``corrective_start`` the user starts from a shown result (the automatic one) instead:
    round one is already corrective (p = 1: every class whose result misses a region), as
    the first click on a slice is in a session that opens with the automatic result.
    """

    def __init__(
        self,
        target: np.ndarray,
        rng: np.random.Generator,
        max_interactions: int = 3,
        max_per_component: int = 3,
        hold_out: float = 0.8,
        skip_class: bool = True,
        corrective_start: bool = False,
    ) -> None:
        self.target = target.astype(bool)
        self.rng = rng
        self.t = max_interactions
        self.max_per_component = max_per_component
        self.hold_out = hold_out
        self.p = 1.0
        self.corrective_start = corrective_start
        n = target.shape[0]
        self.comp = [components(target[c])[0] for c in range(n)]
        self.count: dict[tuple[int, int], int] = {}
        self.skipped = int(rng.integers(n)) if skip_class else None
        self.generated: list[SliceClick] = []  # every click before rules 3 and 4 (for the tests)

    def _take(self, cls: int, region: np.ndarray, out: list[SliceClick]) -> None:
        r, c = centre_weighted_point(region, self.rng)
        k = int(self.comp[cls][r, c])
        if self.count.get((cls, k), 0) >= self.max_per_component:
            return
        self.count[(cls, k)] = self.count.get((cls, k), 0) + 1
        out.append(SliceClick(r, c, cls))

    def step(self, pred: np.ndarray | None) -> list[SliceClick]:
        """Clicks of this round given the latest prediction ((N, H, W) bool; None before any)."""
        new: list[SliceClick] = []
        if self.p <= 0:
            return new
        if pred is None or (self.p >= 1.0 and not self.corrective_start):
            for cls in range(self.target.shape[0]):
                sizes = np.bincount(self.comp[cls].ravel())
                for k in range(1, sizes.size):
                    if sizes[k] >= MIN_COMPONENT:
                        self._take(cls, self.comp[cls] == k, new)
        else:
            for cls in range(self.target.shape[0]):
                if self.rng.random() >= self.p:
                    continue
                region = largest_component(missed(self.target, pred, cls))
                if region is not None and region.sum() >= MIN_COMPONENT:
                    self._take(cls, region, new)
        self.p = max(0.0, self.p - 1.0 / self.t)
        self.generated += new
        kept = [c for c in new if c.cls != self.skipped]  # rule 3
        return [c for c in kept if self.rng.random() >= self.hold_out]  # rule 4


def static_clicks(target: np.ndarray, rng: np.random.Generator, max_per_class: int = 3) -> list[SliceClick]:
    """SDG: for each class, 0..max_per_class clicks placed in its ground truth, no prediction seen."""
    out: list[SliceClick] = []
    for cls in range(target.shape[0]):
        if target[cls].sum() < MIN_COMPONENT:
            continue
        for _ in range(int(rng.integers(0, max_per_class + 1))):
            r, c = centre_weighted_point(target[cls], rng)
            out.append(SliceClick(r, c, cls))
    return out


class RobotUser:
    """Deterministic test-time user (../shared/BENCHMARK.md): one click per interaction, at the centre of
    the largest region that misses a class, labelled with that class (background included);
    ``per_class=True`` clicks every class that has such a region instead."""

    def __init__(self, target: np.ndarray, min_region: int = MIN_COMPONENT, per_class: bool = False) -> None:
        self.target = target.astype(bool)
        self.min_region = min_region
        self.per_class = per_class

    def step(self, pred: np.ndarray) -> list[SliceClick]:
        found = []
        for cls in range(self.target.shape[0]):
            region = largest_component(missed(self.target, pred, cls))
            if region is not None and region.sum() >= self.min_region:
                found.append((int(region.sum()), cls, region))
        if not self.per_class:
            found = sorted(found, key=lambda f: -f[0])[:1]
        return [SliceClick(*centre_weighted_point(region, None), cls) for _, cls, region in found]
