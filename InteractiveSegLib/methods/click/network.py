"""The click-guidance FCNN of ../shared/papers/click-guidance-fcnn.txt, built from MONAI's BasicUNet."""

from __future__ import annotations

import torch
from monai.networks.nets import BasicUNet


def click_fcnn(features: tuple[int, ...] = (16, 32, 48, 96, 192, 16), in_channels: int = 4) -> torch.nn.Module:
    """The click-guidance FCNN: 4 down blocks (2x conv-BN-ReLU, 2x2 max-pool), a bottleneck,
    4 up blocks with 2x2 transposed convolutions; input (image, fg guidance, bg guidance and,
    beyond the paper, the previous mask so that a correction builds on it), one output logit
    for the clicked structure. MONAI's BasicUNet is exactly this layout."""
    return BasicUNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=1,
        features=features,
        act=("relu", {"inplace": True}),
        norm=("batch", {"affine": True}),
        upsample="deconv",
    )
