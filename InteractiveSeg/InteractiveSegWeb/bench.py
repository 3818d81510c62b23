"""``interactiveseg web-bench``: click -> updated segment visible in the page, measured by
the browser, and screenshots of the real UI.

    interactiveseg web-bench [--image PATH] [--clicks 20] [--engine click]
                             [--screenshots Resources/Screenshots] [--json out/web-bench.json]

The server and headless Chromium run on this machine (``browser``). Each click is a real
mouse press in the axial view; its latency is the browser's time from the press to the
first new frame of that view after the page showed the result (``LATENCY_PROBE``). Without
``--image``: Colin27 (T1 MRI) padded to 256 x 256 in-plane, 64 axial slices.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from InteractiveSegLib.errors import InteractiveSegError

from . import browser

SLICE = 256  # in-plane size of the default volume (the 256 x 256 slice)


def default_volume(folder: Path) -> Path:
    """Colin27 (the bundled T1 MRI) padded to 256 x 256 in-plane, its 64 middle axial slices."""
    from InteractiveSegLib import io
    from InteractiveSegLib.data import datasets
    from InteractiveSegLib.volume import Volume

    image = datasets.load("colin27").image
    k, j, i = image.shape
    k0 = k // 2 - 32
    pad_j, pad_i = max(0, SLICE - j), max(0, SLICE - i)
    array = np.pad(
        image.array[k0 : k0 + 64, :SLICE, :SLICE],
        ((0, 0), (pad_j // 2, pad_j - pad_j // 2), (pad_i // 2, pad_i - pad_i // 2)),
        constant_values=float(image.array.min()),
    )
    origin = image.geometry.ijk_to_ras_points([[-(pad_i // 2), -(pad_j // 2), k0]])[0]
    geometry = dataclasses.replace(image.geometry, origin=tuple(float(c) for c in origin))
    return io.write_volume(folder / "colin27_256.nii.gz", Volume(np.ascontiguousarray(array), geometry))


async def _one_click(page: browser.Page, x: float, y: float, ctrl: bool) -> dict:
    results = await page.results()
    frames = await page.js("window.__is.frames0.length")
    presses = await page.js("window.__is.presses.length")
    await page.click_at(x, y, ctrl)
    await page.next_result(results)
    shown = await page.js("window.__is.results[window.__is.results.length - 1]")
    frame = await page.wait_for(
        f"window.__is.frames0.slice({frames}).find((t) => t >= {shown})", "the view's next frame", 60
    )
    pressed = await page.js(f"window.__is.presses[{presses}]")
    return {
        "visible_ms": float(frame) - float(pressed),
        "result_ms": float(shown) - float(pressed),
        "server_ms": float(await page.text("is-latency")),
        "message": await page.text("is-message"),
    }


async def _run(url: str, clicks: int, screenshots: Path | None) -> dict:
    async with browser.open_page(url, 1600, 1000) as page:
        await page.js(browser.LATENCY_PROBE)
        x0, y0, w, h = await page.view_box(0)
        cx, cy, radius = x0 + w / 2, y0 + h / 2, min(w, h) / 8
        samples = []
        for n in range(clicks):
            angle = 2 * math.pi * n / max(clicks, 1)
            x, y = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
            samples.append(await _one_click(page, x, y, ctrl=n % 4 == 3))  # every fourth click removes
        if screenshots is not None:  # the structure carried through the volume, the slice to check next
            results = await page.results()
            await page.press_button("is-propagate")
            await page.next_result(results)
            await page.press_button("is-next")
            await page.wait_for("document.getElementById('is-next-slice').textContent.length > 0", "Next slice", 60)
            await asyncio.sleep(2.0)  # the views' frames at the suggested slice
            await page.screenshot(screenshots / "web-slices.png")
            await page.set_state("view_3d", True)
            await page.wait_for(
                "(() => { const imgs = [...document.querySelectorAll("
                "'.remote-controlled-area img.image-display-area')];"
                " return imgs.length >= 4 && imgs.every((i) => i.complete && i.naturalWidth > 0); })()",
                "the 3D view",
                120,
            )
            await asyncio.sleep(5.0)  # the surfaces' first frames (software rendering)
            await page.screenshot(screenshots / "web-3d.png")
    visible = [s["visible_ms"] for s in samples]
    return {
        "clicks": len(samples),
        "visible_ms": {
            "median": statistics.median(visible),
            "p95": float(np.percentile(visible, 95)),
            "first": visible[0],
            "after_first_median": statistics.median(visible[1:]) if len(visible) > 1 else None,
        },
        "result_ms_median": statistics.median(s["result_ms"] for s in samples),
        "server_ms_median": statistics.median(s["server_ms"] for s in samples),
        "samples": samples,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the browser benchmark (and the screenshots).

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).
    Returns:
        The exit status (2: no Chromium, an unusable image)."""
    p = argparse.ArgumentParser(prog="interactiveseg web-bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--image", type=Path, help="volume (default: Colin27 padded to 256 x 256, 64 slices)")
    p.add_argument("--engine", default="click", help="engine (default: click)")
    p.add_argument("--clicks", type=int, default=20, help="clicks to time (default 20)")
    p.add_argument("--screenshots", type=Path, help="folder for screenshots of the page and the 3D view")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    if args.clicks < 1:
        p.error("--clicks must be at least 1")
    try:
        browser.find_chromium()
        with tempfile.TemporaryDirectory() as tmp:
            image = args.image or default_volume(Path(tmp))
            extra = ["--engine", args.engine]
            start = time.perf_counter()
            with browser.web_server(image, Path(tmp) / "out.seg.nrrd", Path(tmp) / "server.log", extra) as url:
                report = asyncio.run(_run(url, args.clicks, args.screenshots))
    except (InteractiveSegError, RuntimeError, AssertionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report |= {"engine": args.engine, "image": str(args.image or "colin27 padded to 256x256x64")}
    report["wall_s"] = time.perf_counter() - start
    v = report["visible_ms"]
    print(
        f"{args.engine}: click -> segment visible in the page, {report['clicks']} clicks: median {v['median']:.0f} ms, "
        f"p95 {v['p95']:.0f} ms, first {v['first']:.0f} ms (model load); "
        f"result shown {report['result_ms_median']:.0f} ms, server {report['server_ms_median']:.0f} ms (medians)"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
