"""InteractiveSeg in the browser: the Qt-free ``InteractiveController`` on real MRML, and the
trame-slicer web app end to end in headless Chromium (Debian's ``chromium``), driven through
the Chrome DevTools protocol (aiohttp's websocket client, already a trame dependency).

The browser test starts ``python -m InteractiveSegWeb.app`` on a free port with a crop of
Colin27, clicks in the axial view with real mouse events, Ctrl+clicks, presses Undo and
Save, and checks the page's voxel count against the saved ``.seg.nrrd``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from InteractiveSegLib.errors import InteractionError, InteractiveSegError

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 120.0  # how long to wait for the server or the page before failing (not a timing assert)


# --- data ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def colin_crop(tmp_path_factory) -> Path:
    """32 axial slices through the middle of Colin27 (T1 MRI), as NIfTI."""
    from InteractiveSegLib import io
    from InteractiveSegLib.data import datasets
    from InteractiveSegLib.errors import ImageError
    from InteractiveSegLib.volume import Volume

    try:
        image = datasets.load("colin27").image
    except ImageError as e:
        pytest.skip(str(e))
    k0 = image.shape[0] // 2 - 16
    origin = tuple(float(c) for c in image.geometry.ijk_to_ras_points([[0, 0, k0]])[0])
    crop = Volume(np.ascontiguousarray(image.array[k0 : k0 + 32]), dataclasses.replace(image.geometry, origin=origin))
    return io.write_volume(tmp_path_factory.mktemp("colin") / "colin_crop.nii.gz", crop)


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
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian chromium is not installed: apt-get install -y chromium")
    return path


class Page:
    """One Chromium tab through the DevTools protocol."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.n = 0

    async def call(self, method: str, **params):
        self.n += 1
        await self.ws.send_json({"id": self.n, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def js(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str):
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"the page never showed {what} ({expression})")

    async def text(self, element_id: str) -> str:
        return await self.js(f"document.getElementById({element_id!r}).textContent.trim()")

    async def click_at(self, x: float, y: float, ctrl: bool = False) -> None:
        """A real left click (press, release) at page coordinates; Ctrl held when asked."""
        modifiers = 2 if ctrl else 0
        await self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y, modifiers=modifiers)
        for kind in ("mousePressed", "mouseReleased"):
            await self.call(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1, modifiers=modifiers
            )

    async def next_result(self, hints_before: int) -> dict:
        """Wait until the server showed one more result; the page's counters then."""
        await self.wait_for(f"Number(document.getElementById('is-hints').textContent) > {hints_before}", "a result")
        return {
            "hints": int(await self.text("is-hints")),
            "voxels": int(await self.text("is-voxels")),
            "message": await self.text("is-message"),
        }


@pytest.fixture
def web_server(colin_crop, tmp_path):
    """The app in a subprocess on a free port (127.0.0.1); yields (url, labels path)."""
    browser = chromium()
    port = free_port()
    labels = tmp_path / "out.seg.nrrd"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "InteractiveSeg")])}
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed after the process ends
    cmd = [sys.executable, "-m", "InteractiveSegWeb.app", "--image", str(colin_crop), "--labels", str(labels)]
    proc = subprocess.Popen([*cmd, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited ({proc.returncode}): {(tmp_path / 'server.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the server did not answer")
                time.sleep(0.2)
        yield browser, url, labels
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


async def _open_page(browser: str, url: str, profile: str):
    proc = subprocess.Popen(
        [
            browser,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--window-size=1280,900",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    active = Path(profile) / "DevToolsActivePort"
    deadline = time.monotonic() + DEADLINE_S
    while not (active.exists() and active.read_text().strip()):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError("chromium did not open its DevTools port")
        await asyncio.sleep(0.1)
    return proc, int(active.read_text().split()[0])


async def _drive(browser: str, url: str) -> dict:
    import aiohttp

    report: dict = {}
    with tempfile.TemporaryDirectory() as profile:
        proc, port = await _open_page(browser, url, profile)
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                    targets = json.loads(await r.text())
                ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
                async with http.ws_connect(ws_url, max_msg_size=0) as ws:
                    page = Page(ws)
                    await page.call("Page.navigate", url=url)
                    # the axial view (first of the layout) has drawn a frame
                    box = await page.wait_for(
                        "(() => { const a = document.querySelector('.remote-controlled-area');"
                        " const img = a && a.querySelector('img.image-display-area');"
                        " if (!img || !img.complete || img.naturalWidth === 0) return null;"
                        " const r = a.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })()",
                        "the axial view",
                    )
                    x, y = box[0] + box[2] / 2, box[1] + box[3] / 2
                    report["start"] = {"voxels": int(await page.text("is-voxels")), "hints": 0}

                    t0 = time.perf_counter()
                    await page.click_at(x, y)
                    report["click"] = await page.next_result(0)
                    report["click_seconds"] = time.perf_counter() - t0

                    t0 = time.perf_counter()
                    await page.click_at(x, y, ctrl=True)
                    report["ctrl_click"] = await page.next_result(1)
                    report["ctrl_click_seconds"] = time.perf_counter() - t0

                    await page.js("document.getElementById('is-undo').click()")
                    report["undo"] = await page.next_result(2)

                    await page.js("document.getElementById('is-save').click()")
                    await page.wait_for(
                        "document.getElementById('is-message').textContent.includes('saved')", "the saved message"
                    )
                    report["server_ms"] = float(await page.text("is-latency"))
        finally:
            proc.terminate()
            proc.wait(20)
    return report


def test_web_app_click_ctrl_click_undo_save_in_chromium(web_server):
    from InteractiveSegLib import io

    browser, url, labels = web_server
    report = asyncio.run(_drive(browser, url))
    print(
        f"browser click -> voxel count shown: first {report['click_seconds'] * 1000:.0f} ms (model load), "
        f"Ctrl+click {report['ctrl_click_seconds'] * 1000:.0f} ms; server undo: {report['server_ms']:.0f} ms"
    )

    assert report["start"]["voxels"] == 0
    click, ctrl_click, undo = report["click"], report["ctrl_click"], report["undo"]
    assert click["voxels"] > 0, click["message"]
    assert click["message"].startswith("click:")
    assert ctrl_click["message"].startswith("negative click:")
    assert ctrl_click["voxels"] < click["voxels"], ctrl_click
    assert undo["message"].startswith("undo:") and undo["voxels"] == click["voxels"]

    saved = io.read_labels(labels)
    assert int(np.count_nonzero(saved.labelmap)) == undo["voxels"]


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
