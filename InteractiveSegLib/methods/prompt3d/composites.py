"""Training structures made of several neighbouring train structures of one volume.

A label map holds single structures: most of one intensity, most smaller than the region a
short stroke on them opens. A whole-brain mask, an organ with its vessels or a lung with its
lobes is large and of more than one intensity; trained on single labels only, the network
answered a short stroke on a whole brain with a blob around the stroke (issue 20: Dice 0.002).
Unions of touching train labels are that case, made from the data at hand.
"""

from __future__ import annotations

import numpy as np

from InteractiveSegLib.methods.vmn.train import Structure

#: label pairs closer than this many voxels along an axis count as neighbours
GAP = 2


def neighbours(labelmap: np.ndarray, values: set[int]) -> dict[int, set[int]]:
    """Which of ``values`` touch which (within ``GAP`` voxels along an axis).

    Args:
        labelmap: a volume's label map (KJI).
        values: the label values to consider (the train split's).
    Returns:
        value -> the set of values it touches (every value of ``values`` is a key).
    """
    graph: dict[int, set[int]] = {v: set() for v in values}
    keep = np.asarray(sorted(values))
    for axis in range(3):
        for gap in range(1, GAP + 1):
            n = labelmap.shape[axis]
            a = np.take(labelmap, np.arange(0, n - gap), axis=axis)
            b = np.take(labelmap, np.arange(gap, n), axis=axis)
            diff = (a != b) & np.isin(a, keep) & np.isin(b, keep)
            for u, w in set(zip(a[diff].tolist(), b[diff].tolist(), strict=True)):
                graph[int(u)].add(int(w))
                graph[int(w)].add(int(u))
    return graph


def composite_structures(
    structs: list[Structure], rng: np.random.Generator, per_volume: int = 6, largest: int = 12
) -> list[Structure]:
    """Per volume, ``per_volume`` unions of a random train structure and a random number (1 to
    ``largest - 1``) of its nearest neighbours by adjacency, and the union of all its train
    structures. Held-out labels never join (they are in no ``structs``); a union is not
    re-drawn by the augmentation (it has no single label value).

    Args:
        structs: the training structures (``training_structures``); those without a label
            map are skipped.
        rng: the run's generator.
        per_volume: neighbourhood unions per volume.
        largest: the most structures one neighbourhood union joins.
    Returns:
        The new structures (the image shared with their volume's, the mask their own).
    """
    volumes: dict[int, list[Structure]] = {}
    for s in structs:
        if s.labelmap is not None:
            volumes.setdefault(id(s.labelmap), []).append(s)
    out = []
    for members in volumes.values():
        labelmap = members[0].labelmap
        assert labelmap is not None
        values = {s.value for s in members}
        if len(values) < 2:
            continue
        graph = neighbours(labelmap, values)
        first = members[0]
        for i in range(per_volume):
            chosen = [int(rng.choice(sorted(values)))]
            goal = int(rng.integers(2, min(largest, len(values)) + 1))
            frontier = set(graph[chosen[0]])
            while len(chosen) < goal and frontier:  # breadth-first over touching labels, at random
                nxt = int(rng.choice(sorted(frontier)))
                chosen.append(nxt)
                frontier = (frontier | graph[nxt]) - set(chosen)
            out.append(_union(first, chosen, f"{first.name.split(':')[0]}:union{i}"))
        out.append(_union(first, sorted(values), f"{first.name.split(':')[0]}:union-all"))
    return out


def _union(like: Structure, values: list[int], name: str) -> Structure:
    """A structure of ``values`` of ``like``'s label map, on ``like``'s image."""
    assert like.labelmap is not None
    return Structure(name, like.image, np.isin(like.labelmap, values), None, 0, like.spacing)
