"""Samples drawn in worker processes: each worker draws from its own generator, answers with
the weights the trainer published last, and a worker's failure stops training with its cause."""

import time

import numpy as np
import pytest
import torch

from InteractiveSegLib.errors import EngineError
from InteractiveSegLib.sample_workers import SampleWorkers


class Constant(torch.nn.Module):
    """A network whose every logit is one weight."""

    def __init__(self) -> None:
        super().__init__()
        self.b = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0 + self.b


def answer_and_draw(rng):
    def sample(own):
        time.sleep(0.02)  # long enough that both workers take turns
        return float(own(np.zeros((1, 2, 2, 2), np.float32)).mean()), float(rng.random())

    return sample


def failing(rng):
    def sample(own):
        raise ValueError("no structure in this block")

    return sample


def test_workers_draw_apart_and_answer_with_the_weights_published_last():
    model = Constant()
    streams = [np.random.default_rng([3, w]).random(40) for w in range(2)]
    with SampleWorkers(answer_and_draw, model, workers=2, seed=[3], queue_size=1) as workers:
        first = [workers.get() for _ in range(20)]
        assert {a for a, _ in first} == {0.5}
        draws = {d for _, d in first}
        assert len(draws) == 20 and all(draws & set(s) for s in streams) and draws <= set(np.concatenate(streams))
        with torch.no_grad():
            model.b.fill_(2.0)
        workers.sync(model)
        later = [workers.get()[0] for _ in range(12)]
    stale = 1 + 2 * 2  # the queued sample, and per worker one waiting to be queued or being drawn
    assert later[stale:] == pytest.approx([torch.sigmoid(torch.tensor(2.0)).item()] * (12 - stale))


def test_a_failing_worker_stops_training_with_its_cause():
    with SampleWorkers(failing, Constant(), workers=1, seed=[0]) as workers, pytest.raises(EngineError) as e:
        workers.get()
    assert "no structure in this block" in str(e.value)


def test_workers_need_at_least_one_process():
    with pytest.raises(ValueError):
        SampleWorkers(failing, Constant(), workers=0, seed=[0])
