"""Proxy masks by registration (../shared/papers/dynamic-interactive-learning.txt, 2.4, Algorithm 2).

The user draws the structure on a few slices; every other slice takes the mask of the
nearest drawn slice of the same plane, warped by a registration of the two slices
(SimpleITK: affine, then B-spline, Mattes mutual information). Done along each plane
that has drawn slices showing the structure; two planes are averaged and cut at 0.5, which removes most of
the false positives one plane leaves beyond the structure's ends.

Incremental: a new drawn slice only re-registers the slices whose nearest drawn slice
changed (the paper's O(d/t) update); slices are registered in parallel threads
(SimpleITK releases the GIL while it registers). A drawn slice's proxy is the drawing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from InteractiveSegLib.errors import InteractionError


@dataclass
class RegistrationSettings:
    """Slice-to-slice registration, sized for interactive use (the bar: an update after one
    new slice of a 128 x 128 x 100 volume in <= 2 s)."""

    bins: int = 16  # Mattes histogram bins
    sampling: float = 0.3  # fraction of pixels sampled by the metric
    affine_iterations: int = 15
    bspline_iterations: int = 8
    bspline_mesh: int = 3  # control-point mesh per side
    shrink: int = 4  # registration on a grid this many times coarser (the warp is applied at full size)
    min_grid: int = 32  # ... but never coarser than this many pixels per side
    seed: int = 7


@dataclass
class _Plane:
    drawn: dict[int, np.ndarray] = field(default_factory=dict)  # slice index -> 2D mask
    proxy: dict[int, np.ndarray] = field(default_factory=dict)  # slice index -> 2D float mask in [0, 1]
    source: dict[int, int] = field(default_factory=dict)  # slice index -> drawn slice it was warped from


def _image2d(a: np.ndarray) -> sitk.Image:
    return sitk.GetImageFromArray(np.ascontiguousarray(a, dtype=np.float32))


def register_slices(fixed: np.ndarray, moving: np.ndarray, settings: RegistrationSettings) -> sitk.Transform:
    """Affine then B-spline transform mapping ``fixed`` pixels into ``moving`` (Mattes MI)."""
    f, m = _image2d(fixed), _image2d(moving)
    shrink = max(1, min(settings.shrink, min(fixed.shape) // settings.min_grid))
    if shrink > 1:
        f = sitk.Shrink(f, [shrink] * 2)
        m = sitk.Shrink(m, [shrink] * 2)

    def method(iterations: int) -> sitk.ImageRegistrationMethod:
        sitk.ProcessObject.SetGlobalWarningDisplay(False)  # LBFGSB warns that it ignores scales
        r = sitk.ImageRegistrationMethod()
        r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.bins)
        r.SetMetricSamplingStrategy(r.RANDOM)
        r.SetMetricSamplingPercentage(settings.sampling, settings.seed)
        r.SetInterpolator(sitk.sitkLinear)
        r.SetOptimizerAsRegularStepGradientDescent(
            learningRate=1.0, minStep=1e-3, numberOfIterations=iterations, gradientMagnitudeTolerance=1e-6
        )
        r.SetOptimizerScalesFromPhysicalShift()
        return r

    affine = sitk.CenteredTransformInitializer(
        f, m, sitk.AffineTransform(2), sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    r = method(settings.affine_iterations)
    r.SetInitialTransform(affine, inPlace=True)
    try:
        r.Execute(f, m)
    except RuntimeError:  # flat slices (nothing to align): keep the identity-centred start
        pass
    composite = sitk.CompositeTransform(2)
    composite.AddTransform(affine)
    if settings.bspline_iterations > 0:
        bspline = sitk.BSplineTransformInitializer(f, [settings.bspline_mesh] * 2)
        r = method(settings.bspline_iterations)
        # plain gradient steps: L-BFGS-B's set-up costs more than the whole affine stage here
        r.SetOptimizerAsRegularStepGradientDescent(
            learningRate=2.0, minStep=1e-3, numberOfIterations=settings.bspline_iterations
        )
        r.SetOptimizerScales([1.0] * bspline.GetNumberOfParameters())
        r.SetMovingInitialTransform(affine)
        r.SetInitialTransform(bspline, inPlace=True)
        try:
            r.Execute(f, m)
            composite.AddTransform(bspline)
        except RuntimeError:
            pass
    return composite


def warp_mask(mask: np.ndarray, transform: sitk.Transform, shape: tuple[int, int]) -> np.ndarray:
    """The moving slice's mask resampled onto the fixed slice's grid (linear, in [0, 1])."""
    ref = sitk.Image([int(shape[1]), int(shape[0])], sitk.sitkFloat32)
    out = sitk.Resample(_image2d(mask.astype(np.float32)), ref, transform, sitk.sitkLinear, 0.0)
    return sitk.GetArrayFromImage(out)


class ProxyMask:
    """Algorithm 2 over one volume, for drawn slices of up to three planes (KJI axes).

    ``add(axis, index, mask)`` records a drawn slice and updates the affected slices;
    ``mask()`` is the proxy: the mean of the planes that have drawn slices, cut at 0.5.
    """

    def __init__(self, image: np.ndarray, settings: RegistrationSettings | None = None, workers: int = 2) -> None:
        if image.ndim != 3:
            raise InteractionError(f"a proxy mask needs a 3D image, got shape {image.shape}")
        if not np.isfinite(image).all():
            raise InteractionError("the image has NaN or infinite voxels")
        self.image = image.astype(np.float32)
        self.settings = settings or RegistrationSettings()
        self.workers = int(workers)
        self.planes: dict[int, _Plane] = {}
        self.last_updated: list[tuple[int, int]] = []  # (axis, index) re-registered by the last add
        self.order: list[tuple[int, int]] = []  # drawn slices, oldest first

    def drawn(self, axis: int) -> list[int]:
        return sorted(self.planes[axis].drawn) if axis in self.planes else []

    def add(self, axis: int, index: int, mask: np.ndarray) -> list[int]:
        """Record the user's mask of slice ``index`` along ``axis``; returns the slices updated."""
        if axis not in (0, 1, 2):
            raise InteractionError(f"axis must be 0, 1 or 2, got {axis}")
        n = self.image.shape[axis]
        if not 0 <= index < n:
            raise InteractionError(f"slice {index} is outside the volume ({n} slices along axis {axis})")
        shape = tuple(s for a, s in enumerate(self.image.shape) if a != axis)
        mask = np.asarray(mask).astype(bool)
        if mask.shape != shape:
            raise InteractionError(f"slice mask shape {mask.shape} differs from the slice shape {shape}")
        plane = self.planes.setdefault(axis, _Plane())
        plane.drawn[index] = mask
        self.order = [o for o in self.order if o != (axis, index)] + [(axis, index)]
        plane.proxy[index] = mask.astype(np.float32)
        plane.source[index] = index
        drawn = np.array(sorted(plane.drawn))
        todo = []
        for j in range(n):
            if j in plane.drawn:
                continue
            nearest = int(drawn[np.argmin(np.abs(drawn - j))])  # ties: the lower index
            if plane.source.get(j) != nearest:
                todo.append((j, nearest))
        slices = lambda i: np.take(self.image, i, axis=axis)  # noqa: E731

        def one(job):
            j, k = job
            t = register_slices(slices(j), slices(k), self.settings)
            return j, k, warp_mask(plane.drawn[k], t, shape)

        if self.workers > 1 and len(todo) > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                results = list(pool.map(one, todo))
        else:
            results = [one(job) for job in todo]
        for j, k, warped in results:
            plane.proxy[j] = warped
            plane.source[j] = k
        self.last_updated = [(axis, j) for j, _ in todo]
        return [j for j, _ in todo]

    def plane_volume(self, axis: int) -> np.ndarray:
        """Υ_axis: the stacked proxy of one plane (float in [0, 1])."""
        plane = self.planes[axis]
        stack = [plane.proxy[j] for j in range(self.image.shape[axis])]
        return np.stack(stack, axis=axis)

    def voting_planes(self) -> list[int]:
        """Planes with at least one drawn slice that shows the structure. A plane whose every
        drawn slice is empty abstains: an empty drawing says where the structure is not, and
        warped to every other slice of its plane it would erase the other plane's proxy
        (its drawn slices still stay empty in ``mask``)."""
        return [a for a in sorted(self.planes) if any(m.any() for m in self.planes[a].drawn.values())]

    def probability(self) -> np.ndarray:
        """Mean of the voting planes (zeros if none)."""
        planes = self.voting_planes()
        if not planes:
            return np.zeros(self.image.shape, np.float32)
        return np.mean([self.plane_volume(a) for a in planes], axis=0).astype(np.float32)

    def mask(self, threshold: float = 0.5) -> np.ndarray:
        """The proxy mask: with two or more planes a voxel needs more than ``threshold`` of
        them (the paper's cut), with one plane a warped value of at least ``threshold``.
        Every drawn slice is exactly the user's drawing (the newest drawing wins where two
        planes' drawn slices cross)."""
        p = self.probability()
        out = p > threshold if len(self.voting_planes()) > 1 else p >= threshold
        for axis, index in self.order:
            idx: list[slice | int] = [slice(None)] * 3
            idx[axis] = index
            out[tuple(idx)] = self.planes[axis].drawn[index]
        return out
