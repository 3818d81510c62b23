"""Engines and their registry.

Built-in engines are registered by name and imported on first use, so listing engines
(e.g. in Slicer before torch is installed) never imports torch.
"""

from InteractiveSegLib.engines.base import (
    Engine,
    EngineInfo,
    EngineState,
    Prediction,
    Request,
    SliceRatings,
    StepReport,
)
from InteractiveSegLib.engines.registry import (
    available_engines,
    create_engine,
    describe_engine,
    engine_class,
    model_card,
    register_engine,
    register_lazy,
)

register_lazy("click", "InteractiveSegLib.methods.click.engine:ClickEngine")
register_lazy("sim", "InteractiveSegLib.methods.sim.engine:SIMEngine")
register_lazy("vmn", "InteractiveSegLib.methods.vmn.engine:VMNEngine")
register_lazy("vmn-mem0", "InteractiveSegLib.methods.vmn.engine:MemorylessVMNEngine")
register_lazy("vmn-registration", "InteractiveSegLib.methods.vmn.engine:RegistrationPropagationEngine")
register_lazy("prompt3d", "InteractiveSegLib.methods.prompt3d.engine:Prompt3DEngine")
register_lazy("finetune", "InteractiveSegLib.methods.finetune.engine:ScribbleFinetuneEngine")
register_lazy("finetune-3d", "InteractiveSegLib.methods.finetune.engine:ScribbleFinetune3DEngine")

__all__ = [
    "Engine",
    "EngineInfo",
    "EngineState",
    "Prediction",
    "Request",
    "SliceRatings",
    "StepReport",
    "available_engines",
    "create_engine",
    "describe_engine",
    "engine_class",
    "model_card",
    "register_engine",
    "register_lazy",
]
