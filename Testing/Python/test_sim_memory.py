"""The SIM tensor (channel order, depth, empty states) and the SIM network's inputs."""

import numpy as np
import pytest
import torch

from InteractiveSegLib.methods.sim.memory import SliceClick, State, click_masks, empty_state, network_input
from InteractiveSegLib.methods.sim.network import input_channels, sim_net

N, D, H, W = 3, 2, 16, 32


def _state(value: float) -> State:
    clicks = np.zeros((N, H, W), np.float32)
    clicks[int(value) % N, 2, 3] = 1
    return State(clicks, np.full((N, H, W), value, np.float32))


def test_channel_counts_follow_the_paper():
    assert input_channels("sim", N, D) == 1 + 2 * D * N
    assert input_channels("cim", N, D) == 1 + N
    assert input_channels("base", N, D) == 1 + N
    assert input_channels("auto", N, D) == 1


def test_sim_tensor_is_image_then_states_oldest_first_newest_last():
    image = np.random.default_rng(0).random((H, W)).astype(np.float32)
    states = [_state(0.1), _state(0.2), _state(0.3)]  # three states, depth two: the oldest drops out
    x = network_input(image, states, "sim", N, D)
    assert x.shape == (1 + 2 * D * N, H, W)
    np.testing.assert_array_equal(x[0], image)
    for t, s in enumerate(states[-D:]):
        base = 1 + t * 2 * N
        np.testing.assert_array_equal(x[base : base + N], s.clicks)
        np.testing.assert_array_equal(x[base + N : base + 2 * N], s.probs)


def test_missing_older_states_are_empty_and_no_state_is_automatic_mode():
    image = np.ones((H, W), np.float32)
    x = network_input(image, [_state(0.5)], "sim", N, D)
    assert not x[1 : 1 + 2 * N].any()  # padded oldest state: all zeros
    np.testing.assert_array_equal(x[1 + 3 * N :], np.full((N, H, W), 0.5))
    auto = network_input(image, [], "sim", N, D)
    assert not auto[1:].any() and auto[0].all()


def test_cim_merges_every_click_and_base_keeps_the_newest():
    image = np.zeros((H, W), np.float32)
    a = State(click_masks([SliceClick(1, 1, 0)], N, (H, W)), np.zeros((N, H, W), np.float32))
    b = State(click_masks([SliceClick(10, 20, 2)], N, (H, W)), np.zeros((N, H, W), np.float32))
    cim = network_input(image, [a, b], "cim", N, D)
    np.testing.assert_array_equal(cim[1:], np.maximum(a.clicks, b.clicks))
    base = network_input(image, [a, b], "base", N, D)
    np.testing.assert_array_equal(base[1:], b.clicks)
    assert network_input(image, [a, b], "auto", N, D).shape == (1, H, W)


def test_click_masks_draw_a_disk_in_the_class_channel_and_clip_at_borders():
    m = click_masks([SliceClick(0, 0, 1)], N, (H, W), radius=2)
    assert m[1, 0, 0] == 1 and m[1, 2, 0] == 1 and m[1, 2, 2] == 0
    assert not m[0].any() and not m[2].any()
    with pytest.raises(ValueError):
        click_masks([SliceClick(0, 0, N)], N, (H, W))
    assert empty_state(N, (H, W)).clicks.shape == (N, H, W)


@pytest.mark.parametrize(
    "memory,decoder", [("sim", "lstm"), ("sim", "plain"), ("cim", "plain"), ("base", "plain"), ("auto", "plain")]
)
def test_network_takes_its_memory_and_returns_class_logits(memory, decoder):
    net = sim_net(N, D, memory, decoder, features=(8, 16, 16, 32)).eval()
    x = torch.zeros(2, input_channels(memory, N, D), 32, 48)
    with torch.no_grad():
        assert net(x).shape == (2, N, 32, 48)
    with pytest.raises(ValueError, match="input channels"):
        net(torch.zeros(1, net.in_channels + 1, 32, 32))


def test_lstm_decoder_reads_the_order_of_the_states():
    torch.manual_seed(0)
    net = sim_net(N, D, "sim", "lstm", features=(8, 16, 16, 32)).eval()
    image = np.random.default_rng(1).random((32, 32)).astype(np.float32)
    s1 = State(
        click_masks([SliceClick(5, 5, 1)], N, (32, 32)), np.random.default_rng(2).random((N, 32, 32)).astype(np.float32)
    )
    s2 = State(
        click_masks([SliceClick(20, 20, 2)], N, (32, 32)),
        np.random.default_rng(3).random((N, 32, 32)).astype(np.float32),
    )
    with torch.no_grad():
        a = net(torch.from_numpy(network_input(image, [s1, s2], "sim", N, D)[None]))
        b = net(torch.from_numpy(network_input(image, [s2, s1], "sim", N, D)[None]))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError):
        sim_net(N, D, "cim", "lstm")


def test_fast_lstm_path_is_the_textbook_lstm_and_skips_empty_states_exactly():
    """ConvLSTMCell.sequence (batched input convolution, tanh through sigmoid, empty states as
    None) gives what stepping ``forward`` gives; the network with its empty memory padding
    declared gives what it gives without the declaration."""
    from InteractiveSegLib.methods.sim.network import ConvLSTMCell

    torch.manual_seed(0)
    cell = ConvLSTMCell(6, 4).eval()
    for p in cell.parameters():
        p.data.normal_(0, 0.5)
    xs = [torch.zeros(2, 6, 9, 11), torch.zeros(2, 6, 9, 11), torch.randn(2, 6, 9, 11), torch.randn(2, 6, 9, 11)]
    with torch.no_grad():
        for first_real in range(len(xs) + 1):
            seq = [None] * first_real + xs[first_real:]
            ref = [torch.zeros_like(x) for x in xs[:first_real]] + xs[first_real:]
            hc = None
            for x in ref:
                hc = cell(x, hc)
            assert torch.allclose(cell.sequence(seq, xs[0]), hc[0], atol=1e-5), first_real
            with torch.enable_grad():  # the training path (no in-place update) agrees too
                assert torch.allclose(cell.sequence(seq, xs[0]), hc[0], atol=1e-5), first_real
    net = sim_net(N, D, "sim", "lstm", features=(8, 16, 16, 32)).eval()
    image = np.random.default_rng(1).random((32, 32)).astype(np.float32)
    s1 = State(
        click_masks([SliceClick(5, 5, 1)], N, (32, 32)), np.random.default_rng(2).random((N, 32, 32)).astype(np.float32)
    )
    for states in ([], [s1], [s1, s1]):
        x = torch.from_numpy(network_input(image, states, "sim", N, D)[None])
        with torch.no_grad():
            assert torch.allclose(net(x, empty_states=D - len(states)), net(x), atol=1e-5)


def test_sim_network_warm_started_from_cim_computes_the_cim_result(tmp_path):
    """Up to D non-overlapping clicks, a SIM network started from a CIM one gives its output."""
    from InteractiveSegLib.checkpoints import save_checkpoint
    from InteractiveSegLib.methods.sim.train import warm_start

    torch.manual_seed(0)
    cfg = {"num_classes": 5, "depth": 3, "features": [8, 16, 32, 64]}
    cim = sim_net(memory="cim", decoder="plain", **cfg).eval()
    for p in cim.parameters():  # a trained-looking network: no filter left at its initial value
        p.data.normal_(0, 0.2)
    path = tmp_path / "cim.pt"
    save_checkpoint(path, "sim_net", {"net": {"memory": "cim", "decoder": "plain", **cfg}}, cim, {})
    sim = sim_net(memory="sim", decoder="lstm", **cfg)
    warm_start(sim, str(path))
    sim.eval()
    rng = np.random.default_rng(0)
    img = rng.random((32, 32)).astype(np.float32)
    clicks = [SliceClick(5, 5, 1), SliceClick(20, 25, 3), SliceClick(12, 28, 0)]
    states = [State(click_masks([c], 5, img.shape), rng.random((5, 32, 32)).astype(np.float32)) for c in clicks]
    with torch.no_grad():
        a = cim(torch.from_numpy(network_input(img, states, "cim", 5, 3)[None]))
        b = sim(torch.from_numpy(network_input(img, states, "sim", 5, 3)[None]))
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_batch_norm_folded_into_the_convolutions_gives_the_same_logits():
    from InteractiveSegLib.methods.sim.network import fuse_batch_norm

    torch.manual_seed(0)
    net = sim_net(N, D, "sim", "lstm", features=(8, 16, 16, 32))
    for m in net.modules():  # stored statistics that are not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    net.eval()
    x = torch.rand(2, net.in_channels, 32, 32)
    with torch.no_grad():
        before = net(x)
        fused = fuse_batch_norm(net)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
        assert torch.allclose(fused(x), before, atol=1e-4)
