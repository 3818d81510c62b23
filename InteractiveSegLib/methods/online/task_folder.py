"""A learning task on the site's own disk: model checkpoint, optimizer state, replay buffer
and its samples, in one directory that survives restarts (dynamic-learning paper, 2.6).

- Every write is write-then-rename (``os.replace`` is atomic on one file system) after an
  ``fsync``: a crash mid-write leaves the previous file whole and loadable.
- One writer at a time: ``TaskFolder.open`` takes an exclusive ``fcntl`` lock on
  ``task.lock`` (released when the process ends, even by a crash); a second Slicer session
  on the same task gets a clear TaskLockedError instead of corrupting it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from InteractiveSegLib.errors import InteractiveSegError


class TaskLockedError(InteractiveSegError):
    """Another process has the task open."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_torch_save(path: Path, obj: Any) -> None:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


class TaskFolder:
    """``checkpoint.pt`` (model + optimizer + step), ``buffer.json`` (replay state),
    ``samples/<key>.npz`` (image, proxy target, drawn-slice weights) in ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._lock_file: IO[str] | None = None

    @classmethod
    def open(cls, root: str | Path) -> TaskFolder:
        store = cls(root)
        store.root.mkdir(parents=True, exist_ok=True)
        (store.root / "samples").mkdir(exist_ok=True)
        store._lock()
        return store

    def _lock(self) -> None:
        import fcntl

        f = open(self.root / "task.lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise TaskLockedError(
                f"the task {self.root} is open in another session (InteractiveSeg or Slicer); close it there first"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._lock_file = f

    def close(self) -> None:
        if self._lock_file is not None:
            import fcntl

            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> TaskFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- checkpoint -------------------------------------------------------------------------
    def save_checkpoint(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, meta: dict) -> None:
        atomic_torch_save(
            self.root / "checkpoint.pt",
            {"model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None, "meta": meta},
        )

    def load_checkpoint(self) -> dict | None:
        path = self.root / "checkpoint.pt"
        if not path.exists():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch's unpickler and zip reader raise many kinds
            raise self.corrupt("checkpoint.pt", e) from None
        if not isinstance(saved, dict) or not {"model", "meta"} <= set(saved):
            raise self.corrupt("checkpoint.pt", ValueError("not a task checkpoint"))
        return saved

    def corrupt(self, name: str, error: BaseException) -> InteractiveSegError:
        """The message for a task file that cannot be read back: what, where, what to do."""
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return InteractiveSegError(
            f"task {self.root}: {name} is corrupt or from another version ({first}); "
            f"restore it from a backup, or remove it to start the task afresh"
        )

    # -- replay buffer ----------------------------------------------------------------------
    def save_buffer(self, state: dict) -> None:
        atomic_write_bytes(self.root / "buffer.json", json.dumps(state).encode())

    def load_buffer(self) -> dict | None:
        path = self.root / "buffer.json"
        if not path.exists():
            return None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise self.corrupt("buffer.json", e) from None
        if not isinstance(state, dict):
            raise self.corrupt("buffer.json", ValueError("not a JSON object"))
        return state

    def save_sample(self, key: str, **arrays: np.ndarray) -> None:
        import io

        buf = io.BytesIO()
        # numpy's stub types **kwds against the allow_pickle keyword too
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        atomic_write_bytes(self.root / "samples" / f"{key}.npz", buf.getvalue())

    def load_sample(self, key: str) -> dict[str, np.ndarray]:
        try:
            with np.load(self.root / "samples" / f"{key}.npz") as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as e:  # missing, cut short, or not an npz
            raise self.corrupt(f"samples/{key}.npz", e) from None
