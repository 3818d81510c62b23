"""Engines and their registry. Importing this package registers the built-in engines."""

from .base import Engine, Prediction, Request
from .registry import available_engines, create_engine, register_engine
from . import click as _click  # noqa: F401  (registers "click")

__all__ = ["Engine", "Prediction", "Request", "available_engines", "create_engine", "register_engine"]
