"""One report writer for every suite: the table on stdout, the JSON of ../shared/BENCHMARK.md and the
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


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file, then a rename), its folder made if need be."""
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
        write_text(json_path, json.dumps(report, indent=1))
    if markdown_path:
        write_text(markdown_path, table + "\n")
    return report


def summary_table(results: list[dict[str, Any]], dice_at: tuple[int, ...] = (0, 1, 2, 3, 5, 10)) -> str:
    """../shared/BENCHMARK.md's figures of every result, one row each (the 2D and SIM suites' table)."""
    head = (
        "| engine | data | mode | structures | sessions | "
        + " | ".join(f"Dice@{k}" for k in dice_at)
        + " | NoC@85 | NoC@90 | ms median | ms p95 | peak RSS MB |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    nan = float("nan")
    for r in results:
        ms = r["ms_per_interaction"]
        robot = f" ({r['robot']} robot)" if "robot" in r else ""
        lines.append(
            f"| {r['engine']}{robot} | {r['data']} | {r['mode']} | {len(r['structures'])} | "
            f"{r.get('sessions', '')} | "
            + " | ".join(f"{r['dice_at'].get(str(k), nan):.3f}" for k in dice_at)
            + f" | {r['noc85']:.2f} | {r['noc90']:.2f} | {ms['median'] or nan:.1f} | {ms['p95'] or nan:.1f}"
            + f" | {r['peak_rss_mb']} |"
        )
    return "\n".join(lines)
