"""The 3D network: a MONAI ``BasicUNet`` over the prompt channels (``prompts.CHANNELS``).

nnInteractive's residual encoder U-Net at 192^3 needs a GPU; this one is sized so a pass at
64^3 takes a fraction of a second on two CPU threads (Resources/Models/prompt3d.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import BasicUNet

from InteractiveSegLib.methods.prompt3d.prompts import CHANNELS


def prompt3d_net(features: Sequence[int] = (8, 16, 32, 64, 128, 8)) -> torch.nn.Module:
    """A 3D U-Net: the prompt channels in, one logit out (instance norm: batches of two)."""
    return BasicUNet(spatial_dims=3, in_channels=len(CHANNELS), out_channels=1, features=tuple(features))
