"""Engines and their registry.

Built-in engines are registered by name and imported on first use, so listing engines
(e.g. in Slicer before torch is installed) never imports torch.
"""

from .base import Engine, Prediction, Request
from .registry import available_engines, create_engine, register_engine, register_lazy

register_lazy("click", "InteractiveSegLib.engines.click:ClickEngine")
register_lazy("sim", "InteractiveSegLib.engines.sim:SIMEngine")
register_lazy("vmn", "InteractiveSegLib.engines.vmn:VMNEngine")
register_lazy("vmn-mem0", "InteractiveSegLib.engines.vmn:MemorylessVMNEngine")
register_lazy("vmn-registration", "InteractiveSegLib.engines.vmn:RegistrationPropagationEngine")
register_lazy("finetune", "InteractiveSegLib.engines.finetune:ScribbleFinetuneEngine")
register_lazy("finetune-3d", "InteractiveSegLib.engines.finetune:ScribbleFinetune3DEngine")

__all__ = ["Engine", "Prediction", "Request", "available_engines", "create_engine", "register_engine", "register_lazy"]
