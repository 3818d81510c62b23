"""``interactiveseg demo``: a simulated interactive session on a real volume.

Colin27 (Debian mricron-data) with held-out AAL structures (even ids, never trained on):
on one axial slice the virtual user clicks on each structure in turn, the click engine
answers, Dice is printed after every click; the result is written as a ``.seg.nrrd``
(one named, coloured segment per structure, Slicer opens it) plus a PNG overlay.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from InteractiveSegLib.cli.overlay import save_overlay
from InteractiveSegLib.data import datasets
from InteractiveSegLib.hints import Click
from InteractiveSegLib.hints import ijk_from_slice_point as to_ijk
from InteractiveSegLib.io import write_atomic, write_seg_nrrd
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.metrics import dice
from InteractiveSegLib.session import Session
from InteractiveSegLib.users.robot import robot_click

DEMO_STRUCTURES = ("Caudate_R", "Putamen_R", "Thalamus_R", "Insula_R")


def run(out: str | Path, engine: str = "click", clicks: int = 5, structures=DEMO_STRUCTURES) -> dict:
    out = Path(out)
    lv = datasets.load("colin27")
    ids = [lv.labels.labels.by_name(n).value for n in structures]
    masks = [lv.labels.labelmap == v for v in ids]
    # The axial slice (KJI axis 0) where the smallest structure is largest while all appear.
    areas = np.stack([m.sum(axis=(1, 2)) for m in masks])
    axis, index = 0, int(np.argmax(areas.min(axis=0)))
    table = LabelTable()
    for n, (v, name) in enumerate(zip(ids, structures, strict=False), start=1):
        table.add(n, name, lv.labels.labels[v].color)
    session = Session(lv.image, engine, table)
    print(
        f"Colin27 {lv.image.shape} (KJI), axial slice k={index}, engine '{engine}', "
        f"held-out structures: {', '.join(structures)}"
    )
    shown, summary = [], {}
    for n, (name, mask) in enumerate(zip(structures, masks, strict=False), start=1):
        gt = mask[index]
        for k in range(1, clicks + 1):
            pred = session.labelmap[index] == n
            c = robot_click(gt, pred)
            if c is None:
                break
            t0 = time.perf_counter()
            session.add(Click(to_ijk(c.point, axis, index), label=n, positive=c.positive, axis=axis))
            ms = (time.perf_counter() - t0) * 1000
            d = dice(gt, session.labelmap[index] == n)
            shown.append((c.point[0], c.point[1], c.positive))
            print(
                f"  {name:12s} click {k} ({'+' if c.positive else '-'} at row {c.point[0]}, col {c.point[1]}): "
                f"Dice {d:.3f}  [{ms:.0f} ms]"
            )
        summary[name] = dice(gt, session.labelmap[index] == n)
    seg_path = write_seg_nrrd(out / "colin27_demo.seg.nrrd", session.labelmap, lv.image.geometry, table)
    reference = np.zeros_like(session.labelmap[index])
    for m in masks:
        reference |= m[index]
    png = save_overlay(
        out / "colin27_demo_axial.png",
        lv.image.array[index],
        session.labelmap[index],
        table,
        shown,
        reference2d=reference,
    )
    hints = session.hints_json()
    write_atomic(out / "hints.json", lambda tmp: tmp.write_text(hints))
    print(f"mean Dice after at most {clicks} clicks per structure: {np.mean(list(summary.values())):.3f}")
    print(f"wrote {seg_path}\nwrote {png} (white: reference outline)\nwrote {out / 'hints.json'}")
    return {"dice": summary, "seg": str(seg_path), "png": str(png)}
