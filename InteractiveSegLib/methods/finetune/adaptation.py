"""Scribble-aware test-time fine-tuning (../shared/papers/scribble-aware-test-time-finetuning.txt,
section 3, Algorithm 1 and supplementary A).

The user's scribbles are constraints on the output. Starting from the instance weights
W_λ (= the source weights W, or the weights kept from the previous interaction on the
same image), iterate: inference ŷ = f(x; W_λ); stop when every scribbled voxel has its
label or after M iterations; else one SGD step on g (cross-entropy on the scribbled
voxels) + α·‖W_l − W_λl‖ (eq. 2), updating only the last ``l`` layers.

- Layers are the network's convolution / linear modules in the order the forward pass
  runs them (found with hooks); the parameters of modules that run after the l-th last
  of them (its normalisation, activation) train with it.
- A label the model never knew gets an extra output channel: first a copy of the final
  layer's *background* filter with its bias lowered by ``NEW_LABEL_MARGIN``, so the
  prediction is unchanged until a scribble asks for the label; then, by default, imprinted
  from its first scribble (``ExtraChannels.imprint``).
- Scribble region growing (threshold T) enlarges each scribble with scikit-image's flood
  fill before the loop (on by default).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from InteractiveSegLib.errors import EngineError

UNLABELLED = -1
NEW_LABEL_MARGIN = 0.5  # logit gap keeping a fresh channel below background until it is scribbled
_LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


@dataclass
class FinetuneSettings:
    """Algorithm 1's knobs. Defaults: the ablation over l, M and growing in Resources/Models/finetune.md."""

    layers: int = 6  # l: last layers updated (0 or less: all); 6 from the ablation
    max_iterations: int = 12  # M
    lr: float = 0.15  # η; with max_grad_norm 0.1 every step moves W_λl by at most 0.015
    momentum: float = 0.0  # plain SGD, as the paper (momentum overshoots)
    alpha: float = 0.01  # weight of ‖W − W_λ‖
    region_growing: bool = True
    threshold: float = 0.02  # T, in units of the normalised [0, 1] intensity
    grow_radius: int = 2  # growing stays within this many voxels of the scribble
    max_grad_norm: float = 0.1  # > 0: clip the gradient norm (bounded steps: no overshoot)
    new_label_lr: float = 10.0  # step multiplier of a new label's channel (fresh weights)
    anchor_weight: float = 0.0  # > 0: voxels far from every scribble keep their label (see anchor_mask)
    anchor_distance: float = 16.0  # "far", in voxels of the model's grid
    anchor_stride: int = 4  # one anchor every this many voxels per axis

    def __post_init__(self) -> None:
        if self.max_iterations < 0:
            raise EngineError(f"max_iterations must be >= 0, got {self.max_iterations}")
        if self.lr <= 0 or self.alpha < 0:
            raise EngineError(f"lr must be > 0 and alpha >= 0, got lr={self.lr}, alpha={self.alpha}")


@dataclass
class FinetuneResult:
    logits: torch.Tensor  # (B, C, *spatial) after the last accepted weights
    iterations: int  # SGD steps taken
    converged: bool  # every scribbled voxel had its label
    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    violated: int = 0  # constrained voxels (of the stop test) still wrong at the end


# -- which parameters are "the last l layers" --------------------------------------------------
def execution_order(module: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """Leaf modules with parameters, in the order a forward pass on ``example`` runs them.
    TorchScript modules cannot be hooked: their definition order stands in."""
    leaves = [
        (n, m)
        for n, m in module.named_modules()
        if not list(m.children()) and any(True for _ in m.parameters(recurse=False))
    ]
    if isinstance(module, torch.jit.ScriptModule):
        return leaves
    order: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()

    def hook(name):
        def f(m, _inp, _out):
            if id(m) not in seen:
                seen.add(id(m))
                order.append((name, m))

        return f

    handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
    try:
        with torch.no_grad():
            module(example)
    finally:
        for h in handles:
            h.remove()
    return order + [(n, m) for n, m in leaves if id(m) not in seen]


def trainable_names(module: nn.Module, example: torch.Tensor, layers: int) -> list[str]:
    """Parameter names of the last ``layers`` convolution/linear layers and every
    parameterised module run after the first of them (<= 0: every parameter)."""
    if layers <= 0:
        return [n for n, _ in module.named_parameters()]
    order = execution_order(module, example)
    is_layer = [
        isinstance(m, _LAYER_TYPES)
        or (
            isinstance(module, torch.jit.ScriptModule)
            and hasattr(m, "weight")
            and cast(torch.Tensor, m.weight).dim() >= 2
        )
        for _, m in order
    ]
    positions = [i for i, f in enumerate(is_layer) if f]
    if not positions:
        raise EngineError("the model has no convolution or linear layer to fine-tune")
    start = positions[-min(layers, len(positions))]
    names = []
    for mname, m in order[start:]:
        names += [f"{mname}.{p}" if mname else p for p, _ in m.named_parameters(recurse=False)]
    return names


def final_layer(module: nn.Module, example: torch.Tensor, num_classes: int) -> tuple[str, nn.Module] | None:
    """The last executed convolution/linear layer with ``num_classes`` outputs (None if unknown)."""
    for name, m in reversed(execution_order(module, example)):
        if (
            isinstance(m, _LAYER_TYPES)
            and m.weight.shape[0 if not isinstance(m, (nn.ConvTranspose2d, nn.ConvTranspose3d)) else 1] == num_classes
        ):
            return name, m
    return None


# -- extra output channels for labels the model never knew ------------------------------------
class ExtraChannels(nn.Module):
    """K more outputs of a final convolution/linear layer, added by a forward hook (eager
    models) or, for TorchScript, computed from the output logits (1x1 mixing)."""

    def __init__(self, layer: nn.Module | None, num_classes: int, spatial_dims: int) -> None:
        super().__init__()
        self.layer = layer
        self.num_classes = num_classes
        self.spatial_dims = spatial_dims
        self.weight = nn.Parameter(torch.zeros(0))
        self.bias = nn.Parameter(torch.zeros(0))
        self.count = 0
        self.imprinted: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # channel -> its initial (w, b)

    def add(self, n: int = 1) -> None:
        """Append ``n`` channels initialised from the background (channel 0), bias − margin."""
        for _ in range(n):
            if self.layer is not None and isinstance(self.layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                w = self.layer.weight.detach()[:1].clone()
                b = (
                    self.layer.bias.detach()[:1].clone() if self.layer.bias is not None else torch.zeros(1)
                ) - NEW_LABEL_MARGIN
            else:  # logit mixing: new = z_background − margin (+ learnt mix of all logits)
                w = torch.zeros(1, self.num_classes)
                w[0, 0] = 1.0
                b = torch.full((1,), -NEW_LABEL_MARGIN)
            self.weight = nn.Parameter(
                torch.cat([self.weight.detach().reshape(-1, *w.shape[1:]) if self.count else w[:0], w])
            )
            self.bias = nn.Parameter(torch.cat([self.bias.detach() if self.count else b[:0], b]))
            self.count += 1

    @torch.no_grad()
    def imprint(
        self,
        k: int,
        features: torch.Tensor,
        logits: torch.Tensor,
        at: torch.Tensor,
        far: torch.Tensor | None = None,
        contrast: float = 4.0,
        margin: float = 0.5,
        leak: float = 0.02,
    ) -> None:
        """Weight imprinting (Qi et al., CVPR 2018) of channel ``k`` from the voxels ``at``
        (B, *spatial bool) the user gave the new label: its filter points from the image's
        mean feature to the scribbled voxels' mean feature (a ``contrast`` logit apart) and
        its bias makes it win there by ``margin`` over the existing classes, so the new label
        starts where the user put it rather than on every background-like voxel.
        ``features``: the final layer's input (logits for the logit-mixing form).
        ``far``: voxels far from every scribble; the bias is lowered until the new label
        wins at no more than a ``leak`` fraction of them (then the loop has work to do)."""
        f = features.movedim(1, -1)  # (B, *spatial, C_in)
        pos = f[at].mean(0)
        neg = f.reshape(-1, f.shape[-1]).mean(0)
        d = pos - neg
        w = contrast * d / d.pow(2).sum().clamp_min(1e-6)
        best = logits[:, : self.num_classes].amax(1)
        need = best[at] + margin - (f[at] * w).sum(-1)  # bias that makes each scribbled voxel win
        b = need.median()
        if far is not None and bool(far.any()):
            allow = best[far] - (f[far] * w).sum(-1)  # bias below which a far voxel stays as it was
            b = torch.minimum(b, torch.quantile(allow, leak))
        weight = (
            self.weight.data.reshape(self.count, -1, *self.weight.shape[2:])
            if self.weight.dim() > 2
            else self.weight.data
        )
        weight[k].zero_()
        if weight.dim() > 2:  # a k x k convolution: the centre tap reads the voxel itself
            centre = tuple(n // 2 for n in weight.shape[2:])
            tap: tuple[int | slice, ...] = (k, slice(None), *centre)
            weight[tap] = w
        else:
            weight[k] = w
        self.bias.data[k] = b
        self.imprinted[k] = (weight[k].clone(), b.clone())

    def from_input(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, self.weight, self.bias)
        # add() gives the conv form only to a Conv1d/2d/3d layer (anything else mixes logits)
        m = cast(nn.Conv1d | nn.Conv2d | nn.Conv3d, self.layer)
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[m.weight.dim() - 2]
        return conv(x, self.weight, self.bias, m.stride, m.padding, m.dilation, m.groups)

    def from_logits(self, z: torch.Tensor) -> torch.Tensor:
        w = self.weight.reshape(self.count, self.num_classes, *([1] * self.spatial_dims))
        return F.conv2d(z, w, self.bias) if self.spatial_dims == 2 else F.conv3d(z, w, self.bias)


# -- skipping the frozen part of the forward pass ---------------------------------------------
class FrozenPrefix:
    """Reuse the outputs of the sub-modules that finish before the first trainable layer
    starts: they depend only on the (fixed) input and frozen weights, so every iteration
    after the first would recompute the same tensors. torch has no graph-splitting helper
    for arbitrary modules, hence this hook-based cache. Eager modules only."""

    def __init__(self, module: nn.Module, trainable: set[str]) -> None:
        self.module = module
        self.trainable = trainable
        self.patched: list[nn.Module] = []

    def __enter__(self) -> FrozenPrefix:
        return self

    def prime(self, x: torch.Tensor) -> None:
        """Trace one forward pass on ``x`` and patch the cacheable sub-modules."""
        if isinstance(self.module, torch.jit.ScriptModule):
            return
        clock = [0]
        spans: dict[int, list] = {}
        names = dict((id(m), n) for n, m in self.module.named_modules())
        outputs: dict[int, object] = {}

        def pre(m, _inp):
            clock[0] += 1
            spans.setdefault(id(m), [clock[0], None, 0])
            spans[id(m)][2] += 1

        def post(m, _inp, out):
            clock[0] += 1
            spans[id(m)][1] = clock[0]
            outputs[id(m)] = out

        mods = [m for n, m in self.module.named_modules() if n]
        handles = [m.register_forward_pre_hook(pre) for m in mods] + [m.register_forward_hook(post) for m in mods]
        try:
            with torch.no_grad():
                self.module(x)
        finally:
            for h in handles:
                h.remove()
        train_mods = [
            m
            for m in mods
            if any(f"{names[id(m)]}.{p}" in self.trainable for p, _ in m.named_parameters(recurse=False))
        ]
        if not train_mods or any(id(m) not in spans for m in train_mods):
            return
        first = min(spans[id(m)][0] for m in train_mods)

        def cacheable(m):
            s = spans.get(id(m))
            trains = any(f"{names[id(m)]}.{p}" in self.trainable for p, _ in m.named_parameters())
            return (
                s is not None
                and s[1] is not None
                and s[1] < first
                and s[2] == 1
                and not trains
                and isinstance(outputs.get(id(m)), torch.Tensor)
            )

        chosen = [m for m in mods if cacheable(m)]
        chosen_ids = {id(m) for m in chosen}
        for m in chosen:
            parent = names[id(m)].rpartition(".")[0]
            if parent and id(self.module.get_submodule(parent)) in chosen_ids:
                continue  # an enclosing module is cached already
            out = cast(torch.Tensor, outputs[id(m)]).detach()
            m.forward = (lambda cached: lambda *a, **k: cached.clone())(out)  # clone: later in-place ops
            self.patched.append(m)

    def __exit__(self, *exc) -> None:
        for m in self.patched:
            del m.forward  # back to the class's forward
        self.patched.clear()


# -- scribbles --------------------------------------------------------------------------------
def grow_scribbles(image: np.ndarray, constraints: np.ndarray, threshold: float, radius: int) -> np.ndarray:
    """Scribble region growing: each scribbled voxel floods (scikit-image ``flood``) to the
    connected voxels whose intensity is within ``threshold`` of it, at most ``radius``
    voxels away. The paper compares each new voxel with its neighbour; flood's tolerance
    around the seed is the library's closest criterion and cannot leak along a slow ramp.
    Voxels reached by two labels stay unlabelled; scribbled voxels keep their label."""
    from skimage.segmentation import flood

    out = constraints.copy()
    if radius <= 0 or threshold <= 0:
        return out
    claim = np.full(constraints.shape, UNLABELLED, np.int64)
    conflict = np.zeros(constraints.shape, bool)
    for p in np.argwhere(constraints != UNLABELLED):
        lo = np.maximum(p - radius, 0)
        hi = np.minimum(p + radius + 1, constraints.shape)
        window = tuple(slice(a, b) for a, b in zip(lo, hi, strict=False))
        grown = flood(image[window], tuple(p - lo), tolerance=threshold)
        label = constraints[tuple(p)]
        c = claim[window]
        conflict[window] |= grown & (c != UNLABELLED) & (c != label)
        c[grown & (c == UNLABELLED)] = label
    grown_mask = (claim != UNLABELLED) & ~conflict & (constraints == UNLABELLED)
    out[grown_mask] = claim[grown_mask]
    return out


def constraint_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """g: cross-entropy on the scribbled voxels, each label weighted equally (a long
    background stroke must not drown a short one of the structure)."""
    flat = logits.movedim(1, -1).reshape(-1, logits.shape[1])
    t = target.reshape(-1)
    keep = t != UNLABELLED
    flat, t = flat[keep], t[keep]
    labels = torch.unique(t)
    return cast(torch.Tensor, sum(F.cross_entropy(flat[t == c], t[t == c]) for c in labels) / len(labels))


def violations(logits: torch.Tensor, target: torch.Tensor) -> int:
    """Constrained voxels of ``target`` whose label (argmax) is not theirs."""
    keep = target != UNLABELLED
    return int((logits.argmax(1)[keep] != target[keep]).sum())


def anchor_mask(target: torch.Tensor, valid: tuple[int, ...], distance: float, stride: int) -> torch.Tensor:
    """A sparse grid of voxels at least ``distance`` from every constrained voxel, inside
    the unpadded ``valid`` extent. Our addition to Algorithm 1, switchable: the paper keeps
    W_λ near W only in weight space (α); a lone scribble of one label (above all a label the
    model never knew) is then most cheaply satisfied by a global shift that floods the
    image. Anchors keep, with a small weight, what the model said far from the corrections."""
    from scipy import ndimage

    t = target.cpu().numpy()
    out = np.zeros(t.shape, bool)
    for b in range(t.shape[0]):
        far = ndimage.distance_transform_edt(t[b] == UNLABELLED) >= distance
        grid = np.zeros(t.shape[1:], bool)
        grid[tuple(slice(0, n, stride) for n in valid)] = True
        out[b] = far & grid
    return torch.from_numpy(out).to(target.device)


def finetune(
    forward: Callable[[], torch.Tensor],
    target: torch.Tensor,
    params: dict[str, nn.Parameter],
    reference: dict[str, torch.Tensor],
    settings: FinetuneSettings,
    required: torch.Tensor | None = None,
    anchors: torch.Tensor | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> FinetuneResult:
    """Algorithm 1 on prepared inputs: ``forward()`` gives logits (B, C, *spatial) with the
    current weights, ``target`` the constraint labels (B, *spatial; -1 unlabelled),
    ``params`` the trainable W_λl, ``reference`` the source weights W_l they stay near.
    ``required`` (the user's own scribbles, without the grown voxels) is what the stop
    test checks; the loss uses every constrained voxel. ``anchors``: labels (-1 elsewhere)
    that a few voxels far from the scribbles keep, with weight ``settings.anchor_weight``.
    ``progress(fraction, text)`` is called before each step (it may raise to cancel)."""
    check = target if required is None else torch.where(required, target, torch.full_like(target, UNLABELLED))
    fresh = [p for n, p in params.items() if n.startswith("extra.")]
    groups = [{"params": [p for n, p in params.items() if not n.startswith("extra.")], "lr": settings.lr}]
    if fresh:  # a new label's channel starts far from any solution: it moves faster
        groups.append({"params": fresh, "lr": settings.lr * settings.new_label_lr})
    opt = torch.optim.SGD(groups, lr=settings.lr, momentum=settings.momentum)
    losses: list[float] = []
    norms: list[float] = []
    it = 0
    while True:
        logits = forward()
        wrong = violations(logits.detach(), check)
        if wrong == 0:
            return FinetuneResult(logits.detach(), it, True, losses, norms, 0)
        if it >= settings.max_iterations:
            return FinetuneResult(logits.detach(), it, False, losses, norms, wrong)
        if progress is not None:
            progress(it / settings.max_iterations, f"iteration {it + 1}: {wrong} scribbled voxels still wrong")
        g = constraint_loss(logits, target)
        g_anchor = None
        if anchors is not None and settings.anchor_weight > 0 and bool((anchors != UNLABELLED).any()):
            g_anchor = constraint_loss(logits, anchors)
        drift = [
            torch.linalg.vector_norm(p - reference[n])
            for n, p in params.items()
            if n in reference and p.shape == reference[n].shape
        ]
        loss = g + settings.alpha * torch.stack(drift).sum() if drift else g
        if g_anchor is not None:
            loss = loss + settings.anchor_weight * g_anchor
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if settings.max_grad_norm > 0:
            for group in opt.param_groups:  # each group's step bounded on its own
                norms.append(float(torch.nn.utils.clip_grad_norm_(group["params"], settings.max_grad_norm)))
        opt.step()
        losses.append(float(g.detach()))
        it += 1


def state_of(params: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in params.items()}


def load_state(params: dict[str, nn.Parameter], state: dict[str, torch.Tensor] | None) -> None:
    if not state:
        return
    with torch.no_grad():
        for n, v in state.items():
            if n in params and params[n].shape == v.shape:
                params[n].copy_(v)
