"""Qt sections of the InteractiveSeg module panel and the wiring the Segment Editor effect
shares with it (Slicer GUI only).

InteractiveSeg.py keeps Slicer's scripted-module template (module, widget, logic, test);
sections of the widget that stand on their own live in submodules so that file stays readable:

- ``dependency_install``: first-use installation of the Python packages the engines need
  (confirmation dialogs, PyTorch extension or pip);
- ``online_panel``: the "Online learning" section, a mixin of the module widget whose
  buttons drive ``InteractiveSegSlicer.online_glue`` (where all its logic is).

Here, what the effect and the panel share: both hand hints to an
``InteractiveSegSlicer.controller.InteractiveController`` (Qt-free, where every decision is
made and tested); what is left is Slicer's GUI: ``JobPoller`` polls the running job with a
``qt.QTimer`` (a progress bar and Cancel for jobs over ``SHOW_PROGRESS_AFTER_S``) and writes
it; the dialogs (a model that runs code, the model card) and the one-line messages.

These modules import ``slicer``'s GUI helpers, ``qt`` and ``ctk``: they run only inside the
Slicer application. Everything that can be tested without Qt is in ``InteractiveSegSlicer``.
Submodules are not imported here.
"""

__all__ = ["dependency_install", "online_panel"]

import time

import qt
import slicer

from InteractiveSegLib.errors import InteractiveSegError
from InteractiveSegSlicer import engine_info

SHOW_PROGRESS_AFTER_S = 0.5  # a click is done well before: the bar and Cancel only for long jobs


def askTrust(reason):
    """A model that would run code when it loads: the user decides (default no)."""
    return slicer.util.confirmYesNoDisplay(
        f"{reason}.\n\nLoad it and let it run that code? Say yes only for a model from an author you trust.",
        windowTitle="InteractiveSeg: the model runs code",
    )


def showModelCard(engine):
    box = qt.QMessageBox(slicer.util.mainWindow())
    box.setWindowTitle(f"Model card: {engine} ({engine_info.device_summary()})")
    box.setTextFormat(qt.Qt.MarkdownText)
    box.setText(engine_info.model_card(engine))
    box.exec_()


def showMessage(message, label=None):
    """A controller's one-line message in the status bar (and in ``label`` if given)."""
    if label is not None:
        label.text = message
    slicer.util.showStatusMessage(f"InteractiveSeg: {message}", 5000)


def guarded(call, label=None):
    """Run ``call()``: bad input (InteractiveSegError) becomes a message, anything else an
    error dialog. Returns its result, or None when it raised."""
    try:
        return call()
    except InteractiveSegError as e:
        showMessage(str(e), label)
    except Exception as e:
        slicer.util.errorDisplay(f"InteractiveSeg failed: {e}")
    return None


class JobPoller:
    """Polls a controller's running ``Operation`` on the main thread and writes it when done
    (``controller.finish``), then calls ``onDone(result)`` (None when it raised: shown)."""

    def __init__(self, progressBar, cancelButton, onDone, label=None):
        self.progressBar, self.cancelButton, self.onDone, self.label = progressBar, cancelButton, onDone, label
        self.controller, self.op = None, None
        self.timer = qt.QTimer()
        self.timer.setInterval(30)
        self.timer.timeout.connect(self.poll)

    def start(self, controller, op):
        self.controller, self.op = controller, op
        self.timer.start()

    def poll(self):
        op = self.op
        if op is None:
            self.timer.stop()
            return
        self.progressBar.visible = self.cancelButton.visible = (
            not op.job.done and time.perf_counter() - op.started > SHOW_PROGRESS_AFTER_S
        )
        self.progressBar.setRange(0, 0 if op.job.progress == 0 else 100)  # busy until the job reports
        self.progressBar.value = int(100 * op.job.progress)
        self.progressBar.format = op.job.message or "%p%"
        if not op.job.done:
            return
        self.timer.stop()
        self.op = None
        self.progressBar.visible = self.cancelButton.visible = False
        result = guarded(lambda: self.controller.finish(op), self.label)
        if result is not None:
            showMessage(result.message, self.label)
        self.onDone(result)
