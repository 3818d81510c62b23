"""The object on a stroke's slice, as the 2D hint network sees it: the region's in-plane
extent comes from the object, not from the stroke's box (issue 20).

Why: this CPU-sized 3D network ties the size of its answer to the size of its region, and a
short stroke's region is little more than the stroke. The 2D hint network (VMN's f_IN, the
click engine's network trained on every hint kind, ``vmn_hint.pt``) reads the slice around
the stroke in a window that zooms out while its answer touches the window's edge, so its
answer tells how far the object reaches on that slice. Its box joins the region of every
round whose newest hint is a stroke or a click; the 3D network still decides the answer. On
the held-out sessions of the calibration, scribble sessions rose from 0.380 / 0.543 / 0.602
to 0.406 / 0.546 / 0.604 at rounds 1 / 3 / 6 (Resources/Models/prompt3d-history.md, twenty-first
session). On a CT of pixels finer than 2 mm a network trained further on finer slices
outlines instead (``FINE_CT_MODEL``, twenty-fifth session).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from InteractiveSegLib.checkpoints import default_models_dir, load_checkpoint
from InteractiveSegLib.errors import EngineError
from InteractiveSegLib.hints import Click, Scribble, members, slice_index
from InteractiveSegLib.methods.click.zoom import ZoomSettings, slice_spacing
from InteractiveSegLib.methods.prompt3d.prompts import Region3, mask_box
from InteractiveSegLib.methods.vmn.engine import checkpoint_normalization
from InteractiveSegLib.methods.vmn.interaction import segment_volume_slice

OUTLINE_MODEL = "vmn_hint.pt"
#: the outline's network on a CT slice of pixels finer than ``FINE_CT_MM``: ``OUTLINE_MODEL``
#: trained further on slices split as a thin-slice scan's (``train-click --p-finer``). On the
#: CT's held-out scribble sessions at 1.5 mm it gained (0.4641 to 0.5104); at 3 mm, and on
#: the brain atlases at any size, it lost (Resources/Models/prompt3d-history.md, twenty-fifth session)
FINE_CT_MODEL = "prompt3d_outline_ct.pt"
FINE_CT_MM = 2.0


def outline_network(path: Path, device: torch.device | None) -> tuple[torch.nn.Module, ZoomSettings]:
    """A ``click_fcnn`` checkpoint that reads the image as ``intensity.normalize`` scales it,
    and its window settings; anything else is refused by name."""
    net, config, meta = load_checkpoint(path, "click_fcnn")
    if checkpoint_normalization(meta, config) != "modality":
        raise EngineError(f"{path} reads percentile-scaled images; the 3D prompt engine's outline needs 'modality'")
    return net.to(device or torch.device("cpu")), ZoomSettings.from_config(config)


class SliceOutliner:
    """The 2D hint network's object on one slice, for the region of a stroke or a click."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        device: torch.device | None = None,
        fine_ct_model_path: str | Path | None = None,
    ) -> None:
        """
        Args:
            model_path: the network's ``click_fcnn`` checkpoint (``outline_network``; default:
                the shipped ``vmn_hint.pt``).
            device: torch device of the networks (default: CPU).
            fine_ct_model_path: the one read on a CT slice of pixels finer than ``FINE_CT_MM``
                (default: the shipped ``prompt3d_outline_ct.pt``).
        """
        models = default_models_dir()
        self.net, self.zoom = outline_network(Path(model_path) if model_path else models / OUTLINE_MODEL, device)
        fine = Path(fine_ct_model_path) if fine_ct_model_path else models / FINE_CT_MODEL
        self.fine_ct_net, self.fine_ct_zoom = outline_network(fine, device)

    def network_for(self, modality: str, pixel: tuple[float, float]) -> tuple[torch.nn.Module, ZoomSettings]:
        """The network (and its window settings) for a slice of ``modality`` whose pixels
        measure ``pixel`` (mm): the fine-CT one on a CT finer than ``FINE_CT_MM``."""
        if modality == "ct" and min(pixel) < FINE_CT_MM:
            return self.fine_ct_net, self.fine_ct_zoom
        return self.net, self.zoom

    @staticmethod
    def wanted(hints: list, has_mask: bool) -> bool:
        """Whether the newest hint is a stroke or a click (and, before any mask, every hint
        is): boxes and extreme points show the object's extent on their slice themselves.

        Args:
            hints: the class's hints, oldest first.
            has_mask: whether the class has a mask yet.
        """

        def strokes(h) -> bool:
            return all(isinstance(m, (Scribble, Click)) for m in members(h))

        return bool(hints) and strokes(hints[-1]) and (has_mask or all(strokes(h) for h in hints))

    def outline(
        self,
        norm: np.ndarray,
        hints: list,
        axis: int,
        index: int,
        spacing_kji: Sequence[float],
        current: np.ndarray | None = None,
        *,
        modality: str,
    ) -> Region3 | None:
        """The box of the object the network sees on slice ``index`` along ``axis`` from the
        hints drawn there and the class's mask there (one slice deep), or None when it sees
        nothing.

        Args:
            norm: the volume scaled by ``intensity.normalize`` (KJI).
            hints: the class's hints; those on the slice are read.
            axis, index: the slice (the newest hint's).
            spacing_kji: voxel size along K, J, I in mm.
            current: the class's mask so far (KJI), or None before the first answer.
            modality: the volume's, "ct" or "mr" (``network_for``).
        Returns:
            (lo, hi) KJI, hi exclusive.
        """
        on_slice = [m for h in hints for m in members(h) if m.axis == axis and slice_index(m) == index]
        if not on_slice:
            return None
        previous = None if current is None else np.take(current, index, axis=axis) > 0
        net, zoom = self.network_for(modality, slice_spacing(spacing_kji, axis))
        prob = segment_volume_slice(net, norm, previous, on_slice, axis, index, spacing_kji, zoom)
        box = mask_box(np.expand_dims(prob > 0.5, axis))
        if box is None:
            return None
        lo, hi = list(box[0]), list(box[1])
        lo[axis], hi[axis] = index, index + 1
        return (lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2])
