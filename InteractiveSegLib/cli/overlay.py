"""PNG overlay of one slice: image, coloured segments (filled + outline), click markers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage.segmentation import find_boundaries

from InteractiveSegLib.io import write_atomic
from InteractiveSegLib.labels import LabelTable


def render_slice(
    image2d: np.ndarray,
    labels2d: np.ndarray,
    table: LabelTable,
    clicks: list[tuple[int, int, bool]] = (),  # type: ignore[assignment]
    reference2d: np.ndarray | None = None,
    zoom: int = 3,
) -> Image.Image:
    """RGB picture of a slice (row 0 at the top); ``clicks`` are (row, col, positive)."""
    img = np.asarray(image2d, np.float32)
    lo, hi = np.percentile(img, [1, 99.5])
    grey = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for e in table:
        m = labels2d == e.value
        if m.any():
            rgb[m] = 0.6 * rgb[m] + 0.4 * np.asarray(e.color)
            rgb[find_boundaries(m, mode="inner")] = e.color
    if reference2d is not None:
        rgb[find_boundaries(reference2d > 0, mode="inner")] = (1.0, 1.0, 1.0)
    pic = Image.fromarray((rgb * 255).astype(np.uint8)).resize(
        (img.shape[1] * zoom, img.shape[0] * zoom),
        Image.NEAREST,  # type: ignore[attr-defined]  # set at runtime via globals(); Pillow's typing lacks it
    )
    draw = ImageDraw.Draw(pic)
    for r, c, positive in clicks:
        x, y, rad = (c + 0.5) * zoom, (r + 0.5) * zoom, 2 * zoom
        draw.ellipse(
            [x - rad, y - rad, x + rad, y + rad], fill=(40, 220, 40) if positive else (230, 40, 40), outline=(0, 0, 0)
        )
    return pic


def save_overlay(path: str | Path, *args, **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = render_slice(*args, **kwargs)
    write_atomic(path, image.save)
    return path
