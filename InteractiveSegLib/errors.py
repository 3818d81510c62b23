"""Exceptions with messages a user can act on.

Every bad input (file, geometry, hint, model) raises one of these *before* any state
is changed, so callers (CLI, Slicer module) can show the message and carry on.
"""


class InteractiveSegError(Exception):
    """Base class of every error the library raises on purpose."""


class ImageError(InteractiveSegError):
    """An image or label file cannot be used (unreadable, wrong dimensionality, NaN...)."""


class GeometryError(InteractiveSegError):
    """Two images that must share a voxel grid do not."""


class InteractionError(InteractiveSegError):
    """A hint is invalid (outside the volume, unknown class, malformed)."""


class ModelError(InteractiveSegError):
    """A model file is missing or does not load."""


class UntrustedCodeError(ModelError):
    """A model folder names code that would run when it loads, and the user did not say
    they trust it (``trust_code``); a UI asks and retries."""


class EngineError(InteractiveSegError):
    """An engine name is unknown or an engine cannot handle a request."""


class ConfigError(InteractiveSegError, ValueError):
    """A setting (of a network, a task, a training run) is not one the code knows."""


class MemoryBudgetError(InteractiveSegError):
    """An operation would need more memory than the machine has free."""
