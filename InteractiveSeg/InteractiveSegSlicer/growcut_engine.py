"""Slicer's "Grow from seeds" as a baseline engine (``vtkImageGrowCutSegment``, slicer-core).

On the slice of the newest hint, the voxels of the class's positive hints become seed
label 1 and those of its negative hints seed label 2 (background); GrowCut assigns every
other voxel of the slice to the seed it reaches along the path of least intensity
change, and the class is where the result is 1.

Behaviour kept from Slicer's effect, on purpose: with seeds of one kind only, GrowCut
fills the whole slice with that kind (positive only -> the whole slice becomes the
class; negative only -> the class is cleared from the slice). Boxes are not seeds and
are rejected; the session's current mask is not used as seeds (a negative click could
then never shrink it).

Shape detail: ``vtkImageGrowCutSegment`` needs at least 3 voxels along every axis and
never grows *from* voxels on the image border, so the slice is given as a 3-voxel-thick
stack (the slice repeated) with a 1-voxel replicated border; seeds are only on the
middle layer and only the middle layer's inner part is read back. Copies cannot feed
back into the middle layer (they sit on the border, which does not propagate), so the
result equals a 2D GrowCut of the slice with 8-connectivity.

Lives outside InteractiveSegLib (it needs slicer-core) and registers through the
``interactiveseg.engines`` entry point (``growcut``).
"""

from __future__ import annotations

import numpy as np

from InteractiveSegLib.errors import EngineError
from InteractiveSegLib.interactions import Box, kji, slice_points
from InteractiveSegLib.engines.base import Engine, Prediction, Request

FOREGROUND_SEED = 1
BACKGROUND_SEED = 2


def _growcut_filter_class():
    try:
        import slicer

        return slicer.vtkImageGrowCutSegment
    except (ImportError, AttributeError) as e:  # pragma: no cover - depends on the install
        raise EngineError(
            "the growcut engine needs Slicer's segmentation libraries: run it inside 3D Slicer "
            f"or install the slicer-core wheel (pip install 'InteractiveSegLib[slicer]') ({e})"
        ) from None


def _to_vtk_image(array_zyx: np.ndarray, vtk_type: int, spacing) -> "vtkImageData":  # noqa: F821
    import vtk
    from vtk.util import numpy_support

    image = vtk.vtkImageData()
    z, y, x = array_zyx.shape
    image.SetDimensions(x, y, z)
    image.SetSpacing(*spacing)
    image.AllocateScalars(vtk_type, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = np.ascontiguousarray(array_zyx).ravel()
    return image


def grow_cut_2d(image2d: np.ndarray, seeds2d: np.ndarray, spacing=(1.0, 1.0, 1.0), distance_penalty: float = 0.0, filter_class=None) -> np.ndarray:
    """GrowCut of one slice: every pixel takes the value of the seed (> 0) that reaches it.

    ``spacing`` is (column, row, slice) spacing. Any number of seed values works (one per class).
    """
    import vtk
    from vtk.util import numpy_support

    # 3-thick, border-padded stack (see module docstring)
    image3 = np.repeat(np.pad(image2d.astype(np.float32), 1, mode="edge")[None], 3, axis=0)
    seeds3 = np.zeros(image3.shape, np.uint8)
    seeds3[1, 1:-1, 1:-1] = seeds2d
    grow = (filter_class or _growcut_filter_class())()
    grow.SetIntensityVolume(_to_vtk_image(image3, vtk.VTK_FLOAT, spacing))
    grow.SetSeedLabelVolume(_to_vtk_image(seeds3, vtk.VTK_UNSIGNED_CHAR, spacing))
    grow.SetDistancePenalty(distance_penalty)
    grow.Update()
    out = grow.GetOutput()
    if out is None or out.GetPointData().GetScalars() is None:
        raise EngineError("Grow from seeds failed on this slice (is it at least 1x1 voxels?)")
    return numpy_support.vtk_to_numpy(out.GetPointData().GetScalars()).reshape(image3.shape)[1, 1:-1, 1:-1]


class GrowFromSeedsEngine(Engine):
    """Grow from seeds (GrowCut) on one slice; ``distance_penalty`` as in Slicer's effect (default 0)."""

    name = "growcut"
    mode = "2d"

    def __init__(self, distance_penalty: float = 0.0) -> None:
        super().__init__()
        self.distance_penalty = float(distance_penalty)
        self._filter_class = _growcut_filter_class()

    def seeds(self, request: Request, shape2d: tuple[int, int]) -> np.ndarray:
        """Seed image of the slice: 1 for positive hint voxels, 2 for negative (the newer hint wins)."""
        seeds = np.zeros(shape2d, np.uint8)
        for hint in request.interactions:
            if isinstance(hint, Box):
                raise EngineError("the growcut engine grows from clicks, scribbles or extreme points, not boxes")
            value = FOREGROUND_SEED if hint.positive else BACKGROUND_SEED
            # only hints on this slice seed it
            on_slice = [p for p in hint.points if kji(p)[request.axis] == request.slice_index]
            for r, c in slice_points(on_slice, request.axis):
                if 0 <= r < shape2d[0] and 0 <= c < shape2d[1]:
                    seeds[r, c] = value
        return seeds

    def predict(self, request: Request) -> Prediction:
        if self.volume is None:
            raise EngineError("set_image() must be called before predict()")
        image2d = np.take(self.volume.array, request.slice_index, axis=request.axis).astype(np.float32)
        seeds2d = self.seeds(request, image2d.shape)
        if not seeds2d.any():
            raise EngineError(f"no hint of class {request.label} lies on slice {request.slice_index} (axis {request.axis})")

        others = [a for a in range(3) if a != request.axis]
        sp = self.volume.geometry.spacing  # IJK spacing; KJI axis a -> IJK index 2 - a
        spacing = (sp[2 - others[1]], sp[2 - others[0]], sp[2 - request.axis])
        result = grow_cut_2d(image2d, seeds2d, spacing, self.distance_penalty, self._filter_class)
        probability = (result == FOREGROUND_SEED).astype(np.float32)
        return Prediction(request.label, self.slice_region(request.axis, request.slice_index), np.expand_dims(probability, request.axis))
