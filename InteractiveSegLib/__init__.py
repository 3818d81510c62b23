"""InteractiveSegLib: the Slicer-free engine of the InteractiveSeg extension.

The everyday surface is re-exported here (as segment-anything's ``SamPredictor``: set the
image once, then many cheap hint -> mask calls)::

    from InteractiveSegLib import Click, LabelTable, Session, read_volume, write_seg_nrrd

Names are imported on first use, so ``import InteractiveSegLib`` stays light (Slicer lists
engines before its first-run set-up has installed torch).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Session": "session",
    "SliceSuggestion": "session",
    "Volume": "volume",
    "Geometry": "volume",
    "LabelTable": "labels",
    "Click": "hints",
    "Scribble": "hints",
    "Box": "hints",
    "ExtremePoints": "hints",
    "SliceAuto": "hints",
    "from_json": "hints",
    "to_json": "hints",
    "read_volume": "io",
    "read_labels": "io",
    "write_seg_nrrd": "io",
    "Engine": "engines",
    "available_engines": "engines",
    "create_engine": "engines",
    "describe_engine": "engines",
    "InteractiveSegError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"InteractiveSegLib.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'InteractiveSegLib' has no attribute {name!r}")
