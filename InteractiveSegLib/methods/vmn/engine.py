"""VMN: a hint on one slice segments it, then a memory network carries the mask through
the volume and rates every slice (../shared/papers/vmn-volumetric-memory-network.txt).

Each hint (scribble, box, four extreme points, click) goes to the 2D interaction network
f_IN with the slice's previous mask; the result becomes a *corrected slice*. The memory
network then propagates from that slice both ways, with every corrected slice of the
class in its memory (multi-round refinement, 3.4), and the quality head scores each
propagated slice: ``Session.suggest_slice()`` returns the one with the most expected wrong
voxels ((1 - predicted IoU) x its foreground).

Images are scaled as each checkpoint was trained (``meta["normalization"]``: "modality",
``intensity.normalize`` with the modality from the header or the HU range; absent, the
percentile scaling of the weights shipped before). With ``axis_choice`` (off by default) a
hint on thick slices seeds a slice of the finest axis, and the propagation runs along it.

Each prediction keeps its corrected slice; the session hands the class's earlier
predictions back (``Request.history``), so undo and redo restore the memory exactly.
``memory_size=0`` is the memory-less baseline of Table 5 (``vmn-mem0``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch

from InteractiveSegLib.changes import bounding_region
from InteractiveSegLib.checkpoints import default_models_dir, load_checkpoint, load_one_of, pick_device
from InteractiveSegLib.engines.base import Engine, EngineState, Prediction, Request, SliceRatings, StepReport
from InteractiveSegLib.errors import EngineError
from InteractiveSegLib.hints import DrawnSlice, Scribble, SliceAuto, slice_index, slice_points
from InteractiveSegLib.intensity import detect_modality, normalize
from InteractiveSegLib.methods.click.zoom import ZoomSettings
from InteractiveSegLib.methods.vmn.interaction import ENCODINGS, segment_slice, segment_volume_slice
from InteractiveSegLib.methods.vmn.network import VMNet
from InteractiveSegLib.methods.vmn.propagation import PropagationResult, VMNPropagator, propagate
from InteractiveSegLib.preprocessing import Roi, normalize_intensity, resize_stack
from InteractiveSegLib.volume import Volume

#: f_IN: the click engine's network trained on every hint kind (``train-click --hints``), which
#: carries to CT and to large structures; the paper's network (``vmn_interaction.pt``) stays an
#: option through ``interaction_model_path`` (it does better on the glioma; vmn.md)
INTERACTION_MODEL = "vmn_hint.pt"
MEMORY_MODEL = "vmn_memory.pt"
#: how a checkpoint's images were scaled (its ``meta["normalization"]``): "modality" is
#: ``intensity.normalize`` (CT in HU through a fixed curve, MRI by body percentiles);
#: "percentile" (``preprocessing.normalize_intensity``, non-zero percentiles) is what a
#: checkpoint without the key was trained on
NORMALIZATIONS = ("modality", "percentile")


#: networks f_IN can be: the paper's (ROI resized to a square, geodesic cues) or the click
#: engine's (a window in millimetres that zooms out, Gaussian cues, a box as its outline)
INTERACTION_ARCHS = ("vmn_interaction", "click_fcnn")


def checkpoint_normalization(meta: dict, config: dict | None = None) -> str:
    """The intensity scaling a checkpoint was trained with (``NORMALIZATIONS``)."""
    default = "modality" if (config or {}).get("intensity") == "modality" else "percentile"
    value = str(meta.get("normalization", default))
    if value not in NORMALIZATIONS:
        raise EngineError(f"unknown normalization {value!r} in a VMN checkpoint; expected one of {NORMALIZATIONS}")
    return value


@dataclass
class CorrectedSlice(EngineState):
    """f_IN's mask of the slice a hint was drawn on: in the memory of every later round.
    ``seed``: when the propagation runs along another axis (thick slices), the slice of that
    axis this correction seeded (see ``VMNEngine.seed``)."""

    axis: int
    index: int
    mask: np.ndarray
    seed: CorrectedSlice | None = None


def choose_axis(spacing_kji: tuple[float, float, float], hint_axis: int, thick_ratio: float = 2.0) -> int:
    """The KJI axis to propagate along: the hint's, unless its slices are thick (the spacing
    along it above ``thick_ratio`` x the finest spacing); then the other axis of finest
    spacing (the lower one on a tie). The memory network carries a mask from one slice to the
    next; 5 mm apart a structure changes shape far more than 1 mm apart, so a thick-slice
    axial scan is carried through its coronal or sagittal slices, one fine step at a time."""
    sp = [float(x) for x in spacing_kji]
    if sp[hint_axis] <= thick_ratio * min(sp):
        return hint_axis
    return min((a for a in range(3) if a != hint_axis), key=lambda a: (sp[a], a))


def impose(prob: np.ndarray, axis: int, roi: Roi | None, slices: list[CorrectedSlice]) -> None:
    """Write corrected slices of other axes, exactly, into a propagation's probability
    (slices along ``axis`` first, in-plane ``roi``; None: whole slices): the slices the user
    drew on keep their masks whatever the axis the propagation ran along (parts outside the
    region are not written)."""
    view = np.moveaxis(prob, 0, axis)  # KJI order, a view: writes reach ``prob``
    o1, o2 = (a for a in range(3) if a != axis)
    offset = {axis: 0, o1: roi.r0 if roi else 0, o2: roi.c0 if roi else 0}
    for c in slices:
        j = c.index - offset[c.axis]
        if c.axis == axis or not 0 <= j < view.shape[c.axis]:
            continue
        at: list[int | slice] = [slice(None)] * 3
        at[c.axis] = j
        part = tuple(slice(offset[b], offset[b] + view.shape[b]) for b in range(3) if b != c.axis)
        view[tuple(at)] = c.mask[part]


@dataclass
class PropagationReport(StepReport):
    """One propagation round: its time and how many slices it carried the mask to."""

    propagated: int = 0


class VMNEngine(Engine):
    """Interactive 3D segmentation by slice propagation with a volumetric memory."""

    name = "vmn"
    mode = "3d"
    SUPPORTED_HINTS = frozenset({"click", "scribble", "box", "extreme_points", "drawn_slice"})
    HISTORY = "class"  # every corrected slice of the class is in the memory
    HINTS_ON_ONE_SLICE = True  # f_IN reads the hint's slice; the memory network makes it 3D
    MEMORY_PER_VOXEL = 11.0  # its normalised copies (f_IN and f_VMN may scale differently), the class mask
    MODEL_CARD = "vmn.md"

    def __init__(
        self,
        model_path: str | Path | None = None,
        interaction_model_path: str | Path | None = None,
        memory_size: int = 20,
        every: int = 5,
        stop_after: int = 3,
        margin: int = 24,
        max_side: int = 128,
        encoding: str | None = None,
        device: str | None = None,
        threads: int | None = None,
        modality: str = "auto",
        axis_choice: bool = False,
        thick_ratio: float = 2.0,
        vanish: float = 0.02,
        fade: float = 0.4,
    ) -> None:
        super().__init__()
        models = default_models_dir()
        net, self.config, self.meta = load_checkpoint(
            Path(model_path) if model_path else models / MEMORY_MODEL, "vmn_net"
        )
        self.net = cast(VMNet, net)  # the "vmn_net" architecture
        in_path = Path(interaction_model_path) if interaction_model_path else models / INTERACTION_MODEL
        self.in_arch, self.f_in, self.in_config, self.in_meta = load_one_of(in_path, INTERACTION_ARCHS)
        self.zoom = ZoomSettings.from_config(self.in_config)
        self.encoding = encoding or self.in_config.get("encoding", "geodesic")
        if self.encoding not in ENCODINGS:
            raise EngineError(f"unknown cue encoding {self.encoding!r}; expected one of {ENCODINGS}")
        self.roi_size = int(self.in_config.get("roi_size", 96))
        if memory_size < 0 or every < 1 or stop_after < 1 or max_side < 16:
            raise EngineError("memory_size must be >= 0, every and stop_after >= 1, max_side >= 16")
        self.max_side = int(max_side)
        self.memory_size, self.every, self.stop_after, self.margin = (
            int(memory_size),
            int(every),
            int(stop_after),
            int(margin),
        )
        self.device = pick_device(device)
        self.net.to(self.device)
        self.f_in.to(self.device)
        if threads:
            torch.set_num_threads(threads)
        self.requested_modality = modality
        #: propagate along the finest-spaced axis when the hint's slices are thick (``choose_axis``);
        #: off by default: with the networks as trained it lowered the volume Dice on the
        #: thick-slice MRI volumes (Resources/Models/vmn.md, issue 20)
        self.axis_choice, self.thick_ratio = bool(axis_choice), float(thick_ratio)
        #: the stop rule also counts a slice holding less than this share of the run's first
        #: slice's foreground as one where the structure has ended (``propagation.propagate``)
        self.vanish = float(vanish)
        #: ... and a slice rated below this share of the run's best predicted IoU (0: off)
        self.fade = float(fade)
        if not 0.0 <= self.fade < 1.0:
            raise EngineError(f"fade must be in [0, 1), got {fade}")
        self.modality: str | None = None
        self._norm: np.ndarray | None = None  # the image as f_VMN was trained to read it
        self._in_norm: np.ndarray | None = None  # as f_IN was (the same array when both agree)
        self._propagators: OrderedDict[tuple, VMNPropagator] = OrderedDict()
        #: the current round's corrected slices of other axes, drawn on the propagation's
        #: slices (their footprint): the region must hold them
        self._cross_planes: list[np.ndarray] = []
        #: called with every propagation round's result (slices first, whole slices), before
        #: it becomes a prediction: the quality head's training records its rounds through it
        self.on_propagated: Callable[[PropagationResult], None] | None = None

    def set_image(self, volume: Volume) -> None:
        super().set_image(volume)
        self.modality = detect_modality(volume) if self.requested_modality == "auto" else self.requested_modality
        scaled: dict[str, np.ndarray] = {}

        def scale(kind: str) -> np.ndarray:
            if kind not in scaled:
                assert self.modality is not None
                scaled[kind] = (
                    normalize(volume.array, self.modality) if kind == "modality" else normalize_intensity(volume.array)
                )
            return scaled[kind]

        self._norm = scale(checkpoint_normalization(self.meta))
        self._in_norm = scale(checkpoint_normalization(self.in_meta, self.in_config))
        self._propagators.clear()

    def region(self, axis: int, corrected: dict[int, np.ndarray], extra: list[np.ndarray] | None = None) -> Roi:
        """In-plane region the propagation runs in: the corrected masks' box widened by half
        its size (at least ``margin`` voxels) per side. Structures change little from slice
        to slice, and a small region makes a round several times faster. Within a session the
        corrected masks only accumulate, so the region mostly stays and so do its cached
        query encodings; it depends on nothing else (sessions sharing an engine stay apart)."""
        assert self.volume is not None
        shape = tuple(n for a, n in enumerate(self.volume.shape) if a != axis)
        union = np.zeros(shape, bool)
        for m in [*corrected.values(), *(extra or [])]:
            union |= m > 0.5
        if not union.any():
            return Roi(0, shape[0], 0, shape[1])
        rows, cols = np.nonzero(union.any(1))[0], np.nonzero(union.any(0))[0]
        lo, hi = np.array([rows[0], cols[0]]), np.array([rows[-1], cols[-1]]) + 1
        pad = np.maximum((hi - lo) // 2, self.margin)
        lo, hi = np.maximum(lo - pad, 0), np.minimum(hi + pad, shape)
        return Roi(int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]))

    def working_shape(self, roi: Roi, axis: int = 0) -> tuple[int, int]:
        """The in-plane size the network sees: the region with square pixels (the coarser
        in-plane direction of a slice along ``axis`` stretched to the finer spacing, as across
        thick slices), shrunk so its longer side is at most ``max_side``. A round's cost grows
        with the region's area (and the memory read's with its square), so a structure filling
        a 256 x 256 slice is propagated at 128 x 128 (the sizes the network was trained on) and
        its masks resized back; the brain structures of the benchmark have regions below that
        and are not resized."""
        h, w = float(roi.r1 - roi.r0), float(roi.c1 - roi.c0)
        if self.volume is not None:
            sp = self.volume.geometry.spacing[::-1]
            s_row, s_col = (float(sp[a]) for a in range(3) if a != axis)
            h, w = h * s_row / min(s_row, s_col), w * s_col / min(s_row, s_col)
        scale = min(1.0, self.max_side / max(h, w))
        return max(1, round(h * scale)), max(1, round(w * scale))

    def propagator(self, axis: int, roi: Roi) -> VMNPropagator:
        """The memory network over the ``roi`` of the slices along ``axis`` (at the working
        size); the last few regions are kept with their cached query encodings."""
        key = (axis, roi.r0, roi.r1, roi.c0, roi.c1)
        if key not in self._propagators:
            assert self._norm is not None
            slices = np.moveaxis(self._norm, axis, 0)[:, roi.r0 : roi.r1, roi.c0 : roi.c1]
            work = self.working_shape(roi, axis)
            self._propagators[key] = VMNPropagator(self.net, resize_stack(slices, work), self.device)
            while len(self._propagators) > 4:
                self._propagators.popitem(last=False)
        self._propagators.move_to_end(key)
        return self._propagators[key]

    def correct(self, request: Request) -> tuple[int, int, np.ndarray]:
        """The newest hint's slice: f_IN on every hint of the class on that slice, with the
        slice's previous mask (none in round one: the network then sees 0.5), or a drawn slice
        as it is (``DrawnSlice``: no network reads it; an empty one clears the slice)."""
        axis, index = request.axis, request.slice_index
        same = [h for h in request.interactions if h.axis == axis and slice_index(h) == index]
        drawn = [i for i, h in enumerate(same) if isinstance(h, DrawnSlice)]
        if not drawn:
            return axis, index, self.f_in_mask(request, axis, index, same)
        # the newest drawn slice is the mask as it is; f_IN reads only the hints given after it
        mask = np.zeros(np.take(request.labelmap, index, axis=axis).shape, bool)
        voxels = cast(DrawnSlice, same[drawn[-1]]).voxels  # none: the structure is not on this slice
        if voxels:
            rows, cols = np.array(slice_points(voxels, axis)).T
            mask[rows, cols] = True
        after = same[drawn[-1] + 1 :]
        return axis, index, self.f_in_mask(request, axis, index, after, mask) if after else mask.astype(np.float32)

    def f_in_mask(
        self, request: Request, axis: int, index: int, hints: list, previous: np.ndarray | None = None
    ) -> np.ndarray:
        """f_IN's mask of slice ``index`` along ``axis`` from ``hints`` on it and ``previous``,
        the structure's mask there (default: the class's current mask; none yet: the network
        sees 0.5)."""
        if previous is None:
            previous = np.take(request.labelmap, index, axis=axis) == request.label
        assert self._in_norm is not None and self.volume is not None
        if self.in_arch == "click_fcnn":
            spacing = self.volume.geometry.spacing[::-1]
            zoomed = segment_volume_slice(self.f_in, self._in_norm, previous, hints, axis, index, spacing, self.zoom)
            return (zoomed > 0.5).astype(np.float32)
        prob, _ = segment_slice(
            self.f_in,
            np.take(self._in_norm, index, axis=axis),
            previous if previous.any() else None,
            hints,
            axis,
            self.roi_size,
            self.encoding,
        )
        return (prob > 0.5).astype(np.float32)

    @staticmethod
    def corrected_slices(request: Request, axis: int) -> dict[int, np.ndarray]:
        """Corrected slice masks along ``axis`` kept in earlier predictions, and the slices
        of ``axis`` that corrections on other axes seeded (newest wins)."""
        out: dict[int, np.ndarray] = {}
        for c in request.states(CorrectedSlice):
            assert isinstance(c, CorrectedSlice)
            for item in (c, c.seed):
                if item is not None and item.axis == axis:
                    out[item.index] = item.mask
        return out

    def propagate(self, axis: int, corrected: dict[int, np.ndarray], start: int) -> PropagationResult:
        """Carry the corrected slices through the volume from ``start`` (slices first)."""
        roi = self.region(axis, corrected, self._cross_planes)
        work = self.working_shape(roi, axis)
        crop = {i: resize_stack(m[roi.slices][None], work)[0] for i, m in corrected.items()}
        assert self.volume is not None
        res = propagate(
            self.propagator(axis, roi),
            self.volume.shape[axis],
            crop,
            start,
            cap=self.memory_size,
            every=self.every,
            stop_after=self.stop_after,
            progress=self.progress,
            vanish=self.vanish,
            fade=self.fade,
        )
        # the region only: whole slices of a 512 x 512 x 600 CT would be 600 MB of float32
        prob = resize_stack(res.probability, (roi.r1 - roi.r0, roi.c1 - roi.c0))
        for i, m in corrected.items():  # corrected slices keep their mask exactly (inside the region)
            prob[i] = m[roi.slices]
        res.probability, res.roi = prob, roi
        return res

    def propagation_axis(self, hint_axis: int) -> int:
        """``choose_axis`` from the volume's spacing; the hint's axis when ``axis_choice`` is off
        and for the baselines that replace the propagation (their seeds are the corrected
        slices themselves)."""
        if not self.axis_choice or type(self).propagate is not VMNEngine.propagate or self.volume is None:
            return hint_axis
        sp = self.volume.geometry.spacing[::-1]
        return choose_axis((float(sp[0]), float(sp[1]), float(sp[2])), hint_axis, self.thick_ratio)

    def seed(self, c: CorrectedSlice, axis: int, request: Request) -> CorrectedSlice | None:
        """The slice along ``axis`` that crosses the corrected slice ``c`` where its mask is
        widest, segmented by f_IN from the line ``c``'s mask draws on it (a positive scribble),
        with that line kept exactly; None when ``c`` is empty. The propagation along ``axis``
        starts there."""
        m = c.mask > 0.5
        if not m.any():
            return None
        plane = [a for a in range(3) if a != c.axis]  # the axes of c.mask, in KJI order
        pos = plane.index(axis)
        along = plane[1 - pos]  # the axis the crossing line runs along
        j = int(np.argmax(m.sum(axis=1 - pos)))
        line = np.take(m, j, axis=pos)
        voxels = []
        for t in np.flatnonzero(line):
            kji = [0, 0, 0]
            kji[axis], kji[c.axis], kji[along] = j, c.index, int(t)
            voxels.append((kji[2], kji[1], kji[0]))
        hint = Scribble(voxels, label=request.label, positive=True, axis=axis)
        mask = self.f_in_mask(request, axis, j, [hint])
        at: list[int | slice] = [slice(None), slice(None)]
        at[[a for a in range(3) if a != axis].index(c.axis)] = c.index
        mask[tuple(at)] = line
        return CorrectedSlice(axis, j, mask)

    def cross_slices(self, request: Request, axis: int, newest: CorrectedSlice) -> list[CorrectedSlice]:
        """The corrected slices of the class drawn along other axes than ``axis`` (newest wins)."""
        out: dict[tuple[int, int], CorrectedSlice] = {}
        for c in [*request.states(CorrectedSlice), newest]:
            assert isinstance(c, CorrectedSlice)
            if c.axis != axis:
                out[(c.axis, c.index)] = c
        return list(out.values())

    def footprint(self, c: CorrectedSlice, axis: int) -> np.ndarray:
        """Where the corrected slice ``c`` (of another axis) meets the slices along ``axis``, as
        a mask on their plane: the line of ``c.index`` over the extent of ``c``'s mask."""
        assert self.volume is not None
        shape = tuple(n for a, n in enumerate(self.volume.shape) if a != axis)
        out = np.zeros(shape, bool)
        plane = [a for a in range(3) if a != c.axis]
        other = [a for a in range(3) if a != axis]
        along = plane[1 - plane.index(axis)]
        covered = np.asarray((c.mask > 0.5).any(axis=plane.index(axis)))
        at: list[int | slice | np.ndarray] = [slice(None), slice(None)]
        at[other.index(c.axis)] = c.index
        at[other.index(along)] = covered
        out[tuple(at)] = True
        return out

    def predict(self, request: Request) -> Prediction:
        if self._norm is None:
            raise EngineError("set_image() must be called before predict()")
        if isinstance(request.interactions[-1], SliceAuto):
            raise EngineError("VMN needs a hint (scribble, box, extreme points or click) on one slice")
        correction = CorrectedSlice(*self.correct(request))
        axis = self.propagation_axis(request.axis)
        corrected = self.corrected_slices(request, axis)
        if axis == request.axis:
            corrected[correction.index] = correction.mask
            start: int | None = correction.index
        else:  # thick slices: the hint's slice seeds a slice of the finer axis, which propagates
            correction.seed = self.seed(correction, axis, request)
            if correction.seed is not None:
                corrected[correction.seed.index] = correction.seed.mask
            start = correction.seed.index if correction.seed is not None else next(reversed(corrected), None)
        cross = self.cross_slices(request, axis, correction)
        self._cross_planes = [self.footprint(c, axis) for c in cross]
        assert self.volume is not None
        plane = cast(tuple[int, int], tuple(n for a, n in enumerate(self.volume.shape) if a != axis))
        if start is None:  # nothing holds the structure along this axis: only the drawn slices
            n = self.volume.shape[axis]
            result = PropagationResult(np.zeros((n, *plane), np.float32), np.full(n, np.nan, np.float32))
        else:
            result = self.propagate(axis, corrected, start)
        impose(result.probability, axis, result.roi, cross)
        result.axis = axis
        if self.on_propagated is not None:
            whole = PropagationResult(result.whole_slices(plane), result.quality, result.order, result.memory)
            whole.axis = axis
            self.on_propagated(whole)
        # the expected number of wrong voxels of a slice: (1 - predicted IoU) x its foreground
        # (nan where unrated); the suggestion is the slice with the most (model card: vmn.md)
        area = (result.probability > 0.5).sum((1, 2))
        ratings = SliceRatings(
            axis=axis,
            predicted_iou=result.quality.astype(np.float64),
            expected_wrong_voxels=((1.0 - result.quality) * area).astype(np.float64),
            corrected=sorted(corrected),
        )
        report = PropagationReport(seconds=result.seconds, propagated=len(result.order))
        region, probability = self.result_region(request, result, axis)
        return Prediction(request.label, region, probability, ratings=ratings, report=report, state=correction)

    def result_region(
        self, request: Request, result: PropagationResult, axis: int
    ) -> tuple[tuple[slice, slice, slice], np.ndarray]:
        """The KJI region a round rewrites and its probability (``result`` runs along
        ``axis``): the box of the new result and of the class's current voxels (which it
        replaces), not the whole volume."""
        assert self.volume is not None
        n = self.volume.shape[axis]
        plane = tuple(s for a, s in enumerate(self.volume.shape) if a != axis)
        roi = result.roi or Roi(0, plane[0], 0, plane[1])
        in_roi = (slice(0, n), *roi.slices)
        current = np.moveaxis(request.labelmap == request.label, axis, 0)
        whole = (slice(0, n), slice(0, plane[0]), slice(0, plane[1]))
        box = bounding_region((n, *plane), (in_roi, result.probability > 0.5), (whole, current))
        if box is None:  # nothing anywhere: one slice of zeros
            box = (slice(0, 1), slice(0, plane[0]), slice(0, plane[1]))
        prob = np.zeros(tuple(s.stop - s.start for s in box), np.float32)
        lo = [max(b.start, r.start) for b, r in zip(box, in_roi, strict=True)]
        hi = [min(b.stop, r.stop) for b, r in zip(box, in_roi, strict=True)]
        if all(a < b for a, b in zip(lo, hi, strict=True)):
            prob[tuple(slice(a - b.start, c - b.start) for a, c, b in zip(lo, hi, box, strict=True))] = (
                result.probability[
                    tuple(slice(a - r.start, c - r.start) for a, c, r in zip(lo, hi, in_roi, strict=True))
                ]
            )
        kji_box = [box[1], box[2]]
        kji_box.insert(axis, box[0])
        return cast(tuple[slice, slice, slice], tuple(kji_box)), np.moveaxis(prob, 0, axis)


class MemorylessVMNEngine(VMNEngine):
    """Table 5's baseline: the same networks with an empty memory (slice by slice)."""

    name = "vmn-mem0"

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("memory_size", 0)
        super().__init__(**kwargs)


class RegistrationPropagationEngine(VMNEngine):
    """VMN's registration baseline from the dynamic-learning paper (Algorithm 2): the same
    f_IN corrections, carried to the other slices by registering each slice to its nearest
    corrected slice (``proxy_mask``) instead of the memory network. The block is the
    corrected masks' in-plane box + ``margin`` over the corrected slices +- ``reach``
    (as ``vmn-growcut``); one plane, so a warped value of 0.5 or more is foreground.
    No quality head: ``suggest_slice`` has nothing to offer."""

    name = "vmn-registration"

    def __init__(self, margin: int = 10, reach: int = 15, **kwargs) -> None:
        super().__init__(**kwargs)
        self.margin, self.reach = int(margin), int(reach)

    def propagate(self, axis: int, corrected: dict[int, np.ndarray], start: int) -> PropagationResult:
        import time

        from InteractiveSegLib.methods.online.proxy_mask import ProxyMask

        t0 = time.perf_counter()
        assert self._norm is not None
        image = np.moveaxis(self._norm, axis, 0)
        n = image.shape[0]
        prob = np.zeros(image.shape, np.float32)
        block = corrected_block(corrected, image.shape, self.margin, self.reach)
        if block is not None:
            (k0, k1), (r0, r1), (c0, c1) = block
            proxy = ProxyMask(image[k0:k1, r0:r1, c0:c1])
            for i, m in corrected.items():
                proxy.add(0, i - k0, m[r0:r1, c0:c1] > 0.5)
            prob[k0:k1, r0:r1, c0:c1] = proxy.mask()
        for i, m in corrected.items():
            prob[i] = m
        return PropagationResult(prob, np.full(n, np.nan, np.float32), seconds=time.perf_counter() - t0)


def corrected_block(corrected: dict[int, np.ndarray], shape: tuple[int, int, int], margin: int, reach: int):
    """((k0, k1), (r0, r1), (c0, c1)) of a slices-first volume: the corrected masks' in-plane
    box + ``margin`` over the corrected slices +- ``reach``; None when every mask is empty.
    The block the propagation baselines (registration, Grow from seeds) work in."""
    union = np.zeros(shape[1:], bool)
    for m in corrected.values():
        union |= m > 0.5
    if not union.any():
        return None
    rows, cols = np.nonzero(union.any(1))[0], np.nonzero(union.any(0))[0]
    return (
        (max(min(corrected) - reach, 0), min(max(corrected) + reach + 1, shape[0])),
        (max(rows[0] - margin, 0), min(rows[-1] + margin + 1, shape[1])),
        (max(cols[0] - margin, 0), min(cols[-1] + margin + 1, shape[2])),
    )
