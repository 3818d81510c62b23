"""Dynamic learning parts: Algorithm 1's buffer statistics with a fixed seed, its state
surviving a restart, the task directory's atomic writes and lock, and the slice
guidance maths (eqs. 11, 12, 17, Algorithm 4)."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import Counter

import numpy as np
import torch

from InteractiveSegLib.methods.online.proposals import confidence_weights, propose_slices, residual_map, slice_distance
from InteractiveSegLib.methods.online.replay import ReplayBuffer
from InteractiveSegLib.methods.online.task_folder import TaskFolder, TaskLockedError, atomic_torch_save


def test_buffer_keeps_newer_samples_likelier_and_older_ones_alive():
    """Over many streams: the newest sample is in B far more often than one from the start,
    and that old one is still present in a fair share of streams (slow decay, not FIFO)."""
    counts: Counter = Counter()
    runs = 400
    for seed in range(runs):
        buf = ReplayBuffer(size=4, aux_size=8, seed=seed)
        for t in range(30):
            buf.update(f"s{t}")
        counts.update(buf.buffer)
        assert len(buf.buffer) == 4 and len(set(buf.buffer)) == 4
        assert all(k in buf.aux for k in buf.buffer)
    newest, oldest = counts["s29"] / runs, counts["s0"] / runs
    # b = 4 of b* = 8 slots: a sample in B* is in B half of the time; s29 entered B* unless
    # the draw dropped it (1/9); s0 survived 22 more draws (after the 8 fills), each
    # replacing its slot with probability 1/9: (8/9)^22 ~ 0.075, times 1/2
    assert 0.38 < newest < 0.52
    assert 0.015 < oldest < 0.08


def test_buffer_state_round_trips_and_continues_identically():
    a = ReplayBuffer(size=3, aux_size=5, seed=3)
    for t in range(7):
        a.update(f"x{t}")
    b = ReplayBuffer.from_state(a.state())
    for t in range(7, 12):
        a.update(f"x{t}")
        b.update(f"x{t}")
    assert a.state() == b.state() and a.sample(2) == b.sample(2)


def _write_then_die(path: str) -> None:
    import InteractiveSegLib.methods.online.task_folder as ts

    real = os.replace

    def crash(*_):  # the process dies after writing the temporary file, before the rename
        os._exit(3)

    ts.os.replace = crash
    try:
        atomic_torch_save(ts.Path(path), {"step": 2, "w": torch.ones(3)})
    finally:
        ts.os.replace = real


def test_a_killed_write_leaves_the_previous_checkpoint_loadable(tmp_path):
    store = TaskFolder.open(tmp_path / "task")
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    store.save_checkpoint(model, opt, {"step": 1})
    p = mp.get_context("fork").Process(target=_write_then_die, args=(str(tmp_path / "task" / "checkpoint.pt"),))
    p.start()
    p.join()
    assert p.exitcode == 3
    ckpt = store.load_checkpoint()
    assert ckpt["meta"]["step"] == 1 and torch.equal(ckpt["model"]["weight"], model.weight.detach())
    store.close()


def _try_open(path: str, q) -> None:
    try:
        TaskFolder.open(path)
        q.put("opened")
    except TaskLockedError as e:
        q.put(str(e))


def test_a_second_session_on_the_task_gets_a_clear_message(tmp_path):
    store = TaskFolder.open(tmp_path / "task")
    q = mp.get_context("fork").Queue()
    p = mp.get_context("fork").Process(target=_try_open, args=(str(tmp_path / "task"), q))
    p.start()
    p.join()
    assert "open in another session" in q.get()
    store.close()
    TaskFolder.open(tmp_path / "task").close()  # free again


def test_weights_residual_and_proposals():
    shape = (10, 4, 4)
    drawn = {0: [2, 7]}
    d = slice_distance(shape, drawn)
    assert d[2].max() == 0 and d[0].min() == 2 and d[9].min() == 2 and d[4].min() == 2
    w = confidence_weights(shape, drawn, "exp")
    assert np.isclose(w[2], 1).all() and np.isclose(w[4], np.exp(-2)).all()  # eq. 11
    w12 = confidence_weights(shape, drawn, "indicator", omega=3.0)
    assert (w12[7] == 4).all() and (w12[5] == 1).all()  # eq. 12
    proxy = np.zeros(shape)
    pred = np.zeros(shape)
    pred[5] = 1.0  # the model disagrees with the proxy only on slice 5
    r = residual_map(proxy, pred, drawn, omega1=1.0)
    rng = np.random.default_rng(0)
    assert propose_slices(r, 0, 1, drawn[0], rng) == [5]
    picks = Counter(
        i
        for s in range(200)
        for i in propose_slices(residual_map(proxy, pred, drawn, 0.5), 0, 1, drawn[0], np.random.default_rng(s))
    )
    assert picks[5] == max(picks.values()) and 2 not in picks and 7 not in picks


def test_residual_counts_only_within_the_support():
    proxy = np.zeros((4, 6, 8), bool)
    proxy[1:3, 2:4, 2:5] = True
    pred = np.zeros(proxy.shape, np.float32)
    drawn = {1: [2]}
    support = np.zeros(proxy.shape, bool)
    support[:, 1:5, :] = True
    r = residual_map(proxy, pred, drawn, omega1=0.5, support=support)
    full = residual_map(proxy, pred, drawn, omega1=0.5)
    assert np.allclose(r[support], full[support])
    assert np.all(r[~support] == 0)
    assert propose_slices(r, 1, 2, drawn[1], np.random.default_rng(0)) != [0] and 0 not in propose_slices(
        r, 1, 3, drawn[1], np.random.default_rng(0)
    )
