"""InteractiveSeg in the browser: a trame-slicer web app on one volume.

- ``effect``: the segmentation effect whose slice-view pipeline turns a left click
  (Ctrl: negative) into a call of the app;
- ``app``: the trame server, the Slicer scene and the Qt-free
  ``InteractiveSegSlicer.controller.InteractiveController`` that runs the hints
  (``python -m InteractiveSegWeb.app --image PATH``).

Submodules are not imported here so that importing the package stays cheap.
"""

__all__ = ["app", "effect"]
