"""InteractiveSeg in the browser: a trame-slicer app on one volume at a time.

    interactiveseg web --image ct.nii.gz [--labels out.seg.nrrd] [--port 8080]
    (or python -m InteractiveSegWeb.app ... with InteractiveSeg/ on the path)

In a slice view, in the toolbar's hint mode: Click (press: inside; Ctrl + press: outside;
drag: the click moves and the result follows), Scribble (a stroke), Box (corner to
corner), Extreme points (four presses). Propagate carries the selected class's largest
slice through the volume (3D engines), Next slice takes the views to the slice the engine
trusts least, Cancel stops a long job. Undo, Redo, the engine, its model card and Save
(.seg.nrrd) are in the toolbar; online learning on a ``--task`` folder in its panel.

Only the files named on the command line are read or written (``--image``; ``--labels``:
loaded if it exists, written by Save; ``--model``; ``--task``), and with ``--root DIR`` the
volumes under that folder (picked by name in the page, refused outside it). The server
listens on 127.0.0.1 unless ``--host`` says otherwise. Slices only: the 3D view (segment
surfaces) and volume rendering are off until switched on.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from InteractiveSegLib.errors import ImageError, InteractiveSegError
from InteractiveSegLib.hints import slice_index
from InteractiveSegSlicer import engine_info, hint_marks, slice_views
from InteractiveSegSlicer.controller import InteractiveController, Result
from InteractiveSegSlicer.gestures import MODES, Action, GestureTracker

from . import files
from .effect import KEY, PRESS, RELEASE, InteractiveSegEffect, ViewEvent
from .page import MODE_LABELS

#: Engines offered in the toolbar (those this process can run): single-class engines that
#: take hints on any segment; ``finetune`` adapts the ``--model`` given on the command line.
ENGINES = ("click", "growcut", "vmn", "vmn-growcut", "vmn-registration", "prompt3d", "finetune", "finetune-3d")
LOCAL_HOST = "127.0.0.1"
log = logging.getLogger("InteractiveSegWeb")
SHOW_PROGRESS_AFTER_S = 0.5  # a click is done well before: the bar and Cancel only for long jobs


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
        image: volume file (or DICOM folder) to segment.
        labels: ``.seg.nrrd`` loaded if it exists and written by Save (default beside the image).
        engine: engine selected at start.
        server: a trame server (default: a new one).
        model: the user's model for the finetune engines (a file named on the command line).
        task: an online-learning task folder (created if missing); None hides the panel.
        root: a folder whose volumes the page may open (``files``); None: only ``image``.
        trust_code: let ``model`` run code when it loads (a pickled module; the user said so
            on the command line); otherwise such a model is refused with a message.
    """

    def __init__(
        self,
        image: Path,
        labels: Path | None = None,
        engine: str = "click",
        server: Any = None,
        model: Path | None = None,
        task: Path | None = None,
        root: Path | None = None,
        trust_code: bool = False,
    ) -> None:
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

        self.root = Path(root).resolve() if root is not None else None
        self.model = model
        self.trust_code = trust_code
        self.last_slice: tuple[int, int] | None = None  # (KJI axis, index) of the last hint: "Slice done"
        self._open(Path(image), Path(labels) if labels is not None else None, engine)
        self.online = None
        if task is not None:
            from .online_panel import OnlinePanel

            self.online = OnlinePanel(self, task)

        state = self.server.state
        state.trame__title = "InteractiveSeg"
        names = self.controller.engine_names()
        state.engines = [e for e in ENGINES if e in names and (model is not None or not e.startswith("finetune"))]
        state.engine = self.controller.engine
        state.modes = [{"value": m, "title": MODE_LABELS[m]} for m in MODES]
        state.mode = self.tracker.mode
        state.modes_taken = sorted(self.controller.takes())
        state.negative = False
        state.voxels = self.controller.voxel_count()
        state.message = f"{self.image.name}: click inside a structure (Ctrl + click: outside)"
        state.segments = self._segment_items()
        state.segment = self.segment_id
        state.files = files.list_images(self.root) if self.root is not None else []
        state.file = None
        state.busy = False
        state.progress_shown = False
        state.progress = 0.0
        state.hints = 0  # results shown so far (a client can wait for the next one)
        state.latency_ms = 0.0
        state.next_slice = ""
        state.view_3d = False
        state.volume_rendering = False
        state.card_shown = False
        state.card_title = ""
        state.card_text = ""
        state.change("engine")(self._on_engine)
        state.change("segment")(self._on_segment)
        state.change("mode")(self._on_mode)
        state.change("negative")(self._on_negative)
        state.change("view_3d")(self._on_view_3d)
        state.change("volume_rendering")(self._on_volume_rendering)
        self._build_ui()

    def _open(self, image: Path, labels: Path | None, engine: str) -> None:
        """Show ``image`` (and ``labels`` if it exists) with a new controller; what was open
        before is removed from the scene only once the new volume has loaded."""
        volume_node = self._load_volume(image)
        editor = self.slicer.segmentation_editor
        labels_path = labels if labels is not None else default_labels_path(image)
        segmentation = None
        if labels is not None and labels_path.is_file():
            segmentation = editor.load_segmentation_from_file(str(labels_path))
            if segmentation is None:
                self.slicer.scene.RemoveNode(volume_node)
                raise ImageError(f"{labels_path}: cannot read this segmentation")
        old = getattr(self, "controller", None)
        if old is not None:
            old.logic.store.reset(old.volumeNode)
            for node in (old.volumeNode, old.segmentationNode):
                if node is not None:
                    self.slicer.scene.RemoveNode(node)
            hint_marks.clear_hints(self.slicer.scene)
            slice_views.hide_highlights(self.slicer.scene)
        self.image, self.labels_path, self.volume_node = image, labels_path, volume_node
        self.slicer.display_manager.show_volume_in_slice_background(volume_node)
        self.slicer.display_manager.reset_views()
        self.controller = InteractiveController(
            volume_node, segmentation, engine=engine, logic=old.logic if old is not None else None
        )
        if self.model is not None:
            self.controller.engine_kwargs = {"model": str(self.model)}
            self.controller.ask_trust = (lambda _reason: True) if self.trust_code else None
        if segmentation is not None and segmentation.GetSegmentation().GetNumberOfSegments() > 0:
            self.segment_id = segmentation.GetSegmentation().GetNthSegmentID(0)
            self.controller.select_segment(self.segment_id)
        else:
            self.segment_id = self.controller.ensure_segmentation()
        editor.set_active_segmentation(self.controller.segmentationNode, volume_node)
        editor.set_active_segment_id(self.segment_id)
        self.effect = editor.set_active_effect_type(InteractiveSegEffect)  # on the segmentation just set
        self.effect.on_event = self.on_event
        mode = self.tracker.mode if hasattr(self, "tracker") else "click"
        self.tracker = GestureTracker(self.controller, mode if mode in self.controller.takes() else "click")
        self.last_slice = None

    def open_file(self) -> None:
        """Load the volume picked in the page (a name under ``--root``; its ``.seg.nrrd``
        beside it is where Save writes). A bad file: one line, the open volume stays."""
        name = self.server.state.file
        try:
            if self.root is None or not name:
                raise ImageError("pick a volume under the root folder first")
            path = files.resolve(self.root, name)
            self._open(path, default_labels_path(path), self.controller.engine)
        except InteractiveSegError as e:
            self._show(message=str(e))
            return
        self._show(
            message=f"{path.name}: click inside a structure (Ctrl + click: outside)",
            voxels=self.controller.voxel_count(),
            segments=self._segment_items(),
            segment=self.segment_id,
            mode=self.tracker.mode,
            next_slice="",
            view_3d=False,
        )
        self._render()

    def add_segment(self) -> None:
        """A new class (the next free label value) becomes the selected segment."""
        from InteractiveSegSlicer import segment_io

        labels = segment_io.labels_from_segmentation(self.controller.segmentationNode)
        value = max(labels.values, default=0) + 1
        self.controller.label, self.controller.segment_name = value, f"Segment {value}"
        self.controller.labels = None
        self.segment_id = self.controller.ensure_segmentation()
        self.slicer.segmentation_editor.set_active_segment_id(self.segment_id)
        self._show(segments=self._segment_items(), segment=self.segment_id, voxels=0, message=f"Segment {value} added")

    def _on_segment(self, segment: str, **_: Any) -> None:
        if not segment or segment == self.segment_id:
            return
        try:
            self.controller.select_segment(segment)
        except InteractiveSegError as e:
            self._show(message=str(e), segment=self.segment_id)
            return
        self.segment_id = segment
        self.slicer.segmentation_editor.set_active_segment_id(segment)
        self._show(voxels=self.controller.voxel_count())

    def _segment_items(self) -> list[dict]:
        seg = self.controller.segmentationNode.GetSegmentation()
        ids = [seg.GetNthSegmentID(n) for n in range(seg.GetNumberOfSegments())]
        return [{"value": sid, "title": seg.GetSegment(sid).GetName()} for sid in ids]

    def _load_volume(self, path: Path) -> Any:
        """The volume node of a file or a DICOM folder (ImageError: unreadable, not 3D)."""
        from InteractiveSegSlicer import geometry

        if path.is_dir():  # a DICOM series: its files (trame-slicer's reader sorts the slices)
            files = sorted(str(f) for f in path.iterdir() if f.is_file())
            volumes = self.slicer.io_manager.load_volumes(files) if files else []
        elif path.is_file():
            volumes = self.slicer.io_manager.load_volumes([str(path)])
        else:
            volumes = []
        if not volumes:
            raise ImageError(f"{path}: cannot read this image")
        node = volumes[0]
        geometry.volume_from_node(node)  # ImageError: 2D, 4D, RGB, NaN
        return node

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
        from .page import build_page

        self.ui = build_page(self)

    # -- gestures ---------------------------------------------------------------------------
    def on_event(self, event: ViewEvent) -> None:
        """From the effect (a slice view's left button): the gesture's rules, then its action."""
        if event.kind == KEY:
            self._on_key(event.key, event.ctrl)
            return
        try:
            if event.kind == PRESS:
                action = self.tracker.press(event.ras, event.pixel, event.normal, event.ctrl)
            elif event.kind == RELEASE:
                action = self.tracker.release(event.ras, event.pixel)
            else:
                action = self.tracker.move(event.ras, event.pixel)
            self._draw_stroke(event)
            self._act(action)
        except InteractiveSegError as e:
            self._show(message=str(e))

    def _draw_stroke(self, event: ViewEvent) -> None:
        """The scribble or box in progress in every view (hidden once released)."""
        stroke = self.tracker.stroke
        if stroke is None or stroke.kind not in ("scribble", "box"):
            hint_marks.show_stroke(self.slicer.scene, [])
            return
        points = hint_marks.outline(stroke.kind, self.tracker.points, np.asarray(event.slice_to_ras))
        hint_marks.show_stroke(self.slicer.scene, points, stroke.positive)

    def _on_key(self, key: str, ctrl: bool) -> None:
        """The effect's keys: n, Escape, Ctrl+Z, Ctrl+Y (as in Slicer)."""
        if key == "n" and not ctrl:
            self.next_slice()
        elif key == "Escape":
            self.cancel()
        elif ctrl and key in ("z", "y") and not self.server.state.busy:
            (self.undo if key == "z" else self.redo)()

    def _act(self, action: Action) -> None:
        from trame_server.utils.asynchronous import create_task

        if action.message:
            self._show(message=action.message)
        if action.hint is not None:
            op = self.controller.submit_gesture(action.hint, action.verb)  # refused (one line) while a job runs
            self.last_slice = (int(action.hint.axis), slice_index(action.hint))
            create_task(self._finish(op))
        elif action.move_to is not None:  # while the click computes, finish applies the move
            self._run_sync(lambda: self.controller.move_click(action.move_to))

    async def _finish(self, op) -> None:
        """Wait for the job (progress bar and Cancel after ``SHOW_PROGRESS_AFTER_S``), then
        write its result here, on the server's thread."""
        self._show(busy=True)
        while not op.job.done:
            waited = time.perf_counter() - op.started
            self._show(progress_shown=waited > SHOW_PROGRESS_AFTER_S, progress=float(op.job.progress))
            await asyncio.sleep(0.005 if waited < SHOW_PROGRESS_AFTER_S else 0.1)
        self._show(progress_shown=False, progress=0.0)
        try:
            result = self.controller.finish(op)
        except InteractiveSegError as e:
            self._show(busy=False, message=str(e))
            return
        except Exception as e:  # an engine's fault: the page gets one line, the log the traceback
            log.exception("%s failed", op.verb)
            self._show(busy=False, message=f"{op.verb} failed ({type(e).__name__}: {e}); nothing changed")
            return
        self._show_result(result, time.perf_counter() - op.started)

    # -- buttons ----------------------------------------------------------------------------
    def propagate(self) -> None:
        """The selected class's largest slice (in the orientation of the last hint), carried
        through the volume by a 3D engine."""
        from trame_server.utils.asynchronous import create_task

        try:  # along the axis the user last drew on (axial before any hint)
            axis = self.last_slice[0] if self.last_slice is not None else None
            orientation = "Axial" if axis is None else slice_views.orientation_for_axis(self.volume_node, axis)
            op = self.controller.submit_propagation(orientation)
        except InteractiveSegError as e:
            self._show(message=str(e))
            return
        self._show(engine=self.controller.engine)
        create_task(self._finish(op))

    def next_slice(self) -> None:
        """Take the view of the suggested slice's orientation there, highlight it, show its score."""
        try:
            result = self.controller.highlight_next_slice()
        except InteractiveSegError as e:
            self._show(message=str(e))
            return
        if result.slice is None:
            engine = self.controller.engine
            self._show(next_slice="", message=f"engine {engine!r} rates no slice yet (vmn after a hint)")
            return
        axis, index, score = result.slice
        view = self._slice_view(slice_views.orientation_for_axis(self.volume_node, axis))
        if view is not None:
            slice_views.show_slice(view.get_view_node(), self.volume_node, axis, index)
        text = f"next slice {index}: predicted IoU {score:.2f}"
        name = {0: "axial", 1: "coronal", 2: "sagittal"}.get(axis, str(axis))
        self._show(next_slice=text, message=f"the {name} view shows it, highlighted:")
        self._render()

    def cancel(self) -> None:
        """Cancel (Escape): the running job, the gesture in progress, the extreme points placed."""
        running = self.controller.running
        dropped = self.tracker.cancel()
        hint_marks.show_stroke(self.slicer.scene, [])
        text = "cancelling..." if running else ("the points placed were dropped" if dropped else "nothing to cancel")
        self._show(message=text)

    def undo(self) -> None:
        self._run_sync(self.controller.undo)

    def redo(self) -> None:
        self._run_sync(self.controller.redo)

    def show_model_card(self) -> None:
        engine = self.controller.engine
        self._show(
            card_title=f"Model card: {engine} ({engine_info.device_summary()})",
            card_text=engine_info.model_card(engine),
            card_shown=True,
        )

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
        if result is not None:  # None: queued behind the running job
            self._show_result(result, time.perf_counter() - start)

    # -- settings ---------------------------------------------------------------------------
    def _on_engine(self, engine: str, **_: Any) -> None:
        """Another engine: the hint modes it does not take are greyed (Click if the mode was one)."""
        try:
            self.controller.set_engine(engine)
            taken = self.controller.takes()
        except InteractiveSegError as e:
            self._show(message=str(e), engine=self.controller.engine)
            return
        self._show(modes_taken=sorted(taken), message=f"engine {engine}")
        if self.tracker.mode not in taken:
            self._show(mode="click")

    def _on_mode(self, mode: str, **_: Any) -> None:
        try:
            self.tracker.set_mode(mode)
        except InteractiveSegError as e:
            self._show(message=str(e), mode=self.tracker.mode)
            return
        hints = {"click": "click inside (Ctrl: outside), drag to move", "scribble": "draw a stroke"}
        hints |= {"box": "drag from corner to corner", "extreme": "press on the 4 extreme points"}
        self._show(message=f"{MODE_LABELS[mode]}: {hints[mode]}")

    def _on_negative(self, negative: bool, **_: Any) -> None:
        self.tracker.negative = bool(negative)

    def _on_view_3d(self, view_3d: bool, **_: Any) -> None:
        """The 3D view with the segments' surfaces (volume rendering stays a second switch)."""
        self.layout_manager.set_layout("With 3D" if view_3d else "Slices")
        if view_3d:
            self.controller.segmentationNode.CreateClosedSurfaceRepresentation()
            for view in self.slicer.view_manager.get_threed_views():
                view.reset_view()
        elif self.server.state.volume_rendering:
            self._show(volume_rendering=False)

    def _on_volume_rendering(self, volume_rendering: bool, **_: Any) -> None:
        if volume_rendering:
            self.slicer.display_manager.show_volume(self.volume_node, vr_preset="MR-Default")
        else:
            vr = self.slicer.scene.GetFirstNodeByClass("vtkMRMLVolumeRenderingDisplayNode")
            if vr is not None:
                vr.SetVisibility(False)
        self._render()

    # -- page -------------------------------------------------------------------------------
    def _slice_view(self, orientation: str) -> Any:
        for view in self.slicer.view_manager.get_slice_views():
            if view.get_view_node().GetOrientation() == orientation:
                return view
        return None

    def _show_result(self, result: Result, seconds: float) -> None:
        self._show(
            busy=False,
            voxels=result.voxels,
            message=result.message,
            latency_ms=1000.0 * seconds,
            hints=self.server.state.hints + 1,
        )
        self._render()

    def _render(self) -> None:
        for view in self.slicer.view_manager.get_views():
            view.schedule_render()

    def _show(self, **values: Any) -> None:
        with self.server.state as state:
            for key, value in values.items():
                state[key] = value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="interactiveseg web", description=__doc__.split("\n\n")[0])
    p.add_argument("--image", required=True, type=Path, help="volume to segment (NIfTI, NRRD, MHA, DICOM folder)")
    p.add_argument("--labels", type=Path, help=".seg.nrrd: loaded if it exists, written by Save")
    p.add_argument("--engine", default="click", help="engine at start (default: click)")
    p.add_argument("--model", type=Path, help="your model for the finetune engines (checkpoint, TorchScript, bundle)")
    p.add_argument(
        "--trust-code", action="store_true", help="let --model run code when it loads (only a model you trust)"
    )
    p.add_argument("--root", type=Path, help="a folder whose volumes the page may open (nothing outside it)")
    p.add_argument("--task", type=Path, help="online-learning task folder (created if missing): shows its panel")
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
        app = InteractiveSegWebApp(
            args.image,
            args.labels,
            args.engine,
            model=args.model,
            task=args.task,
            root=args.root,
            trust_code=args.trust_code,
        )
    except InteractiveSegError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"InteractiveSeg: {args.image} on http://{host}:{args.port}/ (Save writes {app.labels_path})", flush=True)
    app.server.start(port=args.port, host=host, open_browser=False, timeout=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
