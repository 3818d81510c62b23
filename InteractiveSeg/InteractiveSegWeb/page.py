"""The page of the web app: toolbar, hint row, status line, the views and the model card.

Why apart from ``app``: layout only (Vuetify widgets bound to the app's state and methods);
what each control does is the app's business.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from InteractiveSegSlicer.gestures import MODES

if TYPE_CHECKING:
    from .app import InteractiveSegWebApp

MODE_LABELS = {"click": "Click", "scribble": "Scribble", "box": "Box", "extreme": "Extreme points"}


def _select(key: str, items: str, label: str, min_px: int, max_px: int) -> Any:
    """A compact drop-down bound to state ``key`` (id ``is-<key>``), its choices in ``items``."""
    from trame_vuetify.widgets import vuetify3 as v3

    return v3.VSelect(
        v_model=(key,),
        items=(items,),
        label=label,
        density="compact",
        hide_details=True,
        style=f"min-width: {min_px}px; max-width: {max_px}px",
        id=f"is-{key}",
        classes="mx-1",
    )


def build_page(app: InteractiveSegWebApp) -> Any:
    """Build the single-page layout on ``app.server``.

    Args:
        app: the web app (its state names and methods are bound to the widgets).
    Returns: the trame layout."""
    from trame.widgets import html
    from trame_vuetify.ui.vuetify3 import SinglePageLayout
    from trame_vuetify.widgets import vuetify3 as v3

    with SinglePageLayout(app.server, full_height=True) as ui:
        ui.title.set_text("InteractiveSeg")
        with ui.toolbar:
            v3.VSpacer()
            _select("engine", "engines", "Engine", 190, 220)
            v3.VBtn("Model card", click=app.show_model_card, id="is-card", classes="mx-1", size="small")
            _select("segment", "segments", "Segment", 150, 200)
            v3.VBtn("+", click=app.add_segment, disabled=("busy",), id="is-add-segment", size="small")
            if app.root is not None:
                _select("file", "files", "Volume", 200, 300)
                v3.VBtn("Open", click=app.open_file, disabled=("busy",), id="is-open", size="small")
            v3.VBtn("Save .seg.nrrd", click=app.save, disabled=("busy",), id="is-save", classes="mx-1", size="small")
            v3.VSwitch(v_model=("view_3d",), label="3D", hide_details=True, density="compact", id="is-3d")
            v3.VSwitch(
                v_model=("volume_rendering",),
                label="Volume rendering",
                hide_details=True,
                density="compact",
                disabled=("!view_3d",),
                id="is-vr",
                classes="ml-2",
            )
        with ui.content:
            with html.Div(classes="d-flex flex-column", style="height: 100%"):
                with html.Div(classes="px-2 pt-1 d-flex align-center flex-wrap", style="flex: none; gap: 4px"):
                    with v3.VBtnToggle(v_model=("mode",), mandatory=True, density="compact", id="is-mode"):
                        for m in MODES:
                            v3.VBtn(
                                MODE_LABELS[m],
                                value=m,
                                id=f"is-mode-{m}",
                                size="small",
                                disabled=(f"!modes_taken.includes('{m}')",),
                            )
                    v3.VSwitch(
                        v_model=("negative",),
                        label="Negative",
                        hide_details=True,
                        density="compact",
                        id="is-negative",
                        classes="mx-2 flex-grow-0",
                    )
                    for text, action, name in (
                        ("Propagate", app.propagate, "propagate"),
                        ("Next slice", app.next_slice, "next"),
                        ("Undo", app.undo, "undo"),
                        ("Redo", app.redo, "redo"),
                    ):
                        v3.VBtn(text, click=action, disabled=("busy",), id=f"is-{name}", size="small")
                    v3.VProgressLinear(
                        v_show=("progress_shown",),
                        model_value=("progress * 100",),
                        indeterminate=("progress === 0",),
                        style="max-width: 200px",
                        classes="mx-2",
                        id="is-progress",
                    )
                    v3.VBtn("Cancel", v_show=("progress_shown",), click=app.cancel, id="is-cancel", size="small")
                with html.Div(classes="px-2 text-body-2", style="flex: none"):
                    html.Span("Voxels: ")
                    html.Span("{{ voxels }}", id="is-voxels")
                    html.Span(" | hints: ")
                    html.Span("{{ hints }}", id="is-hints")
                    html.Span(" | ")
                    html.Span("{{ latency_ms.toFixed(0) }}", id="is-latency")
                    html.Span(" ms | ")
                    html.Span("{{ message }}", id="is-message")
                    html.Span(" ")
                    html.Span("{{ next_slice }}", id="is-next-slice", classes="font-weight-bold")
                if app.online is not None:
                    app.online.build()
                with html.Div(style="flex: 1; position: relative"):
                    app.layout_manager.initialize_layout_grid(ui)
        with v3.VDialog(v_model=("card_shown",), max_width=900, scrollable=True):
            with v3.VCard():
                v3.VCardTitle("{{ card_title }}")
                with v3.VCardText():
                    html.Pre("{{ card_text }}", style="white-space: pre-wrap", id="is-card-text")
                with v3.VCardActions():
                    v3.VBtn("Close", click="card_shown = false", id="is-card-close")
    return ui
