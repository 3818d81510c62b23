"""VMN: a hint on one slice segments it, then a memory network carries the mask through
the volume and rates every slice (../shared/papers/vmn-volumetric-memory-network.txt).

Each hint (scribble, box, four extreme points, click) goes to the 2D interaction network
f_IN with the slice's previous mask; the result becomes a *corrected slice*. The memory
network then propagates from that slice both ways, with every corrected slice of the
class in its memory (multi-round refinement, 3.4), and the quality head scores each
propagated slice: ``Session.suggest_slice()`` returns the one with the most expected wrong
voxels ((1 - predicted IoU) x its foreground).

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
from InteractiveSegLib.checkpoints import default_models_dir, load_checkpoint, pick_device
from InteractiveSegLib.engines.base import Engine, EngineState, Prediction, Request, SliceRatings, StepReport
from InteractiveSegLib.errors import EngineError
from InteractiveSegLib.hints import SliceAuto, slice_index
from InteractiveSegLib.methods.vmn.interaction import ENCODINGS, segment_slice
from InteractiveSegLib.methods.vmn.network import VMNet
from InteractiveSegLib.methods.vmn.propagation import PropagationResult, VMNPropagator, propagate
from InteractiveSegLib.preprocessing import Roi, normalize_intensity, resize_stack
from InteractiveSegLib.volume import Volume

INTERACTION_MODEL = "vmn_interaction.pt"
MEMORY_MODEL = "vmn_memory.pt"


@dataclass
class CorrectedSlice(EngineState):
    """f_IN's mask of the slice a hint was drawn on: in the memory of every later round."""

    axis: int
    index: int
    mask: np.ndarray


@dataclass
class PropagationReport(StepReport):
    """One propagation round: its time and how many slices it carried the mask to."""

    propagated: int = 0


class VMNEngine(Engine):
    """Interactive 3D segmentation by slice propagation with a volumetric memory."""

    name = "vmn"
    mode = "3d"
    SUPPORTED_HINTS = frozenset({"click", "scribble", "box", "extreme_points"})
    HISTORY = "class"  # every corrected slice of the class is in the memory
    HINTS_ON_ONE_SLICE = True  # f_IN reads the hint's slice; the memory network makes it 3D
    MEMORY_PER_VOXEL = 7.0  # its normalised copy, and the class mask a round reads
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
    ) -> None:
        super().__init__()
        models = default_models_dir()
        net, self.config, self.meta = load_checkpoint(
            Path(model_path) if model_path else models / MEMORY_MODEL, "vmn_net"
        )
        self.net = cast(VMNet, net)  # the "vmn_net" architecture
        self.f_in, self.in_config, self.in_meta = load_checkpoint(
            Path(interaction_model_path) if interaction_model_path else models / INTERACTION_MODEL, "vmn_interaction"
        )
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
        self._norm: np.ndarray | None = None
        self._propagators: OrderedDict[tuple, VMNPropagator] = OrderedDict()
        #: called with every propagation round's result (slices first, whole slices), before
        #: it becomes a prediction: the quality head's training records its rounds through it
        self.on_propagated: Callable[[PropagationResult], None] | None = None

    def set_image(self, volume: Volume) -> None:
        super().set_image(volume)
        self._norm = normalize_intensity(volume.array)
        self._propagators.clear()

    def region(self, axis: int, corrected: dict[int, np.ndarray]) -> Roi:
        """In-plane region the propagation runs in: the corrected masks' box widened by half
        its size (at least ``margin`` voxels) per side. Structures change little from slice
        to slice, and a small region makes a round several times faster. Within a session the
        corrected masks only accumulate, so the region mostly stays and so do its cached
        query encodings; it depends on nothing else (sessions sharing an engine stay apart)."""
        assert self.volume is not None
        shape = tuple(n for a, n in enumerate(self.volume.shape) if a != axis)
        union = np.zeros(shape, bool)
        for m in corrected.values():
            union |= m > 0.5
        if not union.any():
            return Roi(0, shape[0], 0, shape[1])
        rows, cols = np.nonzero(union.any(1))[0], np.nonzero(union.any(0))[0]
        lo, hi = np.array([rows[0], cols[0]]), np.array([rows[-1], cols[-1]]) + 1
        pad = np.maximum((hi - lo) // 2, self.margin)
        lo, hi = np.maximum(lo - pad, 0), np.minimum(hi + pad, shape)
        return Roi(int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]))

    def working_shape(self, roi: Roi) -> tuple[int, int]:
        """The in-plane size the network sees: the region, shrunk so its longer side is at most
        ``max_side``. A round's cost grows with the region's area (and the memory read's with
        its square), so a structure filling a 256 x 256 slice is propagated at 128 x 128
        (the sizes the network was trained on) and its masks resized back; the brain
        structures of the benchmark have regions below that and are not resized."""
        h, w = roi.r1 - roi.r0, roi.c1 - roi.c0
        scale = min(1.0, self.max_side / max(h, w))
        return max(1, round(h * scale)), max(1, round(w * scale))

    def propagator(self, axis: int, roi: Roi) -> VMNPropagator:
        """The memory network over the ``roi`` of the slices along ``axis`` (at the working
        size); the last few regions are kept with their cached query encodings."""
        key = (axis, roi.r0, roi.r1, roi.c0, roi.c1)
        if key not in self._propagators:
            assert self._norm is not None
            slices = np.moveaxis(self._norm, axis, 0)[:, roi.r0 : roi.r1, roi.c0 : roi.c1]
            self._propagators[key] = VMNPropagator(self.net, resize_stack(slices, self.working_shape(roi)), self.device)
            while len(self._propagators) > 4:
                self._propagators.popitem(last=False)
        self._propagators.move_to_end(key)
        return self._propagators[key]

    def correct(self, request: Request) -> tuple[int, int, np.ndarray]:
        """f_IN on the newest hint's slice: every hint of the class on that slice, with the
        slice's previous mask (none in round one: the network then sees 0.5)."""
        axis, index = request.axis, request.slice_index
        same = [h for h in request.interactions if h.axis == axis and slice_index(h) == index]
        previous = np.take(request.labelmap, index, axis=axis) == request.label
        assert self._norm is not None
        prob, _ = segment_slice(
            self.f_in,
            np.take(self._norm, index, axis=axis),
            previous if previous.any() else None,
            same,
            axis,
            self.roi_size,
            self.encoding,
        )
        return axis, index, (prob > 0.5).astype(np.float32)

    @staticmethod
    def corrected_slices(request: Request, axis: int) -> dict[int, np.ndarray]:
        """Corrected slice masks along ``axis`` kept in earlier predictions (newest wins)."""
        out: dict[int, np.ndarray] = {}
        for c in request.states(CorrectedSlice):
            assert isinstance(c, CorrectedSlice)
            if c.axis == axis:
                out[c.index] = c.mask
        return out

    def propagate(self, axis: int, corrected: dict[int, np.ndarray], start: int) -> PropagationResult:
        """Carry the corrected slices through the volume from ``start`` (slices first)."""
        roi = self.region(axis, corrected)
        work = self.working_shape(roi)
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
        )
        # the region only: whole slices of a 512 x 512 x 600 CT would be 600 MB of float32
        prob = resize_stack(res.probability, (roi.r1 - roi.r0, roi.c1 - roi.c0))
        for i, m in corrected.items():  # corrected slices keep their mask exactly (inside the region)
            prob[i] = m[roi.slices]
        res.probability, res.roi = prob, roi
        return res

    def predict(self, request: Request) -> Prediction:
        if self._norm is None:
            raise EngineError("set_image() must be called before predict()")
        if isinstance(request.interactions[-1], SliceAuto):
            raise EngineError("VMN needs a hint (scribble, box, extreme points or click) on one slice")
        correction = CorrectedSlice(*self.correct(request))
        corrected = self.corrected_slices(request, request.axis)
        corrected[correction.index] = correction.mask
        result = self.propagate(request.axis, corrected, request.slice_index)
        assert self.volume is not None
        plane = cast(tuple[int, int], tuple(n for a, n in enumerate(self.volume.shape) if a != request.axis))
        if self.on_propagated is not None:
            whole = PropagationResult(result.whole_slices(plane), result.quality, result.order, result.memory)
            self.on_propagated(whole)
        # the expected number of wrong voxels of a slice: (1 - predicted IoU) x its foreground
        # (nan where unrated); the suggestion is the slice with the most (model card: vmn.md)
        area = (result.probability > 0.5).sum((1, 2))
        ratings = SliceRatings(
            axis=request.axis,
            predicted_iou=result.quality.astype(np.float64),
            expected_wrong_voxels=((1.0 - result.quality) * area).astype(np.float64),
            corrected=sorted(corrected),
        )
        report = PropagationReport(seconds=result.seconds, propagated=len(result.order))
        region, probability = self.result_region(request, result, correction)
        return Prediction(request.label, region, probability, ratings=ratings, report=report, state=correction)

    def result_region(
        self, request: Request, result: PropagationResult, correction: CorrectedSlice
    ) -> tuple[tuple[slice, slice, slice], np.ndarray]:
        """The KJI region a round rewrites and its probability: the box of the new result
        and of the class's current voxels (which it replaces), not the whole volume."""
        assert self.volume is not None
        n = self.volume.shape[request.axis]
        plane = tuple(s for a, s in enumerate(self.volume.shape) if a != request.axis)
        roi = result.roi or Roi(0, plane[0], 0, plane[1])
        in_roi = (slice(0, n), *roi.slices)
        current = np.moveaxis(request.labelmap == request.label, request.axis, 0)
        whole = (slice(0, n), slice(0, plane[0]), slice(0, plane[1]))
        box = bounding_region((n, *plane), (in_roi, result.probability > 0.5), (whole, current))
        if box is None:  # nothing anywhere: the corrected slice, which is empty
            box = (slice(correction.index, correction.index + 1), slice(0, plane[0]), slice(0, plane[1]))
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
        kji_box.insert(request.axis, box[0])
        return cast(tuple[slice, slice, slice], tuple(kji_box)), np.moveaxis(prob, 0, request.axis)


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
