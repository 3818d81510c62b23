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

from InteractiveSegLib.engines.base import Engine, Prediction, Request, SeedGrower
from InteractiveSegLib.errors import EngineError
from InteractiveSegLib.hints import kji, slice_points
from InteractiveSegLib.methods.vmn.engine import VMNEngine, corrected_block
from InteractiveSegLib.methods.vmn.propagation import PropagationResult

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


def _to_vtk_image(array_zyx: np.ndarray, vtk_type: int, spacing) -> vtkImageData:  # noqa: F821
    import vtk
    from vtk.util import numpy_support

    image = vtk.vtkImageData()
    z, y, x = array_zyx.shape
    image.SetDimensions(x, y, z)
    image.SetSpacing(*spacing)
    image.AllocateScalars(vtk_type, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = np.ascontiguousarray(array_zyx).ravel()
    return image


def _grow_cut(image: np.ndarray, seeds: np.ndarray, spacing, distance_penalty: float, filter_class) -> np.ndarray:
    """vtkImageGrowCutSegment on a KJI block whose border voxels are padding."""
    import vtk
    from vtk.util import numpy_support

    grow = (filter_class or _growcut_filter_class())()
    grow.SetIntensityVolume(_to_vtk_image(image.astype(np.float32), vtk.VTK_FLOAT, spacing))
    grow.SetSeedLabelVolume(_to_vtk_image(seeds.astype(np.uint8), vtk.VTK_UNSIGNED_CHAR, spacing))
    grow.SetDistancePenalty(distance_penalty)
    grow.Update()
    out = grow.GetOutput()
    if out is None or out.GetPointData().GetScalars() is None:
        raise EngineError("Grow from seeds failed (is the image at least 1x1 voxels?)")
    return numpy_support.vtk_to_numpy(out.GetPointData().GetScalars()).reshape(image.shape)


def grow_cut_2d(
    image2d: np.ndarray, seeds2d: np.ndarray, spacing=(1.0, 1.0, 1.0), distance_penalty: float = 0.0, filter_class=None
) -> np.ndarray:
    """GrowCut of one slice: every pixel takes the value of the seed (> 0) that reaches it.

    ``spacing`` is (column, row, slice) spacing. Any number of seed values works (one per class).
    """
    # 3-thick, border-padded stack (see module docstring)
    image3 = np.repeat(np.pad(image2d.astype(np.float32), 1, mode="edge")[None], 3, axis=0)
    seeds3 = np.zeros(image3.shape, np.uint8)
    seeds3[1, 1:-1, 1:-1] = seeds2d
    return _grow_cut(image3, seeds3, spacing, distance_penalty, filter_class)[1, 1:-1, 1:-1]


def grow_cut_3d(
    image3d: np.ndarray, seeds3d: np.ndarray, spacing=(1.0, 1.0, 1.0), distance_penalty: float = 0.0, filter_class=None
) -> np.ndarray:
    """GrowCut of a KJI block (at least 1 voxel per axis): padded by one replicated voxel,
    since the filter never grows from the border."""
    image = np.pad(image3d.astype(np.float32), 1, mode="edge")
    seeds = np.pad(seeds3d.astype(np.uint8), 1)
    return _grow_cut(image, seeds, spacing, distance_penalty, filter_class)[1:-1, 1:-1, 1:-1]


class GrowFromSeedsEngine(Engine, SeedGrower):
    """Grow from seeds (GrowCut) on one slice; ``distance_penalty`` as in Slicer's effect (default 0)."""

    name = "growcut"
    mode = "2d"
    SUPPORTED_HINTS = frozenset({"click", "scribble", "extreme_points"})
    RUNS_NETWORK = False

    @staticmethod
    def grow_seeds(image2d: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """GrowCut of a multi-label seed map on one 2D image (unit spacing, no distance penalty)."""
        return grow_cut_2d(image2d, seeds)

    def __init__(self, distance_penalty: float = 0.0) -> None:
        super().__init__()
        self.distance_penalty = float(distance_penalty)
        self._filter_class = _growcut_filter_class()

    def seeds(self, request: Request, shape2d: tuple[int, int]) -> np.ndarray:
        """Seed image of the slice: 1 for positive hint voxels, 2 for negative (the newer hint wins)."""
        seeds = np.zeros(shape2d, np.uint8)
        for hint in request.interactions:
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
            raise EngineError(
                f"no hint of class {request.label} lies on slice {request.slice_index} (axis {request.axis})"
            )

        others = [a for a in range(3) if a != request.axis]
        sp = self.volume.geometry.spacing  # IJK spacing; KJI axis a -> IJK index 2 - a
        spacing = (sp[2 - others[1]], sp[2 - others[0]], sp[2 - request.axis])
        result = grow_cut_2d(image2d, seeds2d, spacing, self.distance_penalty, self._filter_class)
        probability = (result == FOREGROUND_SEED).astype(np.float32)
        return Prediction(
            request.label,
            self.slice_region(request.axis, request.slice_index),
            np.expand_dims(probability, request.axis),
        )


class GrowFromSeedsPropagationEngine(VMNEngine):
    """VMN's baseline "Grow from seeds seeded from the corrected slices": the same f_IN
    corrections, carried through the volume by a 3D GrowCut instead of the memory network.

    Seeds, as a Slicer user would paint them: each corrected slice's mask is foreground
    and the rest of that slice's ROI (beyond a 2-voxel band) background; the border of
    the ROI box is background on every slice (the "surround" stroke). The ROI is the
    corrected masks' in-plane box + ``margin`` voxels, over the corrected slices +-
    ``reach`` slices. No quality head: ``suggest_slice`` has nothing to offer.
    """

    name = "vmn-growcut"

    def __init__(self, margin: int = 10, reach: int = 15, distance_penalty: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.margin, self.reach, self.distance_penalty = int(margin), int(reach), float(distance_penalty)
        self._filter_class = _growcut_filter_class()

    def propagate(self, axis: int, corrected: dict[int, np.ndarray], start: int) -> PropagationResult:
        import time

        from scipy import ndimage

        t0 = time.perf_counter()
        image = np.moveaxis(self.volume.array, axis, 0)
        n = image.shape[0]
        prob = np.zeros(image.shape, np.float32)
        quality = np.full(n, np.nan, np.float32)
        block = corrected_block(corrected, image.shape, self.margin, self.reach)
        if block is not None:
            (k0, k1), (r0, r1), (c0, c1) = block
            seeds = np.zeros((k1 - k0, r1 - r0, c1 - c0), np.uint8)
            seeds[:, [0, -1], :] = BACKGROUND_SEED
            seeds[:, :, [0, -1]] = BACKGROUND_SEED
            for i, m in corrected.items():
                fg = m[r0:r1, c0:c1] > 0.5
                layer = np.full(fg.shape, BACKGROUND_SEED, np.uint8)
                layer[ndimage.binary_dilation(fg, iterations=2)] = 0
                layer[fg] = FOREGROUND_SEED
                seeds[i - k0] = layer
            sp = self.volume.geometry.spacing
            others = [a for a in range(3) if a != axis]
            spacing = (sp[2 - others[1]], sp[2 - others[0]], sp[2 - axis])
            grown = grow_cut_3d(image[k0:k1, r0:r1, c0:c1], seeds, spacing, self.distance_penalty, self._filter_class)
            prob[k0:k1, r0:r1, c0:c1] = grown == FOREGROUND_SEED
        for i, m in corrected.items():
            prob[i] = m
        return PropagationResult(prob, quality, seconds=time.perf_counter() - t0)
