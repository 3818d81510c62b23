"""One persistent inference thread for the module and the Segment Editor effect.

Why one thread and not one per prediction: torch keeps per-thread state (intra-op pools,
autograd and allocator caches); a fresh thread per click re-pays it and measured ~10x
slower. Why a thread at all: propagation, fine-tuning and online training take seconds
to minutes and must not freeze Slicer's UI.

Only engine work runs here. MRML must be touched from the main thread: the caller polls
``Job.done`` (in Slicer with a ``qt.QTimer``), then writes the result. Qt-free.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any


class Cancelled(Exception):
    """Raised inside a job by ``Job.check`` once the user pressed Cancel."""


class Job:
    """A unit of work: ``fn(*args, job=job, **kwargs)``; ``fn`` may call ``job.report(fraction,
    text)`` and ``job.check()`` (raises ``Cancelled``) between its steps."""

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict, title: str) -> None:
        self.fn, self.args, self.kwargs, self.title = fn, args, kwargs, title
        self.progress = 0.0
        self.message = ""
        self.result: Any = None
        self.error: BaseException | None = None
        self.seconds = 0.0
        self._cancel = threading.Event()
        self._done = threading.Event()

    # -- used by the job function (worker thread) ----------------------------------------
    def report(self, fraction: float, text: str = "") -> None:
        self.progress = min(1.0, max(0.0, float(fraction)))
        if text:
            self.message = text
        self.check()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled(f"{self.title}: cancelled")

    # -- used by the UI (main thread) ----------------------------------------------------
    def cancel(self) -> None:
        """Ask the job to stop at its next ``check``; a job still queued never starts."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """Stopped by Cancel (raised ``Cancelled``)."""
        return isinstance(self.error, Cancelled)

    @property
    def cancel_requested(self) -> bool:
        """Cancel was pressed, even if the job then ran to its end (an engine without
        progress reports, e.g. one click, finishes its step): the caller should drop the result."""
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until done (scripts, tests); re-raises the job's exception."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.title}: not finished after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result


class InferenceWorker:
    """A single daemon thread that runs submitted jobs one after the other, in order."""

    def __init__(self, name: str = "InteractiveSeg inference") -> None:
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self.thread_id: int | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def submit(self, fn: Callable[..., Any], *args, title: str = "InteractiveSeg", **kwargs) -> Job:
        if not self._thread.is_alive():
            raise RuntimeError("the inference worker was shut down")
        job = Job(fn, args, kwargs, title)
        self._queue.put(job)
        return job

    def run(self, fn: Callable[..., Any], *args, title: str = "InteractiveSeg", **kwargs) -> Any:
        """Submit and wait: scripts get the same thread (and warm caches) as the UI."""
        return self.submit(fn, *args, title=title, **kwargs).wait()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def busy(self) -> bool:
        return self._queue.unfinished_tasks > 0

    def shutdown(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        self.thread_id = threading.get_ident()
        self._ready.set()
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                start = time.perf_counter()
                try:
                    job.check()
                    job.result = job.fn(*job.args, job=job, **job.kwargs)
                    job.progress = 1.0
                except BaseException as e:  # delivered to the main thread through the job
                    job.error = e
                job.seconds = time.perf_counter() - start
                job._done.set()
            finally:
                self._queue.task_done()
