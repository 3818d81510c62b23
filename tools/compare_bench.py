"""Compare two benchmark reports (``interactiveseg bench --json``) figure by figure, timings
and memory aside: the check that a change of structure left every Dice and NoC as it was.

    python tools/compare_bench.py BEFORE.json AFTER.json   # exit 1 and list what differs
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

#: keys whose values are wall times, memory or the machine: they may differ between runs
TIMING = (
    "ms_per_interaction",
    "s_per_propagation",
    "peak_rss_mb",
    "seconds",
    "speed",
    "s_per_training_round",
    "s_per_round_roi128",
    "training_round_s",
    "proxy_update_s",
    "proxy_updates",
    "train_s",
    "proxy_s",
)


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON values differ (floats exactly, NaN equal to NaN), timing keys skipped."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if any(k.startswith(t) for t in TIMING):
                continue
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'after' if k not in a else 'before'}")
            else:
                out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items before, {len(b)} after"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    return [] if a == b else [f"{path}: {a!r} before, {b!r} after"]


def main(argv: list[str]) -> int:
    before, after = (json.loads(open(p).read())["results"] for p in argv[:2])
    found = differences(before, after)
    for line in found:
        print(line)
    print(f"{len(before)} results compared: {'identical' if not found else f'{len(found)} differences'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
