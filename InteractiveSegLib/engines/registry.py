"""Engine registry: a name -> factory map. Registering an engine is one line.

Engines that live outside the library (e.g. Slicer's Grow from seeds, which needs
the slicer-core wheel) register through the ``interactiveseg.engines`` entry-point
group or by calling ``register_engine`` themselves; the library never imports them.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from InteractiveSegLib.engines.base import Engine, EngineInfo
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
    """Register ``"package.module:Class"`` without importing it until the engine is needed."""
    _ENGINES.setdefault(name, _Lazy(name, target))


class _Lazy:
    """A registered ``"module:Class"``: imported on first use, then that class."""

    def __init__(self, name: str, target: str) -> None:
        self.name, self.target = name, target

    def resolve(self) -> Callable[..., Engine]:
        try:
            return pkgutil.resolve_name(self.target)
        except ImportError as e:
            raise EngineError(f"engine {self.name!r} needs a package that is not installed: {e}") from None
        except Exception as e:  # a broken plug-in must not break the other engines
            raise EngineError(f"engine {self.name!r} is installed but cannot be loaded: {e}") from None

    def __call__(self, **kwargs: Any) -> Engine:
        return self.resolve()(**kwargs)


def _load_plugins() -> None:
    """Register the ``interactiveseg.engines`` entry points, lazily: a plug-in is imported
    when its engine is first used, and a broken one fails then, with its reason."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for ep in entry_points(group="interactiveseg.engines"):
        register_lazy(ep.name, ep.value)


def available_engines() -> list[str]:
    _load_plugins()
    return sorted(_ENGINES)


def create_engine(name: str, **kwargs: Any) -> Engine:
    """Instantiate a registered engine by name (EngineError if unknown)."""
    return _factory(name)(**kwargs)


def _factory(name: str) -> Callable[..., Engine]:
    if name not in _ENGINES:
        _load_plugins()
    if name not in _ENGINES:
        raise EngineError(f"unknown engine {name!r}; available: {available_engines()}")
    return _ENGINES[name]


def engine_class(name: str) -> type[Engine] | None:
    """The class a registered engine is made of, imported but not instantiated (None for a
    factory function registered by hand: ``describe_engine`` then builds one)."""
    factory = _factory(name)
    if isinstance(factory, _Lazy):
        factory = factory.resolve()
    return factory if isinstance(factory, type) and issubclass(factory, Engine) else None


def describe_engine(name: str, **kwargs: Any) -> EngineInfo:
    """What engine ``name`` created with ``kwargs`` declares (``Engine.describe``): its mode,
    hints, history, classes and model card, without loading its model."""
    cls = engine_class(name)
    if cls is None:  # a plain factory: the instance's class declares the same
        cls = type(create_engine(name, **kwargs))
    return cls.describe(**kwargs)


def model_card(name: str) -> str:
    """An engine's model card (markdown), or one sentence saying why there is none."""
    from InteractiveSegLib.checkpoints import default_models_dir  # torch: only once a card is asked for

    info = describe_engine(name)
    if info.model_card is None:
        if not info.runs_network:
            return f"{info.summary} A classic algorithm: no trained model."
        return f"Engine {name!r} has no model card (a plug-in engine: see its own documentation)."
    path = default_models_dir() / info.model_card
    if not path.is_file():
        return f"The model card of {name!r} ({path}) is missing from this installation."
    return path.read_text(encoding="utf-8")
