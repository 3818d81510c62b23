"""What the engine menu shows: model cards, the compute device, per-engine options.

Qt-free and torch-free at import (the module panel lists engines before the first-run
dependency set-up has installed torch); what each engine is, it declares itself.
"""

from __future__ import annotations

import importlib.util


def model_card(engine: str) -> str:
    """The engine's model card as markdown text (its ``MODEL_CARD`` declaration), or one
    sentence saying why there is none."""
    from InteractiveSegLib.engines import model_card as card
    from InteractiveSegLib.errors import EngineError

    try:
        return card(engine)
    except EngineError as e:  # e.g. torch not installed yet: the first hint offers to install it
        return f"The model card of {engine!r} cannot be read yet: {e}"


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
    if not device:
        return {}
    from InteractiveSegLib.engines import describe_engine

    return {"device": device} if describe_engine(engine).runs_network else {}
