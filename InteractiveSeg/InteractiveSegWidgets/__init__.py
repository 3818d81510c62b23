"""Self-contained Qt sections of the InteractiveSeg module panel (Slicer GUI only).

InteractiveSeg.py keeps Slicer's scripted-module template (module, widget, logic, test);
sections of the widget that stand on their own live here so that file stays readable:

- ``dependency_install``: first-use installation of the Python packages the engines need
  (confirmation dialogs, PyTorch extension or pip);
- ``online_panel``: the "Online learning" section, a mixin of the module widget whose
  buttons drive ``InteractiveSegSlicer.online_glue`` (where all its logic is).

These modules import ``slicer``'s GUI helpers, ``qt`` and ``ctk``: they run only inside the
Slicer application. Everything that can be tested without Qt is in ``InteractiveSegSlicer``.
Submodules are not imported here.
"""

__all__ = ["dependency_install", "online_panel"]
