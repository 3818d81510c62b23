"""What a fine-tuning step keeps (the adapted weights, so undo and redo restore them) and
what it reports (iterations, convergence): typed, as the engine contract asks."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from InteractiveSegLib.engines.base import EngineState, StepReport


@dataclass
class AdaptedWeights(EngineState):
    """The trainable weights after a step (None: the step ran the model without hints), and
    the image generation they belong to: the next hint on the same image starts from them."""

    generation: int
    weights: dict[str, torch.Tensor] | None

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.nelement() for t in (self.weights or {}).values())


@dataclass
class AdaptationReport(StepReport):
    """One fine-tuning step: iterations run, whether every scribbled voxel got its label."""

    iterations: int = 0
    converged: bool | None = None
    violated: int | None = None
    scribbled_voxels: int | None = None
    grown_voxels: int | None = None
    roi: list[int] | None = None
    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
