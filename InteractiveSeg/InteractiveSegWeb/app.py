"""InteractiveSeg in the browser: a trame-slicer app on one volume.

    interactiveseg web --image ct.nii.gz [--labels out.seg.nrrd] [--port 8080]
    (or python -m InteractiveSegWeb.app ... with InteractiveSeg/ on the path)

Click in a slice view: positive hint; Ctrl + click: negative. Undo, Redo, the engine and
Save (.seg.nrrd) are in the toolbar. Only the files named on the command line are read
or written (``--image``; ``--labels``: loaded if it exists, written by Save); the browser
never names a path. The server listens on 127.0.0.1 unless ``--host`` says otherwise.
Slices only: volume rendering is off until the toolbar's switch turns it on.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from InteractiveSegLib.errors import ImageError, InteractiveSegError
from InteractiveSegSlicer.controller import InteractiveController, Result

from .effect import InteractiveSegEffect

#: Engines offered in the toolbar (those this process can run).
ENGINES = ("click", "growcut", "vmn-growcut", "vmn")
LOCAL_HOST = "127.0.0.1"


def default_labels_path(image: Path) -> Path:
    """``<image stem>.seg.nrrd`` beside the image (``ct.nii.gz`` -> ``ct.seg.nrrd``)."""
    name = image.name
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    return image.with_name(name + ".seg.nrrd")


class InteractiveSegWebApp:
    """The trame server, the Slicer scene with the volume, and the controller.

    Args:
        image: volume file to segment.
        labels: ``.seg.nrrd`` loaded if it exists and written by Save (default beside the image).
        engine: engine selected at start.
        server: a trame server (default: a new one).
    """

    def __init__(self, image: Path, labels: Path | None = None, engine: str = "click", server: Any = None) -> None:
        from trame.app import get_server
        from trame_slicer import module as trame_slicer_module
        from trame_slicer.core import LayoutManager, SlicerApp
        from trame_slicer.rca_view import register_rca_factories

        self.server = server or get_server(None, client_type="vue3")
        self.server.enable_module(trame_slicer_module)
        self.slicer = SlicerApp()
        register_rca_factories(self.slicer.view_manager, self.server)
        self.layout_manager = LayoutManager(self.slicer.scene, self.slicer.view_manager, self.server)
        self.layout_manager.register_layout_dict(self._layouts())
        self.layout_manager.set_layout("Slices")

        self.image = Path(image)
        self.labels_path = Path(labels) if labels is not None else default_labels_path(self.image)
        volumes = self.slicer.io_manager.load_volumes([str(self.image)]) if self.image.is_file() else []
        if not volumes:
            raise ImageError(f"{self.image}: cannot read this image")
        self.volume_node = volumes[0]
        self.slicer.display_manager.show_volume_in_slice_background(self.volume_node)
        self.slicer.display_manager.reset_views()

        editor = self.slicer.segmentation_editor
        segmentation = None
        if labels is not None and self.labels_path.is_file():
            segmentation = editor.load_segmentation_from_file(str(self.labels_path))
            if segmentation is None:
                raise ImageError(f"{self.labels_path}: cannot read this segmentation")
        self.controller = InteractiveController(self.volume_node, segmentation, engine=engine)
        if segmentation is not None and segmentation.GetSegmentation().GetNumberOfSegments() > 0:
            segment_id = segmentation.GetSegmentation().GetNthSegmentID(0)
            self.controller.select_segment(segment_id)
        else:
            segment_id = self.controller.ensure_segmentation()
        editor.set_active_segmentation(self.controller.segmentationNode, self.volume_node)
        editor.set_active_segment_id(segment_id)
        self.effect = editor.set_active_effect_type(InteractiveSegEffect)
        self.effect.on_click = self.on_click

        state = self.server.state
        state.trame__title = "InteractiveSeg"
        state.engines = [e for e in ENGINES if e in self.controller.engine_names()]
        state.engine = self.controller.engine
        state.voxels = self.controller.voxel_count()
        state.message = f"{self.image.name}: click inside a structure (Ctrl + click: outside)"
        state.busy = False
        state.hints = 0  # results shown so far (a client can wait for the next one)
        state.latency_ms = 0.0
        state.volume_rendering = False
        state.change("engine")(self._on_engine)
        state.change("volume_rendering")(self._on_volume_rendering)
        self._build_ui()

    @staticmethod
    def _layouts() -> dict:
        from trame_slicer.core import LayoutManager
        from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition

        axial, coronal, sagittal = (
            ViewLayoutDefinition.axial_view(),
            ViewLayoutDefinition.coronal_view(),
            ViewLayoutDefinition.sagittal_view(),
        )
        slices = Layout(LayoutDirection.Horizontal, [axial, Layout(LayoutDirection.Vertical, [coronal, sagittal])])
        return {"Slices": slices, "With 3D": LayoutManager.default_grid_configuration()["Axial Primary"]}

    def _build_ui(self) -> None:
        from trame.widgets import html
        from trame_vuetify.ui.vuetify3 import SinglePageLayout
        from trame_vuetify.widgets import vuetify3 as v3

        with SinglePageLayout(self.server, full_height=True) as self.ui:
            self.ui.title.set_text("InteractiveSeg")
            with self.ui.toolbar:
                v3.VSpacer()
                v3.VSelect(
                    v_model=("engine",),
                    items=("engines",),
                    label="Engine",
                    density="compact",
                    hide_details=True,
                    style="max-width: 180px",
                    id="is-engine",
                )
                v3.VBtn("Undo", click=self.undo, disabled=("busy",), id="is-undo", classes="mx-1")
                v3.VBtn("Redo", click=self.redo, disabled=("busy",), id="is-redo", classes="mx-1")
                v3.VBtn("Save .seg.nrrd", click=self.save, disabled=("busy",), id="is-save", classes="mx-1")
                v3.VSwitch(
                    v_model=("volume_rendering",), label="3D", hide_details=True, density="compact", classes="mx-2"
                )
            with self.ui.content:
                with html.Div(classes="d-flex flex-column", style="height: 100%"):
                    with html.Div(classes="px-2 text-body-2", style="flex: none"):
                        html.Span("Voxels: ")
                        html.Span("{{ voxels }}", id="is-voxels")
                        html.Span(" | hints: ")
                        html.Span("{{ hints }}", id="is-hints")
                        html.Span(" | ")
                        html.Span("{{ latency_ms.toFixed(0) }}", id="is-latency")
                        html.Span(" ms | ")
                        html.Span("{{ message }}", id="is-message")
                    with html.Div(style="flex: 1; position: relative"):
                        self.layout_manager.initialize_layout_grid(self.ui)

    # -- actions --------------------------------------------------------------------------
    def on_click(self, ras: Sequence[float], normal: Sequence[float], positive: bool) -> None:
        """From the effect (a slice view's left button): run the hint without blocking the server."""
        from trame_server.utils.asynchronous import create_task

        create_task(self.click(ras, normal, positive))

    async def click(self, ras: Sequence[float], normal: Sequence[float], positive: bool) -> None:
        """A positive (or negative) click: prepared here, computed on the inference thread,
        written here once done; the page shows the class's voxels and the latency."""
        start = time.perf_counter()
        verb = "click" if positive else "negative click"
        try:
            op = self.controller.submit(self.controller.hint("click", [ras], positive, normal), verb)
            self._show(busy=True)
            while not op.job.done:
                await asyncio.sleep(0.005)
            result = self.controller.finish(op)
        except InteractiveSegError as e:
            self._show(busy=False, message=str(e))
            return
        self._show_result(result, time.perf_counter() - start)

    def undo(self) -> None:
        self._run_sync(self.controller.undo)

    def redo(self) -> None:
        self._run_sync(self.controller.redo)

    def save(self) -> None:
        """Write the segmentation to the ``--labels`` path, all at once (``io.write_atomic``:
        the user's umask, the old file kept if the write fails)."""
        from slicer import vtkMRMLSegmentationStorageNode

        from InteractiveSegLib.io import write_atomic

        def write(tmp: Path) -> None:
            storage = vtkMRMLSegmentationStorageNode()
            storage.SetFileName(str(tmp))
            if not storage.WriteData(self.controller.segmentationNode):
                raise OSError(f"could not write {self.labels_path}")

        try:
            write_atomic(self.labels_path, write)
        except OSError as e:
            self._show(message=str(e))
            return
        self._show(message=f"saved {self.labels_path}")

    def _run_sync(self, verb) -> None:
        start = time.perf_counter()
        try:
            result = verb()
        except InteractiveSegError as e:
            self._show(message=str(e))
            return
        self._show_result(result, time.perf_counter() - start)

    def _on_engine(self, engine: str, **_: Any) -> None:
        try:
            self.controller.set_engine(engine)
        except InteractiveSegError as e:
            self._show(message=str(e), engine=self.controller.engine)

    def _on_volume_rendering(self, volume_rendering: bool, **_: Any) -> None:
        self.layout_manager.set_layout("With 3D" if volume_rendering else "Slices")
        if volume_rendering:
            self.slicer.display_manager.show_volume(self.volume_node, vr_preset="MR-Default")

    def _show_result(self, result: Result, seconds: float) -> None:
        self._show(
            busy=False,
            voxels=result.voxels,
            message=result.message,
            latency_ms=1000.0 * seconds,
            hints=self.server.state.hints + 1,
        )
        for view in self.slicer.view_manager.get_views():
            view.schedule_render()

    def _show(self, **values: Any) -> None:
        with self.server.state as state:
            for key, value in values.items():
                state[key] = value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="interactiveseg web", description=__doc__.split("\n\n")[0])
    p.add_argument("--image", required=True, type=Path, help="volume to segment (NIfTI, NRRD, MHA)")
    p.add_argument("--labels", type=Path, help=".seg.nrrd: loaded if it exists, written by Save")
    p.add_argument("--engine", default="click", help="engine at start (default: click)")
    p.add_argument("--port", type=int, default=8080, help="port (0: any free one)")
    p.add_argument("--host", default=None, help=f"address to listen on (default {LOCAL_HOST}: this machine only)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the app until interrupted.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).
    Returns:
        The exit status (2: an unusable image or segmentation)."""
    args = parse_args(argv)
    if args.labels is not None and not str(args.labels).endswith(".seg.nrrd"):
        print(f"error: --labels {args.labels}: must end in .seg.nrrd", file=sys.stderr)
        return 2
    host = LOCAL_HOST
    if args.host is not None:
        host = args.host
        if host not in (LOCAL_HOST, "localhost", "::1"):
            print(
                f"WARNING: listening on {host}: anyone who can reach this address can view and edit "
                "the segmentation (no authentication)",
                file=sys.stderr,
            )
    # trame reads sys.argv itself (--host, --port, ...): only what main() parsed counts
    sys.argv = sys.argv[:1]
    try:
        app = InteractiveSegWebApp(args.image, args.labels, args.engine)
    except InteractiveSegError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"InteractiveSeg: {args.image} on http://{host}:{args.port}/ (Save writes {app.labels_path})", flush=True)
    app.server.start(port=args.port, host=host, open_browser=False, timeout=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
