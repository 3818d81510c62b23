"""Drive the web app in headless Chromium (Debian's ``chromium``) through the Chrome
DevTools protocol, with real mouse events: used by the end-to-end tests, the browser
latency benchmark (``interactiveseg web-bench``) and ``make screenshots``.

Why the DevTools protocol by hand: it needs only Chromium and aiohttp's websocket client
(already a trame dependency); Playwright would download its own browser at install time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from InteractiveSegLib.errors import ConfigError

DEADLINE_S = 120.0  # how long to wait for the server, the browser or the page before giving up
WEB_ROOT = Path(__file__).resolve().parents[1]  # InteractiveSeg/ (holds InteractiveSegWeb)
REPO_ROOT = WEB_ROOT.parent

#: In the page: the time of each new frame of every view and of each result shown, so that
#: "click -> updated segment visible" is measured by the browser's own clock.
LATENCY_PROBE = """
(() => {
  window.__is = {frames: [], frames0: [], results: [], presses: []};
  const watch = (el, list) => new MutationObserver(() => list.push(performance.now()))
      .observe(el, {attributes: true, childList: true, characterData: true, subtree: true});
  document.querySelectorAll('.remote-controlled-area img.image-display-area')
      .forEach((img, n) => { watch(img, window.__is.frames); if (n === 0) watch(img, window.__is.frames0); });
  watch(document.getElementById('is-hints'), window.__is.results);
  document.addEventListener('pointerdown', () => window.__is.presses.push(performance.now()), true);
  return true;
})()
"""


def _stop(proc: subprocess.Popen) -> None:
    """Terminate a child process, killing it if it does not end within 20 s."""
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def free_port() -> int:
    """Returns: a TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_chromium() -> str:
    """Returns: the Chromium executable (ConfigError naming the Debian package if missing)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path is not None:
            return path
    raise ConfigError("Chromium is not installed: apt-get install -y chromium (make browser)")


@contextlib.contextmanager
def web_server(image: Path, labels: Path, log: Path, extra: Sequence[str] = ()) -> Iterator[str]:
    """``python -m InteractiveSegWeb.app`` on a free port of 127.0.0.1 until the block ends.

    Args:
        image: volume to open; labels: the ``--labels`` file; log: its stdout and stderr;
        extra: more command-line arguments (``--engine``, ``--task``, ...).
    Yields: the app's URL once it answers."""
    port = free_port()
    path = os.pathsep.join([str(REPO_ROOT), str(WEB_ROOT), os.environ.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "InteractiveSegWeb.app", "--image", str(image), "--labels", str(labels)]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*cmd, *extra, "--port", str(port)], env={**os.environ, "PYTHONPATH": path}, stdout=out, stderr=out
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + DEADLINE_S
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited ({proc.returncode}): {log.read_text()[-3000:]}")
                try:
                    urllib.request.urlopen(url, timeout=2).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the server did not answer") from None
                    time.sleep(0.2)
            yield url
        finally:
            _stop(proc)


class Page:
    """One Chromium tab through the DevTools protocol (a websocket)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.n = 0

    async def call(self, method: str, **params: Any) -> dict:
        """Send one DevTools command and return its result (RuntimeError on its error)."""
        self.n += 1
        await self.ws.send_json({"id": self.n, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, deadline_s: float = DEADLINE_S) -> Any:
        """Poll ``expression`` until it is truthy (AssertionError naming ``what`` after the deadline)."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"the page never showed {what} ({expression})")

    async def text(self, element_id: str) -> str:
        return str(await self.js(f"document.getElementById({element_id!r}).textContent.trim()"))

    async def press_button(self, element_id: str) -> None:
        await self.js(f"document.getElementById({element_id!r}).click()")

    async def set_state(self, key: str, value: Any) -> None:
        """Set a trame state variable as a widget of the page would."""
        await self.js(f"window.trame.state.set({json.dumps(key)}, {json.dumps(value)})")

    async def mouse(self, kind: str, x: float, y: float, ctrl: bool = False, pressed: bool = False) -> None:
        """One real mouse event at page coordinates (``pressed``: the left button is held)."""
        params: dict[str, Any] = {"type": kind, "x": x, "y": y, "modifiers": 2 if ctrl else 0}
        if kind != "mouseMoved" or pressed:
            params |= {"button": "left", "buttons": 1, "clickCount": 1}
        await self.call("Input.dispatchMouseEvent", **params)

    async def key(self, key: str, ctrl: bool = False) -> None:
        """A real key press and release (``key``: a character or ``Escape``), Ctrl held when asked."""
        code = 27 if key == "Escape" else ord(key.upper())
        params: dict[str, Any] = {"key": key, "windowsVirtualKeyCode": code, "modifiers": 2 if ctrl else 0}
        text = {"text": key} if len(key) == 1 and not ctrl else {}
        await self.call("Input.dispatchKeyEvent", type="keyDown", **params, **text)
        await self.call("Input.dispatchKeyEvent", type="keyUp", **params)

    async def click_at(self, x: float, y: float, ctrl: bool = False) -> None:
        """A left click (press, release) at page coordinates; Ctrl held when asked."""
        await self.mouse("mouseMoved", x, y, ctrl)
        await self.mouse("mousePressed", x, y, ctrl)
        await self.mouse("mouseReleased", x, y, ctrl)

    async def drag(self, path: Sequence[tuple[float, float]], ctrl: bool = False, pause_s: float = 0.05) -> None:
        """Press at the first point, move through the others with the button held, release at the last."""
        (x0, y0), *rest = path
        await self.mouse("mouseMoved", x0, y0, ctrl)
        await self.mouse("mousePressed", x0, y0, ctrl)
        for x, y in rest:
            await asyncio.sleep(pause_s)  # the page sends moves at most every 25 ms
            await self.mouse("mouseMoved", x, y, ctrl, pressed=True)
        await asyncio.sleep(pause_s)
        await self.mouse("mouseReleased", *path[-1], ctrl)

    async def results(self) -> int:
        """Results shown so far (the page's hint counter)."""
        return int(await self.text("is-hints"))

    async def next_result(self, results_before: int) -> dict:
        """Wait until the server showed one more result; the page's counters then."""
        try:
            shown = f"Number(document.getElementById('is-hints').textContent) > {results_before}"
            await self.wait_for(shown, "a result")
        except AssertionError as e:
            raise AssertionError(f"{e}; the page says: {await self.text('is-message')}") from None
        return {
            "hints": await self.results(),
            "voxels": int(await self.text("is-voxels")),
            "message": await self.text("is-message"),
        }

    async def view_box(self, index: int = 0) -> list[float]:
        """Page rectangle [x, y, width, height] of slice view ``index`` once it drew a frame at
        its own size. Why the size: the server's view starts at 300 x 300 pixels, and a click
        made while the page still showed that first frame reached the server thousands of
        pixels off (the hint landed outside the image; a flaky browser test, 2026-12-07)."""
        return list(
            await self.wait_for(
                "(() => { const a = document.querySelectorAll('.remote-controlled-area')"
                f"[{index}]; const img = a && a.querySelector('img.image-display-area');"
                " if (!img || !img.complete || img.naturalWidth === 0) return null;"
                " const r = a.getBoundingClientRect();"
                " if (Math.abs(img.naturalWidth - r.width) > 1"
                " || Math.abs(img.naturalHeight - r.height) > 1) return null;"
                " return [r.x, r.y, r.width, r.height]; })()",
                f"view {index}",
            )
        )

    async def screenshot(self, path: Path | None = None, clip: Sequence[float] | None = None) -> bytes:
        """A PNG of the page (or of ``clip`` = [x, y, width, height]), written to ``path`` when given."""
        params: dict[str, Any] = {"format": "png"}
        if clip is not None:
            params["clip"] = {"x": clip[0], "y": clip[1], "width": clip[2], "height": clip[3], "scale": 1}
        png = base64.b64decode((await self.call("Page.captureScreenshot", **params))["data"])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png)
        return png


async def _launch(profile: str, width: int, height: int) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [
            find_chromium(),
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
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
            raise RuntimeError("chromium did not open its DevTools port")
        await asyncio.sleep(0.1)
    return proc, int(active.read_text().split()[0])


@contextlib.asynccontextmanager
async def open_page(url: str, width: int = 1400, height: int = 900) -> AsyncIterator[Page]:
    """Headless Chromium showing ``url``, its first slice view drawn; closed after the block."""
    import aiohttp

    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:  # Chromium's helpers may still write
        proc, port = await _launch(profile, width, height)
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                    targets = json.loads(await r.text())
                ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
                async with http.ws_connect(ws_url, max_msg_size=0) as ws:
                    page = Page(ws)
                    await page.call("Page.navigate", url=url)
                    await page.view_box(0)
                    yield page
        finally:
            _stop(proc)
