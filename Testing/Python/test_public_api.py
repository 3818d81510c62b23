"""The library's everyday surface: re-exported from the package, loaded on first use, and
the engine contract readable without loading a model."""

import subprocess
import sys

import pytest

import InteractiveSegLib
from InteractiveSegLib.engines import available_engines, describe_engine, model_card


def test_every_exported_name_resolves_to_its_module_object():
    from InteractiveSegLib import hints, io, session

    assert InteractiveSegLib.Session is session.Session
    assert InteractiveSegLib.Click is hints.Click and InteractiveSegLib.read_volume is io.read_volume
    for name in InteractiveSegLib.__all__:
        assert getattr(InteractiveSegLib, name) is not None
    with pytest.raises(AttributeError):
        InteractiveSegLib.no_such_name  # noqa: B018


def test_importing_the_package_and_listing_engines_needs_no_torch():
    code = "import sys, InteractiveSegLib; from InteractiveSegLib.engines import available_engines; "
    code += "available_engines(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_engines_declare_what_they_take_and_their_classes_without_building_a_network(monkeypatch):
    import InteractiveSegLib.checkpoints as checkpoints

    def no_network(*args, **kwargs):
        raise AssertionError("describe() must not build a network")

    monkeypatch.setattr(checkpoints, "build_network", no_network)
    sim = describe_engine("sim")
    assert sim.multiclass and sim.history == "slice" and "box" not in sim.hints
    assert [e.name for e in sim.classes] == ["caudate", "putamen", "pallidum", "thalamus"]
    vmn = describe_engine("vmn")
    assert vmn.mode == "3d" and "box" in vmn.hints and vmn.classes is None and vmn.model_card == "vmn.md"
    finetune = describe_engine("finetune")
    assert finetune.adopts_labels and finetune.adapts_to_image and finetune.history == "all"
    assert not describe_engine("click").multiclass
    assert "growcut" in available_engines() and not describe_engine("growcut").runs_network


def test_model_cards_come_from_the_engines_declarations():
    assert model_card("click").startswith("#")
    assert "no trained model" in model_card("growcut")


def test_a_broken_plugin_fails_alone_with_its_reason():
    from InteractiveSegLib.engines import create_engine, register_lazy
    from InteractiveSegLib.errors import EngineError

    register_lazy("broken-plugin", "InteractiveSegLib.no_such_module:Engine")
    assert "broken-plugin" in available_engines() and "click" in available_engines()
    with pytest.raises(EngineError, match="broken-plugin"):
        create_engine("broken-plugin")
