"""Replay buffer of the dynamic-learning paper (../shared/papers/dynamic-interactive-learning.txt, 2.2,
Algorithm 1): a new sample replaces a random slot of an auxiliary buffer B* (b* slots, or is
dropped when the draw falls past its end); the training buffer B is b samples drawn from
B*; each step retrieves m < b of them. Older samples fade slowly, newer ones are likelier.

Samples are keys (e.g. file names in the task directory), so the buffer's state is small,
JSON-serialisable and saved with the model checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from InteractiveSegLib.errors import ConfigError


@dataclass
class ReplayBuffer:
    size: int = 4  # b
    aux_size: int = 8  # b* (> b)
    seed: int = 0
    aux: list[str | None] = field(default_factory=list)
    buffer: list[str] = field(default_factory=list)
    draws: int = 0  # random numbers consumed (restores the generator after a restart)

    def __post_init__(self) -> None:
        if not 0 < self.size < self.aux_size:
            raise ConfigError(f"need 0 < b < b*, got b={self.size}, b*={self.aux_size}")
        if not self.aux:
            self.aux = [None] * self.aux_size
        self._rng = np.random.default_rng(self.seed)
        for _ in range(self.draws):  # replay the stream of draws: same state after a reload
            self._rng.random()

    def _randint(self, high: int) -> int:
        self.draws += 1
        return int(self._rng.random() * high)

    def update(self, key: str) -> None:
        """Algorithm 1 at one step. An empty slot is filled first (the paper starts with an
        empty B*, where every slot is equally free)."""
        empty = [i for i, k in enumerate(self.aux) if k is None]
        if empty:
            j = empty[self._randint(len(empty))]
        else:
            j = self._randint(self.aux_size + 1)  # randint(0, b*) inclusive: b* means "drop it"
        if j < self.aux_size:
            self.aux[j] = key
        filled = [k for k in self.aux if k is not None]
        order = [filled[i] for i in self._permutation(len(filled))]
        self.buffer = order[: self.size]

    def _permutation(self, n: int) -> list[int]:
        idx = list(range(n))
        for i in range(n - 1, 0, -1):  # Fisher-Yates from our counted draws
            j = self._randint(i + 1)
            idx[i], idx[j] = idx[j], idx[i]
        return idx

    def sample(self, m: int) -> list[str]:
        """S_t: m samples of B, drawn at random without replacement."""
        m = min(m, len(self.buffer))
        return [self.buffer[i] for i in self._permutation(len(self.buffer))[:m]]

    def state(self) -> dict:
        return {
            "size": self.size,
            "aux_size": self.aux_size,
            "seed": self.seed,
            "aux": list(self.aux),
            "buffer": list(self.buffer),
            "draws": self.draws,
        }

    @classmethod
    def from_state(cls, d: dict) -> ReplayBuffer:
        return cls(**d)
