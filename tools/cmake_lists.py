"""Write the MODULE_PYTHON_SCRIPTS lists of InteractiveSegLib/ and InteractiveSeg/ from the
.py files on disk (Slicer's build macro takes explicit lists; this keeps them complete).

    python tools/cmake_lists.py          # rewrite both CMakeLists.txt
    python tools/cmake_lists.py --check  # exit 1 if a list differs from the tree
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"InteractiveSegLib": None, "InteractiveSeg": "${MODULE_NAME}.py"}
BLOCK = re.compile(r"(set\(MODULE_PYTHON_SCRIPTS\n)(.*?)(\n  \))", re.S)


def scripts(folder: str, main: str | None) -> list[str]:
    """The folder's .py files, relative, sorted; the module's main script first as ``main``."""
    base = ROOT / folder
    files = sorted(p.relative_to(base).as_posix() for p in base.rglob("*.py") if "__pycache__" not in p.parts)
    if main is not None:
        files = [main] + [f for f in files if f != f"{folder}.py"]
    return files


def render(text: str, files: list[str]) -> str:
    return BLOCK.sub(lambda m: m.group(1) + "\n".join(f"  {f}" for f in files) + m.group(3), text, count=1)


def main(argv: list[str]) -> int:
    stale = []
    for folder, main_script in FOLDERS.items():
        path = ROOT / folder / "CMakeLists.txt"
        text = path.read_text()
        new = render(text, scripts(folder, main_script))
        if new != text:
            stale.append(str(path.relative_to(ROOT)))
            if "--check" not in argv:
                path.write_text(new)
    if stale and "--check" in argv:
        print(f"MODULE_PYTHON_SCRIPTS out of date in {stale}: run python tools/cmake_lists.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
