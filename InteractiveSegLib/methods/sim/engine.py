"""Multi-class interactive segmentation with a sequential interaction memory
(../shared/papers/sim-sequential-interaction-memory.txt).

One click on any structure of a slice returns every class of the task at once; the
network reads the last D states of that slice in order (the session's history *is*
the memory, so undo pops a state). The first state of a slice always corrects the
automatic result, exactly as in training (the memory's first prediction is the
automatic one), so with no click at all (``SliceAuto``) the engine still segments.

Label values of the session are the engine's class indices (1..N-1; 0 background);
``label_table()`` gives the matching names. A negative click marks background.
Variants (``variant=``) load the ablation networks; ``sdg-cim`` is the SDG-base network
fed with a cumulative memory, as in the paper.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from InteractiveSegLib.checkpoints import default_models_dir, load_checkpoint, pick_device, read_config
from InteractiveSegLib.engines.base import Engine, Prediction, Request
from InteractiveSegLib.engines.registry import register_engine
from InteractiveSegLib.errors import EngineError
from InteractiveSegLib.hints import SliceAuto, slice_points
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.methods.sim.memory import SliceClick, State, click_masks, input_parts
from InteractiveSegLib.methods.sim.network import fuse_batch_norm
from InteractiveSegLib.preprocessing import normalize_intensity, padded_size
from InteractiveSegLib.volume import Volume

#: D of the shipped DDG-SIM: the memory-depth ablation's choice (Resources/Models/sim.md)
SIM_DEPTH = 4

# variant -> (model file, memory the network is fed with)
VARIANTS = {
    "ddg-sim": ("sim_ddg_sim.pt", "sim"),
    "ddg-cim": ("sim_ddg_cim.pt", "cim"),
    "sdg-base": ("sim_sdg_base.pt", "base"),
    "sdg-cim": ("sim_sdg_base.pt", "cim"),
    "auto": ("sim_auto.pt", "auto"),
    "ddg-sim-plain": ("sim_ddg_sim_plain.pt", "sim"),
    "ddg-sim-in": ("sim_ddg_sim_in.pt", "sim"),
    # the memory-depth ablation: DDG-SIM with D states (``ddg-sim`` is the one with SIM_DEPTH)
    **{f"ddg-sim-d{d}": ("sim_ddg_sim.pt" if d == SIM_DEPTH else f"sim_ddg_sim_d{d}.pt", "sim") for d in range(1, 7)},
}


@register_engine("sim")
class SIMEngine(Engine):
    """All classes of a task on one slice from clicks, with the ordered memory of that slice."""

    name = "sim"
    mode = "2d"
    multiclass = True
    SUPPORTED_HINTS = frozenset({"click", "scribble", "extreme_points", "auto"})
    HISTORY = "slice"  # the slice's ordered states are the network's memory
    KEEPS_PROBABILITY = True  # a state is the previous prediction of the slice
    MODEL_CARD = "sim.md"

    def __init__(
        self,
        model_path: str | Path | None = None,
        variant: str = "ddg-sim",
        device: str | None = None,
        threads: int | None = None,
        auto_cache: int = 16,
        norm: str | None = None,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise EngineError(f"unknown SIM variant {variant!r}; expected one of {sorted(VARIANTS)}")
        file, self.memory = VARIANTS[variant]
        self.variant = variant
        path = Path(model_path) if model_path else default_models_dir() / file
        self.model, self.config, self.meta = load_checkpoint(path, "sim_net")
        net = self.config["net"]
        self.num_classes, self.depth = int(net["num_classes"]), int(net["depth"])
        if net["memory"] == "auto":
            self.memory = "auto"
        elif (net["memory"] == "sim") != (self.memory == "sim"):
            raise EngineError(f"model {path} has a {net['memory']!r} input; variant {variant!r} needs {self.memory!r}")
        self.class_names = list(self.config.get("classes", [f"class_{c}" for c in range(self.num_classes)]))
        self.multilabel = bool(self.config.get("multilabel", False))
        self.radius = int(self.config.get("click_radius", 2))
        self.device = pick_device(device)
        self.model.to(self.device)
        self.norm = norm or self.config.get("norm_stats", "running")
        if self.norm not in ("running", "image"):
            raise EngineError(f"norm must be 'running' or 'image', got {self.norm!r}")
        if self.norm == "image":
            # batch-norm layers normalise by the slice's own statistics (AdaBN-style): the
            # network was trained on crops around the structures, a whole slice has other
            # statistics; momentum 0 keeps the stored statistics unchanged
            for m in self.model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.train()
                    m.momentum = 0.0
        else:
            fuse_batch_norm(self.model)  # stored statistics: folded into the convolutions
        # channels-last lets oneDNN run the convolutions without layout reorders: about a fifth
        # faster per click on CPU (measured on 256 x 256 slices), same arithmetic
        self._layout = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.model.to(memory_format=self._layout)  # type: ignore[call-overload]  # torch's stubs lack memory_format
        if threads:
            torch.set_num_threads(threads)
        self._norm: np.ndarray | None = None
        self._auto: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._auto_cache = auto_cache

    # -- set-up --------------------------------------------------------------------------
    @classmethod
    def classes(cls, model_path: str | Path | None = None, variant: str = "ddg-sim", **_: object) -> LabelTable:
        """The task's classes from the checkpoint's config (the network is not built)."""
        if variant not in VARIANTS:
            raise EngineError(f"unknown SIM variant {variant!r}; expected one of {sorted(VARIANTS)}")
        config = read_config(Path(model_path) if model_path else default_models_dir() / VARIANTS[variant][0])
        n = int(config["net"]["num_classes"])
        return class_table(list(config.get("classes", [f"class_{c}" for c in range(n)])))

    def label_table(self) -> LabelTable:
        """The session labels matching this engine's classes (value = class index)."""
        return class_table(self.class_names)

    def set_image(self, volume: Volume) -> None:
        super().set_image(volume)
        self._norm = normalize_intensity(volume.array)
        self._auto.clear()

    # -- the network on one slice ----------------------------------------------------------
    @torch.no_grad()
    def probabilities(self, image2d: np.ndarray, states: list[State]) -> np.ndarray:
        """(N, H, W) class probabilities of a normalised slice given its ordered states."""
        t, (h, w), empty = self._input_tensor(image2d, states)
        # near-zero memory states make denormal floats, which CPUs compute slowly: flush them
        # to zero for this forward pass only (measured ~10 % per click on 256 x 256)
        flushing = self.device.type == "cpu" and torch.set_flush_denormal(True)
        try:
            # the memory's padding (older states before the D-th click) is known to be empty: skipped
            logits = self.model(t, empty_states=empty)[0, :, :h, :w]
        finally:
            if flushing:
                torch.set_flush_denormal(False)
        p = torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, 0)
        return p.cpu().numpy()

    def _input_tensor(self, image2d: np.ndarray, states: list[State]) -> tuple[torch.Tensor, tuple[int, int], int]:
        """The network input, zero-padded to a multiple of 16, built block by block straight in
        the network's memory layout (a channels-last copy of the whole tensor afterwards cost
        as much again on 256 x 256); the slice's (height, width); the number of empty states."""
        parts = input_parts(image2d, states, self.memory, self.num_classes, self.depth)
        h, w = image2d.shape
        width = [2 * self.num_classes if p is None else p.shape[0] for p in parts]
        t = torch.empty(
            1, sum(width), padded_size(h), padded_size(w), device=self.device, memory_format=self._layout
        ).zero_()
        at = 0
        for p, c in zip(parts, width, strict=False):
            if p is not None:  # an empty state stays zero
                t[0, at : at + c, :h, :w].copy_(torch.from_numpy(p))
            at += c
        return t, (h, w), sum(p is None for p in parts)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """(N, H, W) probabilities -> (H, W) class indices (multi-label: highest positive index wins)."""
        if not self.multilabel:
            return probs.argmax(0).astype(np.uint8)
        out = np.zeros(probs.shape[1:], np.uint8)
        for c in range(1, probs.shape[0]):
            out[probs[c] > 0.5] = c
        return out

    def automatic(self, axis: int, index: int) -> np.ndarray:
        """Automatic probabilities of one slice (empty memory), cached per slice."""
        key = (axis, index)
        if key not in self._auto:
            self._auto[key] = self.probabilities(self._slice(axis, index), [])
            while len(self._auto) > self._auto_cache:
                self._auto.popitem(last=False)
        self._auto.move_to_end(key)
        return self._auto[key]

    def _slice(self, axis: int, index: int) -> np.ndarray:
        if self._norm is None:
            raise EngineError("set_image() must be called before predict()")
        return np.take(self._norm, index, axis=axis)

    # -- hints -> states -----------------------------------------------------------------
    def slice_clicks(self, interaction, axis: int) -> list[SliceClick]:
        """A hint as class-indexed clicks on its slice (negative hints mark background)."""
        cls = int(interaction.label) if interaction.positive else 0
        if not 0 <= cls < self.num_classes:
            raise EngineError(
                f"class {cls} is not one of this model's classes 1..{self.num_classes - 1} "
                f"({', '.join(self.class_names[1:])})"
            )
        return [SliceClick(r, c, cls) for r, c in slice_points(interaction.points, axis)]

    def states(self, history: list, new, axis: int, index: int) -> list[State]:
        """The ordered states of a slice: each hint paired with the result it corrected."""
        shape = self._slice(axis, index).shape
        previous = self.automatic(axis, index)
        out: list[State] = []
        for interaction, prediction in list(history) + [(new, None)]:
            if isinstance(interaction, SliceAuto):
                out, previous = [], self.automatic(axis, index)  # a fresh start of this slice
                continue
            masks = click_masks(self.slice_clicks(interaction, axis), self.num_classes, shape, self.radius)
            out.append(State(masks, previous))
            if prediction is not None:
                previous = np.squeeze(prediction.probability, axis=1 + axis)
        return out

    def predict(self, request: Request) -> Prediction:
        axis, index = request.axis, request.slice_index
        new = request.interactions[-1]
        if isinstance(new, SliceAuto):
            probs = self.automatic(axis, index)
        else:
            probs = self.probabilities(self._slice(axis, index), self.states(request.history, new, axis, index))
        labels = self.decide(probs)
        region = self.slice_region(axis, index)
        return Prediction(
            request.label,
            region,
            np.expand_dims(probs, 1 + axis),
            labels=np.expand_dims(labels, axis),
            classes=list(range(1, self.num_classes)),
        )


def class_table(names: list[str]) -> LabelTable:
    """Session labels 1..N-1 named after a model's classes (index 0 is the background)."""
    return LabelTable.default(range(1, len(names)), dict(enumerate(names)))
