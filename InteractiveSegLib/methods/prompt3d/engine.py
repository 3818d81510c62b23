"""The native 3D prompt engine: every hint of a class, its current mask and the image go
into one 3D network, which answers the whole structure at once (nnInteractive's design,
sized for a CPU). Where VMN carries one slice to the next, this one sees the volume, so a
correction anywhere reshapes the whole result and no propagation can drift or stop early.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from InteractiveSegLib.checkpoints import default_models_dir, load_checkpoint, pick_device
from InteractiveSegLib.engines.base import Engine, Prediction, Request, SliceRatings, StepReport, near_slices
from InteractiveSegLib.errors import EngineError
from InteractiveSegLib.hints import Box, DrawnSlice, SliceAuto, members, slice_index
from InteractiveSegLib.intensity import detect_modality, normalize
from InteractiveSegLib.methods.prompt3d.edges import (
    BAND,
    COARSE,
    COARSE_WEIGHT,
    FADE,
    WEIGHT,
    WEIGHTS,
    edge_strength,
    hint_markers,
    negative_side,
    snap_to_edges,
)
from InteractiveSegLib.methods.prompt3d.outline import SliceOutliner
from InteractiveSegLib.methods.prompt3d.prompts import (
    Region3,
    drawn_plane_at,
    encode,
    grow_to_object,
    object_region,
    region_cut,
    to_region,
    touching_faces,
)
from InteractiveSegLib.methods.prompt3d.slice_quality import (
    EXPECTED_IOU,
    FEATURES,
    check,
    predicted_iou,
    slice_features,
    slice_sums,
)
from InteractiveSegLib.methods.prompt3d.snap_grid import SNAP_VOXELS, SnapGrid
from InteractiveSegLib.volume import Volume

MODEL = "prompt3d.pt"
#: a hint's slice informs its neighbours within this share of the result's run of slices
#: (the suggestion looks beyond them); the calibration's unreported held-out sessions gave
#: 0.402 / 0.410 / 0.415 / 0.415 mean Dice for 0 / 0.1 / 0.2 / 0.35 (Resources/Models/prompt3d.md)
HINT_REACH = 0.2
#: modalities where a session of boxes alone shows the network its boxes and not its own last
#: answer: a CT draws an organ's boundary in physical units, so the boxes say what the network
#: needs, and its last answer, short of an organ it never saw, held it back. On the calibration's
#: held-out CT box sessions: 0.429 -> 0.476 (8 of 12 sessions up, 2 down); an MRI atlas parcel has no
#: boundary to see and needs that answer (Colin27's: 0.471 -> 0.439; history, thirty-first session)
BOXES_ALONE = frozenset({"ct"})


class Prompt3DEngine(Engine):
    """A 3D network reads every hint of the class at once and answers the whole structure."""

    name = "prompt3d"
    mode = "3d"
    SUPPORTED_HINTS = frozenset({"click", "scribble", "box", "extreme_points", "drawn_slice"})
    HISTORY = "class"  # the request carries every hint of the class
    MEMORY_PER_VOXEL = 9.0  # the normalised copy, the class mask, the region's probability
    MODEL_CARD = "prompt3d.md"

    def __init__(
        self,
        model_path: str | Path | None = None,
        max_zoom: int = 3,
        device: str | None = None,
        threads: int | None = None,
        modality: str = "auto",
        logit_offset: float | None = None,
        edge_weight: float | None = None,
        coarse_edge_weight: float = COARSE_WEIGHT,
        negative_fade: float = FADE,
        outline_model_path: str | Path | None = None,
        outline: bool = True,
        snap_voxels: int = SNAP_VOXELS,
        fine_ct_outline_model_path: str | Path | None = None,
    ) -> None:
        """
        Args:
            model_path: a ``prompt3d_net`` checkpoint (default: the shipped ``prompt3d.pt``).
            max_zoom: how many times the region may zoom out while the result touches its faces.
            device: torch device (default: CUDA when present).
            threads: torch CPU threads.
            modality: "ct", "mr" or "auto" (the volume's header, else its intensities).
            logit_offset: added to the network's logits before the 0.5 threshold (default:
                the checkpoint's ``logit_offset``, chosen by ``interactiveseg calibrate-prompt3d``
                on held-out structures the benchmark does not report; 0 when it has none).
            edge_weight: the share of the answer that the image's edges decide near its
                boundary (``edges.snap_to_edges``; default: the volume's modality's,
                ``edges.WEIGHTS``; 0 here and in ``coarse_edge_weight``: the network's answer
                as it is).
            coarse_edge_weight: that share where the region's largest side is more than
                ``edges.COARSE`` times the network's grid side and the answer is thicker than
                the snap's band: the grid is coarser than the volume there, its boundary
                blocky (a whole brain, a liver); ``edge_weight``'s value turns the rule off.
            negative_fade: the share of its probability the answer keeps where the flood of
                a negative stroke or click, or of a drawn slice's empty part, reaches it before
                a positive one's (``edges.negative_side``; 1: they only inform the network).
            outline_model_path: the 2D hint network that outlines the object on a
                stroke's slice (``outline.SliceOutliner``; default: the shipped ``vmn_hint.pt``),
                but on a fine-pixel CT's slices (``fine_ct_outline_model_path``).
            outline: False: a stroke's region is the box of the hints and the mask alone,
                as before the twenty-first session.
            snap_voxels: the edge rules run on a coarser copy of a region of more voxels
                (``snap_grid.SnapGrid``).
            fine_ct_outline_model_path: the 2D network that outlines the object on a CT
                slice of pixels finer than ``outline.FINE_CT_MM`` (default: the shipped
                ``prompt3d_outline_ct.pt``).
        """
        super().__init__()
        net, self.config, self.meta = load_checkpoint(
            Path(model_path) if model_path else default_models_dir() / MODEL, "prompt3d_net"
        )
        if max_zoom < 0:
            raise EngineError(f"max_zoom must be >= 0, got {max_zoom}")
        if edge_weight is not None and not 0 <= edge_weight <= 1:
            raise EngineError(f"edge_weight must be in [0, 1], got {edge_weight}")
        if not 0 <= coarse_edge_weight <= 1:
            raise EngineError(f"coarse_edge_weight must be in [0, 1], got {coarse_edge_weight}")
        if snap_voxels < 1:
            raise EngineError(f"snap_voxels must be >= 1, got {snap_voxels}")
        if not 0 < negative_fade <= 1:
            raise EngineError(f"negative_fade must be in (0, 1], got {negative_fade}")
        self._edge_weight = None if edge_weight is None else float(edge_weight)  # None: the modality's
        self._modality = "mr"  # the image's, from set_image
        self.coarse_edge_weight = float(coarse_edge_weight)
        self.negative_fade = float(negative_fade)
        self.snap_voxels = int(snap_voxels)
        self.size = int(self.config.get("size", 64))
        self.max_zoom = int(max_zoom)
        self.device = pick_device(device)
        self.net = net.to(self.device)
        self.outliner = SliceOutliner(outline_model_path, self.device, fine_ct_outline_model_path) if outline else None
        if threads:
            torch.set_num_threads(threads)
        self.requested_modality = modality
        self.logit_offset = float(self.config.get("logit_offset", 0.0) if logit_offset is None else logit_offset)
        #: the slice-quality model (``slice_quality.fit``, by the calibration), or None
        self.slice_quality: dict[str, list[float]] | None = self.config.get("slice_quality")
        if self.slice_quality is not None:
            try:
                check(self.slice_quality)
            except ValueError as e:
                raise EngineError(
                    f"the checkpoint's {e} (calibrate it again: interactiveseg calibrate-prompt3d)"
                ) from e
        self._norm: np.ndarray | None = None

    def set_image(self, volume: Volume) -> None:
        super().set_image(volume)
        modality = str(self.requested_modality).strip().lower()
        modality = detect_modality(volume) if modality == "auto" else modality
        self._norm = normalize(volume.array, modality)  # refuses an unknown modality
        self._modality = modality

    @property
    def edge_weight(self) -> float:
        """The snap's weight on the current image: the caller's, else its modality's (``edges.WEIGHTS``)."""
        return WEIGHTS[self._modality] if self._edge_weight is None else self._edge_weight

    def run(self, hints: list, current: np.ndarray | None, region: Region3) -> np.ndarray:
        """Foreground probability over ``region`` (its own shape)."""
        assert self._norm is not None
        x = torch.from_numpy(encode(self._norm, current, hints, region, self.size))[None].to(self.device)
        with torch.no_grad():
            return torch.sigmoid(to_region(self.net(x), region) + self.logit_offset)[0, 0].cpu().numpy()

    def edge_rules(self, prob: np.ndarray, hints: list, region: Region3, spacing: tuple[float, ...]) -> np.ndarray:
        """The image's edges have their say (``edges``): the snap, then a "not here" hint's
        flood. A large region's rules run on a coarser copy (``SnapGrid``), and what they
        change there is carried back to the region's voxels.

        Args:
            prob: the network's foreground probability over ``region`` (its shape).
            hints: the class's hints.
            region: (lo, hi) KJI.
            spacing: KJI voxel size in mm.
        Returns:
            The probability after the rules, ``prob``'s shape.
        """
        coarse = max(prob.shape) > COARSE * self.size
        thick_weight = self.coarse_edge_weight if coarse else None
        weight = self.edge_weight
        snap = weight > 0 or bool(thick_weight)
        if not snap and self.negative_fade >= 1:
            return prob
        assert self._norm is not None
        cut = region_cut(region)
        grid = SnapGrid.for_region(prob.shape, spacing, self.snap_voxels)
        image, marks, work = self._norm[cut], hint_markers(hints, region), prob
        if grid.coarser:
            image, marks, work = grid.down(image), grid.down_marks(marks), grid.down(prob)
        gradient = edge_strength(image, grid.work_spacing)
        if snap:
            # a modality's heavier weight holds where the snapped boundary is an edge
            edgeless = WEIGHT if self._edge_weight is None and weight > WEIGHT else None
            found = snap_to_edges(
                work, gradient, grid.work_spacing, marks, BAND * grid.band_scale, weight, thick_weight, edgeless
            )
            if found is not None:
                snapped, share = found
                prob = ((1 - share) * prob + share * grid.up_mask(snapped)).astype(np.float32)
                work = prob if not grid.coarser else ((1 - share) * work + share * snapped).astype(np.float32)
        if self.negative_fade < 1:
            negative = negative_side(work, gradient, marks)
            if negative is not None:
                faded = np.where(grid.up_mask(negative), prob * np.float32(self.negative_fade), prob)
                prob = faded.astype(np.float32)
        return prob

    def predict(self, request: Request) -> Prediction:
        if self._norm is None or self.volume is None:
            raise EngineError("set_image() must be called before predict()")
        hints = [h for h in request.interactions if not isinstance(h, SliceAuto)]
        if not hints:
            raise EngineError(
                "the 3D prompt engine needs a hint (click, scribble, box, extreme points or a drawn slice)"
            )
        t0 = time.perf_counter()
        shape = self.volume.shape
        current = request.current
        has_mask = bool(current.any())
        if not has_mask and not any(m.positive and m.points for h in hints for m in members(h)):
            # only "not here" so far (negative strokes, empty drawn slices): nothing to segment
            empty = (slice(0, 1), slice(0, shape[1]), slice(0, shape[2]))
            return Prediction(request.label, empty, np.zeros((1, shape[1], shape[2]), np.float32))
        spacing = tuple(float(s) for s in self.volume.geometry.spacing[::-1])
        outline = None
        if self.outliner is not None and self.outliner.wanted(hints, has_mask):
            outline = self.outliner.outline(
                self._norm, hints, request.axis, request.slice_index, spacing, current, modality=self._modality
            )
        region = object_region(hints, current, spacing, shape, outline=outline)
        boxes_alone = self._modality in BOXES_ALONE and all(isinstance(h, Box) for h in hints)
        shown = None if boxes_alone else current  # no full-volume copy of zeros
        for zoom in range(self.max_zoom + 1):
            prob = self.run(hints, shown, region)
            faces = touching_faces(prob > 0.5, region, shape)
            if not faces or zoom == self.max_zoom:
                break
            # the object runs out of the region: zoom out, as a user would scroll out (issue 20)
            region = grow_to_object(region, faces, shape)
        cut = region_cut(region)
        prob = self.edge_rules(prob, hints, region, spacing)
        impose_drawn(prob, hints, region)
        ratings = rate_slices(prob, region, request.axis, shape[request.axis], hints, self.slice_quality)
        report = StepReport(seconds=time.perf_counter() - t0)
        return Prediction(request.label, cut, prob.astype(np.float32), ratings=ratings, report=report)


def impose_drawn(prob: np.ndarray, hints: list, region: Region3) -> None:
    """A drawn slice is the structure there as it is (empty: not there); the newest wins."""
    for h in (m for hint in hints for m in members(hint) if isinstance(m, DrawnSlice)):
        placed = drawn_plane_at(h, region)
        if placed is not None:
            prob[placed[0]] = placed[1]


def rate_slices(
    prob: np.ndarray, region: Region3, axis: int, n: int, hints: list, model: dict[str, list[float]] | None = None
) -> SliceRatings:
    """Each slice rated from the network's own probabilities. Its predicted IoU: the
    checkpoint's slice-quality model (``slice_quality``; ``model``) or, without one, the
    expected IoU of the thresholded mask, as if its voxels were independent. Its expected wrong
    voxels (sum of min(p, 1 - p)) point at the slice worth a correction. Unrated (NaN): slices
    outside the region or where it expects nothing.

    A hint informs the network on its neighbours too, so the wrong voxels a slice is
    suggested by are weighed down near the hinted slices (``engines.base.near_slices``): the next
    correction goes where the network is unsure and no hint has spoken yet, not to the
    slice next to the one just corrected."""
    lo, hi = region[0][axis], region[1][axis]
    hinted = sorted({slice_index(h) for h in hints if h.axis == axis})
    sums = slice_sums(np.moveaxis(prob, axis, 0))
    features = np.full((n, len(FEATURES)), np.nan)
    features[lo:hi] = slice_features(sums, lo, n, hinted, hints)
    rated = np.isfinite(features[:, EXPECTED_IOU])
    q = features[:, EXPECTED_IOU] if model is None else predicted_iou(features, model)
    wrong = np.full(n, np.nan)
    wrong[lo:hi] = sums.unsure
    wrong[~rated] = np.nan
    return SliceRatings(axis, q, wrong * near_slices(rated, hinted, HINT_REACH), hinted, features)
