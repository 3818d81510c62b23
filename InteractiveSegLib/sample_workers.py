"""Training samples drawn in worker processes while the main process trains.

Why: a sample of the 3D trainers plays a benchmark step on the CPU (a re-drawn block, robot
hints, often the network's own answer to them), and on a GPU the network's step takes a
small part of that time. With ``workers`` processes drawing, a machine of many cores keeps
its GPU busy; on two cores (this project's CPU runs) it gains nothing, so the trainers keep
drawing in-process by default.

Samples that correct the network's own answer need the network: each worker answers with
its own CPU copy, reloaded from a shared-memory copy whenever the trainer publishes new
weights (``sync``), so an answer a worker corrects is a few steps old at most, as it is one
step old in-process. Workers start by ``fork`` (Linux and macOS' fork context): the
training structures are shared copy-on-write, not pickled, and the worker builds its own
sampler (its own re-drawn blocks) from its own random generator.
"""

from __future__ import annotations

import copy
import multiprocessing as mp
import queue as queue_module
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from InteractiveSegLib.errors import ConfigError, EngineError

Own = Callable[[np.ndarray], np.ndarray]
#: a worker's sampler: ``make_sampler(rng)`` returns ``sample(own) -> one training sample``
MakeSampler = Callable[[np.random.Generator], Callable[[Own], Any]]


def grid_probability(model: torch.nn.Module, x: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """The network's probability on its grid for one input (no gradient): an own answer."""
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(x)[None].to(device)))[0, 0].cpu().numpy()


class _Failure:
    """What a worker puts in the queue when its sampler raised: the traceback, as text."""

    def __init__(self, text: str) -> None:
        self.text = text


def _work(make_sampler: MakeSampler, shadow: torch.nn.Module, lock, version, out, seed: Sequence[int]) -> None:
    torch.set_num_threads(1)  # one core per worker; also keeps a forked OpenMP pool out of use
    torch.manual_seed(int(np.random.SeedSequence(list(seed)).generate_state(1)[0]))  # TorchIO's draws
    local, seen = copy.deepcopy(shadow), [-1]

    def own(x: np.ndarray) -> np.ndarray:
        if version.value != seen[0]:
            with lock:
                local.load_state_dict(shadow.state_dict())
                seen[0] = version.value
        return grid_probability(local, x)

    try:
        sample = make_sampler(np.random.default_rng(list(seed)))
        while True:
            out.put(sample(own))
    except Exception:  # handed to the trainer, which stops with it
        out.put(_Failure(traceback.format_exc()))


class SampleWorkers:
    """``workers`` processes drawing samples into a bounded queue.

    Args:
        make_sampler: called once in each worker with that worker's generator.
        model: the network being trained (any device); its weights at start are published.
        workers: number of processes (at least 1).
        seed: the run's seed words; worker ``w`` draws from ``seed + [w]``.
        queue_size: samples kept ready (default: two per worker).
    """

    def __init__(
        self,
        make_sampler: MakeSampler,
        model: torch.nn.Module,
        workers: int,
        seed: Sequence[int],
        queue_size: int | None = None,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1 to draw in worker processes (got {workers})")
        if "fork" not in mp.get_all_start_methods():
            raise ConfigError("--workers needs the 'fork' start method (Linux or macOS); use --workers 0 here")
        ctx = mp.get_context("fork")
        self.shadow = copy.deepcopy(model).cpu().eval()
        self.shadow.share_memory()
        self.lock, self.version = ctx.Lock(), ctx.Value("i", 0)
        self.queue: Any = ctx.Queue(maxsize=queue_size or 2 * workers)
        self.procs = [
            ctx.Process(
                target=_work,
                args=(make_sampler, self.shadow, self.lock, self.version, self.queue, [*seed, w]),
                daemon=True,
            )
            for w in range(workers)
        ]
        for p in self.procs:
            p.start()

    def sync(self, model: torch.nn.Module) -> None:
        """Publish ``model``'s weights: workers answer with them from their next own answer on."""
        with self.lock, torch.no_grad():
            for mine, theirs in zip(self.shadow.state_dict().values(), model.state_dict().values(), strict=True):
                mine.copy_(theirs)
            self.version.value += 1

    def get(self) -> Any:
        """The next sample; a worker's failure stops training with its traceback."""
        while True:
            try:
                item = self.queue.get(timeout=10)
            except queue_module.Empty:
                if not any(p.is_alive() for p in self.procs):
                    raise EngineError("every sample worker has stopped without a sample") from None
                continue
            if isinstance(item, _Failure):
                self.close()
                raise EngineError(f"a sample worker failed:\n{item.text}")
            return item

    def close(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.terminate()
        for p in self.procs:
            p.join(timeout=5)
        self.queue.cancel_join_thread()

    def __enter__(self) -> SampleWorkers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
