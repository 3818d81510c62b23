"""The multi-class tasks on the shipped data: hemisphere split, merged classes, overlapping classes."""

import numpy as np

from InteractiveSegLib.data.multiclass_tasks import load_task


def test_deep_grey_split_never_shares_a_voxel_between_train_and_test():
    data = load_task("colin27-deep-grey")
    assert data.task.num_classes == 5
    train, test = data.slices("train"), data.slices("test")
    assert len(train) > 50 and len(test) > 50
    tr, te = data.side_cols("train"), data.side_cols("test")
    assert tr[1] <= te[0] or te[1] <= tr[0]  # column ranges (I) of the two hemispheres are disjoint
    for s in train:
        if s.axis == 2:
            assert tr[0] <= s.index < tr[1]
        else:
            assert s.cols == tr
    for s in test:
        if s.axis == 2:
            assert te[0] <= s.index < te[1]
    # both sides of every class are present in the volume (left and right merged into one class)
    for cls in range(1, 5):
        cols = np.nonzero(data.target == cls)[2]
        assert cols.min() < data.midline <= cols.max()


def test_exclusive_targets_are_one_hot_and_multilabel_targets_overlap():
    data = load_task("colin27-deep-grey")
    s = max(data.slices("test"), key=lambda s: (data.slice(s)[1] > 0).sum())
    t = data.slice_target(s)
    assert t.shape[0] == 5 and (t.sum(0) == 1).all()
    ml = load_task("colin27-striatum-multilabel")
    s = max(ml.slices("test"), key=lambda s: (ml.slice(s)[1] > 0).sum())
    t = ml.slice_target(s)
    assert t.shape[0] == 4
    assert (t[1] & t[2]).any()  # the putamen belongs to the striatum and the lentiform nucleus
    np.testing.assert_array_equal(t[0], ~t[1:].any(0))


def test_sim_bench_split_train_samples_the_training_side():
    """``bench --split train`` (choosing among snapshots) reads the training hemisphere only."""
    from InteractiveSegLib.bench.options import BenchOptions
    from InteractiveSegLib.bench.sim import slices_for

    data = load_task("colin27-deep-grey")
    options = {"axes": "0,1,2", "min_area": 64, "max_slices": 0, "seed": 0}
    train = slices_for(data, BenchOptions(**options, split="train"), user=False)
    test = slices_for(data, BenchOptions(**options, split="test"), user=False)
    assert train == data.slices("train", min_area=64) and test == data.slices("test", min_area=64)
    assert train and test and not set(train) & set(test)
