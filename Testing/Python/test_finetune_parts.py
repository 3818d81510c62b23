"""Scribble-aware fine-tuning, part by part: model loading (bring your own model), the
last-l-layer selection, the cached frozen prefix, region growing, Algorithm 1's stop
rule, new labels, and the engine on synthetic images with small MONAI networks."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from monai.networks.nets import BasicUNet, UNet

from InteractiveSegLib.errors import EngineError, InteractionError, ModelError
from InteractiveSegLib.hints import Box, HintGroup, Scribble, SliceAuto, from_json, ijk_from_slice_point, to_json
from InteractiveSegLib.methods.finetune.adaptation import UNLABELLED, FrozenPrefix, grow_scribbles, trainable_names
from InteractiveSegLib.methods.finetune.engine import ScribbleFinetuneEngine
from InteractiveSegLib.methods.finetune.model import SegmentationModel, load_model
from InteractiveSegLib.session import Session
from InteractiveSegLib.volume import Geometry, Volume

SPEC2D = {"labels": ["background", "disk"], "spatial_dims": 2, "preprocessing": {"intensity": "none", "divisor": 16}}
#: The small 2D UNet of these tests, as a spec or a bundle writes its arguments.
UNET2D = {
    "spatial_dims": 2,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [8, 16, 32],
    "strides": [2, 2],
    "num_res_units": 1,
}


def unet2d(classes: int = 2, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return UNet(**{**UNET2D, "out_channels": classes}).eval()


def disks_volume() -> tuple[Volume, np.ndarray, np.ndarray]:
    """One axial slice (1, 64, 64): a bright disk (label 1) and a mid-grey square (label 2)."""
    yy, xx = np.mgrid[:64, :64]
    disk = (yy - 20) ** 2 + (xx - 20) ** 2 < 100
    square = (np.abs(yy - 44) < 8) & (np.abs(xx - 44) < 8)
    img = np.where(disk, 1.0, np.where(square, 0.6, 0.1)).astype(np.float32)
    img += np.random.default_rng(0).normal(0, 0.01, img.shape).astype(np.float32)
    return Volume(img[None], Geometry()), disk, square


def stroke(points_rc, label, positive=True):
    return Scribble([ijk_from_slice_point(p, 0, 0) for p in points_rc], label=label, positive=positive, axis=0)


# -- bring your own model --------------------------------------------------------------------
def test_torchscript_state_dict_and_bundle_load_to_the_same_network(tmp_path):
    net = unet2d()
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        want = net(x)
    ts = tmp_path / "model.ts"
    torch.jit.save(torch.jit.script(net), str(ts))
    (tmp_path / "model.ts.json").write_text(json.dumps(SPEC2D))  # the spec beside the file
    pt = tmp_path / "weights.pt"
    torch.save(net.state_dict(), pt)
    spec = {
        **SPEC2D,
        "network": "monai.networks.nets:UNet",
        "network_kwargs": UNET2D,
    }
    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    torch.save(net.state_dict(), bundle / "models" / "model.pt")
    (bundle / "configs" / "inference.json").write_text(
        json.dumps(
            {
                "network_def": {"_target_": "UNet", **UNET2D},
                "preprocessing": {
                    "_target_": "Compose",
                    "transforms": [
                        {
                            "_target_": "ScaleIntensityRanged",
                            "keys": "image",
                            "a_min": -100,
                            "a_max": 300,
                            "b_min": 0,
                            "b_max": 1,
                            "clip": True,
                        }
                    ],
                },
                "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [32, 32], "overlap": 0.5},
            }
        )
    )
    (bundle / "configs" / "metadata.json").write_text(
        json.dumps({"network_data_format": {"outputs": {"pred": {"channel_def": {"0": "background", "1": "liver"}}}}})
    )
    models = [load_model(ts), load_model(pt, spec), load_model(bundle)]
    for m in models:
        with torch.no_grad():
            assert torch.allclose(m.logits(x), want, atol=1e-5)
    b = models[2].spec
    assert b.labels == ["background", "liver"] and b.spatial_dims == 2
    assert b.preprocessing.intensity == "range" and b.preprocessing.intensity_range == (-100.0, 300.0)
    assert b.preprocessing.patch_size == (32, 32) and b.preprocessing.overlap == 0.5


def test_a_model_folder_runs_no_code_unless_the_user_trusts_it(tmp_path, monkeypatch):
    """A spec naming a callable outside MONAI's networks, or a bundle whose network is built
    by a ``$`` expression, is refused before anything runs; ``trust_code`` allows it."""
    import subprocess

    ran = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: ran.append(a))
    pt = tmp_path / "w.pt"
    torch.save(unet2d().state_dict(), pt)
    with pytest.raises(ModelError, match="trust-code"):
        load_model(pt, {**SPEC2D, "network": "subprocess:run", "network_kwargs": {"args": ["true"]}})
    assert not ran
    with pytest.raises(ModelError, match="do not match"):  # trusted: built, then its weights do not fit
        load_model(pt, {**SPEC2D, "network": "torch.nn:Identity"}, trust_code=True)
    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    torch.save(unet2d().state_dict(), bundle / "models" / "model.pt")
    channels = "$[8, 16, 32]"  # Python that MONAI's parser would evaluate
    config = {"channels": channels, "network_def": {"_target_": "UNet", **UNET2D, "channels": "@channels"}}
    (bundle / "configs" / "inference.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="runs code"):
        load_model(bundle, SPEC2D)
    assert load_model(bundle, SPEC2D, trust_code=True).num_classes == 2


def test_models_that_cannot_serve_are_refused_with_the_reason(tmp_path):
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="does not load"):
        load_model(bad, SPEC2D)
    pt = tmp_path / "w.pt"
    torch.save(unet2d().state_dict(), pt)
    with pytest.raises(ModelError, match="name the network"):
        load_model(pt, SPEC2D)
    with pytest.raises(ModelError, match="labels"):  # three labels declared, the network gives two
        SegmentationModel.from_module(unet2d(), {**SPEC2D, "labels": ["bg", "a", "b"]}).check()
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "missing.ts", SPEC2D)
    with pytest.raises(ModelError, match="interaction inputs"):
        from InteractiveSegLib.checkpoints import default_models_dir

        load_model(default_models_dir() / "click_fcnn.pt")


# -- the pieces of Algorithm 1 ------------------------------------------------------------------
def test_last_layers_follow_the_forward_order():
    net = BasicUNet(2, 1, 3, features=(8, 8, 16, 16, 32, 8))
    x = torch.zeros(1, 1, 32, 32)
    one = trainable_names(net, x, 1)
    assert one == ["final_conv.weight", "final_conv.bias"]
    two = trainable_names(net, x, 2)
    assert two[-2:] == one and len(two) > 2 and all(n.startswith(("upcat_1", "final_conv")) for n in two)
    assert set(trainable_names(net, x, 0)) == {n for n, _ in net.named_parameters()}


def test_cached_prefix_gives_the_same_logits_and_gradients():
    net = BasicUNet(2, 1, 3, features=(8, 8, 16, 16, 32, 8)).eval()
    x = torch.rand(1, 1, 48, 48)
    names = set(trainable_names(net, x, 2))
    params = [p for n, p in net.named_parameters() if n in names]
    for p in net.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    plain = net(x)
    plain.sum().backward()
    g_plain = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    with FrozenPrefix(net, names) as prefix:
        prefix.prime(x)
        assert prefix.patched, "nothing before the trainable layers was cached"
        cached = net(x)
        cached.sum().backward()
        again = net(x)  # in-place ops downstream must not corrupt the cache
    assert torch.allclose(plain, cached, atol=1e-6) and torch.allclose(cached, again, atol=1e-6)
    assert all(torch.allclose(a, p.grad, atol=1e-5) for a, p in zip(g_plain, params, strict=False))
    assert not any("forward" in vars(m) for m in net.modules())  # unpatched on exit


def test_region_growing_stays_in_its_intensity_band_and_radius():
    img = np.zeros((20, 20), np.float32)
    img[:, 10:] = 1.0
    cons = np.full(img.shape, UNLABELLED)
    cons[5, 8] = 1
    cons[5, 15] = 0
    grown = grow_scribbles(img, cons, threshold=0.1, radius=3)
    assert grown[5, 8] == 1 and grown[5, 15] == 0
    assert (grown[:, :10] != 0).all() and (grown[:, 10:] != 1).all()  # never across the edge
    assert (grown == 1).sum() == 7 * 5 and (grown == 0).sum() == 7 * 7  # the edge cuts label 1's window
    assert (grow_scribbles(img, cons, 0.0, 3) == cons).all()


# -- the engine: source untouched, convergence, new labels, kept weights ---------------------------
@pytest.fixture
def disks():
    return disks_volume()


def make_engine(**kw):
    return ScribbleFinetuneEngine(model=SegmentationModel.from_module(unet2d(), SPEC2D), **kw)


def test_source_model_is_bit_identical_after_a_session(tmp_path, disks):
    vol, disk, _ = disks
    ts = tmp_path / "m.ts"
    torch.jit.save(torch.jit.script(unet2d()), str(ts))
    (tmp_path / "m.ts.json").write_text(json.dumps(SPEC2D))
    digest = hashlib.sha256(ts.read_bytes()).hexdigest()
    engine = ScribbleFinetuneEngine(model=ts, layers=0, iterations=15)
    before = {n: p.clone() for n, p in engine.source.module.named_parameters()}
    session = Session(vol, engine)
    session.add(stroke([(20, c) for c in range(14, 27)], 1))
    session.add(stroke([(5, c) for c in range(5, 60)], 1, positive=False))
    assert any(not torch.equal(before[n], p) for n, p in engine.model.module.named_parameters())  # it did adapt
    assert all(torch.equal(before[n], p) for n, p in engine.source.module.named_parameters())
    assert hashlib.sha256(ts.read_bytes()).hexdigest() == digest


def test_scribbled_voxels_have_their_labels_when_the_loop_says_converged(disks):
    vol, disk, square = disks
    engine = make_engine(layers=0, iterations=60, region_growing=False)
    session = Session(vol, engine)
    fg = [(20, c) for c in range(13, 28)]
    bg = [(50, c) for c in range(5, 30)] + [(44, c) for c in range(38, 51)]
    step = session.add_many([stroke(fg, 1), stroke(bg, 1, positive=False)])
    info = step.prediction.report
    assert info.converged and info.violated == 0 and info.iterations <= 60
    lab = session.labelmap[0]
    assert all(lab[r, c] == 1 for r, c in fg) and all(lab[r, c] == 0 for r, c in bg)
    assert len(session.history) == 1  # several labels, one step


def test_progress_per_iteration_and_a_cancel_leaves_the_session_as_it_was(disks):
    vol, disk, square = disks
    engine = make_engine(layers=0, iterations=60, region_growing=False)
    session = Session(vol, engine)
    fg = [(20, c) for c in range(13, 28)]
    bg = [(50, c) for c in range(5, 30)]
    seen = []
    engine.progress = lambda f, text: seen.append(f)
    session.add_many([stroke(fg, 1), stroke(bg, 1, positive=False)])
    assert seen and seen == sorted(seen) and seen[0] == 0 and seen[-1] < 1
    before, n = session.labelmap.copy(), len(session.history)

    def cancel(f, text):
        if f > 0:
            raise KeyboardInterrupt

    engine.progress = cancel
    with pytest.raises(KeyboardInterrupt):
        session.add(stroke([(44, c) for c in range(38, 51)], 1, positive=False))
    engine.progress = None
    assert np.array_equal(session.labelmap, before) and len(session.history) == n
    assert all(not p.requires_grad for p in engine._params().values())  # the loop's clean-up ran


def bright_detector() -> torch.nn.Module:
    """A 'pre-trained' segmenter of the synthetic image: disk where the intensity > 0.8."""
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1))
    with torch.no_grad():
        net[0].weight[:] = torch.tensor([-10.0, 10.0]).reshape(2, 1, 1, 1)
        net[0].bias[:] = torch.tensor([8.0, -8.0])
    return net.eval()


def test_a_label_the_model_never_knew_is_inserted(disks):
    vol, disk, square = disks
    model = SegmentationModel.from_module(bright_detector(), SPEC2D)
    engine = ScribbleFinetuneEngine(model=model, layers=1, iterations=200, region_growing=False)
    labels = engine.label_table()
    labels.add(7, "square")
    session = Session(vol, engine, labels=labels)
    session.automatic(0, 0)
    assert (session.labelmap[0] == 1).sum() == disk.sum() and not (session.labelmap == 7).any()
    inside = [(44, c) for c in range(39, 50)]
    outside = [(30, c) for c in range(30, 60)] + [(58, c) for c in range(30, 60)]
    on_disk = [(20, c) for c in range(15, 26)]  # "this is still the disk": labels corrected together
    step = session.add_many([stroke(inside, 7), stroke(outside, 7, positive=False), stroke(on_disk, 1)])
    assert step.prediction.report.converged
    lab = session.labelmap[0]
    assert all(lab[r, c] == 7 for r, c in inside)
    assert (lab[square] == 7).mean() > 0.9 and (lab[~square] == 7).mean() < 0.02
    assert (lab[disk] == 1).mean() > 0.9  # the known label survives
    assert engine.new_labels == [7] and 7 in step.prediction.classes


def kept(session):
    """A request carrying the session's steps, as the engine gets it (history scope "all")."""
    from InteractiveSegLib.engines.base import Request

    history = [(s.interaction, s.prediction) for s in session.history]
    return Request(1, [], 0, 0, session.labelmap, history)


def test_kept_weights_follow_undo_and_reset(disks):
    vol, disk, _ = disks
    engine = make_engine(layers=2, iterations=10)
    session = Session(vol, engine)
    session.add(stroke([(20, c) for c in range(14, 27)], 1))
    first = session.history[-1].prediction.state.weights
    session.add(stroke([(5, c) for c in range(5, 60)], 1, positive=False))
    session.undo()
    engine._start_weights(kept(session))
    params = engine._params()
    assert all(torch.equal(params[n], v) for n, v in first.items())
    engine.reset_adaptation()
    engine._start_weights(kept(session))
    assert all(torch.equal(engine._params()[n], engine._reference[n]) for n in engine._reference)


def test_bad_hints_change_nothing(disks):
    vol, _, _ = disks
    session = Session(vol, make_engine())
    with pytest.raises(InteractionError):
        session.add(Scribble([(70, 3, 0)], label=1, axis=0))
    with pytest.raises(InteractionError):
        session.add_many([stroke([(3, 3)], 1), Scribble([(3, 3, 5)], label=1, axis=0)])
    assert not session.history and not session.labelmap.any()


def test_an_image_under_one_model_voxel_is_refused_and_changes_nothing(disks):
    vol, _, _ = disks
    spec = {**SPEC2D, "preprocessing": {**SPEC2D["preprocessing"], "spacing": [1.0, 1.0]}}
    tiny = Volume(vol.array, Geometry(spacing=(1e-4, 1e-4, 1e-4)))  # 64 voxels of 0.1 um: a header in metres, say
    session = Session(tiny, ScribbleFinetuneEngine(model=SegmentationModel.from_module(unet2d(), spec)))
    with pytest.raises(EngineError, match="under one voxel of this model"):
        session.add(stroke([(20, c) for c in range(14, 27)], 1))
    assert not session.history and not session.labelmap.any()


def test_hint_groups_round_trip_through_json():
    g = HintGroup([stroke([(1, 2), (1, 3)], 1), Box((0, 0, 0), (5, 5, 0), label=2, axis=0)])
    back = from_json(to_json([g]))[0]
    assert isinstance(back, HintGroup) and back.hints == g.hints
    with pytest.raises(InteractionError):
        HintGroup([])


def test_3d_roi_with_a_3d_network_and_sliding_window():
    torch.manual_seed(0)
    net = UNet(3, 1, 2, channels=(4, 8, 16), strides=(2, 2), num_res_units=0).eval()
    spec = {
        "labels": ["background", "ball"],
        "spatial_dims": 3,
        "preprocessing": {"intensity": "none", "patch_size": [16, 48, 48], "divisor": 4},
    }
    zz, yy, xx = np.mgrid[:24, :40, :40]
    ball = (zz - 12) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 < 36
    vol = Volume(np.where(ball, 1.0, 0.0).astype(np.float32), Geometry())
    engine = ScribbleFinetuneEngine(
        model=SegmentationModel.from_module(net, spec),
        mode="3d",
        layers=0,
        iterations=40,
        region_growing=False,
        roi_margin=(4, 6, 6),
    )
    session = Session(vol, engine)
    step = session.add(SliceAuto(0, 0))  # no hint: the whole volume, by sliding window (> patch)
    assert tuple(s.stop - s.start for s in step.region) == vol.shape
    inside = Scribble([(c, 20, 12) for c in range(16, 25)], label=1, axis=0)
    outside = Scribble([(c, 6, 12) for c in range(5, 35)], label=1, positive=False, axis=0)
    step = session.add_many([inside, outside])
    info = step.prediction.report
    assert info.roi == [s.stop - s.start for s in step.region] and info.roi[1] < 40  # ROI, not the volume
    assert info.converged and info.violated == 0
    assert all(session.labelmap[12, 20, c] == 1 for c in range(16, 25))
    assert all(session.labelmap[12, 6, c] == 0 for c in range(5, 35))
