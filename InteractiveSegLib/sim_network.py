"""The SIM network (papers/sim-sequential-interaction-memory.txt, 4.1 and 5.1.1).

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

from typing import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, ResidualUnit
from torch import nn

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
    raise ValueError(f"unknown memory {memory!r}; expected one of {MEMORIES}")


class ConvLSTMCell(nn.Module):
    """One convolutional LSTM cell (Shi et al. 2015). MONAI has no ConvLSTM, so it is
    written here: one convolution gives the four gates from [input, hidden]."""

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None):
        if state is None:
            z = x.new_zeros(x.shape[0], self.hidden, *x.shape[2:])
            state = (z, z)
        h, c = state
        i, f, o, g = torch.chunk(self.gates(torch.cat([x, h], 1)), 4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


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

    def forward(self, x: torch.Tensor, skip: torch.Tensor, states: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
        x = self.conv(torch.cat([x, skip], 1))
        if self.lstm is None:
            return x
        hc = None
        for s in states:  # oldest state first, newest last: the LSTM sees the order of corrections
            if s.shape[2:] != x.shape[2:]:
                s = F.adaptive_avg_pool2d(s, x.shape[2:])
            hc = self.lstm(s, hc)
        return x + self.proj(hc[0])


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
            raise ValueError(f"unknown norm {norm!r}; expected 'batch' or 'instance'")
        norm_layer = ("instance", {"affine": True}) if norm == "instance" else "batch"
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; expected one of {DECODERS}")
        if decoder == "lstm" and memory != "sim":
            raise ValueError("the LSTM decoder reads the SIM states: use memory='sim'")
        self.num_classes, self.depth, self.memory, self.decoder = num_classes, depth, memory, decoder
        self.in_channels = input_channels(memory, num_classes, depth)
        f = list(features)  # a checkpoint stores a list
        # full-resolution edges come from the image alone: cheap, and enough for sharp borders
        self.full = Convolution(2, 1, full_res, act="relu", norm=norm_layer)
        self.stem = Convolution(2, self.in_channels, f[0], strides=2, act="relu", norm=norm_layer)
        self.enc = nn.ModuleList(
            ResidualUnit(2, f[i], f[i + 1], strides=2, subunits=2, act="relu", norm=norm_layer) for i in range(len(f) - 1)
        )
        state_ch = 2 * num_classes if decoder == "lstm" else 0
        self.dec = nn.ModuleList(UpStep(f[i + 1], f[i], f[i], state_ch, lstm_hidden, norm_layer) for i in reversed(range(len(f) - 1)))
        self.head_up = UpStep(f[0], full_res, full_res, norm=norm_layer)
        self.head = nn.Conv2d(full_res, num_classes, 1)

    def _state_pyramid(self, x: torch.Tensor, sizes) -> dict[tuple, list[torch.Tensor]]:
        """The SIM states average-pooled to every decoder scale, each level pooled from the
        previous one (one full-resolution read instead of one per state and scale)."""
        level, out, n2 = x[:, 1:], {}, 2 * self.num_classes
        for size in sizes:  # finest first
            level = F.adaptive_avg_pool2d(level, size)
            out[tuple(size)] = [level[:, t * n2 : (t + 1) * n2] for t in range(self.depth)]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"SIMNet({self.memory}) expects {self.in_channels} input channels, got {x.shape[1]}")
        full = self.full(x[:, :1])
        skips = [self.stem(x)]
        for block in self.enc:
            skips.append(block(skips[-1]))
        pyramid = self._state_pyramid(x, [s.shape[2:] for s in skips[:-1]]) if self.decoder == "lstm" else {}
        y = skips.pop()
        for step in self.dec:
            skip = skips.pop()
            y = step(y, skip, pyramid.get(tuple(skip.shape[2:]), ()))
        return self.head(self.head_up(y, full))


#: the registry's factory: ``sim_net(**checkpoint["config"]["net"])``
sim_net = SIMNet
