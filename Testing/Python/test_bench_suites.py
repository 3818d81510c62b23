"""The benchmark picks its suite from what the engines declare, and refuses a mixed run."""

import pytest

from InteractiveSegLib.bench import check_engines, choose_suite
from InteractiveSegLib.bench.options import BenchOptions
from InteractiveSegLib.bench.result import BenchResult
from InteractiveSegLib.errors import InteractiveSegError


@pytest.mark.parametrize(
    "engines, flags, suite",
    [
        ("click,growcut", {}, "click"),
        ("sim,growcut", {}, "sim"),
        ("ddg-sim-d3", {}, "sim"),
        ("growcut", {"ablation": True}, "sim"),
        ("vmn,vmn-growcut,vmn-registration", {}, "vmn"),
        ("finetune,growcut,click,finetune-3d", {}, "finetune"),
        ("finetune", {"ablation": True}, "finetune"),
        ("online", {}, "online"),
        ("click", {"stream": True}, "online"),
        ("online-cold", {"ablation": True}, "online"),
        ("growcut", {"suite": "sim"}, "sim"),
    ],
)
def test_the_suite_is_the_one_that_owns_the_engines(engines, flags, suite):
    assert choose_suite(BenchOptions(engines=engines, **flags)) == suite


def test_engines_of_another_suite_are_refused_by_name():
    options = BenchOptions(engines="vmn,click")
    suite = choose_suite(options)
    assert suite == "vmn"
    with pytest.raises(InteractiveSegError, match=r"cannot measure \['click'\]"):
        check_engines(suite, options)
    with pytest.raises(InteractiveSegError, match="unknown benchmark suite"):
        choose_suite(BenchOptions(suite="nope"))


def test_a_result_keeps_the_common_keys_and_refuses_to_overwrite_them():
    figures = {
        "engine": "click",
        "mode": "2d",
        "hint": "click",
        "data": "d",
        "structures": ["s"],
        "dice_at": {"0": 0.0},
        "noc85": 1.0,
        "noc90": 2.0,
        "ms_per_interaction": {"median": 1.0, "p95": 2.0},
        "s_per_propagation": None,
        "peak_rss_mb": 1,
        "per_structure": {},
        "sessions": 3,
    }
    result = BenchResult.from_figures(figures)
    assert result.extra == {"sessions": 3} and result.to_json() == figures
    with pytest.raises(ValueError, match="needs"):
        BenchResult.from_figures({"engine": "click"})
    result.extra["dice_at"] = {}
    with pytest.raises(ValueError, match="reuse"):
        result.to_json()
