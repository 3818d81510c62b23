"""InteractiveSeg in the browser: the Qt-free ``InteractiveController`` on real MRML, and the
trame-slicer web app end to end in headless Chromium (Debian's ``chromium``), driven through
the Chrome DevTools protocol (aiohttp's websocket client, already a trame dependency).

The browser test starts ``python -m InteractiveSegWeb.app`` on a free port with a crop of
Colin27, clicks in the axial view with real mouse events, Ctrl+clicks, presses Undo and
Save, and checks the page's voxel count against the saved ``.seg.nrrd``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from InteractiveSegLib.errors import InteractionError, InteractiveSegError

DEADLINE_S = 120.0  # how long to wait for the server or the page before failing (not a timing assert)


# --- the controller on real MRML ---------------------------------------------------------------
@pytest.fixture
def controller(slicer_app, scene, colin_crop):
    from InteractiveSegSlicer.controller import InteractiveController

    node = slicer_app.io_manager.load_volumes([str(colin_crop)])[0]
    return InteractiveController(node, engine="growcut")


def centre_ras(controller) -> np.ndarray:
    from InteractiveSegSlicer import geometry

    dims = controller.volumeNode.GetImageData().GetDimensions()
    return np.asarray(geometry.ijk_to_world(controller.volumeNode, [d // 2 for d in dims]))


def test_controller_click_negative_click_undo_redo(controller):
    ras = centre_ras(controller)
    first = controller.click(ras)
    assert first.changed > 0 and first.voxels == first.changed
    assert controller.segmentationNode is not None
    negative = controller.click(ras + [8.0, 0.0, 0.0], positive=False)
    assert negative.changed > 0 and negative.voxels != first.voxels
    undone = controller.undo()
    assert (undone.voxels, undone.changed) == (first.voxels, negative.changed)
    redone = controller.redo()
    assert redone.voxels == negative.voxels
    assert controller.redo().message == "nothing to redo"


def test_controller_bad_input_raises_and_changes_nothing(controller):
    ras = centre_ras(controller)
    before = controller.click(ras).voxels
    with pytest.raises(InteractionError, match="outside the image"):
        controller.click(ras + [0.0, 0.0, 500.0])
    with pytest.raises(InteractionError, match="oblique"):
        controller.click(ras, normal=(1.0, 1.0, 1.0))
    with pytest.raises(InteractiveSegError, match="unknown engine"):
        controller.set_engine("no-such-engine")
    assert controller.engine == "growcut" and controller.voxel_count() == before
    assert controller.undo().voxels == 0  # the refused hints made no step


def test_controller_four_extreme_points_make_one_hint_and_cancel_drops_them(controller):
    ras = centre_ras(controller)
    offsets = ([-6.0, 0, 0], [6.0, 0, 0], [0, -6.0, 0], [0, 6.0, 0])
    for n, off in enumerate(offsets[:3], start=1):
        assert controller.extreme_point(ras + off).message == f"extreme point {n} of 4"
    assert controller.cancel() is True
    assert controller.extreme_point(ras + offsets[0]).message == "extreme point 1 of 4"
    for off in offsets[1:3]:
        controller.extreme_point(ras + off)
    result = controller.extreme_point(ras + offsets[3])
    assert result.changed > 0 and result.message.startswith("extreme points")
    assert controller.undo().voxels == 0


def test_controller_cancel_drops_the_running_hint(controller):
    ras = centre_ras(controller)
    gate = threading.Event()  # holds the inference thread so that the hint is still queued
    controller.logic.worker.submit(lambda job=None: gate.wait(DEADLINE_S))
    op = controller.submit(controller.hint("click", [ras]), "click")
    with pytest.raises(InteractionError, match="still computing"):
        controller.click(ras)  # one hint at a time
    assert controller.cancel() is True
    gate.set()
    result = controller.finish(op)
    assert (result.changed, result.voxels, result.message) == (0, 0, "click: cancelled")
    assert controller.undo().message == "nothing to undo"
    assert controller.click(ras).voxels > 0  # usable again


# --- the web app in headless Chromium ----------------------------------------------------------
@pytest.fixture
def chromium():
    from InteractiveSegWeb import browser

    return browser.find_chromium()  # make setup installs Debian's chromium: missing is a failure, with its fix


def changed_pixels(before: bytes, after: bytes) -> int:
    """Pixels that differ between two PNG screenshots of the same view."""
    import io as stdio

    from PIL import Image

    a = np.asarray(Image.open(stdio.BytesIO(before)).convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(stdio.BytesIO(after)).convert("RGB"), dtype=np.int16)
    return int(np.count_nonzero(np.abs(a - b).sum(axis=2) > 30))


async def _shown_after(page, clip, results_before: int) -> tuple[dict, bytes]:
    """The next result and a screenshot of the view once a frame newer than it arrived."""
    result = await page.next_result(results_before)
    frames = await page.js("window.__is.frames.length")
    await page.wait_for(f"window.__is.frames.length > {frames}", "a new frame of the views", 30)
    return result, await page.screenshot(clip=clip)


async def _drive_gestures(url: str, shots: Path) -> dict:
    from InteractiveSegWeb import browser

    report: dict = {}
    async with browser.open_page(url) as page:
        await page.js(browser.LATENCY_PROBE)
        box = await page.view_box(0)
        x, y = box[0] + box[2] / 2, box[1] + box[3] / 2
        report["start"] = {"voxels": int(await page.text("is-voxels"))}
        before = await page.screenshot(clip=box)

        await page.click_at(box[0] + 3, y)  # the view's margin: outside the image
        await page.wait_for("document.getElementById('is-message').textContent.includes('outside the')", "refusal")
        report["outside"] = {"hints": await page.results(), "message": await page.text("is-message")}

        await page.click_at(x, y)
        report["click"], after = await _shown_after(page, box, 0)
        report["click_pixels"] = changed_pixels(before, after)
        await page.screenshot(shots / "click.png")

        await page.click_at(x, y, ctrl=True)
        report["ctrl_click"] = await page.next_result(1)
        await page.press_button("is-undo")
        report["undo"] = await page.next_result(2)

        n = await page.results()
        await page.drag([(x, y), (x + 8, y), (x + 16, y + 4)])  # a click dragged: it moves, the result follows
        report["drag"] = await page.next_result(n)
        await page.wait_for("!document.getElementById('is-undo').disabled", "the end of the drag")
        await asyncio.sleep(1.0)  # the last move's result
        report["drag_end"] = {"hints": await page.results(), "message": await page.text("is-message")}
        await page.key("z", ctrl=True)  # Ctrl+Z, as in Slicer
        report["drag_undo"] = await page.next_result(report["drag_end"]["hints"])

        await page.press_button("is-mode-scribble")
        await page.wait_for("document.getElementById('is-message').textContent.includes('Scribble')", "the mode")
        n = await page.results()
        await page.drag([(x - 40, y + 30), (x - 30, y + 32), (x - 20, y + 34), (x - 10, y + 36)], ctrl=True)
        report["scribble"] = await page.next_result(n)

        report["box_disabled"] = await page.js("document.getElementById('is-mode-box').disabled")
        await page.set_state("mode", "box")  # past the greyed button: the press is refused
        await page.drag([(x - 30, y - 30), (x, y), (x + 30, y + 30)])
        await page.wait_for("document.getElementById('is-message').textContent.includes('does not take')", "refusal")
        report["box_refused"] = {"hints": await page.results(), "message": await page.text("is-message")}

        await page.press_button("is-mode-extreme")
        n = await page.results()
        await page.click_at(x - 25, y)
        await page.wait_for("document.getElementById('is-message').textContent.includes('1 of 4')", "a point")
        await page.key("Escape")  # drops the point placed
        await page.wait_for("document.getElementById('is-message').textContent.includes('dropped')", "Escape")
        placed = []
        for dx, dy in ((-25, 0), (25, 0), (0, -25)):
            await page.click_at(x + dx, y + dy)
            await page.wait_for(
                f"document.getElementById('is-message').textContent.includes('extreme point {len(placed) + 1} of 4')",
                "the extreme point count",
            )
            placed.append(await page.results())
        report["extreme_before_fourth"] = placed
        await page.click_at(x, y + 25)
        report["extreme"] = await page.next_result(n)

        await page.key("n")  # next slice, as in Slicer
        await page.wait_for("document.getElementById('is-message').textContent.includes('rates no slice')", "advice")
        report["next_slice_growcut"] = await page.text("is-message")

        await page.press_button("is-save")
        await page.wait_for("document.getElementById('is-message').textContent.includes('saved')", "the saved message")
        report["saved_voxels"] = int(await page.text("is-voxels"))
    return report


def test_web_app_gestures_undo_save_in_chromium(chromium, colin_crop, tmp_path):
    """Every gesture of the effect's list in a real browser: click (and the page's pixels),
    Ctrl+click, drag a click, a negative scribble, a box refused by an engine that takes
    none, extreme points (Escape drops those placed), Undo (button and Ctrl+Z), n (Next
    slice) on an engine that rates none, Save."""
    from InteractiveSegWeb import browser

    from InteractiveSegLib import io

    labels = tmp_path / "out.seg.nrrd"
    with browser.web_server(colin_crop, labels, tmp_path / "server.log", ["--engine", "growcut"]) as url:
        r = asyncio.run(_drive_gestures(url, tmp_path))

    assert r["start"]["voxels"] == 0
    assert r["outside"]["hints"] == 0 and "outside the image" in r["outside"]["message"], r["outside"]
    click, ctrl_click, undo = r["click"], r["ctrl_click"], r["undo"]
    assert click["voxels"] > 0 and click["message"].startswith("click:"), click
    assert r["click_pixels"] > 50, "the segment is not visible in the axial view"
    assert ctrl_click["message"].startswith("negative click:") and ctrl_click["voxels"] < click["voxels"]
    assert undo["message"].startswith("undo:") and undo["voxels"] == click["voxels"]
    assert r["drag"]["message"].startswith(("click:", "click moved")), r["drag"]  # the press is a click...
    assert r["drag_end"]["message"] == "click moved"  # ...that the drag moved
    assert r["drag_undo"]["voxels"] == undo["voxels"]  # the click and its moves are one step
    assert r["scribble"]["message"].startswith("negative scribble:"), r["scribble"]
    assert r["box_disabled"] is True  # Grow from seeds takes no box
    assert r["box_refused"]["hints"] == r["scribble"]["hints"], r["box_refused"]
    assert "growcut" in r["box_refused"]["message"]
    assert r["extreme_before_fourth"] == [r["scribble"]["hints"]] * 3  # three points, no result yet
    assert r["extreme"]["message"].startswith("extreme points:"), r["extreme"]
    assert "rates no slice" in r["next_slice_growcut"]
    saved = io.read_labels(labels)
    assert int(np.count_nonzero(saved.labelmap)) == r["saved_voxels"]


async def _drive_vmn(url: str) -> dict:
    from InteractiveSegWeb import browser

    report: dict = {}
    async with browser.open_page(url) as page:
        box = await page.view_box(0)
        x, y = box[0] + box[2] / 2, box[1] + box[3] / 2
        report["start"] = int(await page.text("is-voxels"))
        await page.press_button("is-propagate")  # the whole brain through the volume: a long job
        await page.wait_for("document.getElementById('is-cancel').offsetParent !== null", "Cancel", 60)
        await page.press_button("is-cancel")
        report["cancelled"] = await page.next_result(0)

        await page.press_button("is-mode-box")
        n = await page.results()
        await page.click_at(x, y)  # a box needs a drag
        await page.wait_for("document.getElementById('is-message').textContent.includes('one corner')", "advice")
        report["box_no_drag"] = await page.results()
        await page.drag([(x - 20, y - 20), (x, y), (x + 20, y + 20)])
        report["box"] = await page.next_result(n)

        await page.press_button("is-next")
        await page.wait_for("document.getElementById('is-next-slice').textContent.includes('next slice')", "a slice")
        report["next_slice"] = await page.text("is-next-slice")
    return report


def test_web_app_vmn_cancel_box_and_next_slice_in_chromium(chromium, tmp_path):
    """On Colin27 with its whole-brain mask loaded: Propagate (VMN through the volume) is a
    long job that shows Cancel, and Cancel leaves the segmentation as it was; a box without
    a drag is no hint, a dragged box is; Next slice names a slice and its predicted IoU."""
    from InteractiveSegWeb import browser

    from InteractiveSegLib import io
    from InteractiveSegLib.data import datasets
    from InteractiveSegLib.labels import LabelTable

    colin = datasets.load("colin27")  # make setup installs mricron-data
    image = io.write_volume(tmp_path / "colin27.nii.gz", colin.image)
    brain = (colin.labels.labelmap > 0).astype(np.uint8)
    labels = io.write_seg_nrrd(tmp_path / "brain.seg.nrrd", brain, colin.image.geometry, LabelTable.default([1]))
    with browser.web_server(image, labels, tmp_path / "server.log", ["--engine", "vmn"]) as url:
        r = asyncio.run(_drive_vmn(url))
    assert r["start"] == int(brain.sum())
    assert r["cancelled"]["message"] == "propagate: cancelled", r["cancelled"]
    assert r["cancelled"]["voxels"] == r["start"]
    assert r["box_no_drag"] == r["cancelled"]["hints"]  # no hint from a box without a drag
    assert r["box"]["message"].startswith("box:"), r["box"]
    assert r["next_slice"].startswith("next slice") and "predicted IoU" in r["next_slice"]


async def _drive_online(url: str) -> dict:
    from InteractiveSegWeb import browser

    report: dict = {}
    async with browser.open_page(url) as page:
        box = await page.view_box(0)
        x, y = box[0] + box[2] / 2, box[1] + box[3] / 2

        async def press(name: str, expect: str, deadline_s: float = 120) -> str:
            await page.press_button(f"is-online-{name}")
            await page.wait_for(
                f"document.getElementById('is-message').textContent.includes({expect!r})", expect, deadline_s
            )
            return await page.text("is-online-status")

        await page.press_button("is-online-slice-done")
        await page.wait_for("document.getElementById('is-message').textContent.includes('first')", "advice")
        report["too_early"] = await page.text("is-message")
        report["started"] = await press("start", "started")
        await page.click_at(x, y)
        await page.next_result(0)
        report["recorded"] = await press("slice-done", "recorded")
        report["recorded_message"] = await page.text("is-message")
        report["trained"] = await press("train", "training round done", 300)
        report["proposed"] = await press("propose", "draw on")
        report["proposal"] = await page.text("is-message")
    return report


def test_web_app_online_learning_row_in_chromium(chromium, colin_crop, tmp_path):
    """``--task``: Start on the volume, Slice done records the slice of the last hint, Train
    runs a round on the inference thread, Propose names slices; the status line follows."""
    from InteractiveSegWeb import browser

    extra = ["--engine", "growcut", "--task", str(tmp_path / "task")]
    with browser.web_server(colin_crop, tmp_path / "out.seg.nrrd", tmp_path / "server.log", extra) as url:
        r = asyncio.run(_drive_online(url))
    assert "first" in r["too_early"]
    assert "0 rounds trained" in r["started"] and "round" in r["started"]
    assert "1 slices drawn" in r["recorded"], r["recorded"]
    assert int(r["recorded_message"].split(":")[-1].split()[0]) > 0  # the clicked structure's voxels
    assert "1 rounds trained" in r["trained"], r["trained"]
    assert r["proposal"].startswith("draw on: ")
    assert (tmp_path / "task").is_dir()


async def _click_once(url: str) -> dict:
    from InteractiveSegWeb import browser

    async with browser.open_page(url) as page:
        box = await page.view_box(0)
        await page.click_at(box[0] + box[2] / 2, box[1] + box[3] / 2)
        await page.wait_for(  # a result, or a refusal that says why
            "Number(document.getElementById('is-hints').textContent) > 0"
            " || document.getElementById('is-message').textContent.includes('trust')",
            "a result or a refusal",
        )
        hints, voxels = await page.results(), int(await page.text("is-voxels"))
        return {"hints": hints, "voxels": voxels, "message": await page.text("is-message")}


def test_web_app_fine_tunes_a_model_from_the_command_line_only_if_trusted(chromium, colin_crop, tmp_path):
    """``--model`` with a spec that builds its network from code outside MONAI (here a
    ``torch.nn.Conv2d``): refused with a message unless ``--trust-code`` was given."""
    import torch
    from InteractiveSegWeb import browser

    model = tmp_path / "conv.pt"
    torch.save(torch.nn.Conv2d(1, 2, 3, padding=1).state_dict(), model)
    spec = {"labels": ["background", "structure"], "spatial_dims": 2, "network": "torch.nn:Conv2d"}
    spec["network_kwargs"] = {"in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": 1}
    (tmp_path / "conv.pt.json").write_text(json.dumps(spec))
    results = {}
    for trusted in (False, True):
        extra = ["--engine", "finetune", "--model", str(model), *(["--trust-code"] if trusted else [])]
        log = tmp_path / f"server-{trusted}.log"
        with browser.web_server(colin_crop, tmp_path / "out.seg.nrrd", log, extra) as url:
            results[trusted] = asyncio.run(_click_once(url))
    assert "trust-code" in results[False]["message"] and results[False]["voxels"] == 0, results[False]
    assert results[True]["message"].startswith("click:") and results[True]["voxels"] > 0, results[True]


def test_files_under_the_root_only(tmp_path):
    from InteractiveSegWeb import files

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ct.nii.gz").write_bytes(b"x")
    (tmp_path / "a" / "ct.seg.nrrd").write_bytes(b"x")  # a segmentation, not a volume
    (tmp_path / "series").mkdir()
    (tmp_path / "series" / "1.dcm").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    outside = tmp_path.parent / "outside.nii.gz"
    outside.write_bytes(b"x")
    (tmp_path / "link.nii.gz").symlink_to(outside)
    assert files.list_images(tmp_path) == ["a/ct.nii.gz", "link.nii.gz", "series"]
    assert files.resolve(tmp_path, "a/ct.nii.gz") == (tmp_path / "a" / "ct.nii.gz").resolve()
    for bad in ("../outside.nii.gz", "link.nii.gz", "/etc/passwd", "", "a/missing.nii.gz"):
        with pytest.raises(InteractionError):
            files.resolve(tmp_path, bad)


async def _drive_root(url: str) -> dict:
    from InteractiveSegWeb import browser

    report: dict = {}
    async with browser.open_page(url) as page:
        box = await page.view_box(0)
        x, y = box[0] + box[2] / 2, box[1] + box[3] / 2
        report["files"] = await page.js("window.trame.state.get('files')")
        await page.click_at(x, y)
        report["click"] = await page.next_result(0)

        await page.press_button("is-add-segment")
        await page.wait_for("document.getElementById('is-message').textContent.includes('added')", "a segment")
        report["segments"] = await page.js("window.trame.state.get('segments').length")
        await page.click_at(x + 30, y + 30)
        report["second"] = await page.next_result(1)
        first = (await page.js("window.trame.state.get('segments')"))[0]["value"]
        await page.set_state("segment", first)
        await page.wait_for(
            f"Number(document.getElementById('is-voxels').textContent) === {report['click']['voxels']}",
            "the first segment",
        )

        async def open_file(name: str, expect: str) -> str:
            await page.set_state("file", name)
            await page.press_button("is-open")
            await page.wait_for(f"document.getElementById('is-message').textContent.includes({expect!r})", expect)
            return await page.text("is-message")

        report["bad"] = await open_file("bad.nii.gz", "cannot read")
        report["outside"] = await open_file("../outside.nii.gz", "not a file under")
        report["voxels_after_refusals"] = int(await page.text("is-voxels"))
        report["good"] = await open_file("second.nii.gz", "second.nii.gz: click")
        report["voxels_after_open"] = int(await page.text("is-voxels"))
        await page.click_at(x, y)
        report["click_second_volume"] = await page.next_result(await page.results())
        report["dicom"] = await open_file("series", "series: click")
        await page.click_at(x, y)
        report["click_dicom"] = await page.next_result(await page.results())
    return report


def write_dicom_series(image: Path, folder: Path) -> Path:
    """The volume as a DICOM series (one MR slice per file, SimpleITK), for the folder reader."""
    import SimpleITK as sitk

    img = sitk.Cast(sitk.RescaleIntensity(sitk.ReadImage(str(image)), 0, 1000), sitk.sitkInt16)
    folder.mkdir()
    uid, d = "1.2.826.0.1.3680043.2.1125.4242", img.GetDirection()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for i in range(img.GetDepth()):
        s = img[:, :, i]
        tags = {
            "0008|0060": "MR",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.4",
            "0008|0018": f"{uid}.1.{i + 1}",
            "0020|000d": uid,
            "0020|000e": f"{uid}.1",
            "0020|0013": str(i + 1),
            "0020|0032": "\\".join(map(str, img.TransformIndexToPhysicalPoint((0, 0, i)))),
            "0020|0037": "\\".join(map(str, (d[0], d[3], d[6], d[1], d[4], d[7]))),
            "0018|0050": str(img.GetSpacing()[2]),
        }
        for key, value in tags.items():
            s.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"{i:03d}.dcm"))
        writer.Execute(s)
    return folder


def test_web_app_root_folder_and_segments_in_chromium(chromium, colin_crop, tmp_path):
    """``--root``: the page lists the volumes under it (a DICOM series as its folder) and
    opens one by name; a bad file and a name outside the root are one line each and the
    open volume stays; a second segment takes its own hints, and selecting the first shows
    its voxels again."""
    import shutil

    from InteractiveSegWeb import browser

    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(colin_crop, root / "second.nii.gz")
    (root / "bad.nii.gz").write_bytes(b"not an image")
    write_dicom_series(colin_crop, root / "series")
    (tmp_path / "outside.nii.gz").write_bytes(b"x")
    extra = ["--engine", "click", "--root", str(root)]
    with browser.web_server(colin_crop, tmp_path / "out.seg.nrrd", tmp_path / "server.log", extra) as url:
        r = asyncio.run(_drive_root(url))
    assert r["files"] == ["bad.nii.gz", "second.nii.gz", "series"]
    assert r["click"]["voxels"] > 0
    assert r["segments"] == 2 and r["second"]["voxels"] > 0 and r["second"]["message"].startswith("click:"), r["second"]
    assert "bad.nii.gz" in r["bad"] and "Traceback" not in r["bad"]
    assert "not a file under the root" in r["outside"]
    assert r["voxels_after_refusals"] == r["click"]["voxels"]  # the open volume and its segment stayed
    assert r["voxels_after_open"] == 0
    assert r["click_second_volume"]["voxels"] > 0
    assert r["click_dicom"]["voxels"] > 0  # a DICOM series folder opens as a volume


def test_web_bench_measures_clicks_in_the_browser_and_takes_screenshots(chromium, tmp_path, capsys):
    """``interactiveseg web-bench``: real clicks timed by the page's clock, and the two
    screenshots (slices with the suggested slice, and the 3D view) as PNG files."""
    from InteractiveSegLib.cli.main import main

    out = tmp_path / "bench.json"
    assert main(["web-bench", "--clicks", "3", "--screenshots", str(tmp_path / "shots"), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["clicks"] == 3 and len(report["samples"]) == 3
    for sample in report["samples"]:
        assert sample["visible_ms"] >= sample["result_ms"] > 0  # a frame after the result, both after the press
        assert sample["message"].startswith(("click:", "negative click:"))
    for name in ("web-slices.png", "web-3d.png"):
        assert (tmp_path / "shots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "click -> segment visible in the page" in capsys.readouterr().out


def test_interactiveseg_web_is_a_command_of_the_cli_and_refuses_a_bad_file(tmp_path, capsys):
    """``interactiveseg web`` reaches the app through the ``interactiveseg.commands`` entry
    point (the library never imports it); an unreadable image is one line and exit 2."""
    from InteractiveSegLib.cli.main import main

    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not an image")
    assert main(["web", "--image", str(bad), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "bad.nii.gz" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["web", "--image", str(bad), "--labels", str(tmp_path / "x.nrrd")]) == 2
    assert "must end in .seg.nrrd" in capsys.readouterr().err
