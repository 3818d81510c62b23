"""What a benchmark run is asked for: one typed set of options, read by every suite.

A suite reads the common options and its own group only; ``rounds`` means the same in
every suite: interactions per session (robot clicks on a slice, propagation rounds on a
volume, scribble rounds, annotation steps of a streamed volume), each suite with its own
default when it is not given.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from InteractiveSegLib.metrics import NOC_CAP


@dataclass
class BenchOptions:
    # -- common ------------------------------------------------------------------------------
    engines: str = "click,growcut"  # comma-separated registry names or a suite's system names
    suite: str | None = None  # click | sim | vmn | finetune | online; None: from the engines
    image: str | None = None  # a volume of the user's own ...
    labels: str | None = None  # ... and its reference labels
    structures: str | None = None  # comma-separated names or label values
    data: str = "colin27,inia19,mni152"  # shipped datasets when no image is given
    split: str = "test"  # test | train | all: structures of the shipped data
    rounds: int | None = None  # interactions per session (None: the suite's default)
    max_slices: int | None = None  # slices per structure (and axis)
    min_area: int = 64  # smallest structure area (voxels) on a sampled slice
    min_voxels: int = 1000  # smallest structure volume (voxels) benchmarked
    no_speed: bool = False  # skip the suite's separate timing runs
    threads: int = 2
    seed: int = 0
    json: str | None = None
    markdown: str | None = None
    command: str = "interactiveseg bench"
    # -- click: 2D single-class engines, slice by slice -----------------------------------------
    axes: str = "0"  # slice axes to sample (0 axial, 1 coronal, 2 sagittal)
    max_clicks: int = NOC_CAP
    # -- sim: multi-class engines on their task -----------------------------------------------
    task: str = "colin27-deep-grey"
    ablation: bool = False  # sim: the paper's ablation systems; finetune: layers, growing, iterations
    robot: str = "largest,per-class"
    # -- vmn: 3D propagation engines, volume by volume ----------------------------------------
    hint: str = "scribble"  # scribble, box, extreme (comma-separated)
    select: str = "quality"  # quality, random, oracle (comma-separated)
    max_structures: int = 8  # per shipped volume (seeded sample; 0: all)
    thick_slices: int = 1  # merge this many slices into one (a thick-slice scan of the same anatomy)
    thick_axis: int = 0  # the KJI axis they are merged along (0 axial, 1 coronal, 2 sagittal)
    finer_voxels: int = 1  # split every voxel into this many per side (a thin-slice scan of the same anatomy)
    as_mri: bool = False  # a CT drawn with a T1-weighted MRI's contrast (the same anatomy as an MRI)
    # -- finetune ------------------------------------------------------------------------------
    base_model: str | None = None
    base_spec: str | None = None
    # -- online --------------------------------------------------------------------------------
    stream: bool = False
    stream_length: int = 40
    eval_volumes: int = 16

    def engine_names(self) -> list[str]:
        return [e for e in self.engines.split(",") if e]

    def axis_list(self) -> list[int]:
        return [int(a) for a in str(self.axes).split(",")]


def add_acquisition_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--thick-slices`` and ``--thick-axis`` (``harness.thick_slices``), ``--finer-voxels``
    (``harness.finer_voxels``) and ``--as-mri`` (``harness.mri_contrast``), for every command
    that plays sessions on copies acquired otherwise (resolution, contrast): the benchmark and the
    prompt3d calibration."""
    d = BenchOptions()
    p.add_argument(
        "--thick-slices",
        type=int,
        default=d.thick_slices,
        help="average every N slices into one: the same anatomy as a thick-slice scan",
    )
    p.add_argument(
        "--thick-axis",
        type=int,
        default=d.thick_axis,
        help="the axis --thick-slices thickens (0 axial, 1 coronal, 2 sagittal)",
    )
    p.add_argument(
        "--finer-voxels",
        type=int,
        default=d.finer_voxels,
        help="split every voxel into N per side (1 to 4): the same anatomy as a thin-slice scan, "
        "where the robot's hints are N times shorter in mm",
    )
    p.add_argument(
        "--as-mri",
        action="store_true",
        help="draw each CT with a T1-weighted MRI's contrast, a bias field and Rician noise: "
        "the same anatomy as an MRI",
    )
