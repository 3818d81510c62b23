"""Which of the engines' Python packages are missing or of an untested version.

Why: the first-run set-up inside Slicer must install only what is missing, check the
result, and say exactly what failed instead of leaving Slicer with a half-working
set of packages. Reading the requirements is Qt-free and testable; asking the user and
running pip stay in the module (InteractiveSeg.py).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

#: torch is installed first and separately (PyTorch extension), with this range.
TORCH_REQUIREMENT = "torch>=2.2,<3"


def read_requirements(path: str | Path) -> list[Requirement]:
    """Requirements of a pip requirements file (comments and blank lines skipped)."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            out.append(Requirement(text))
        except InvalidRequirement as e:
            raise ValueError(f"{path}:{n}: {e}") from None
    return out


def unmet(requirements: list[Requirement]) -> list[tuple[Requirement, str | None]]:
    """(requirement, installed version or None) for each requirement not satisfied now."""
    out = []
    for req in requirements:
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            out.append((req, None))
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            out.append((req, version))
    return out


def describe(problems: list[tuple[Requirement, str | None]]) -> str:
    """One line per unmet requirement, for the message box."""
    return "\n".join(
        f"{req}: {'not installed' if have is None else f'version {have} installed'}" for req, have in problems
    )
