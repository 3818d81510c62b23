"""What the engine menu shows: model cards, the compute device, per-engine options.

Qt-free and torch-free at import: the module panel lists engines and shows cards before
the first-run dependency set-up has installed torch.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

#: Model card (markdown in Resources/Models) of each engine that ships weights.
MODEL_CARDS = {
    "click": "click_fcnn.md",
    "sim": "sim.md",
    "vmn": "vmn.md",
    "vmn-mem0": "vmn.md",
    "finetune": "finetune.md",
    "finetune-3d": "finetune.md",
}
#: Engines without a network (Slicer's Grow from seeds): no card, no device option.
CLASSIC_ENGINES = {
    "growcut": "Slicer's Grow from seeds (vtkImageGrowCutSegment) fed with the hints as seeds; no trained model.",
    "vmn-growcut": "Grow from seeds in 3D from every corrected slice; no trained model (the baseline of the VMN benchmark).",
}


def models_dir(module_dir: str | os.PathLike | None = None) -> Path:
    """Where the shipped weights and cards are: ``INTERACTIVESEG_MODELS``, the built
    module's ``Resources/Models``, else the source tree's top-level ``Resources/Models``."""
    env = os.environ.get("INTERACTIVESEG_MODELS")
    if env:
        return Path(env)
    here = Path(module_dir) if module_dir else Path(__file__).resolve().parents[1]
    for cand in (here / "Resources" / "Models", here.parent / "Resources" / "Models"):
        if cand.is_dir():
            return cand
    return here.parent / "Resources" / "Models"


def model_card(engine: str, module_dir: str | os.PathLike | None = None) -> str:
    """The engine's model card as markdown text, or one sentence saying why there is none."""
    if engine in CLASSIC_ENGINES:
        return CLASSIC_ENGINES[engine]
    name = MODEL_CARDS.get(engine)
    if name is None:
        return f"Engine {engine!r} has no model card (a plug-in engine: see its own documentation)."
    path = models_dir(module_dir) / name
    if not path.is_file():
        return f"The model card of {engine!r} ({path}) is missing from this installation."
    return path.read_text(encoding="utf-8")


def device_summary() -> str:
    """ "CUDA (<GPU>)" or "CPU", as the engines will pick it; never installs anything."""
    if importlib.util.find_spec("torch") is None:
        return "CPU (PyTorch not installed yet)"
    import torch

    if torch.cuda.is_available():
        return f"CUDA ({torch.cuda.get_device_name(0)})"
    return "CPU"


def engine_options(engine: str, device: str | None = None) -> dict:
    """Keyword arguments for the engine: ``device`` ("cuda", "cpu"; None = CUDA when
    available) only for engines that run a network."""
    if device and engine not in CLASSIC_ENGINES:
        return {"device": device}
    return {}
