"""The web app's "Online learning" row: a task folder named on the command line (``--task``)
learns from the slices the user corrects, and proposes where to draw next.

Why a separate module: every decision is the Qt-free ``OnlineLearningLogic``'s (the module
panel in Slicer uses the same); here are only its buttons, its status line and the
polling of its training job on the inference thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from InteractiveSegLib.errors import InteractiveSegError
from InteractiveSegSlicer import slice_views

if TYPE_CHECKING:
    from .app import InteractiveSegWebApp


class OnlinePanel:
    """Open the task (at start), Start on the volume, Propose, Slice done, Proxy, Train (with
    Stop), Finish volume; the status line says where the task stands.

    Args:
        app: the web app (its controller's segment is the one the learner reads).
        task: the task folder (created if missing; locked while open).
    """

    def __init__(self, app: InteractiveSegWebApp, task: Path) -> None:
        from InteractiveSegSlicer.online_glue import OnlineLearningLogic

        self.app = app
        self.logic = OnlineLearningLogic(task, workers=1)  # ImageError/InteractionError: a task it cannot open
        self._job: Any = None
        app.server.state.online_status = self.logic.status_text()
        app.server.state.online_training = False

    def build(self) -> None:
        """The row of buttons and the status line (inside the app's content column)."""
        from trame.widgets import html
        from trame_vuetify.widgets import vuetify3 as v3

        with html.Div(classes="px-2 d-flex align-center text-body-2", style="flex: none"):
            html.Span("Online learning:", classes="mr-2 font-weight-bold")
            for text, action, name in (
                ("Start", self.start, "start"),
                ("Propose", self.propose, "propose"),
                ("Slice done", self.slice_done, "slice-done"),
                ("Proxy", self.proxy, "proxy"),
                ("Train", self.train, "train"),
                ("Finish volume", self.finish, "finish"),
            ):
                v3.VBtn(
                    text,
                    click=action,
                    disabled=("online_training",),
                    id=f"is-online-{name}",
                    size="x-small",
                    classes="mx-1",
                )
            v3.VBtn("Stop", click=self.stop, v_show=("online_training",), id="is-online-stop", size="x-small")
            html.Span("{{ online_status }}", id="is-online-status", classes="ml-2")

    # -- buttons ----------------------------------------------------------------------------
    def start(self) -> None:
        def run(logic) -> str:
            c = self.app.controller
            segment_id = c.ensure_segmentation()
            shown = logic.start(self.app.volume_node, c.segmentationNode, segment_id)
            return "started; the segmenter's prediction is shown" if shown else "started"

        self._do(run)

    def propose(self) -> None:
        def run(logic) -> str:
            proposals = logic.propose()
            if not proposals:
                return "no slice to propose"
            first = proposals[0]
            view = self.app._slice_view(first.orientation)
            if view is not None:
                slice_views.show_slice(view.get_view_node(), self.app.volume_node, first.axis, first.index)
            return "draw on: " + ", ".join(f"{p.orientation} {p.index}" for p in proposals)

        self._do(run)

    def slice_done(self) -> None:
        """The slice of the last hint is drawn (corrected): the learner reads it."""

        def run(logic) -> str:
            if self.app.last_slice is None:
                return "segment a slice with hints first, then press Slice done"
            axis, index = self.app.last_slice
            voxels = logic.record_drawn_slice(axis, index)
            return f"slice {index} (axis {axis}) recorded: {voxels} voxels"

        self._do(run)

    def proxy(self) -> None:
        self._do(lambda logic: f"proxy mask written ({len(logic.update_proxy())} segments changed)")

    def finish(self) -> None:
        def run(logic) -> str:
            logic.finish_volume()
            return "volume finished"

        self._do(run)

    def train(self) -> None:
        from trame_server.utils.asynchronous import create_task

        try:
            self._job = self.logic.submit_training(self.app.controller.logic.worker)
        except InteractiveSegError as e:
            self.app._show(message=str(e))
            return
        create_task(self._poll())

    def stop(self) -> None:
        if self._job is not None:
            self._job.cancel()

    async def _poll(self) -> None:
        job = self._job
        self.app._show(online_training=True, progress_shown=True)
        while not job.done:
            self.app._show(progress=float(job.progress), online_status=job.message or self.logic.status_text())
            await asyncio.sleep(0.2)
        self._job = None
        message = f"training failed: {job.error}" if job.error is not None else "training round done"
        self.app._show(
            online_training=False,
            progress_shown=False,
            progress=0.0,
            message=message,
            online_status=self.logic.status_text(),
        )

    def _do(self, action: Callable[[Any], str]) -> None:
        try:
            message = action(self.logic)
        except InteractiveSegError as e:
            message = str(e)
        self.app._show(
            message=message, online_status=self.logic.status_text(), voxels=self.app.controller.voxel_count()
        )
        self.app._render()
