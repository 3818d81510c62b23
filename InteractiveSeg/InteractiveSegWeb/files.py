"""The files a browser may open: those under the root folder named on the command line
(``interactiveseg web --root DIR``), by their path relative to it.

Why here and so strict: the page is reachable by whoever reaches the port; it must never
make the server read an arbitrary path. A name from the page is resolved (links followed)
and refused unless it lies under the root.
"""

from __future__ import annotations

from pathlib import Path

from InteractiveSegLib.errors import InteractionError

#: Volume files listed (a DICOM series is listed as its folder).
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
MAX_LISTED = 1000  # a huge tree is listed in part, not walked for minutes


def _is_image(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith(IMAGE_SUFFIXES) and not name.endswith(".seg.nrrd")


def _is_dicom_folder(path: Path) -> bool:
    return path.is_dir() and any(f.suffix.lower() == ".dcm" for f in path.iterdir())


def list_images(root: Path) -> list[str]:
    """Volumes under ``root`` (files, and folders of ``.dcm`` files), relative, sorted.

    Args:
        root: the folder named on the command line.
    Returns: at most ``MAX_LISTED`` relative POSIX paths."""
    root = Path(root).resolve()
    found: list[str] = []
    for path in sorted(root.rglob("*")):
        if len(found) >= MAX_LISTED:
            break
        if _is_image(path) or _is_dicom_folder(path):
            found.append(path.relative_to(root).as_posix())
    return found


def resolve(root: Path, relative: str) -> Path:
    """The file ``relative`` names under ``root``.

    Args:
        root: the folder named on the command line; relative: a name from the page.
    Returns: the resolved path (InteractionError if it leaves the root or does not exist)."""
    base = Path(root).resolve()
    path = (base / str(relative)).resolve()
    if not path.is_relative_to(base) or path == base:
        raise InteractionError(f"{relative!r} is not a file under the root folder")
    if not path.exists():
        raise InteractionError(f"{relative!r} does not exist under the root folder")
    return path
