"""Any pre-trained segmentation network made interactive by scribble-aware test-time
fine-tuning (../shared/papers/scribble-aware-test-time-finetuning.txt; the algorithm is in
``adaptation``, model loading in ``model``).

- ``finetune`` (2D): answers on the slice of the newest hint. Every hint already drawn
  on that slice, of every label, is a constraint; one step may hold hints of several
  labels (``Session.add_many``).
- ``finetune-3d``: an ROI around all hints of the session (+ margin, at least
  ``min_roi``); a 2D network runs on the ROI's slices (the scribbled slices train, all
  slices are inferred), a 3D network on patches (sliding window for the inference).
- ``SliceAuto`` runs the model without hints: one slice (2D) or the whole volume (3D).

Labels: the session's values 1..N-1 are the model's classes; a value >= N is a label the
model never knew and gets a new output channel the first time it is scribbled. Hints
marked negative constrain to background. Adapted weights (only the trainable part) are
kept in each step's ``Prediction.state`` (``AdaptedWeights``): the next hint on the same image
starts from them (``keep_weights``), undo/redo restore them, ``reset_adaptation()`` drops
them. The loaded source model is never modified and its file never written.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from InteractiveSegLib.checkpoints import default_models_dir, pick_device
from InteractiveSegLib.engines.base import Engine, Prediction, Request
from InteractiveSegLib.errors import EngineError
from InteractiveSegLib.hints import (
    Box,
    Click,
    ExtremePoints,
    Interaction,
    Scribble,
    SliceAuto,
    kji,
    members,
    slice_index,
)
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.methods.finetune.adaptation import (
    UNLABELLED,
    ExtraChannels,
    FinetuneSettings,
    FrozenPrefix,
    anchor_mask,
    final_layer,
    finetune,
    grow_scribbles,
    load_state,
    state_of,
    trainable_names,
)
from InteractiveSegLib.methods.finetune.model import ModelSpec, SegmentationModel, load_model, model_labels, normalize
from InteractiveSegLib.methods.finetune.regions import covering_tiles, hint_box
from InteractiveSegLib.methods.finetune.state import AdaptationReport, AdaptedWeights
from InteractiveSegLib.volume import Volume

DEFAULT_MODEL = "sim_auto.pt"  # the deliberately mismatched base model of the benchmark (model card)
BOX_RING = 2  # width (voxels) of the background band just outside a box


class ScribbleFinetuneEngine(Engine):
    """Scribbles (and clicks, boxes, extreme points) as constraints on a pre-trained network."""

    name = "finetune"
    mode = "2d"
    multiclass = True
    SUPPORTED_HINTS = frozenset({"click", "scribble", "box", "extreme_points", "auto", "group"})
    HISTORY = "all"  # every earlier step: kept weights and constraints follow undo
    ADOPTS_LABELS = True
    ADAPTS_TO_IMAGE = True
    MODEL_CARD = "finetune.md"

    def __init__(
        self,
        model: str | Path | SegmentationModel | None = None,
        spec: ModelSpec | dict | None = None,
        layers: int = 6,
        iterations: int = 12,
        lr: float = 0.15,
        alpha: float = 0.01,
        momentum: float = 0.0,
        region_growing: bool = True,
        threshold: float = 0.02,
        grow_radius: int = 2,
        max_grad_norm: float = 0.1,
        new_label_lr: float = 10.0,
        anchor_weight: float = 0.0,
        new_label_init: str = "imprint",
        anchor_distance: float = 16.0,
        keep_weights: bool = True,
        mode: str = "2d",
        roi_margin: tuple[int, int, int] = (4, 24, 24),
        min_roi: tuple[int, int, int] | None = None,
        chunk: int = 16,
        device: str | None = None,
        threads: int | None = None,
        trust_code: bool = False,
    ) -> None:
        super().__init__()
        if mode not in ("2d", "3d"):
            raise EngineError(f"mode must be '2d' or '3d', got {mode!r}")
        self.mode = mode
        self.name = "finetune" if mode == "2d" else "finetune-3d"
        source = (
            model
            if isinstance(model, SegmentationModel)
            else load_model(model or default_models_dir() / DEFAULT_MODEL, spec, trust_code)
        )
        self.source = source  # as loaded: never trained, never saved
        self.model = source.copy()  # the working copy W_λ lives in
        self.spec = source.spec
        self.settings = FinetuneSettings(
            layers,
            iterations,
            lr,
            momentum,
            alpha,
            region_growing,
            threshold,
            grow_radius,
            max_grad_norm,
            new_label_lr,
            anchor_weight,
            anchor_distance,
        )
        self.keep_weights = keep_weights
        if new_label_init not in ("imprint", "background"):
            raise EngineError(f"new_label_init must be 'imprint' or 'background', got {new_label_init!r}")
        self.new_label_init = new_label_init
        self.roi_margin = tuple(int(v) for v in roi_margin)
        self.min_roi = tuple(int(v) for v in min_roi) if min_roi else None
        self.chunk = int(chunk)
        self.device = pick_device(device)
        self.model.module.to(self.device)
        if threads:
            torch.set_num_threads(threads)
        for p in self.model.module.parameters():
            p.requires_grad_(False)
        self.num_classes = source.num_classes
        example = torch.zeros(
            1, 1, *(max(32, self.spec.preprocessing.divisor),) * self.spec.spatial_dims, device=self.device
        )
        self._trainable = trainable_names(self.model.module, example, layers)
        named = dict(self.model.module.named_parameters())
        self._reference = {n: named[n].detach().clone() for n in self._trainable}
        self.extra = self._extra_channels(example)
        self.new_labels: list[
            int
        ] = []  # session values without a model channel, in the order their channels were added
        self._bound: dict[int, int] | None = None  # session value -> model channel (bind_labels); None: value = channel
        self._generation = 0
        self._norm: np.ndarray | None = None

    def _extra_channels(self, example: torch.Tensor) -> ExtraChannels:
        """New-label channels on the final layer when its output is the network's output
        (tried once); else (TorchScript, residual heads) computed from the logits."""
        final = None if self.model.scripted else final_layer(self.model.module, example, self.num_classes)
        if final is not None:
            trial = ExtraChannels(final[1], self.num_classes, self.spec.spatial_dims).to(self.device)
            trial.add(1)
            self.extra = trial
            handle = final[1].register_forward_hook(
                lambda m, i, o: torch.cat([o, self.extra.from_input(i[0])], 1) if self.extra.count else o
            )
            try:
                with torch.no_grad():
                    ok = self.model.logits(example).shape[1] == self.num_classes + 1
            except RuntimeError:
                ok = False
            if ok:
                return ExtraChannels(final[1], self.num_classes, self.spec.spatial_dims).to(self.device)
            handle.remove()
        return ExtraChannels(None, self.num_classes, self.spec.spatial_dims).to(self.device)

    # -- labels --------------------------------------------------------------------------
    @classmethod
    def classes(
        cls, model: str | Path | SegmentationModel | None = None, spec: ModelSpec | dict | None = None, **_: object
    ) -> LabelTable:
        """The model's classes, from its spec or checkpoint config where it has one (``model_labels``)."""
        if isinstance(model, SegmentationModel):
            names = list(model.spec.labels)
        else:
            names = model_labels(model or default_models_dir() / DEFAULT_MODEL, spec)
        return LabelTable.default(range(1, len(names)), dict(enumerate(names)))

    def label_table(self) -> LabelTable:
        return LabelTable.default(range(1, self.num_classes), {c: n for c, n in enumerate(self.spec.labels)})

    def bind_labels(self, labels: LabelTable) -> None:
        """Match a session's classes to the model's by name (case-insensitive, a trailing
        _L/_R/left/right ignored): a segmentation made by any engine keeps its classes; a
        class the model has no channel for gets one when it is first scribbled."""
        import re

        names = [n.lower() for n in self.spec.labels]
        self._bound = {}
        for e in labels:
            base = re.sub(r"[_ ](l|r|left|right)$", "", e.name.lower())
            if base in names[1:]:
                self._bound[e.value] = names.index(base)
            elif e.name.lower() in names[1:]:
                self._bound[e.value] = names.index(e.name.lower())

    def _channel(self, value: int, create: bool) -> int:
        bound = self._bound
        if bound is not None and value in bound:
            return bound[value]
        if bound is None and value < self.num_classes:
            return value
        if value not in self.new_labels:
            if not create:
                raise EngineError(f"label {value} has no channel yet")
            self.new_labels.append(value)
            self.extra.add(1)
        return self.num_classes + self.new_labels.index(value)

    def _value(self, channel: int) -> int:
        """Session value of an output channel (0: background; a model class nobody bound: 0)."""
        if channel >= self.num_classes:
            return self.new_labels[channel - self.num_classes]
        bound = self._bound
        if bound is None:
            return channel
        return next((v for v, c in bound.items() if c == channel), 0)

    @property
    def owned(self) -> list[int]:
        """Session values this engine writes: its classes (bound ones) and its new labels."""
        bound = self._bound
        known = list(range(1, self.num_classes)) if bound is None else sorted(bound)
        return known + [v for v in self.new_labels if v not in known]

    def reset_adaptation(self) -> None:
        """Forget the adapted weights: the next hint starts again from the source model."""
        self._generation += 1
        self.extra.imprinted.clear()

    # -- image ---------------------------------------------------------------------------
    def set_image(self, volume: Volume) -> None:
        super().set_image(volume)
        self._norm = normalize(volume.array, self.spec.preprocessing)
        self._generation += 1

    def _zoom_factors(self, axes: tuple[int, ...]) -> tuple[float, ...]:
        """Image voxel size / model voxel size along the given KJI axes (1: no resampling)."""
        want = self.spec.preprocessing.spacing
        if not want:
            return (1.0,) * len(axes)
        assert self.volume is not None
        have_kji = tuple(reversed(self.volume.geometry.spacing))
        want_kji = tuple(reversed(want))[-len(axes) :] if len(want) == len(axes) else tuple(reversed(want))
        f = tuple(float(have_kji[a] / w) for a, w in zip(axes, want_kji[-len(axes) :], strict=False))
        return tuple(1.0 if abs(v - 1.0) < 0.05 else v for v in f)

    # -- hints -> constraints ------------------------------------------------------------
    def _rasterise(self, hints: list[Interaction], shape_kji: tuple[int, ...], origin: tuple[int, ...]) -> np.ndarray:
        """Constraint labels (channel index, -1 unlabelled) of ``hints`` in a KJI block."""
        out = np.full(shape_kji, UNLABELLED, np.int64)

        def put(points_kji, channel):
            for p in points_kji:
                q = tuple(int(c - o) for c, o in zip(p, origin, strict=False))
                if all(0 <= c < n for c, n in zip(q, shape_kji, strict=False)):
                    out[q] = channel

        for h in hints:
            ch = self._channel(int(h.label), create=True) if h.positive else 0
            pts = [kji(p) for p in h.points]
            if isinstance(h, (Click, Scribble)):
                put(pts, ch)
            elif isinstance(h, (Box, ExtremePoints)):
                # Table 4's box: the band just outside it is background, its centre the label;
                # extreme points are on the boundary: the points themselves are the label too
                lo, hi = np.min(pts, 0), np.max(pts, 0)
                ring = []
                for a in range(3):
                    if a == h.axis:
                        continue
                    for side in (lo[a] - np.arange(1, BOX_RING + 1), hi[a] + np.arange(1, BOX_RING + 1)):
                        for s in side:
                            o = [b for b in range(3) if b not in (a, h.axis)][0]
                            for t in range(lo[o] - BOX_RING, hi[o] + BOX_RING + 1):
                                p = [0, 0, 0]
                                p[h.axis], p[a], p[o] = lo[h.axis], s, t
                                ring.append(tuple(p))
                put(ring, 0)
                put([tuple((lo + hi) // 2)], ch)
                if isinstance(h, ExtremePoints):
                    put(pts, ch)
        return out

    # -- the network ---------------------------------------------------------------------
    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        z = self.model.logits(x)
        if self.extra.count and self.extra.layer is None:
            z = torch.cat([z, self.extra.from_logits(z)], 1)
        return z

    def _params(self) -> dict[str, torch.nn.Parameter]:
        named = dict(self.model.module.named_parameters())
        params = {n: named[n] for n in self._trainable}
        if self.extra.count:
            params["extra.weight"], params["extra.bias"] = self.extra.weight, self.extra.bias
        return params

    def _start_weights(self, request: Request) -> None:
        """W_λ ← W, or the weights kept by the newest step of this image."""
        state: dict | None = None
        if self.keep_weights:
            for kept in reversed(request.states(AdaptedWeights)):
                assert isinstance(kept, AdaptedWeights)
                if kept.generation == self._generation and kept.weights is not None:
                    state = kept.weights
                    break
        params = self._params()
        load_state(params, self._reference)
        if self.extra.count:
            self.extra.weight.data, self.extra.bias.data = self._fresh_extra()
        if state:
            ew, eb = state.get("extra.weight"), state.get("extra.bias")
            if ew is not None and eb is not None and self.extra.count:
                k = min(len(eb), self.extra.count)
                self.extra.weight.data[:k], self.extra.bias.data[:k] = ew[:k], eb[:k]
            load_state(params, {n: v for n, v in state.items() if not n.startswith("extra.")})

    def _fresh_extra(self) -> tuple[torch.Tensor, torch.Tensor]:
        fresh = ExtraChannels(self.extra.layer, self.num_classes, self.spec.spatial_dims)
        fresh.add(self.extra.count)
        w, b = fresh.weight.data.to(self.device), fresh.bias.data.to(self.device)
        for k, (wk, bk) in self.extra.imprinted.items():  # an imprinted channel starts from its imprint
            w.view(self.extra.count, *wk.shape)[k] = wk
            b[k] = bk
        return w, b

    def _prepare(self, block: np.ndarray, factors: tuple[float, ...]) -> tuple[torch.Tensor, tuple[int, ...]]:
        """(B, *spatial) normalised image block -> zoomed, padded (B, 1, ...) tensor."""
        if any(round(n * f) < 1 for n, f in zip(block.shape[1:], factors, strict=True)):
            raise EngineError(
                f"a block of {block.shape[1:]} voxels is under one voxel of this model at its voxel size "
                f"{self.spec.preprocessing.spacing} mm (zoom {factors}): check the image's spacing"
            )
        if any(f != 1.0 for f in factors):
            block = ndimage.zoom(block, (1, *factors), order=1)
        shape = block.shape[1:]
        d = self.spec.preprocessing.divisor
        pad = [(0, 0)] + [(0, (-n) % d) for n in shape]
        return torch.from_numpy(np.pad(block, pad)[:, None].astype(np.float32)).to(self.device), shape

    def _target(self, cons: np.ndarray, factors: tuple[float, ...], padded: tuple[int, ...]) -> torch.Tensor:
        """Constraints on the model's grid: each constrained voxel maps to its zoomed position."""
        t = np.full((cons.shape[0], *padded), UNLABELLED, np.int64)
        idx = np.argwhere(cons != UNLABELLED)
        if len(idx):
            pos = [idx[:, 0]] + [
                np.minimum((idx[:, 1 + a] * f + f / 2).astype(int), padded[a] - 1) for a, f in enumerate(factors)
            ]
            t[tuple(pos)] = cons[tuple(idx.T)]
        return torch.from_numpy(t).to(self.device)

    def _back(self, logits: torch.Tensor, shape: tuple[int, ...], out_shape: tuple[int, ...]) -> np.ndarray:
        """(B, C, padded) logits -> (C, B, *out_shape) probabilities on the image grid."""
        z = logits[(slice(None), slice(None), *(slice(0, n) for n in shape))]
        p = torch.softmax(z, 1).movedim(1, 0).cpu().numpy()
        if tuple(p.shape[2:]) != tuple(out_shape):
            p = ndimage.zoom(p, (1, 1, *(o / s for o, s in zip(out_shape, p.shape[2:], strict=False))), order=1)
            p = p[(slice(None), slice(None), *(slice(0, n) for n in out_shape))]
        return p

    # -- Algorithm 1 on a batch of 2D slices or on 3D blocks ------------------------------
    def _grow(self, image: np.ndarray, cons: np.ndarray) -> np.ndarray:
        if not self.settings.region_growing:
            return cons
        return grow_scribbles(image, cons, self.settings.threshold, self.settings.grow_radius)

    def _adapt(self, images: np.ndarray, scribbled: np.ndarray, factors) -> tuple[torch.Tensor, AdaptationReport]:
        """Fine-tune on ``images`` (B, *spatial) with the user's constraints ``scribbled``
        (grown first when region growing is on); logits of the batch."""
        cons = np.stack([self._grow(i, c) for i, c in zip(images, scribbled, strict=False)])
        x, shape = self._prepare(images, factors)
        target = self._target(cons, factors, tuple(x.shape[2:]))
        required = self._target(scribbled, factors, tuple(x.shape[2:])) != UNLABELLED
        s = self.settings
        anchors = None
        fresh = self._unimprinted(target)
        far = anchor_mask(target, shape, s.anchor_distance, s.anchor_stride) if fresh or s.anchor_weight > 0 else None
        if s.anchor_weight > 0:  # what the model says before this correction (and before any imprint)
            assert far is not None
            with torch.no_grad():
                anchors = torch.where(far, self._logits(x).argmax(1), torch.full_like(target, UNLABELLED))
        if fresh:
            self._imprint_new_labels(x, target, far, fresh)
        params = self._params()
        for p in params.values():
            p.requires_grad_(True)
        t0 = time.perf_counter()
        try:
            with FrozenPrefix(self.model.module, set(self._trainable)) as prefix:
                prefix.prime(x)
                result = finetune(
                    lambda: self._logits(x),
                    target,
                    params,
                    self._reference,
                    self.settings,
                    required,
                    anchors,
                    self.progress,
                )
        finally:
            for p in params.values():
                p.requires_grad_(False)
        report = AdaptationReport(
            iterations=result.iterations,
            converged=result.converged,
            seconds=time.perf_counter() - t0,
            scribbled_voxels=int((scribbled != UNLABELLED).sum()),
            grown_voxels=int((cons != UNLABELLED).sum()),
            violated=result.violated,
            losses=result.losses,
            grad_norms=result.grad_norms,
        )
        return result.logits[(slice(None), slice(None), *(slice(0, n) for n in shape))], report

    @torch.no_grad()
    def _unimprinted(self, target: torch.Tensor) -> list[int]:
        """New-label channels still as created whose label is scribbled in ``target``."""
        if self.new_label_init != "imprint":
            return []
        return [
            k
            for k in range(self.extra.count)
            if k not in self.extra.imprinted and bool((target == self.num_classes + k).any())
        ]

    def _imprint_new_labels(
        self, x: torch.Tensor, target: torch.Tensor, far: torch.Tensor | None, todo: list[int]
    ) -> None:
        """A new label's channel, still as created, is imprinted from its first scribble."""
        captured: list = []
        if self.extra.layer is not None:
            handle = self.extra.layer.register_forward_hook(lambda m, i, o: captured.append(i[0]))
            try:
                logits = self._logits(x)
            finally:
                handle.remove()
            features = captured[0]
        else:
            logits = self.model.logits(x)
            features = logits
        for k in todo:
            self.extra.imprint(k, features, logits, target == self.num_classes + k, far)

    @torch.no_grad()
    def _infer_slices(self, images: np.ndarray, factors) -> np.ndarray:
        """(B, H, W) slices -> (C, B, H, W) probabilities, in chunks (bounded memory)."""
        out = []
        for s in range(0, images.shape[0], self.chunk):
            block = images[s : s + self.chunk]
            x, shape = self._prepare(block, factors)
            out.append(self._back(self._logits(x), shape, block.shape[1:]))
        return np.concatenate(out, 1)

    @torch.no_grad()
    def _infer_block(self, block: np.ndarray, factors) -> np.ndarray:
        """3D model on a KJI block -> (C, 1, *block) probabilities (sliding window if it is large)."""
        from monai.inferers import sliding_window_inference

        x, shape = self._prepare(block[None], factors)
        patch = self.spec.preprocessing.patch_size
        if patch and any(n > p for n, p in zip(x.shape[2:], patch, strict=False)):
            z = sliding_window_inference(
                x, patch, 1, self._logits, overlap=self.spec.preprocessing.overlap, mode="gaussian"
            )
            assert isinstance(z, torch.Tensor)
        else:
            z = self._logits(x)
        return self._back(z, shape, block.shape)

    # -- requests ------------------------------------------------------------------------
    def _hints(self, request: Request) -> list[Interaction]:
        """Constraints of this request: every earlier hint (since the last automatic pass
        of the same scope) and the new one; 2D: only those on the new hint's slice."""
        new = request.interactions[-1]
        hints = [m for h, _ in request.history for m in members(h) if not isinstance(m, SliceAuto)]
        hints += [m for m in members(new) if not isinstance(m, SliceAuto)]
        if self.mode == "2d":
            off = [
                m
                for m in members(new)
                if not isinstance(m, SliceAuto) and (m.axis != request.axis or slice_index(m) != request.slice_index)
            ]
            if off:
                raise EngineError(
                    "the 2D fine-tuning engine takes the hints of one step on one slice; "
                    "use finetune-3d for several slices"
                )
            hints = [h for h in hints if h.axis == request.axis and slice_index(h) == request.slice_index]
        return hints

    def predict(self, request: Request) -> Prediction:
        if self._norm is None or self.volume is None:
            raise EngineError("set_image() must be called before predict()")
        hints = self._hints(request)
        self._start_weights(request)
        if self.mode == "2d":
            probs, region, report = self._predict_slice(request.axis, request.slice_index, hints)
        else:
            probs, region, report = self._predict_roi(request, hints)
        lut = np.array([self._value(c) for c in range(probs.shape[0])], np.int64)
        labels = lut[probs.argmax(0)]
        kept = {n: v.cpu() for n, v in state_of(self._params()).items()} if hints else None  # state_of copies
        return Prediction(
            request.label,
            region,
            probs.astype(np.float32),
            labels=labels.astype(np.int64),
            classes=self.owned,
            report=report,
            state=AdaptedWeights(self._generation, kept),
        )

    def _predict_slice(self, axis: int, index: int, hints: list[Interaction]):
        assert self.volume is not None and self._norm is not None
        image = np.take(self._norm, index, axis=axis)
        others = tuple(a for a in range(3) if a != axis)
        factors = self._zoom_factors(others)
        region = self.slice_region(axis, index)
        report = AdaptationReport()  # no hints: the model's answer, nothing adapted
        if hints:
            origin = [0, 0, 0]
            origin[axis] = index
            shape = [self.volume.shape[a] for a in range(3)]
            shape[axis] = 1
            cons = np.take(self._rasterise(hints, tuple(shape), tuple(origin)), 0, axis=axis)
            logits, report = self._adapt(image[None], cons[None], factors)
            probs = self._back(logits, tuple(logits.shape[2:]), image.shape)  # the last forward pass is the answer
        else:
            probs = self._infer_slices(image[None], factors)
        return np.expand_dims(probs[:, 0], 1 + axis), region, report

    def roi(self, hints: list[Interaction]) -> tuple[slice, slice, slice]:
        """KJI box around every hint, + margin, at least ``min_roi``, inside the volume."""
        assert self.volume is not None
        return hint_box(hints, self.roi_margin, self.min_roi, self.volume.shape)

    def _predict_roi(self, request: Request, hints: list[Interaction]):
        assert self.volume is not None and self._norm is not None
        full = tuple(slice(0, n) for n in self.volume.shape)
        region = self.roi(hints) if hints else full
        block = self._norm[region]
        origin = tuple(s.start for s in region)
        roi = [s.stop - s.start for s in region]
        report = AdaptationReport(roi=roi)
        if self.spec.spatial_dims == 2:
            axis = request.axis
            others = tuple(a for a in range(3) if a != axis)
            factors = self._zoom_factors(others)
            slices = np.moveaxis(block, axis, 0)
            if hints:
                cons = np.moveaxis(self._rasterise(hints, block.shape, origin), axis, 0)
                rows = [i for i in range(cons.shape[0]) if (cons[i] != UNLABELLED).any()]
                _, adapted = self._adapt(slices[rows], cons[rows], factors)
                report = dataclasses.replace(adapted, roi=roi)
            probs = np.moveaxis(self._infer_slices(slices, factors), 1, 1 + axis)
        else:
            factors = self._zoom_factors((0, 1, 2))
            if hints:
                cons = self._rasterise(hints, block.shape, origin)
                tiles = covering_tiles(cons, self.spec.preprocessing.patch_size, factors)
                _, adapted = self._adapt(
                    np.stack([block[t] for t in tiles]), np.stack([cons[t] for t in tiles]), factors
                )
                report = dataclasses.replace(adapted, roi=roi)
            probs = self._infer_block(block, factors)[:, 0]
            if hints:  # the answer is the stitched ROI, not the training tiles: check it there
                wrong = int((probs.argmax(0)[cons != UNLABELLED] != cons[cons != UNLABELLED]).sum())
                report.violated, report.converged = wrong, wrong == 0
        return probs, region, report


class ScribbleFinetune3DEngine(ScribbleFinetuneEngine):
    """``finetune-3d``: an ROI around the session's hints instead of one slice."""

    name = "finetune-3d"
    mode = "3d"

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("mode", "3d")
        super().__init__(**kwargs)
