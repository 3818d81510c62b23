"""Class-agnostic click segmentation (../shared/papers/click-guidance-fcnn.txt), for any CT or MRI.

A 2D FCNN reads (image, positive clicks, negative clicks, previous mask) on the slice of
the newest click and returns the clicked structure. Beyond the paper, so that it works on
scans it never saw:

- intensities are those of the modality (CT in Hounsfield units through a fixed curve, MRI by
  percentiles of the body: ``InteractiveSegLib.intensity``), detected or set by the user;
- the network sees a square window in millimetres around the clicks and the current mask,
  resampled to its working size, which grows until the predicted object lies inside it
  (adaptive zoom, ``zoom.py``): a whole-brain mask costs no more than a caudate;
- the previous mask is an input, so each correction builds on the last.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from InteractiveSegLib.checkpoints import default_models_dir, load_checkpoint, pick_device
from InteractiveSegLib.engines.base import Engine, Prediction, Request
from InteractiveSegLib.engines.registry import register_engine
from InteractiveSegLib.errors import EngineError
from InteractiveSegLib.hints import slice_points
from InteractiveSegLib.intensity import detect_modality, normalizer
from InteractiveSegLib.methods.click.zoom import ZoomSettings, segment_zoomed, slice_spacing
from InteractiveSegLib.volume import Volume

DEFAULT_MODEL = "click_zoom.pt"


@register_engine("click")
class ClickEngine(Engine):
    """Learned class-agnostic click segmentation on one slice (any orientation, any spacing)."""

    name = "click"
    mode = "2d"
    SUPPORTED_HINTS = frozenset({"click", "scribble", "extreme_points"})
    MODEL_CARD = "click_zoom.md"
    MEMORY_PER_VOXEL = 1.0  # slices are normalised as they are read: only transients

    def __init__(
        self,
        model_path: str | Path | None = None,
        device: str | None = None,
        modality: str = "auto",
        threads: int | None = None,
    ) -> None:
        """Args:
        model_path: a checkpoint of the ``click_fcnn`` network (default: the shipped one).
        device: "cpu", "cuda", ... (default: the best available).
        modality: "ct", "mr" or "auto" (detected from the image when it is set).
        threads: CPU threads for torch.
        """
        super().__init__()
        path = Path(model_path) if model_path else default_models_dir() / DEFAULT_MODEL
        self.model, self.config, self.meta = load_checkpoint(path, "click_fcnn")
        self.device = pick_device(device)
        self.model.to(self.device)
        self.settings = ZoomSettings.from_config(self.config)
        self.requested_modality = modality
        self.modality: str | None = None
        if threads:
            torch.set_num_threads(threads)
        self._normalize: Callable[[np.ndarray], np.ndarray] | None = None

    def set_image(self, volume: Volume) -> None:
        super().set_image(volume)
        self.modality = detect_modality(volume) if self.requested_modality == "auto" else self.requested_modality
        self._normalize = normalizer(volume.array, self.modality)  # slice by slice: no copy of the volume

    @torch.no_grad()
    def run_network(self, batch: np.ndarray) -> np.ndarray:
        """Foreground probabilities for a (B, 4, size, size) input."""
        return torch.sigmoid(self.model(torch.from_numpy(batch).to(self.device)))[:, 0].cpu().numpy()

    def predict(self, request: Request) -> Prediction:
        if self._normalize is None or self.volume is None:
            raise EngineError("set_image() must be called before predict()")
        image2d = self._normalize(np.take(self.volume.array, request.slice_index, axis=request.axis))
        pos: list[tuple[int, int]] = []
        neg: list[tuple[int, int]] = []
        for h in request.interactions:
            (pos if h.positive else neg).extend(slice_points(h.points, request.axis))
        spacing = slice_spacing(self.volume.geometry.spacing[::-1], request.axis)
        roi, out = segment_zoomed(self.run_network, image2d, request.current_slice(), pos, neg, spacing, self.settings)
        return Prediction(
            request.label,
            self.slice_region(request.axis, request.slice_index, *roi.slices),
            np.expand_dims(out, request.axis),
        )
