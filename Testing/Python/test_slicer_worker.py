"""The persistent inference thread, the dependency check and the engine menu's information
(Qt-free parts of the module; no Slicer application needed)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "InteractiveSeg"))

from InteractiveSegSlicer import dependencies, engine_info  # noqa: E402
from InteractiveSegSlicer.worker import Cancelled, InferenceWorker  # noqa: E402


def test_every_job_runs_on_the_same_long_lived_thread_in_order():
    worker = InferenceWorker()
    seen = []
    jobs = [worker.submit(lambda n, job: seen.append((n, threading.get_ident())) or n * n, n) for n in range(5)]
    assert [j.wait(10) for j in jobs] == [0, 1, 4, 9, 16]
    assert [n for n, _ in seen] == list(range(5))
    assert {t for _, t in seen} == {worker.thread_id} and worker.thread_id != threading.get_ident()
    worker.shutdown()


def test_errors_reach_the_caller_and_the_worker_keeps_going():
    worker = InferenceWorker()

    def fail(job):
        raise ValueError("model file does not load")

    with pytest.raises(ValueError, match="does not load"):
        worker.run(fail)
    assert worker.run(lambda job: "still alive") == "still alive"
    worker.shutdown()


def test_cancel_stops_a_long_job_between_steps_and_skips_queued_ones():
    worker = InferenceWorker()
    started = threading.Event()
    steps = []

    def long_job(job):
        started.set()
        for n in range(1000):
            job.report(n / 1000, f"slice {n}")
            steps.append(n)
            time.sleep(0.002)
        return "finished"

    first = worker.submit(long_job)
    queued = worker.submit(lambda job: steps.append("queued ran"))
    assert started.wait(5)
    first.cancel()
    queued.cancel()
    with pytest.raises(Cancelled):
        first.wait(10)
    with pytest.raises(Cancelled):
        queued.wait(10)
    assert first.cancelled and 0 < len(steps) < 1000 and "queued ran" not in steps
    assert 0.0 <= first.progress < 1.0 and first.message.startswith("slice ")
    worker.shutdown()


def test_unmet_requirements_are_named_with_what_is_installed(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("# comment\nnumpy>=1.0  # fine\nnumpy<1.0\nsurely-not-an-installed-package-xyz>=1\n\n")
    problems = dependencies.unmet(dependencies.read_requirements(req))
    assert [str(r) for r, _ in problems] == ["numpy<1.0", "surely-not-an-installed-package-xyz>=1"]
    text = dependencies.describe(problems)
    assert "not installed" in text and "version " in text
    req.write_text("numpy >= = 1\n")
    with pytest.raises(ValueError, match="requirements.txt:1"):
        dependencies.read_requirements(req)


def test_shipped_requirements_parse_and_exclude_torch():
    reqs = dependencies.read_requirements(ROOT / "InteractiveSeg" / "Resources" / "requirements.txt")
    names = {r.name.lower() for r in reqs}
    assert "monai" in names and "torch" not in names  # torch comes from the PyTorch extension first
    assert all(r.specifier for r in reqs), "every package is pinned to a tested range"


def test_model_cards_and_device_options():
    assert "Grow from seeds" in engine_info.model_card("growcut")
    card = engine_info.model_card("click")
    assert card.startswith("#") and len(card) > 200  # the shipped click_fcnn.md
    from InteractiveSegLib.engines import Engine, register_engine

    class PluginEngine(Engine):  # declares no model card
        name = "my-plugin"

        def predict(self, request):
            raise NotImplementedError

    register_engine("my-plugin", PluginEngine)
    assert "no model card" in engine_info.model_card("my-plugin")
    assert "cannot be read" in engine_info.model_card("no-such-engine")
    assert engine_info.engine_options("click", "cpu") == {"device": "cpu"}
    assert engine_info.engine_options("growcut", "cpu") == {} and engine_info.engine_options("click", None) == {}
    assert engine_info.device_summary().startswith(("CPU", "CUDA"))
