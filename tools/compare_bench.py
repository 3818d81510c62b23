"""Compare two benchmark reports (``interactiveseg bench --json``) figure by figure, timings
and memory aside: the check that a change of structure left every Dice and NoC as it was.

    python tools/compare_bench.py BEFORE.json AFTER.json   # exit 1 and list what differs
    python tools/compare_bench.py BEFORE.json AFTER.json --tolerance 1e-7

``--tolerance`` lets floats differ by that share of the larger: the Pearson r of the same
slices comes back a few 1e-8 apart from run to run (the slice-quality model's sums), where a
single voxel moves the Dice of a whole brain by about 3e-7.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
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


def differences(a: Any, b: Any, path: str = "", tolerance: float = 0.0) -> list[str]:
    """Where two JSON values differ, timing keys skipped.

    Args:
        a, b: the values (a report's ``results``, or any part of them).
        path: where they sit, for the listing.
        tolerance: floats differ when they are further apart than this share of the larger
            (0: exactly); NaN equals NaN.
    Returns:
        One line per difference.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if any(k.startswith(t) for t in TIMING):
                continue
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'after' if k not in a else 'before'}")
            else:
                out += differences(a[k], b[k], f"{path}/{k}", tolerance)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items before, {len(b)} after"]
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in differences(x, y, f"{path}[{i}]", tolerance)]
    if isinstance(a, float) and isinstance(b, float):
        if (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=tolerance, abs_tol=0.0):
            return []
    return [] if a == b else [f"{path}: {a!r} before, {b!r} after"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--tolerance", type=float, default=0.0, help="floats may differ by this share of the larger")
    args = parser.parse_args(argv)
    before, after = (json.loads(Path(p).read_text())["results"] for p in (args.before, args.after))
    found = differences(before, after, tolerance=args.tolerance)
    for line in found:
        print(line)
    print(f"{len(before)} results compared: {'identical' if not found else f'{len(found)} differences'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
