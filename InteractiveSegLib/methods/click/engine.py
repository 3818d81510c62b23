"""Class-agnostic click segmentation (../shared/papers/click-guidance-fcnn.txt).

A 2D FCNN reads (image, fg guidance, bg guidance) on the slice of the newest click and
returns the clicked structure. Clicks become Gaussian maps (sigma 2). Inference runs on
an ROI around the positive clicks and the current mask (+ context margin), grown once
more if the structure reaches the ROI edge, so the cost does not grow with the slice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from InteractiveSegLib.checkpoints import default_models_dir, load_checkpoint, pick_device
from InteractiveSegLib.encodings import gaussian_map
from InteractiveSegLib.engines.base import Engine, Prediction, Request
from InteractiveSegLib.engines.registry import register_engine
from InteractiveSegLib.errors import EngineError
from InteractiveSegLib.hints import slice_points
from InteractiveSegLib.preprocessing import Roi, normalize_intensity, pad_to, roi_around
from InteractiveSegLib.volume import Volume

DEFAULT_MODEL = "click_fcnn.pt"


def encode(image2d: np.ndarray, pos: list[tuple[int, int]], neg: list[tuple[int, int]], sigma: float) -> np.ndarray:
    """Network input (3, H, W): image, fg Gaussian guidance, bg Gaussian guidance."""
    return np.stack([image2d, gaussian_map(image2d.shape, pos, sigma), gaussian_map(image2d.shape, neg, sigma)]).astype(
        np.float32
    )


@register_engine("click")
class ClickEngine(Engine):
    """Learned class-agnostic click segmentation on one slice (any orientation)."""

    name = "click"
    mode = "2d"
    SUPPORTED_HINTS = frozenset({"click", "scribble", "extreme_points"})
    MODEL_CARD = "click_fcnn.md"

    def __init__(
        self,
        model_path: str | Path | None = None,
        device: str | None = None,
        margin: int | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        path = Path(model_path) if model_path else default_models_dir() / DEFAULT_MODEL
        self.model, self.config, self.meta = load_checkpoint(path, "click_fcnn")
        self.device = pick_device(device)
        self.model.to(self.device)
        self.sigma = float(self.config.get("sigma", 2.0))
        self.margin = int(margin if margin is not None else self.config.get("roi_margin", 64))
        self.min_size = int(self.config.get("roi_min_size", 128))
        if threads:
            torch.set_num_threads(threads)
        self._norm: np.ndarray | None = None

    def set_image(self, volume: Volume) -> None:
        super().set_image(volume)
        self._norm = normalize_intensity(volume.array)

    def _hint_points(self, request: Request) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        pos: list[tuple[int, int]] = []
        neg: list[tuple[int, int]] = []
        for h in request.interactions:
            (pos if h.positive else neg).extend(slice_points(h.points, request.axis))
        return pos, neg

    @torch.no_grad()
    def run_network(self, batch: np.ndarray) -> np.ndarray:
        """Foreground probabilities for a (B, 3, H, W) input of any H, W."""
        x, (h, w) = pad_to(torch.from_numpy(batch).to(self.device))
        return torch.sigmoid(self.model(x))[:, 0, :h, :w].cpu().numpy()

    def predict(self, request: Request) -> Prediction:
        if self._norm is None:
            raise EngineError("set_image() must be called before predict()")
        image2d = np.take(self._norm, request.slice_index, axis=request.axis)
        current2d = request.current_slice()
        pos, neg = self._hint_points(request)
        roi = roi_around(pos or neg, current2d, image2d.shape, self.margin, self.min_size)
        prob = np.zeros((roi.r1 - roi.r0, roi.c1 - roi.c0), np.float32)
        for _ in range(3):  # grow the ROI while the structure reaches an inner ROI edge
            if not pos:
                break
            shift = lambda pts, roi=roi: [(r - roi.r0, c - roi.c0) for r, c in pts]  # noqa: E731
            x = encode(image2d[roi.slices], shift(pos), shift(neg), self.sigma)
            prob = self.run_network(x[None])[0]
            grown = self._grow(roi, prob > 0.5, image2d.shape)
            if grown == roi:
                break
            roi = grown
        return Prediction(
            request.label,
            self.slice_region(request.axis, request.slice_index, *roi.slices),
            np.expand_dims(prob, request.axis),
        )

    def _grow(self, roi: Roi, mask: np.ndarray, shape: tuple[int, int]) -> Roi:
        m = self.margin // 2
        r0 = roi.r0 - m if roi.r0 > 0 and mask[0].any() else roi.r0
        r1 = roi.r1 + m if roi.r1 < shape[0] and mask[-1].any() else roi.r1
        c0 = roi.c0 - m if roi.c0 > 0 and mask[:, 0].any() else roi.c0
        c1 = roi.c1 + m if roi.c1 < shape[1] and mask[:, -1].any() else roi.c1
        return Roi(max(r0, 0), min(r1, shape[0]), max(c0, 0), min(c1, shape[1]))
