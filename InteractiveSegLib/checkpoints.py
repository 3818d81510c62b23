"""Checkpoints of the project's networks: their format, the builder registry, the models folder.

A checkpoint is a plain ``torch.save`` dict ``{"arch", "config", "state_dict", "meta"}``
loaded with ``weights_only=True`` (no pickled code runs when a model file loads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from InteractiveSegLib.errors import ModelError

#: Network builders by checkpoint ``arch``: "module:callable", imported when a checkpoint of
#: that architecture loads (a method's network module imports nothing of this one).
ARCHITECTURES = {
    "click_fcnn": "InteractiveSegLib.methods.click.network:click_fcnn",
    "sim_net": "InteractiveSegLib.methods.sim.network:sim_net",
    "vmn_net": "InteractiveSegLib.methods.vmn.network:vmn_net",
    "vmn_interaction": "InteractiveSegLib.methods.vmn.network:interaction_net",
    "prompt3d_net": "InteractiveSegLib.methods.prompt3d.network:prompt3d_net",
}


def build_network(arch: str, **kwargs: Any) -> torch.nn.Module:
    """A new network of a registered architecture (ModelError if unknown)."""
    import pkgutil

    if arch not in ARCHITECTURES:
        raise ModelError(f"unknown network architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    return pkgutil.resolve_name(ARCHITECTURES[arch])(**kwargs)


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
    _write({"arch": arch, "config": config, "state_dict": model.state_dict(), "meta": meta}, path)


def update_checkpoint(path: str | Path, out: str | Path, config: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write ``path``'s checkpoint to ``out`` (atomically; it may be ``path``) with ``config``
    and ``meta`` merged into its own, the weights untouched."""
    ckpt = _read(path)
    ckpt["config"] = {**ckpt.get("config", {}), **config}
    ckpt["meta"] = {**ckpt.get("meta", {}), **meta}
    _write(ckpt, out)


def _write(ckpt: dict[str, Any], path: str | Path) -> None:
    """Save ``ckpt`` to ``path`` (its folder made if need be) through a temporary file, so a
    reader never sees half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)


def checkpoint_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint, without building its network (to warm-start another)."""
    return _read(path)["state_dict"]


def _read(path: str | Path) -> dict[str, Any]:
    """A checkpoint's dict; ModelError when it does not load or is not a checkpoint."""
    try:
        ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"model file {path} does not load: {e}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ModelError(f"model file {path} is not an InteractiveSeg checkpoint")
    return ckpt


def load_checkpoint(path: str | Path, expected_arch: str) -> tuple[torch.nn.Module, dict, dict]:
    """Load (model in eval mode, config, meta); ModelError with the reason if it cannot."""
    _, model, config, meta = load_one_of(path, (expected_arch,))
    return model, config, meta


def load_one_of(path: str | Path, archs: tuple[str, ...]) -> tuple[str, torch.nn.Module, dict, dict]:
    """Load (arch, model in eval mode, config, meta) of a checkpoint holding one of ``archs``
    (a role more than one kind of network can fill); ModelError with the reason if it cannot."""
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
    if arch not in archs:
        expected = repr(archs[0]) if len(archs) == 1 else f"one of {archs}"
        raise ModelError(f"model file {path} holds a {arch!r} network, expected {expected}")
    config = dict(ckpt.get("config", {}))
    net_kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.get("net", {}).items()}
    try:
        model = build_network(arch, **net_kwargs)
    except (TypeError, ValueError) as e:  # a config the builder does not take
        raise ModelError(f"model file {path} has a {arch} configuration that cannot be built: {e}") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:  # torch's first line only names the class; the next names the tensor
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise ModelError(f"model file {path} does not match the {arch} network: {detail}") from None
    model.eval()
    return str(arch), model, config, dict(ckpt.get("meta", {}))


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def read_config(path: str | Path) -> dict:
    """A checkpoint's ``config`` without building its network (the tensors are memory-mapped,
    not read): what an engine declares about a model before loading it."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:
        raise ModelError(f"model file {path} does not load: {e}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ModelError(f"model file {path} is not an InteractiveSeg checkpoint")
    return dict(ckpt.get("config", {}))
