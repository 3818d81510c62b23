"""Engine registry: a name -> factory map. Registering an engine is one line.

Engines that live outside the library (e.g. Slicer's Grow from seeds, which needs
the slicer-core wheel) register through the ``interactiveseg.engines`` entry-point
group or by calling ``register_engine`` themselves; the library never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from InteractiveSegLib.engines.base import Engine
from InteractiveSegLib.errors import EngineError

_ENGINES: dict[str, Callable[..., Engine]] = {}
_PLUGINS_LOADED = False


def register_engine(name: str, factory: Callable[..., Engine] | None = None):
    """Register ``factory`` under ``name``; usable as a decorator: ``@register_engine("click")``."""

    def _do(f):
        _ENGINES[name] = f
        return f

    return _do(factory) if factory is not None else _do


def register_lazy(name: str, target: str) -> None:
    """Register ``"package.module:Class"`` without importing it until the engine is created."""

    def factory(**kwargs):
        from importlib import import_module

        module, _, attr = target.partition(":")
        try:
            cls = getattr(import_module(module), attr)
        except ImportError as e:
            raise EngineError(f"engine {name!r} needs a package that is not installed: {e}") from None
        return cls(**kwargs)

    _ENGINES.setdefault(name, factory)


def _load_plugins() -> None:
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for ep in entry_points(group="interactiveseg.engines"):
        if ep.name not in _ENGINES:
            try:
                register_engine(ep.name, ep.load())
            except Exception as e:  # a broken plugin must not break the built-in engines
                _ENGINES.setdefault(ep.name, _broken(ep.name, e))


def _broken(name: str, err: Exception):
    def factory(**_):
        raise EngineError(f"engine {name!r} is installed but cannot be loaded: {err}")

    return factory


def available_engines() -> list[str]:
    _load_plugins()
    return sorted(_ENGINES)


def create_engine(name: str, **kwargs) -> Engine:
    """Instantiate a registered engine by name (EngineError if unknown)."""
    if name not in _ENGINES:
        _load_plugins()
    if name not in _ENGINES:
        raise EngineError(f"unknown engine {name!r}; available: {available_engines()}")
    return _ENGINES[name](**kwargs)
