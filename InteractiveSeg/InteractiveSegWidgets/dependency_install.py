"""First-use installation of the Python packages InteractiveSeg's engines need (Slicer GUI).

Why a separate module: this is the one dialog flow of the module that is not about
segmenting (ask, install torch the right way, then the rest in one pip call, check again);
which packages are missing is decided by the Qt-free ``InteractiveSegSlicer.dependencies``.
Runs only inside the Slicer application (``slicer.util`` dialogs, ``slicer.packaging``).
"""

import importlib
import os

import slicer
from slicer.i18n import tr as _

from InteractiveSegSlicer import dependencies

#: The shipped requirements: InteractiveSeg/Resources/requirements.txt (beside this package's folder).
REQUIREMENTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Resources", "requirements.txt"
)
_dependenciesReady = False


def ensureDependencies(askConfirmation: bool = True) -> bool:
    """First use only: install what the engines need after asking; False if declined.

    torch first, through the PyTorch extension when it is installed (it picks the CUDA or
    CPU build), else pip, so that MONAI cannot pull a mismatched torch; then only the
    packages of Resources/requirements.txt that are missing or outside their tested range,
    in one pip call (pip resolves everything before installing anything). The result is
    checked again: a failure raises with the list of what is still missing, and nothing is
    imported before the set is complete, so Slicer keeps working.
    """
    global _dependenciesReady
    if _dependenciesReady:
        return True
    torchReq = dependencies.TORCH_REQUIREMENT
    if dependencies.unmet([dependencies.Requirement(torchReq)]):
        try:
            import PyTorchUtils
        except ImportError:
            PyTorchUtils = None
        if PyTorchUtils is not None:
            if (
                PyTorchUtils.PyTorchUtilsLogic().installTorch(
                    askConfirmation=askConfirmation, torchVersionRequirement=torchReq[len("torch") :]
                )
                is None
            ):
                return False
        else:
            if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                _(
                    "InteractiveSeg needs PyTorch ({req}). Install the CPU/CUDA build pip chooses now? "
                    "(Installing the PyTorch extension first lets it pick the build for your GPU.)"
                ).format(req=torchReq)
            ):
                return False
            slicer.util.pip_install(torchReq)
    missing = dependencies.unmet(dependencies.read_requirements(REQUIREMENTS))
    if missing:
        if askConfirmation and not slicer.util.confirmOkCancelDisplay(
            _(
                "InteractiveSeg needs these Python packages:\n{list}\nInstall them now? This takes a few minutes."
            ).format(list=dependencies.describe(missing))
        ):
            return False
        packaging = getattr(slicer, "packaging", None)
        reqs = [req for req, _installed in missing]  # (not "_": that name is the translation function here)
        if packaging is not None and hasattr(packaging, "pip_ensure"):  # Slicer >= 5.12: progress dialog, restart offer
            packaging.pip_ensure(reqs, requester="InteractiveSeg")
        else:
            slicer.util.pip_install([str(r) for r in reqs])
        importlib.invalidate_caches()
        still = dependencies.unmet(dependencies.read_requirements(REQUIREMENTS))
        if still:
            raise RuntimeError(
                _(
                    "These packages could not be installed; InteractiveSeg stays disabled, "
                    "Slicer is unchanged otherwise:\n{list}"
                ).format(list=dependencies.describe(still))
            )
    _dependenciesReady = True
    return True
