"""Compare two calibration runs (``interactiveseg calibrate-prompt3d --sessions``) session by
session: which structures and hints an engine rule moved, and by how much. The held-out mean
alone hides whether a rule gains broadly or trades one kind of structure for another.

    python tools/compare_sessions.py BEFORE.json AFTER.json [--most N]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def by_session(path: str) -> dict[tuple, dict]:
    """A run's sessions keyed by (offset, volume, structure, hint)."""
    with open(path) as f:
        rows = json.load(f)["sessions"]
    return {(r["offset"], r["volume"], r["structure"], r["hint"]): r for r in rows}


def changes(before: dict[tuple, dict], after: dict[tuple, dict]) -> list[tuple[float, tuple, float, float]]:
    """(change of the session's mean Dice over its rounds, key, before, after) for every
    session both runs played, largest loss first."""
    out = []
    for key in sorted(set(before) & set(after)):
        a, b = float(np.mean(before[key]["dice"])), float(np.mean(after[key]["dice"]))
        out.append((b - a, key, a, b))
    return sorted(out, key=lambda c: c[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--most", type=int, default=10, help="losses and gains listed (each)")
    args = p.parse_args(argv)
    try:
        before, after = by_session(args.before), by_session(args.after)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"compare_sessions: cannot read a sessions file: {e}", file=sys.stderr)
        return 2
    found = changes(before, after)
    if not found:
        print("compare_sessions: the two runs share no session (offset, volume, structure, hint)", file=sys.stderr)
        return 2
    moved = [c for c in found if abs(c[0]) > 1e-9]
    deltas = np.array([c[0] for c in found])
    print(f"{len(found)} sessions in both; {len(moved)} changed; mean Dice change {deltas.mean():+.4f}")
    listed = moved if len(moved) <= 2 * args.most else moved[: args.most] + moved[-args.most :]
    for delta, (offset, volume, structure, hint), a, b in listed:
        print(f"{delta:+.3f}  {volume} {structure} {hint} (offset {offset:+g}): {a:.3f} -> {b:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
