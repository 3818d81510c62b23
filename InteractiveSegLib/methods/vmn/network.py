"""The volumetric memory network f_VMN (VMN paper, section 3.3) sized for a CPU.

Query encoder E^q(image) and memory encoder E^m(image, mask) give key (C/8) and value
(C/2) maps at 1/8 resolution (``key_stride``; ResNet's res4 is 1/16); the non-local memory
read (eqs. 4-6) sums the memory values weighted by a softmax over cosine similarities of every memory position; the
read is concatenated with the query value (F^q, C channels), enlarged by three parallel
dilated convolutions (rates 2, 4, 8: the ASPP of 3.5.3), decoded with the query
encoder's skips and sharpened by a residual refinement module (BASNet's RRM). The
quality head Q (three 3x3 convolutions, three fully connected layers) regresses the
IoU of the slice's mask from (F^q, Y^q) (eq. 8).

Backbone: the paper's ResNet-50 (res4, stride 16, 1024 channels) costs ~4 GFLOPs per
512^2 slice: a propagation round over 100 slices could not stay within seconds on two
CPU threads. Here a stride-2 convolution and three MONAI ``ResidualUnit`` stages
(16-32-64-128 channels). Keys and values sit at stride 8, not res4's 16, because brain
structures of 10-30 voxels fill only one or two cells at stride 16. The read's cost grows
with the square of the positions, so the engine propagates inside a region around the
structure (methods/vmn/engine.py). Why each change to the paper: Resources/Models/vmn.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, ResidualUnit
from monai.networks.nets import BasicUNet
from torch import nn

from InteractiveSegLib.errors import ConfigError

#: spatial sizes must be multiples of this (the decoder's and the quality head's strides)
STRIDE = 16


def memory_read(
    key_m: torch.Tensor, value_m: torch.Tensor, key_q: torch.Tensor, scale: float | torch.Tensor = 1.0
) -> torch.Tensor:
    """Eqs. 4-6: H^q(j) = sum_i softmax_i(scale * cos(K^m(i), K^q(j))) V^m(i).

    ``key_m`` (B, T, Ck, H, W) and ``value_m`` (B, T, Cv, H, W) stack the T memory cells;
    every 3D memory position i competes for every query position j of ``key_q``
    (B, Ck, H, W). Returns (B, Cv, H, W); an empty memory (T = 0) reads zeros.

    ``scale`` = 1 is the paper's formula exactly. A cosine lies in [-1, 1], so with scale 1
    no memory position can weigh more than e^2 = 7.4 times another: over hundreds of
    positions the read is nearly a plain average and carries no location. The network
    learns the scale (a softmax temperature, as STM's 1/sqrt(C) of a raw dot product).
    """
    b, _, ck, h, w = key_m.shape
    cv = value_m.shape[2]
    if key_m.shape[1] == 0:
        return key_q.new_zeros(b, cv, *key_q.shape[2:])
    km = F.normalize(key_m.permute(0, 1, 3, 4, 2).reshape(b, -1, ck), dim=-1)  # (B, THW, Ck)
    kq = F.normalize(key_q.flatten(2), dim=1)  # (B, Ck, HqWq)
    weights = torch.softmax(scale * (km @ kq), dim=1)  # (B, THW, HqWq): eq. 5, softmax over memory positions
    vm = value_m.permute(0, 2, 1, 3, 4).reshape(b, cv, -1)  # (B, Cv, THW)
    return (vm @ weights).view(b, cv, *key_q.shape[2:])


class Encoder(nn.Module):
    """Residual encoder: stride-2 stem then three residual stages (the last of stride 1 when
    ``key_stride`` is 8); returns the deepest map and the 1/2, 1/4, 1/8 skips."""

    def __init__(self, in_channels: int, features: Sequence[int], key_stride: int = 8) -> None:
        super().__init__()
        f = list(features)
        strides = [2] * (len(f) - 1)
        if key_stride == 8:
            strides[-1] = 1
        elif key_stride != 16:
            raise ConfigError(f"key_stride must be 8 or 16, got {key_stride}")
        self.stem = Convolution(2, in_channels, f[0], strides=2, act="relu", norm="batch")
        self.stages = nn.ModuleList(
            ResidualUnit(2, f[i], f[i + 1], strides=strides[i], subunits=2, act="relu", norm="batch")
            for i in range(len(f) - 1)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = [self.stem(x)]
        for stage in self.stages:
            skips.append(stage(skips[-1]))
        return skips.pop(), skips


#: periods (in key cells) of the positional part of a key
KEY_PERIODS = (4.0, 8.0, 16.0, 32.0)


def position_code(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """(1, 4P, h, w) unit-norm sinusoids of each cell's row and column (P periods, in cells)."""
    ys = torch.arange(h, dtype=like.dtype, device=like.device).view(h, 1).expand(h, w)
    xs = torch.arange(w, dtype=like.dtype, device=like.device).view(1, w).expand(h, w)
    parts = []
    for period in KEY_PERIODS:
        for c in (ys, xs):
            a = 2 * math.pi * c / period
            parts += [torch.sin(a), torch.cos(a)]
    return torch.stack(parts)[None] / math.sqrt(2 * len(KEY_PERIODS))


class KeyValue(nn.Module):
    """3x3 key (C/8) and value (C/2) projections of an encoder's deepest map.

    A key is [unit feature key, unit position code] / sqrt(2): its cosine with another key is
    the mean of the feature similarity and of the positional one (1 at the same cell, ~0.65
    one cell away, ~0.16 two cells away). Slices of one propagation share their frame, so a
    query position prefers memory positions of similar look *near the same place*, which is
    most of what slice-to-slice propagation needs."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.key = nn.Conv2d(channels, channels // 8, 3, padding=1)
        self.value = nn.Conv2d(channels, channels // 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = x.shape
        feature = F.normalize(self.key(x), dim=1)
        key = torch.cat([feature, position_code(h, w, x).expand(b, -1, -1, -1)], 1) / math.sqrt(2)
        return key, self.value(x)


class DilatedContext(nn.Module):
    """Three parallel dilated 3x3 convolutions (rates 2, 4, 8) fused by a 1x1 convolution."""

    def __init__(self, channels: int, out_channels: int, rates: Sequence[int] = (2, 4, 8)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            Convolution(2, channels, out_channels, dilation=r, act="relu", norm="batch") for r in rates
        )
        self.fuse = Convolution(2, out_channels * len(rates), out_channels, kernel_size=1, act="relu", norm="batch")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([b(x) for b in self.branches], 1))


class RefineResidual(nn.Module):
    """Residual refinement (BASNet's RRM, shrunk): a small encoder-decoder over the coarse
    probability and the image predicts a correction added to the coarse logit."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.inp = Convolution(2, 2, width, act="relu", norm="batch")
        self.down1 = Convolution(2, width, width, strides=2, act="relu", norm="batch")
        self.down2 = Convolution(2, width, width, strides=2, act="relu", norm="batch")
        self.up1 = Convolution(2, 2 * width, width, act="relu", norm="batch")
        self.up0 = Convolution(2, 2 * width, width, act="relu", norm="batch")
        self.out = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, logit: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x0 = self.inp(torch.cat([torch.sigmoid(logit), image], 1))
        x1 = self.down1(x0)
        x2 = self.down2(x1)
        y1 = self.up1(torch.cat([F.interpolate(x2, size=x1.shape[2:], mode="bilinear", align_corners=False), x1], 1))
        y0 = self.up0(torch.cat([F.interpolate(y1, size=x0.shape[2:], mode="bilinear", align_corners=False), x0], 1))
        return logit + self.out(y0)


class QualityHead(nn.Module):
    """Q(F^q, Y^q) in [0, 1]: three 3x3 convolutions, global pooling, three linear layers."""

    def __init__(self, channels: int, width: int = 32) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            Convolution(2, channels + 1, width, strides=2, act="relu", norm="batch"),
            Convolution(2, width, width, strides=2, act="relu", norm="batch"),
            Convolution(2, width, width, act="relu", norm="batch"),
        )
        self.fc = nn.Sequential(
            nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width // 2), nn.ReLU(), nn.Linear(width // 2, 1)
        )

    @staticmethod
    def prepare(feature: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
        """The head's input: cat(F^q, the mask at F^q's size)."""
        small = F.interpolate(prob, size=feature.shape[2:], mode="bilinear", align_corners=False)
        return torch.cat([feature, small], 1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted IoU (B,) from prepared inputs (the quality stage fits on stored ones)."""
        return torch.sigmoid(self.fc(self.convs(x).mean((2, 3)))).squeeze(1)

    def forward(self, feature: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
        return self.score(self.prepare(feature, prob))


class VMNet(nn.Module):
    """f_VMN: encode queries and memory cells, read, decode, refine, assess.

    The query encoding depends on the image alone, so an engine computes it once per
    volume and reuses it for every propagation round (``encode_query`` on a batch of
    slices); ``encode_memory`` runs once per memory cell; ``segment`` per query slice.
    """

    def __init__(self, features: Sequence[int] = (16, 32, 64, 128), key_stride: int = 8, prior: bool = False) -> None:
        super().__init__()
        f = list(features)
        c = f[-1]
        self.features, self.key_stride, self.prior = f, key_stride, prior
        self.query_encoder = Encoder(1, f, key_stride)
        self.memory_encoder = Encoder(2, f, key_stride)
        self.query_kv = KeyValue(c)
        self.memory_kv = KeyValue(c)
        self.context = DilatedContext(c + 1, f[2])  # F^q: read values (C/2 + the mask) and V^q (C/2)
        self.up = nn.ModuleList(
            Convolution(2, f[i + 1] + f[i], f[i], act="relu", norm="batch") for i in reversed(range(len(f) - 2))
        )  # (1/16 ->) 1/8 -> 1/4 -> 1/2, each with the query encoder's skip
        self.up.insert(0, Convolution(2, f[2] + f[2], f[2], act="relu", norm="batch"))
        if prior:  # the last (1/2-resolution) step also sees the carried mask
            self.up[-1] = Convolution(2, f[1] + f[0] + 1, f[0], act="relu", norm="batch")
        self.coarse = nn.Conv2d(f[0], 1, 3, padding=1)
        self.refine = RefineResidual(8)
        self.quality = QualityHead(c + 1)
        self.log_read_scale = nn.Parameter(torch.tensor(math.log(40.0)))  # learnt softmax temperature

    def encode_query(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(B, 1, H, W) -> key (B, C/8, H/s, W/s), value (B, C/2, ...), skips [1/2, 1/4, 1/8]."""
        deep, skips = self.query_encoder(image)
        k, v = self.query_kv(deep)
        return k, v, skips

    def encode_memory(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, H, W) image and (B, 1, H, W) mask probability -> key, value.

        The value ends with the mask itself, averaged over each cell: the read then carries
        where the memory's structure was (at the positions the query attends to) without the
        encoder's features having to learn to pass it on."""
        deep, _ = self.memory_encoder(torch.cat([image, mask], 1))
        k, v = self.memory_kv(deep)
        return k, torch.cat([v, F.adaptive_avg_pool2d(mask, v.shape[2:])], 1)

    def segment(
        self,
        image: torch.Tensor,
        query: tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]],
        key_m: torch.Tensor,
        value_m: torch.Tensor,
        prior: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logit (B, 1, H, W) and predicted IoU (B,) of query slices against a memory.

        ``prior`` (B, 1, H, W): the mask of the memory's previous slice (networks built with
        ``prior=True``; ignored otherwise). The decoder then corrects that full-resolution mask
        instead of the read's 1/8-resolution one (see ``carried_mask``)."""
        k_q, v_q, skips = query
        read = memory_read(key_m, value_m, k_q, self.log_read_scale.exp())
        feature = torch.cat([read, v_q], 1)  # F^q = cat(H^q, V^q)
        x = self.context(feature)
        carried = self.carried_mask(read, prior, skips[0].shape[2:])
        for i, (up, skip) in enumerate(zip(self.up, reversed(skips), strict=False)):
            parts = [F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False), skip]
            if self.prior and i == len(self.up) - 1:
                parts.append(carried)
            x = up(torch.cat(parts, 1))
        # the decoder corrects the carried mask: the propagation starts as a copy of it, and
        # learning refines it
        coarse = self.coarse(x) + torch.logit(carried)
        # refinement at half resolution: a full-resolution pass costs about twice the slice's time
        half = F.avg_pool2d(image, 2)
        logit = self.refine(coarse, half)
        logit = F.interpolate(logit, size=image.shape[2:], mode="bilinear", align_corners=False)
        return logit, self.quality(feature, torch.sigmoid(logit))

    def carried_mask(self, read: torch.Tensor, prior: torch.Tensor | None, size) -> torch.Tensor:
        """The mask the decoder corrects, at 1/2 resolution, clamped away from 0 and 1: the
        read's last channel (where the structure was at the attended memory positions), or,
        with a prior, the previous slice's mask itself. At stride 8 the read's mask is a blob
        of a few cells for a brain structure, which the decoder would redraw at every slice;
        adjacent slices differ by a few voxels at the border, which the prior keeps."""
        if self.prior and prior is not None:
            return F.adaptive_avg_pool2d(prior, size).clamp(0.02, 0.98)
        return F.interpolate(read[:, -1:].clamp(0.02, 0.98), size=size, mode="bilinear", align_corners=False)

    def forward(self, image: torch.Tensor, memory_images: torch.Tensor, memory_masks: torch.Tensor):
        """One query per batch item against T memory cells ((B, T, 1, H, W) each)."""
        b, t = memory_images.shape[:2]
        if t:
            k, v = self.encode_memory(memory_images.flatten(0, 1), memory_masks.flatten(0, 1))
            key_m, value_m = k.view(b, t, *k.shape[1:]), v.view(b, t, *v.shape[1:])
        else:
            key_m = image.new_zeros(b, 0, 1, 1, 1)
            value_m = image.new_zeros(b, 0, self.features[-1] // 2 + 1, 1, 1)
        return self.segment(image, self.encode_query(image), key_m, value_m)


#: the registry's factory: ``vmn_net(**checkpoint["config"]["net"])``
vmn_net = VMNet


def interaction_net(features: Sequence[int] = (16, 32, 64, 128, 256, 16)) -> torch.nn.Module:
    """f_IN (3.2): a U-Net, which the paper allows in place of its FPN cascade. Inputs:
    image, previous mask, positive and negative cue maps (methods/vmn/interaction.py); one logit."""
    return BasicUNet(
        spatial_dims=2,
        in_channels=4,
        out_channels=1,
        features=tuple(features),
        act=("relu", {"inplace": True}),
        norm=("batch", {"affine": True}),
    )
