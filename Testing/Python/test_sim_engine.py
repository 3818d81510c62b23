"""The SIM engine inside a Session: the history is the memory, undo pops a state exactly."""

import numpy as np
import pytest
import torch

from InteractiveSegLib.checkpoints import save_checkpoint
from InteractiveSegLib.errors import EngineError, InteractionError, ModelError
from InteractiveSegLib.hints import Box, Click, SliceAuto, from_json, ijk_from_slice_point, to_json
from InteractiveSegLib.methods.sim.engine import SIMEngine
from InteractiveSegLib.methods.sim.network import sim_net
from InteractiveSegLib.session import Session
from InteractiveSegLib.volume import Geometry, Volume

CLASSES = ["background", "ring", "core"]


def _checkpoint(path, memory="sim", decoder="lstm", seed=0):
    torch.manual_seed(seed)
    cfg = {"num_classes": 3, "depth": 2, "memory": memory, "decoder": decoder, "features": [8, 16, 16, 32]}
    model = sim_net(**cfg)
    with torch.no_grad():  # make batch-norm statistics non-trivial so outputs depend on the input
        model.train()
        model(torch.randn(4, model.in_channels, 32, 32))
    save_checkpoint(
        path, "sim_net", {"net": cfg, "classes": CLASSES, "multilabel": False, "click_radius": 2}, model, {}
    )
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("sim") / "sim.pt")


@pytest.fixture()
def volume():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.05, (6, 40, 48)).astype(np.float32)
    rr, cc = np.mgrid[:40, :48]
    a[:, (rr - 20) ** 2 + (cc - 24) ** 2 < 150] += 1.0
    a[:, (rr - 20) ** 2 + (cc - 24) ** 2 < 30] += 1.0
    return Volume(a, Geometry())


def _click(r, c, label, index=3, positive=True, axis=0):
    return Click(ijk_from_slice_point((r, c), axis, index), label=label, positive=positive, axis=axis)


def test_labels_come_from_the_model_and_auto_segments_one_slice(model_file, volume):
    s = Session(volume, SIMEngine(model_path=model_file))
    assert [(e.value, e.name) for e in s.labels] == [(1, "ring"), (2, "core")]
    step = s.automatic(0, 3)
    assert isinstance(step.interaction, SliceAuto)
    assert step.region[0] == slice(3, 4)
    assert not s.labelmap[[0, 1, 2, 4, 5]].any()
    assert set(np.unique(s.labelmap)) <= {0, 1, 2}
    s.undo()
    assert not s.labelmap.any()


def test_each_state_pairs_a_hint_with_the_result_it_corrected(model_file, volume):
    engine = SIMEngine(model_path=model_file)
    s = Session(volume, engine)
    a = s.add(_click(20, 24, 2))
    b = s.add(_click(20, 12, 1))
    states = engine.states([(x.interaction, x.prediction) for x in s.history], _click(5, 5, 1, positive=False), 0, 3)
    assert len(states) == 3
    np.testing.assert_array_equal(
        states[0].probs, engine.automatic(0, 3)
    )  # the first click corrects the automatic result
    np.testing.assert_array_equal(states[1].probs, a.prediction.probability[:, 0])
    np.testing.assert_array_equal(states[2].probs, b.prediction.probability[:, 0])
    assert states[0].clicks[2, 20, 24] == 1 and states[1].clicks[1, 20, 12] == 1
    assert states[2].clicks[0, 5, 5] == 1  # a negative click marks background


def test_undo_restores_the_previous_memory_and_labelmap_exactly(model_file, volume):
    engine = SIMEngine(model_path=model_file)
    s = Session(volume, engine)
    s.add(_click(20, 24, 2))
    s.add(_click(20, 12, 1))
    labelmap_before = s.labelmap.copy()
    nxt = _click(30, 30, 1)
    before = engine.states([(x.interaction, x.prediction) for x in s.history], nxt, 0, 3)
    s.add(_click(10, 40, 1, positive=False))
    s.undo()
    np.testing.assert_array_equal(s.labelmap, labelmap_before)
    after = engine.states([(x.interaction, x.prediction) for x in s.history], nxt, 0, 3)
    assert len(before) == len(after)
    for x, y in zip(before, after, strict=False):
        np.testing.assert_array_equal(x.clicks, y.clicks)
        np.testing.assert_array_equal(x.probs, y.probs)
    s.redo()
    again = Session(volume, engine)
    again.replay_json(s.hints_json())
    np.testing.assert_array_equal(again.labelmap, s.labelmap)


def test_other_slices_and_foreign_classes_are_never_overwritten(model_file, volume):
    engine = SIMEngine(model_path=model_file)
    initial = np.zeros(volume.shape, np.uint8)
    initial[3, :5, :5] = 9  # a class the model does not know (e.g. drawn by hand)
    initial[2] = 1
    s = Session(volume, engine, labelmap=initial)
    s.add(_click(20, 24, 2))
    assert (s.labelmap[3, :5, :5] == 9).all()
    assert (s.labelmap[2] == 1).all()


def test_hints_the_model_cannot_take_are_clear_errors(model_file, volume):
    s = Session(volume, SIMEngine(model_path=model_file))
    with pytest.raises(EngineError, match="does not take box hints"):
        s.add(Box((1, 1, 3), (10, 10, 3), label=1))
    with pytest.raises(InteractionError, match="unknown class"):
        s.add(_click(5, 5, 3))
    with pytest.raises(InteractionError, match="outside"):
        s.add(SliceAuto(99, 0))
    assert not s.labelmap.any() and not s.history


def test_image_statistics_normalise_by_the_slice_and_keep_stored_statistics(model_file, volume):
    engine = SIMEngine(model_path=model_file, norm="image")
    bn = next(m for m in engine.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    stored = bn.running_mean.clone()
    s = Session(volume, engine)
    s.add(_click(20, 24, 2))
    assert torch.equal(bn.running_mean, stored)
    plain = Session(volume, SIMEngine(model_path=model_file))
    plain.add(_click(20, 24, 2))
    assert not np.allclose(s.history[0].prediction.probability, plain.history[0].prediction.probability)


def test_drag_moves_the_last_click_without_a_new_state(model_file, volume):
    s = Session(volume, SIMEngine(model_path=model_file))
    s.add(_click(20, 24, 2))
    s.move_last_click(ijk_from_slice_point((21, 25), 0, 3))
    assert len(s.history) == 1 and s.history[0].interaction.ijk == ijk_from_slice_point((21, 25), 0, 3)


def test_auto_hint_round_trips_through_json():
    hints = [SliceAuto(7, 1), Click((1, 2, 3), 2, False, 0)]
    assert from_json(to_json(hints)) == hints


def test_models_that_do_not_fit_are_refused(tmp_path, model_file):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="does not load"):
        SIMEngine(model_path=bad)
    with pytest.raises(EngineError, match="needs"):
        SIMEngine(model_path=model_file, variant="ddg-cim")  # a SIM network fed a CIM
    with pytest.raises(EngineError, match="unknown SIM variant"):
        SIMEngine(model_path=model_file, variant="nope")
    with pytest.raises(EngineError, match="norm"):
        SIMEngine(model_path=model_file, norm="group")
    cim = _checkpoint(tmp_path / "cim.pt", memory="cim", decoder="plain")
    assert SIMEngine(model_path=cim, variant="sdg-cim").memory == "cim"


def test_single_class_engines_have_no_automatic_mode(volume):
    from InteractiveSegLib.engines import register_engine
    from InteractiveSegLib.engines.base import Engine, Prediction

    @register_engine("test-null")
    class Null(Engine):
        def predict(self, request):
            return Prediction(
                request.label, self.slice_region(request.axis, request.slice_index), np.zeros((1, 40, 48))
            )

    s = Session(volume, "test-null")
    with pytest.raises(InteractionError, match="no automatic mode"):
        s.automatic(0, 3)


def test_paired_comparison_tells_a_consistent_gain_from_noise():
    """DDG-SIM vs another system, slice by slice: a gain on every slice has an interval above
    zero and a small p; a zero-mean difference has an interval around zero; absent classes are
    left out."""
    from InteractiveSegLib.metrics import paired

    rng = np.random.default_rng(3)

    def runs(dice_cls1):  # one round per slice: (slices, 1)
        return np.asarray(dice_cls1, float)[:, None]

    base = rng.uniform(0.4, 0.8, 60)
    gain = paired(runs(base + 0.05), runs(base), [0])["0"]
    assert gain["diff"] == pytest.approx(0.05) and gain["ci95"][0] > 0.04 and gain["p_wilcoxon"] < 1e-6
    assert gain["better"] == 60 and gain["slices"] == 60
    noise = paired(runs(base + rng.normal(0, 0.05, 60) * np.tile([1, -1], 30)), runs(base), [0])["0"]
    assert noise["ci95"][0] < 0 < noise["ci95"][1]
    assert paired(np.full((60, 1), np.nan), runs(base), [0]) == {}  # a class absent from every slice
