"""The SIM network (../shared/papers/sim-sequential-interaction-memory.txt, 4.1 and 5.1.1).

Input: ``1 + 2*D*N`` channels for the sequential interaction memory (image, then D
states, oldest first, each = N interaction masks + N probability maps), ``1 + N`` for
the base and cumulative-memory ablations, ``1`` for the automatic baseline.

Encoder: strided MONAI residual units (the paper's AlbuNet/ResNet34 layout, sized for a
CPU: the first block already works at half resolution). Decoder: up-sampling steps with
skip connections; the ``"lstm"`` decoder adds, at every up-sampling step, a convolutional
LSTM that reads the D states in order (oldest first) together with the decoder features,
so the order of the corrections is modelled explicitly, as in the paper's Figure 5.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, ResidualUnit
from torch import nn

from InteractiveSegLib.errors import ConfigError

MEMORIES = ("sim", "cim", "base", "auto")
DECODERS = ("lstm", "plain")


def input_channels(memory: str, num_classes: int, depth: int) -> int:
    """C of the paper: 1 + 2DN (SIM), 1 + N (CIM, base), 1 (automatic)."""
    if memory == "sim":
        return 1 + 2 * depth * num_classes
    if memory in ("cim", "base"):
        return 1 + num_classes
    if memory == "auto":
        return 1
    raise ConfigError(f"unknown memory {memory!r}; expected one of {MEMORIES}")


class ConvLSTMCell(nn.Module):
    """One convolutional LSTM cell (Shi et al. 2015). MONAI has no ConvLSTM, so it is
    written here: one convolution gives the four gates from [input, hidden]."""

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None):
        """One step, the textbook way (``sequence`` is the fast path over a whole memory)."""
        if state is None:
            z = x.new_zeros(x.shape[0], self.hidden, *x.shape[2:])
            state = (z, z)
        h, c = state
        i, f, o, g = torch.chunk(self.gates(torch.cat([x, h], 1)), 4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def _update(self, gates: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """LSTM update from gates whose candidate rows were pre-scaled by 2: one sigmoid over all
        four gates, tanh(g) = 2 sigmoid(2g) - 1 (fewer element-wise passes on CPU)."""
        k = self.hidden
        s = torch.sigmoid(gates)
        if torch.is_grad_enabled():
            i, f, o, g = s[:, :k], s[:, k : 2 * k], s[:, 2 * k : 3 * k], s[:, 3 * k :] * 2 - 1
            c = i * g if c is None else f * c + i * g
            return o * torch.tanh(c), c
        # inference: the same arithmetic in place on fresh tensors (no temporaries to allocate)
        i, f, o, g = s[:, :k], s[:, k : 2 * k], s[:, 2 * k : 3 * k], s[:, 3 * k :].mul_(2).sub_(1)
        c = i * g if c is None else torch.mul(f, c).addcmul_(i, g)
        return torch.tanh(c).mul_(o), c

    def sequence(self, xs: Sequence[torch.Tensor | None], like: torch.Tensor) -> torch.Tensor:
        """The last hidden state after reading ``xs`` in order from a zero state (None: an empty
        state, all zeros), at the size and memory layout of ``like``. The same function as
        ``forward`` step by step, cheaper: the input part of the gate convolution runs once for
        every non-empty step as one batch (an empty step's is the bias), the hidden part is
        skipped while the hidden state is zero, and a constant hidden state is computed once."""
        k, n_in, pad = self.hidden, self.gates.in_channels - self.hidden, self.gates.padding
        scale = torch.ones(4 * k, device=like.device, dtype=like.dtype)
        scale[3 * k :] = 2.0
        w = self.gates.weight * scale.view(-1, 1, 1, 1)
        bias = (cast(torch.Tensor, self.gates.bias) * scale).view(1, -1, 1, 1)  # the gates convolution has a bias
        real = [x for x in xs if x is not None]
        gx = iter(
            F.conv2d(torch.cat(real, 0), w[:, :n_in], bias.flatten(), padding=pad).split(like.shape[0], 0)
            if real
            else ()
        )
        h = c = None
        for x in xs:
            g = next(gx) if x is not None else bias
            if h is not None:
                if h.shape[2:] != like.shape[2:]:  # a constant state, computed on one pixel
                    h = h.expand(like.shape[0], k, *like.shape[2:]).contiguous(memory_format=_layout(like))
                g = g + F.conv2d(h, w[:, n_in:], padding=pad)
            h, c = self._update(g, c)
        if h is None or h.shape[2:] != like.shape[2:]:
            h = (h if h is not None else like.new_zeros(1, k, 1, 1)).expand(like.shape[0], k, *like.shape[2:])
        return h


def _layout(t: torch.Tensor) -> torch.memory_format:
    return (
        torch.channels_last
        if t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
        else torch.contiguous_format
    )


class UpStep(nn.Module):
    """Up-sample x2, concatenate the skip, convolve; optionally add a ConvLSTM's encoding of
    the SIM states (read oldest to newest at this step's scale)."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, state_ch: int = 0, hidden: int = 8, norm="batch") -> None:
        super().__init__()
        self.conv = Convolution(2, in_ch + skip_ch, out_ch, act="relu", norm=norm)
        # a narrow LSTM (``hidden`` channels) keeps the 2D latency budget; a 1x1 convolution
        # brings its last hidden state back to the decoder's width
        self.lstm = ConvLSTMCell(state_ch, hidden) if state_ch else None
        self.proj = nn.Conv2d(hidden, out_ch, 1) if state_ch else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor, states: Sequence[torch.Tensor | None] = ()) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
        x = self.conv(torch.cat([x, skip], 1))
        if self.lstm is None or self.proj is None:  # both or neither
            return x
        # oldest state first, newest last (None: an empty state): the LSTM sees the order of corrections
        states = [
            s
            if s is None or s.shape[2:] == x.shape[2:]
            else F.adaptive_avg_pool2d(s, cast(tuple[int, int], x.shape[2:]))
            for s in states
        ]
        return x + self.proj(self.lstm.sequence(states, x))


class SIMNet(nn.Module):
    """Encoder-decoder over the SIM tensor; outputs N class logits at input resolution.

    Input height and width must be multiples of 16.
    """

    def __init__(
        self,
        num_classes: int = 5,
        depth: int = 3,
        memory: str = "sim",
        decoder: str = "lstm",
        features: Sequence[int] = (16, 32, 64, 128),
        full_res: int = 8,
        lstm_hidden: int = 8,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if norm not in ("batch", "instance"):
            raise ConfigError(f"unknown norm {norm!r}; expected 'batch' or 'instance'")
        norm_layer = ("instance", {"affine": True}) if norm == "instance" else "batch"
        if decoder not in DECODERS:
            raise ConfigError(f"unknown decoder {decoder!r}; expected one of {DECODERS}")
        if decoder == "lstm" and memory != "sim":
            raise ConfigError("the LSTM decoder reads the SIM states: use memory='sim'")
        self.num_classes, self.depth, self.memory, self.decoder = num_classes, depth, memory, decoder
        self.in_channels = input_channels(memory, num_classes, depth)
        f = list(features)  # a checkpoint stores a list
        # full-resolution edges come from the image alone: cheap, and enough for sharp borders
        self.full = Convolution(2, 1, full_res, act="relu", norm=norm_layer)
        self.stem = Convolution(2, self.in_channels, f[0], strides=2, act="relu", norm=norm_layer)
        self.enc = nn.ModuleList(
            ResidualUnit(2, f[i], f[i + 1], strides=2, subunits=2, act="relu", norm=norm_layer)
            for i in range(len(f) - 1)
        )
        state_ch = 2 * num_classes if decoder == "lstm" else 0
        self.dec = nn.ModuleList(
            UpStep(f[i + 1], f[i], f[i], state_ch, lstm_hidden, norm_layer) for i in reversed(range(len(f) - 1))
        )
        self.head_up = UpStep(f[0], full_res, full_res, norm=norm_layer)
        self.head = nn.Conv2d(full_res, num_classes, 1)

    def _state_pyramid(self, x: torch.Tensor, sizes, empty: int = 0) -> dict[tuple, list[torch.Tensor | None]]:
        """The SIM states average-pooled to every decoder scale, each level pooled from the
        previous one (one full-resolution read instead of one per state and scale); the first
        ``empty`` states are known to be zero and are given as None (nothing to pool)."""
        if empty >= self.depth:  # the automatic mode: nothing to pool
            return {tuple(size): [None] * self.depth for size in sizes}
        n2 = 2 * self.num_classes
        level, out = x[:, 1 + empty * n2 :], {}
        for size in sizes:  # finest first
            # halving exactly (the usual case) is a 2x2 average: the same values, a faster kernel
            halves = all(a == 2 * b for a, b in zip(level.shape[2:], size, strict=False))
            level = F.avg_pool2d(level, 2) if halves else F.adaptive_avg_pool2d(level, size)
            out[tuple(size)] = [None] * empty + [level[:, t * n2 : (t + 1) * n2] for t in range(self.depth - empty)]
        return out

    def forward(self, x: torch.Tensor, empty_states: int = 0) -> torch.Tensor:
        """Class logits. ``empty_states``: how many of the oldest SIM states the caller knows to
        be all zeros (the memory's padding before the D-th click); their work is skipped, the
        result is the same."""
        if x.shape[1] != self.in_channels:
            raise ConfigError(f"SIMNet({self.memory}) expects {self.in_channels} input channels, got {x.shape[1]}")
        full = self.full(x[:, :1])
        skips = [self.stem(x)]
        for block in self.enc:
            skips.append(block(skips[-1]))
        empty = min(max(int(empty_states), 0), self.depth)
        pyramid = self._state_pyramid(x, [s.shape[2:] for s in skips[:-1]], empty) if self.decoder == "lstm" else {}
        y = skips.pop()
        for step in self.dec:
            skip = skips.pop()
            y = step(y, skip, pyramid.get(tuple(skip.shape[2:]), ()))
        return self.head(self.head_up(y, full))


def fuse_batch_norm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode batch normalisation that follows a convolution of a MONAI
    ``Convolution`` block into that convolution (torch's ``fuse_conv_bn_eval``): the same
    function at inference, one pass over the feature map less per block. In place; for
    inference with the stored statistics only (not for training, nor per-image statistics)."""
    from monai.networks.blocks import Convolution as MonaiConvolution
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for block in model.modules():
        if not isinstance(block, MonaiConvolution):
            continue
        adn = cast(nn.Module, block.adn)
        bn = getattr(adn, "N", None)
        if isinstance(bn, nn.BatchNorm2d):
            if bn.training or not isinstance(block.conv, nn.Conv2d):
                continue
            block.conv = fuse_conv_bn_eval(block.conv, bn)
            adn.N = nn.Identity()
    return model


#: the registry's factory: ``sim_net(**checkpoint["config"]["net"])``
sim_net = SIMNet
