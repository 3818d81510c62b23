"""Latency of hint -> updated segment through the module's own path (not a unit test).

What is timed per click, as the Segment Editor effect runs it: ``SessionStore.prepare``
(main thread), ``compute`` on the persistent ``InferenceWorker`` thread, then ``commit``
(main thread: one Segment Editor undo state + writing the changed extent through
``vtkSlicerSegmentEditorLogic``). Rendering is not included. The volume is Colin27 T1
(Debian mricron-data) zero-padded to 256 x 256 axial slices; the clicks are seeded so
runs are comparable. Real Slicer classes from slicer-core + trame-slicer's SlicerApp.

    python -m InteractiveSegSlicer.latency_bench --engines click,growcut --json out/slicer-latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time

import numpy as np


def padded_volume_node(scene, size: int = 256):
    """Colin27 T1 in a scalar volume node, each axial slice zero-padded to size x size."""
    import vtk
    from vtk.util import numpy_support

    from InteractiveSegLib.data import datasets

    lv = datasets.load("colin27")
    a = lv.image.array
    padded = np.zeros((a.shape[0], max(size, a.shape[1]), max(size, a.shape[2])), np.float32)
    padded[:, : a.shape[1], : a.shape[2]] = a
    image = vtk.vtkImageData()
    image.SetDimensions(padded.shape[2], padded.shape[1], padded.shape[0])
    image.AllocateScalars(vtk.VTK_FLOAT, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = padded.ravel()
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "colin27_256")
    node.SetAndObserveImageData(image)
    m = vtk.vtkMatrix4x4()
    ijk_to_ras = lv.image.geometry.ijk_to_ras
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(ijk_to_ras[r][c]))
    node.SetIJKToRASMatrix(m)
    return node, lv


def time_engine(scene, volumeNode, labelled, engine: str, clicks: int, warmup: int = 3, seed: int = 0) -> dict:
    """Median/p95 ms of click -> updated segment (prepare + worker compute + commit)."""
    from InteractiveSegLib.bench.harness import latency
    from InteractiveSegLib.hints import Click

    from .editor_writer import EditorWriter
    from .session_store import SessionStore
    from .worker import InferenceWorker

    store = SessionStore(editor=EditorWriter(scene))
    worker = InferenceWorker()
    rng = np.random.default_rng(seed)
    labels = labelled.labels.labelmap
    segmentationNode = None
    times = []
    try:
        for n in range(warmup + clicks):
            index = 60 + (n // 4) * 3  # four clicks per slice, then the next slice
            inside = np.argwhere(labels[index] > 0)
            j, i = inside[rng.integers(len(inside))] if len(inside) else (128, 128)
            click = Click((int(i), int(j), index), label=1, positive=bool(n % 4 != 3), axis=0)
            t0 = time.perf_counter()
            pending = store.prepare(volumeNode, [click], engine, segmentationNode)
            worker.submit(store.compute, pending).wait()  # compute(pending, job) on the worker thread
            segmentationNode = store.commit(pending)
            if n >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
    finally:
        worker.shutdown()
    return {**latency(times), "n": len(times)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="click,growcut")
    parser.add_argument("--clicks", type=int, default=40)
    parser.add_argument("--json", default="out/slicer-latency.json")
    args = parser.parse_args(argv)

    from trame_slicer.core import SlicerApp

    from InteractiveSegLib.engines import available_engines, register_engine

    if "growcut" not in available_engines():  # source tree, not pip-installed: register as the module does
        from .growcut_engine import GrowFromSeedsEngine

        register_engine("growcut", GrowFromSeedsEngine)
    scene = SlicerApp().scene
    volumeNode, labelled = padded_volume_node(scene)
    dims = volumeNode.GetImageData().GetDimensions()
    results = []
    for engine in [e for e in args.engines.split(",") if e]:
        r = time_engine(scene, volumeNode, labelled, engine, args.clicks)
        results.append({"engine": engine, "slice": [dims[1], dims[0]], "ms_click_to_segment": r})
    out = {
        "command": " ".join(
            [os.path.basename(sys.executable), "-m", "InteractiveSegSlicer.latency_bench", *(argv or sys.argv[1:])]
        ),
        "machine": {
            "cpu_threads": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "device": "cpu",
            "platform": platform.platform(),
        },
        "path": (
            "SessionStore.prepare -> InferenceWorker compute -> commit via vtkSlicerSegmentEditorLogic "
            "(undo state + changed extent); no rendering"
        ),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "results": results,
    }
    print(f"{'engine':<12} {'slice':<10} {'median ms':>10} {'p95 ms':>8} {'n':>4}")
    for r in results:
        m = r["ms_click_to_segment"]
        print(
            f"{r['engine']:<12} {'x'.join(map(str, r['slice'])):<10} {m['median']:>10.1f} {m['p95']:>8.1f} {m['n']:>4}"
        )
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
