"""A voxel array with the geometry that places it in patient space.

Arrays are numpy in KJI order (Slicer's ``arrayFromVolume`` order: ``a[k, j, i]``).
Geometry is kept in RAS, as Slicer does; SimpleITK's LPS is converted in ``io``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from InteractiveSegLib.errors import GeometryError, ImageError


@dataclass(frozen=True)
class Geometry:
    """Voxel grid in RAS: origin of voxel (0,0,0), spacing along i/j/k, direction columns."""

    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    direction: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

    @classmethod
    def from_ijk_to_ras(cls, matrix: np.ndarray) -> Geometry:
        """Build from a 4x4 IJK->RAS matrix (what ``vtkMRMLVolumeNode.GetIJKToRASMatrix`` gives)."""
        m = np.asarray(matrix, dtype=float)
        cols = m[:3, :3]
        spacing = np.linalg.norm(cols, axis=0)
        if np.any(spacing <= 0):
            raise GeometryError("IJK to RAS matrix has a zero spacing")
        direction = cols / spacing
        return cls(tuple(m[:3, 3]), tuple(spacing), tuple(map(tuple, direction)))

    @property
    def ijk_to_ras(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = np.asarray(self.direction) * np.asarray(self.spacing)[None, :]
        m[:3, 3] = self.origin
        return m

    def ras_to_ijk(self, ras) -> np.ndarray:
        """Continuous IJK of RAS points (N x 3 or 3)."""
        ras = np.atleast_2d(np.asarray(ras, dtype=float))
        inv = np.linalg.inv(self.ijk_to_ras)
        out = (inv[:3, :3] @ ras.T).T + inv[:3, 3]
        return out

    def ijk_to_ras_points(self, ijk) -> np.ndarray:
        ijk = np.atleast_2d(np.asarray(ijk, dtype=float))
        m = self.ijk_to_ras
        return (m[:3, :3] @ ijk.T).T + m[:3, 3]

    def close_to(self, other: Geometry, tol: float = 1e-3) -> bool:
        return bool(
            np.allclose(self.origin, other.origin, atol=tol)
            and np.allclose(self.spacing, other.spacing, atol=tol)
            and np.allclose(self.direction, other.direction, atol=tol)
        )


@dataclass
class Volume:
    """A scalar 3D image: KJI float32 array + geometry + a display name, and the modality
    ("ct", "mr") when the file's header said it (``intensity.detect_modality`` otherwise)."""

    array: np.ndarray
    geometry: Geometry = field(default_factory=Geometry)
    name: str = "volume"
    modality: str | None = None

    def __post_init__(self) -> None:
        self.array = validate_image_array(self.array, self.name)

    @property
    def shape(self) -> tuple[int, int, int]:
        """KJI shape."""
        return tuple(self.array.shape)

    @property
    def ijk_size(self) -> tuple[int, int, int]:
        k, j, i = self.array.shape
        return (i, j, k)


def validate_image_array(array: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``array`` as float32 KJI or raise ImageError with the reason."""
    a = np.asarray(array)
    if a.ndim != 3:
        raise ImageError(f"{name}: expected a 3D scalar image, got {a.ndim}D array of shape {a.shape}")
    if min(a.shape) < 1:
        raise ImageError(f"{name}: empty image of shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise ImageError(f"{name}: unsupported pixel type {a.dtype}")
    a = a.astype(np.float32, copy=False)
    if not np.isfinite(a).all():
        raise ImageError(f"{name}: image contains NaN or infinite values")
    return a


def check_same_grid(image: Volume, labels_shape: tuple, labels_geometry: Geometry | None, what: str = "labels") -> None:
    """Raise GeometryError unless a labelmap lies on the image's voxel grid."""
    if tuple(labels_shape) != image.shape:
        raise GeometryError(f"{what} shape {tuple(labels_shape)} (KJI) differs from image shape {image.shape}")
    if labels_geometry is not None and not image.geometry.close_to(labels_geometry):
        raise GeometryError(
            f"{what} geometry (origin {labels_geometry.origin}, spacing {labels_geometry.spacing}) "
            f"differs from image geometry (origin {image.geometry.origin}, spacing {image.geometry.spacing})"
        )
