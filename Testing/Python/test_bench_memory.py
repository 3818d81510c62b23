"""The memory benchmark measures the command it runs (a small CT here; the issue's size is
``interactiveseg bench-memory``'s default)."""

from InteractiveSegLib.bench import memory
from InteractiveSegLib.cli.main import main


def test_each_scenario_runs_segment_in_its_own_process_and_reports_its_peak(tmp_path):
    results = memory.run(["click-3-clicks", "click-100000-hints"], shape=(40, 64, 64), workdir=str(tmp_path))
    ok, many = results
    assert ok.exit_code == 0 and ok.message.startswith("wrote") and 0.05 < ok.peak_rss_gb < 3
    assert many.hints == 100_000 and many.exit_code == 2 and "at most 10000" in many.message
    assert list(tmp_path.iterdir()) == []  # the CT and outputs lived in a temporary folder


def test_the_synthetic_ct_is_int16_hounsfield_with_air_lungs_and_bone():
    ct = memory.synthetic_ct((60, 64, 64))
    assert ct.dtype == "int16" and ct.min() < -900 and ct.max() > 300
    assert ((ct > -950) & (ct < -700)).any()  # lung


def test_an_unknown_scenario_is_refused_before_anything_is_written(tmp_path, capsys):
    assert main(["bench-memory", "--scenarios", "nope", "--json", str(tmp_path / "r.json")]) == 2
    assert "unknown scenario nope" in capsys.readouterr().err and not (tmp_path / "r.json").exists()
