"""Networks of the engines, built from MONAI blocks, and their checkpoint format.

A checkpoint is a plain ``torch.save`` dict ``{"arch", "config", "state_dict", "meta"}``
loaded with ``weights_only=True`` (no pickled code runs when a model file loads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from monai.networks.nets import BasicUNet

from .errors import ModelError


def click_fcnn(features: tuple[int, ...] = (16, 32, 48, 96, 192, 16)) -> torch.nn.Module:
    """The click-guidance FCNN: 4 down blocks (2x conv-BN-ReLU, 2x2 max-pool), a bottleneck,
    4 up blocks with 2x2 transposed convolutions; input (image, fg guidance, bg guidance),
    one output logit for the clicked structure. MONAI's BasicUNet is exactly this layout."""
    return BasicUNet(
        spatial_dims=2,
        in_channels=3,
        out_channels=1,
        features=features,
        act=("relu", {"inplace": True}),
        norm=("batch", {"affine": True}),
        upsample="deconv",
    )


from .sim_network import sim_net  # noqa: E402
from .vmn_network import interaction_net, vmn_net  # noqa: E402

ARCHITECTURES = {"click_fcnn": click_fcnn, "sim_net": sim_net, "vmn_net": vmn_net, "vmn_interaction": interaction_net}


def default_models_dir() -> Path:
    """Shipped weights: ``Resources/Models`` beside the library (source tree), or
    ``Resources/Models`` of the built Slicer module; ``INTERACTIVESEG_MODELS`` overrides."""
    import os

    env = os.environ.get("INTERACTIVESEG_MODELS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "Resources" / "Models", here.parent / "InteractiveSeg" / "Resources" / "Models"):
        if cand.exists():
            return cand
    return here.parent / "Resources" / "Models"


def save_checkpoint(path: str | Path, arch: str, config: dict, model: torch.nn.Module, meta: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"arch": arch, "config": config, "state_dict": model.state_dict(), "meta": meta}, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path, expected_arch: str) -> tuple[torch.nn.Module, dict, dict]:
    """Load (model in eval mode, config, meta); ModelError with the reason if it cannot."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"model file {path} does not load: {e}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ModelError(f"model file {path} is not an InteractiveSeg checkpoint")
    arch = ckpt.get("arch")
    if arch != expected_arch:
        raise ModelError(f"model file {path} holds a {arch!r} network, expected {expected_arch!r}")
    config = dict(ckpt.get("config", {}))
    net_kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.get("net", {}).items()}
    model = ARCHITECTURES[arch](**net_kwargs)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ModelError(f"model file {path} does not match the {arch} network: {str(e).splitlines()[0]}") from None
    model.eval()
    return model, config, dict(ckpt.get("meta", {}))


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
