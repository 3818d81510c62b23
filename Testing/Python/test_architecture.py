"""Architecture rules (tools/check_architecture.py) and the CMake file lists, as tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import load_tool

ROOT = Path(__file__).resolve().parents[2]
arch = load_tool("check_architecture")


@pytest.fixture(scope="module")
def report():
    return arch.run_checks(ROOT)


def _fail_with(problems: list[str]) -> None:
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# -- the rules on the real code ----------------------------------------------------------------
def test_graph_is_real(report):
    """The parser sees the library: modules, and imports inside functions too."""
    g = report.graph
    assert "InteractiveSegLib.session" in g.modules
    assert "InteractiveSegLib.methods.sim.engine" in g.modules
    assert g.edge_count > 50
    assert "InteractiveSegLib.volume" in g.edges["InteractiveSegLib.session"]
    # users.robot imports hints inside robot_slice_hint, as ``from ... import ijk_from_slice_point``
    assert "InteractiveSegLib.hints" in g.edges["InteractiveSegLib.users.robot"]


def test_no_import_cycles(report):
    _fail_with(report.cycles)


def test_library_never_imports_slicer(report):
    _fail_with(report.forbidden)


def test_layering(report):
    _fail_with(report.layers)


def test_files_under_600_lines(report):
    _fail_with(report.too_large)


# -- the checker's own machinery on tiny inputs -------------------------------------------------
def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    cycles = arch.find_cycles(graph)
    assert sorted(cycles) == [["a", "b", "c", "a"], ["e", "e"]]
    assert arch.find_cycles({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) == []


def test_strongly_connected_components():
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c", "e"}, "e": set()}
    comps = sorted(arch.strongly_connected(graph))
    assert comps == [["a", "b"], ["c", "d"], ["e"]]


def test_parser_resolves_imports(tmp_path):
    """Relative and absolute imports, at any depth, ``from pkg import module`` as the module;
    a planted cycle, a forbidden import and a layer violation are all reported."""
    pkg = tmp_path / "InteractiveSegLib"
    (pkg / "engines").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "engines" / "__init__.py").write_text("")
    (pkg / "volume.py").write_text(
        "def f():\n    from InteractiveSegLib.engines import base\n    import slicer.util\n    return base\n"
    )
    (pkg / "engines" / "base.py").write_text("from .. import volume\nfrom ..volume import f\n")
    (pkg / "engines" / "other.py").write_text("if True:\n    from . import base as b\n")
    rep = arch.run_checks(tmp_path)
    g = rep.graph
    assert g.edges["InteractiveSegLib.volume"] == {"InteractiveSegLib.engines.base"}
    assert g.edges["InteractiveSegLib.engines.base"] == {"InteractiveSegLib.volume"}
    assert g.edges["InteractiveSegLib.engines.other"] == {"InteractiveSegLib.engines.base"}
    assert len(rep.cycles) == 1 and "InteractiveSegLib.engines.base" in rep.cycles[0]
    assert len(rep.forbidden) == 1 and "slicer.util" in rep.forbidden[0]
    assert len(rep.layers) == 1 and rep.layers[0].startswith("layering: InteractiveSegLib.volume (layer 0")
    assert rep.too_large == []
    assert arch.main([str(tmp_path)]) == 1


# -- CMake lists every Python file --------------------------------------------------------------
def cmake_scripts(cmake: Path) -> list[str]:
    """The files of ``set(MODULE_PYTHON_SCRIPTS ...)``, ``${MODULE_NAME}`` substituted."""
    text = re.sub(r"#[^\n]*", "", cmake.read_text(encoding="utf-8"))
    name = re.search(r"set\(\s*MODULE_NAME\s+(\S+?)\s*\)", text)
    block = re.search(r"set\(\s*MODULE_PYTHON_SCRIPTS\s+(.*?)\)", text, re.S)
    assert block is not None, f"no set(MODULE_PYTHON_SCRIPTS ...) in {cmake}"
    items = block.group(1).split()
    if name is not None:
        items = [i.replace("${MODULE_NAME}", name.group(1)) for i in items]
    return items


@pytest.mark.parametrize("folder", ["InteractiveSegLib", "InteractiveSeg"])
def test_cmake_lists_every_python_file(folder):
    base = ROOT / folder
    listed = cmake_scripts(base / "CMakeLists.txt")
    on_disk = {p.relative_to(base).as_posix() for p in base.rglob("*.py")}
    unlisted = sorted(on_disk - set(listed))
    missing = sorted(set(listed) - on_disk)
    duplicated = sorted({i for i in listed if listed.count(i) > 1})
    problems = [f"{folder}/{p} is not in {folder}/CMakeLists.txt's MODULE_PYTHON_SCRIPTS" for p in unlisted]
    problems += [f"{folder}/CMakeLists.txt lists {p}, which does not exist" for p in missing]
    problems += [f"{folder}/CMakeLists.txt lists {p} more than once" for p in duplicated]
    _fail_with(problems)


def test_cmake_parser(tmp_path):
    cmake = tmp_path / "CMakeLists.txt"
    cmake.write_text(
        "set(MODULE_NAME Foo)\n# set(MODULE_PYTHON_SCRIPTS nope.py)\n"
        "set(MODULE_PYTHON_SCRIPTS\n  ${MODULE_NAME}.py  # main\n  a/b.py\n  )\nset(OTHER x.py)\n"
    )
    assert cmake_scripts(cmake) == ["Foo.py", "a/b.py"]
