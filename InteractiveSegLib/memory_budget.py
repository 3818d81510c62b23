"""How much memory a session needs, checked before it is spent.

The budget of a session (README, "Memory"): the image as float32 (4 bytes a voxel), the
engine's own working copy and transients (``Engine.MEMORY_PER_VOXEL``), the labelmap
(1-2 bytes a voxel), the undo history (``session.HISTORY_BUDGET_BYTES``) and the model.
A volume whose session would not fit in the memory the machine has free is refused with
the figures, instead of being killed by the system half-way.
"""

from __future__ import annotations

import os

from InteractiveSegLib.errors import MemoryBudgetError

GB = 1024**3


def available_memory() -> int | None:
    """Bytes the system can still give (Linux ``MemAvailable``), None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # other Unix systems: free pages only (an underestimate, so the check stays safe)
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(needed: int, what: str, available: int | None = None) -> None:
    """Raise MemoryBudgetError when ``needed`` bytes exceed what is free.

    Args:
        needed: bytes the operation will allocate.
        what: the operation, for the message.
        available: bytes free (default: :func:`available_memory`; unknown means no check).
    """
    free = available_memory() if available is None else available
    if free is not None and needed > free:
        raise MemoryBudgetError(
            f"{what} needs about {needed / GB:.1f} GB of memory and {free / GB:.1f} GB is free: "
            "close other programs, crop the volume or resample it to a coarser grid"
        )
