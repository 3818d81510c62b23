"""``interactiveseg bench``: every engine, same robot, same data, one report (../shared/BENCHMARK.md)."""

from InteractiveSegLib.bench.click import add_arguments, run

__all__ = ["add_arguments", "run"]
