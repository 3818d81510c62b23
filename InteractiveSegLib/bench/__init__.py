"""``interactiveseg bench``: every engine, same robot, same data, one report (../shared/BENCHMARK.md).

One suite per kind of engine, each a module here with ``owns(name)``, ``run(options)`` and
``markdown(results)``; the harness (data, timing, memory), the result schema and the report
writer are shared. The suite is the one asked for (``--suite``) or the one that owns the
engines named: a suite's own system names, else what the registry says of an engine (2D
or 3D, single- or multi-class).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from InteractiveSegLib.bench.options import BenchOptions
from InteractiveSegLib.bench.report import write_report
from InteractiveSegLib.errors import InteractiveSegError

SUITES = ("online", "finetune", "sim", "vmn", "click")
#: The suite of the engines no other suite claims (registered single-class 2D engines).
FALLBACK_SUITE = "click"


def suite_module(name: str) -> ModuleType:
    """The module of a suite (imported on demand: each pulls in its method)."""
    from importlib import import_module

    if name not in SUITES:
        raise InteractiveSegError(f"unknown benchmark suite {name!r}; expected one of {list(SUITES)}")
    return import_module(f"InteractiveSegLib.bench.{name}")


def choose_suite(options: BenchOptions) -> str:
    """``options.suite``; else ``online`` for ``--stream`` or an online engine named (whatever
    else is asked); else ``sim`` for ``--ablation`` without a fine-tuning engine; else the first
    suite (in ``SUITES`` order) that owns an engine named; else ``FALLBACK_SUITE``."""
    if options.suite:
        suite_module(options.suite)
        return options.suite
    names = options.engine_names()
    if options.stream or any(suite_module("online").owns(n) for n in names):
        return "online"
    if options.ablation and not any(suite_module("finetune").owns(n) for n in names):
        return "sim"
    for suite in SUITES:
        if suite not in ("online", FALLBACK_SUITE) and any(suite_module(suite).owns(n) for n in names):
            return suite
    return FALLBACK_SUITE


def check_engines(suite: str, options: BenchOptions) -> None:
    """InteractiveSegError naming the engines the suite cannot measure."""
    module = suite_module(suite)
    foreign = [n for n in options.engine_names() if not module.owns(n) and n not in module.BASELINES]
    if foreign:
        raise InteractiveSegError(
            f"the {suite} benchmark cannot measure {foreign}: benchmark them in a run of their own"
        )


def run(options: BenchOptions) -> dict[str, Any]:
    """Run the suite for ``options`` and write its report. Returns the report (JSON object)."""
    import torch

    torch.set_num_threads(options.threads)
    if bool(options.image) != bool(options.labels):
        raise InteractiveSegError("--image and --labels go together")
    suite = choose_suite(options)
    check_engines(suite, options)
    module = suite_module(suite)
    results = module.run(options)
    table = module.markdown([r.to_json() for r in results])
    return write_report(options.command, results, table, options.json, options.markdown)


__all__ = ["SUITES", "BenchOptions", "choose_suite", "run"]
