"""Peak memory of real commands on a large CT (issue 21's bar: ≤ 3 GB on 512×512×600).

Each scenario runs ``interactiveseg segment`` in its own process on a synthetic CT this
module writes (a body of soft tissue with lungs, a liver and a spine, in HU, int16), and
reads that process's own peak resident set size from ``os.wait4``, so the figure is the
command's, interpreter and torch included, not the harness's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from InteractiveSegLib.hints import Box, Click, Interaction, Scribble, to_json
from InteractiveSegLib.io import write_volume
from InteractiveSegLib.volume import Geometry

#: KJI size of the issue's CT and its spacing (mm, i/j/k).
CT_SHAPE = (600, 512, 512)
CT_SPACING = (0.8, 0.8, 1.0)
#: The scenarios :func:`scenarios` builds, by name.
SCENARIOS = ("click-3-clicks", "vmn-box-10-corrections", "finetune-3-scribbles", "click-100000-hints")


@dataclass
class MemoryResult:
    scenario: str
    engine: str
    hints: int
    exit_code: int
    peak_rss_gb: float
    seconds: float
    volume_gb: float  # the image as the file stores it (int16)
    message: str  # the command's last line of output


def synthetic_ct(shape: tuple[int, int, int] = CT_SHAPE, seed: int = 0) -> np.ndarray:
    """An int16 CT in HU, built slab by slab so that making it costs little more than itself."""
    rng = np.random.default_rng(seed)
    k, j, i = shape
    out = np.empty(shape, np.int16)
    jj, ii = np.mgrid[0:j, 0:i].astype(np.float32)
    cj, ci = j / 2, i / 2
    body = ((jj - cj) / (0.42 * j)) ** 2 + ((ii - ci) / (0.46 * i)) ** 2 <= 1
    spine = ((jj - 0.72 * j) / (0.06 * j)) ** 2 + ((ii - ci) / (0.05 * i)) ** 2 <= 1
    for z in range(k):
        t = z / max(k - 1, 1)
        sl = np.full((j, i), -1000.0, np.float32)
        sl[body] = 40.0
        if t > 0.55:  # the chest: two lungs
            r = 0.16 * j * np.sqrt(max(0.0, 1 - ((t - 0.78) / 0.23) ** 2))
            for side in (-1, 1):
                lung = (
                    (jj - 0.45 * j) ** 2 / r**2 + (ii - ci - side * 0.2 * i) ** 2 / (0.8 * r) ** 2 <= 1 if r > 0 else 0
                )
                sl[lung] = -850.0
        if 0.3 < t < 0.6:  # the abdomen: a liver
            r = 0.18 * j * np.sqrt(max(0.0, 1 - ((t - 0.45) / 0.15) ** 2))
            if r > 0:
                sl[(jj - 0.45 * j) ** 2 + (ii - 0.38 * i) ** 2 <= r**2] = 60.0
        sl[spine] = 400.0
        out[z] = np.clip(sl + rng.normal(0, 12, sl.shape), -1024, 3071)
    return out


def scenarios(shape: tuple[int, int, int] = CT_SHAPE) -> dict[str, tuple[str, list[Interaction]]]:
    """Scenario name -> (engine, hints): the issue's three, plus a hints file of 100,000 clicks."""
    k, j, i = shape
    z = int(0.45 * k)  # a liver slice
    liver = (int(0.38 * i), int(0.45 * j))
    clicks: list[Interaction] = [Click((liver[0] + d, liver[1], z)) for d in (0, 10, -10)]
    box: list[Interaction] = [
        Box(
            (liver[0] - int(0.2 * j), liver[1] - int(0.2 * j), z), (liver[0] + int(0.2 * j), liver[1] + int(0.2 * j), z)
        )
    ]
    corrections: list[Interaction] = []
    for n in range(10):
        zz = int((0.33 + 0.025 * n) * k)
        corrections.append(Scribble([(liver[0] + d, liver[1], zz) for d in range(-5, 6)], positive=n % 3 != 2))
    scribbles: list[Interaction] = [
        Scribble([(liver[0] + d, liver[1] + e, z) for d in range(-8, 9)], label=1 + e // 40 % 2) for e in (0, 40, 80)
    ]
    many: list[Interaction] = [Click((liver[0] + n % 7, liver[1], z)) for n in range(100_000)]
    return {
        "click-3-clicks": ("click", clicks),
        "vmn-box-10-corrections": ("vmn", box + corrections),
        "finetune-3-scribbles": ("finetune", scribbles),
        "click-100000-hints": ("click", many),
    }


def _run(cmd: list[str], timeout: float, threads: int) -> tuple[int, float, float, str]:
    """Exit code, peak RSS (GB), seconds and the last output line of one command."""
    t0 = time.perf_counter()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        lines = [ln for ln in log.read().decode(errors="replace").splitlines() if ln.strip()]
    return proc.returncode, usage.ru_maxrss / 1024**2, time.perf_counter() - t0, lines[-1] if lines else ""


def run(
    names: list[str] | None = None,
    shape: tuple[int, int, int] = CT_SHAPE,
    workdir: str | None = None,
    threads: int = 2,
    timeout: float = 1800,
) -> list[MemoryResult]:
    """Write the CT and each scenario's hints, run each ``segment`` and measure it.

    Args:
        names: scenarios to run (default: all of :func:`scenarios`).
        shape: the CT's KJI size (smaller for a quick check).
        workdir: where the CT, hints and outputs go (a temporary folder by default).
        threads: torch threads of each command.
        timeout: seconds before a command is killed (its result then says so).

    Returns:
        One result per scenario.
    """
    todo = scenarios(shape)
    names = names or list(todo)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        image = Path(tmp) / "ct.nii"
        write_volume(image, synthetic_ct(shape), Geometry(spacing=CT_SPACING))
        results = []
        for name in names:
            engine, hints = todo[name]
            hints_file = Path(tmp) / f"{name}.json"
            hints_file.write_text(to_json(hints), encoding="utf-8")
            cmd = [sys.executable, "-m", "InteractiveSegLib.cli.main", "segment", "--image", str(image)]
            cmd += ["--hints", str(hints_file), "--engine", engine, "--out", str(Path(tmp) / f"{name}.seg.nrrd")]
            code, gb, seconds, last = _run(cmd, timeout, threads)
            results.append(
                MemoryResult(
                    name,
                    engine,
                    len(hints),
                    code,
                    round(gb, 3),
                    round(seconds, 1),
                    image.stat().st_size / 1024**3,
                    last,
                )
            )
            print(json.dumps(asdict(results[-1])), flush=True)
    return results
