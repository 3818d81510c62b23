#!/usr/bin/env python3
"""Architecture checks of InteractiveSegLib (stdlib only; run from the repository root).

    python tools/check_architecture.py

Parses every .py file under InteractiveSegLib/ with ``ast`` (imports at any depth, also
inside functions), builds the module import graph and checks:

(a) no import cycles between modules (Tarjan's strongly connected components);
(b) the library never imports Slicer or its GUI toolkits (slicer, qt, ctk, vtk, mrml)
    nor the extension's Slicer-side packages;
(c) layering: a module never imports a module of a higher layer (see ``LAYERS``);
(d) every .py file under InteractiveSegLib/ and InteractiveSeg/ has fewer than
    ``MAX_LINES`` lines.

Exits 1 with the list of problems, else prints a one-line summary. ``import a.b.c``
counts as an edge to ``a.b.c`` only (not to the packages a and a.b that Python also
initialises); ``from X import y`` is an edge to ``X.y`` when that is a module, else to X.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

LIBRARY = "InteractiveSegLib"
SIZE_CHECKED_DIRS = ("InteractiveSegLib", "InteractiveSeg")
MAX_LINES = 600  # every file must have fewer lines than this

FORBIDDEN = frozenset(
    {"InteractiveSegSlicer", "InteractiveSegEffect", "InteractiveSegWidgets", "slicer", "qt", "ctk", "vtk", "mrml"}
)

# Layer of each top-level part of the library (the first component after the package
# name; a subpackage covers everything under it). Lower layers never import higher ones.
LAYERS: dict[str, int] = {
    # 0: core data
    "errors": 0,
    "volume": 0,
    "labels": 0,
    "hints": 0,
    "io": 0,
    "memory_budget": 0,  # the memory a session needs, checked before it is spent
    "changes": 0,  # what a step changed in a labelmap, compressed (undo history)
    "intensity": 0,  # the modality of an image and its intensities (io reads the header)
    # 1: shared building blocks
    "preprocessing": 1,
    "encodings": 1,
    "metrics": 1,
    "checkpoints": 1,
    "training": 1,
    "sample_workers": 1,  # training samples drawn in worker processes (a GPU machine's cores)
    # 2: the engine interface and the session
    "engines": 2,
    "session": 2,
    # 3: data sets and virtual users
    "data": 3,
    "users": 3,
    # 4: the methods (they may import each other; cycles are still forbidden)
    "methods": 4,
    # 5: benchmarks and command line
    "bench": 5,
    "cli": 5,
}
LAYER_NAMES = {
    0: "core data",
    1: "shared blocks",
    2: "engines/session",
    3: "data/users",
    4: "methods",
    5: "bench/cli",
}


@dataclass(frozen=True)
class ImportRef:
    """One import statement's target as written (absolute dotted name), where it is."""

    name: str
    path: Path
    lineno: int


@dataclass
class ImportGraph:
    modules: dict[str, Path]  # dotted module name -> file
    edges: dict[str, set[str]] = field(default_factory=dict)  # importer -> imported library modules
    where: dict[tuple[str, str], tuple[Path, int]] = field(default_factory=dict)  # first place of each edge
    imports: dict[str, list[ImportRef]] = field(default_factory=dict)  # every import of each module

    @property
    def edge_count(self) -> int:
        return sum(len(v) for v in self.edges.values())


# -- modules and imports ----------------------------------------------------------------------
def module_name(path: Path, root: Path) -> str:
    """Dotted module name of ``path`` (a package's ``__init__.py`` is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root: Path, package: str = LIBRARY) -> dict[str, Path]:
    """Every module of ``package`` (a folder under ``root``): dotted name -> file."""
    return {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}


def _package_of(module: str, path: Path) -> str:
    """The package a relative import in ``module`` starts from."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _resolve_relative(module: str, path: Path, level: int, name: str | None) -> str:
    base = _package_of(module, path)
    for _ in range(level - 1):
        base = base.rpartition(".")[0]
    return ".".join(p for p in (base, name) if p)


def imports_of(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(absolute module written, imported names for ``from`` imports, line) of every import
    statement in the file, at any depth (functions, classes, ``if`` blocks, ``try``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[str, list[str], int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(module, path, node.level, node.module) if node.level else (node.module or "")
            out.append((base, [alias.name for alias in node.names], node.lineno))
    return out


def _known_prefix(name: str, modules: Mapping[str, Path]) -> str | None:
    """The longest prefix of dotted ``name`` that is a module of the graph."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def build_graph(root: Path, package: str = LIBRARY) -> ImportGraph:
    graph = ImportGraph(find_modules(root, package))
    for module, path in graph.modules.items():
        targets = graph.edges.setdefault(module, set())
        refs = graph.imports.setdefault(module, [])
        for base, names, lineno in imports_of(module, path):
            refs.append(ImportRef(base, path, lineno))
            resolved: list[str] = []
            if names:  # from base import names: a submodule if there is one, else base itself
                for n in names:
                    sub = f"{base}.{n}"
                    if n != "*" and sub in graph.modules:
                        resolved.append(sub)
                    else:
                        found = _known_prefix(base, graph.modules)
                        if found:
                            resolved.append(found)
            else:
                found = _known_prefix(base, graph.modules)
                if found:
                    resolved.append(found)
            for target in resolved:
                if target != module:
                    targets.add(target)
                    graph.where.setdefault((module, target), (path, lineno))
    return graph


# -- (a) cycles -------------------------------------------------------------------------------
def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted, in discovery order."""
    nodes = set(graph) | {t for ts in graph.values() for t in ts}
    succ = {n: sorted(graph.get(n, ())) for n in sorted(nodes)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in succ:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            recurse = False
            for j in range(i, len(succ[v])):
                w = succ[v][j]
                if w not in index:
                    work.append((v, j + 1))
                    work.append((w, 0))
                    recurse = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if recurse:
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
            if work:  # back in the caller: propagate the low-link
                u = work[-1][0]
                low[u] = min(low[u], low[v])
    return out


def example_cycle(graph: Mapping[str, Iterable[str]], component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module, within the component."""
    members = set(component)
    start = component[0]
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph.get(v, ())):
            if w not in members:
                continue
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, start]
            if w not in parent:
                parent[w] = v
                queue.append(w)
    return [*component, component[0]]


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every import cycle: one example cycle (first module repeated at the end) per strongly
    connected component of more than one module, or per module importing itself."""
    cycles = []
    for comp in strongly_connected(graph):
        if len(comp) > 1 or comp[0] in set(graph.get(comp[0], ())):
            cycles.append(example_cycle(graph, comp))
    return cycles


def check_cycles(graph: ImportGraph) -> list[str]:
    problems = []
    for cycle in find_cycles(graph.edges):
        steps = []
        for a, b in zip(cycle, cycle[1:], strict=False):
            _, line = graph.where.get((a, b), (Path("?"), 0))
            steps.append(f"{a} -> {b} (line {line})")
        problems.append("import cycle: " + " -> ".join(cycle) + "\n      " + "\n      ".join(steps))
    return problems


# -- (b) Slicer-free --------------------------------------------------------------------------
def check_forbidden(graph: ImportGraph, root: Path) -> list[str]:
    problems = []
    for module, refs in graph.imports.items():
        for ref in refs:
            top = ref.name.split(".")[0]
            if top in FORBIDDEN:
                problems.append(
                    f"forbidden import: {module} imports {ref.name} ({_rel(ref.path, root)}:{ref.lineno}); "
                    f"{LIBRARY} must not depend on Slicer, its toolkits or the Slicer-side packages"
                )
    return problems


# -- (c) layers -------------------------------------------------------------------------------
def layer_of(module: str, package: str = LIBRARY) -> int | None:
    """The layer of a library module; None for the top package itself (exempt) or a module
    that ``LAYERS`` does not know."""
    parts = module.split(".")
    if parts[0] != package or len(parts) == 1:
        return None
    return LAYERS.get(parts[1])


def check_layers(graph: ImportGraph, root: Path, package: str = LIBRARY) -> list[str]:
    problems = []
    for module in graph.modules:
        parts = module.split(".")
        if len(parts) > 1 and parts[1] not in LAYERS:
            problems.append(
                f"no layer: {module} ({_rel(graph.modules[module], root)}) is not in tools/check_architecture.py's "
                "LAYERS table; give it a layer"
            )
    for module, targets in sorted(graph.edges.items()):
        mine = layer_of(module, package)
        if mine is None:
            continue
        for target in sorted(targets):
            theirs = layer_of(target, package)
            if theirs is not None and theirs > mine:
                path, line = graph.where[(module, target)]
                problems.append(
                    f"layering: {module} (layer {mine}, {LAYER_NAMES[mine]}) imports {target} "
                    f"(layer {theirs}, {LAYER_NAMES[theirs]}) at {_rel(path, root)}:{line}"
                )
    return problems


# -- (d) file sizes ---------------------------------------------------------------------------
def file_sizes(root: Path, dirs: Iterable[str] = SIZE_CHECKED_DIRS) -> list[tuple[int, Path]]:
    """(lines, file) of every .py file under ``dirs``, largest first."""
    sizes = [
        (len(p.read_text(encoding="utf-8").splitlines()), p) for d in dirs for p in sorted((root / d).rglob("*.py"))
    ]
    return sorted(sizes, key=lambda s: (-s[0], str(s[1])))


def check_sizes(sizes: list[tuple[int, Path]], root: Path, limit: int = MAX_LINES) -> list[str]:
    return [
        f"file too large: {_rel(p, root)} has {n} lines (must be under {limit}: split it)"
        for n, p in sizes
        if n >= limit
    ]


# -- everything -------------------------------------------------------------------------------
def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


@dataclass
class Report:
    graph: ImportGraph
    sizes: list[tuple[int, Path]]
    cycles: list[str]
    forbidden: list[str]
    layers: list[str]
    too_large: list[str]

    @property
    def problems(self) -> list[str]:
        return self.cycles + self.forbidden + self.layers + self.too_large


def run_checks(root: Path) -> Report:
    graph = build_graph(root)
    sizes = file_sizes(root)
    return Report(
        graph,
        sizes,
        check_cycles(graph),
        check_forbidden(graph, root),
        check_layers(graph, root),
        check_sizes(sizes, root),
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path.cwd()
    if not (root / LIBRARY).is_dir():
        print(f"{root / LIBRARY} not found: run from the repository root (or pass it)", file=sys.stderr)
        return 2
    report = run_checks(root.resolve())
    root = root.resolve()
    largest = (
        f"largest file {_rel(report.sizes[0][1], root)} ({report.sizes[0][0]} lines)" if report.sizes else "no files"
    )
    if report.problems:
        print(f"architecture check: {len(report.problems)} problem(s)")
        for p in report.problems:
            print(f"  - {p}")
        print(f"({len(report.graph.modules)} modules, {report.graph.edge_count} import edges, {largest})")
        return 1
    print(
        f"architecture OK: {len(report.graph.modules)} modules, {report.graph.edge_count} import edges, "
        f"no cycles, layering respected, {largest}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
