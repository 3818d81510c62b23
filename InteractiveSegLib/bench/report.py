"""One report writer for every suite: the table on stdout, the JSON of BENCHMARK.md and the
markdown table in the files asked for (each written whole, through a temporary file)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from InteractiveSegLib.bench.result import BenchResult


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    import torch

    return {
        "cpu_threads": torch.get_num_threads(),
        "device": "cpu",
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def _write_text(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")  # open(): the user's umask applies
    tmp.write_text(text)
    os.replace(tmp, target)


def write_report(
    command: str, results: list[BenchResult], table: str, json_path: str | None, markdown_path: str | None
) -> dict[str, Any]:
    """Print ``table``; write the report (and the table) where asked. Returns the report."""
    report = {"command": command, "machine": machine(), "results": [r.to_json() for r in results]}
    print(table)
    if json_path:
        _write_text(json_path, json.dumps(report, indent=1))
    if markdown_path:
        _write_text(markdown_path, table + "\n")
    return report
