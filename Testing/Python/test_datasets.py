import pytest

from InteractiveSegLib.data import datasets
from InteractiveSegLib.errors import ImageError


def test_colin27_with_aal_names_and_structure_split():
    lv = datasets.load("colin27")
    assert lv.image.shape == (181, 217, 181)
    assert lv.labels.labels[71].name == "Caudate_L" and lv.labels.labels[72].name == "Caudate_R"
    train, test = set(lv.structures("train")), set(lv.structures("test"))
    assert train and test and not train & test
    assert train | test == set(lv.labels.labels.values)


def test_mni152_is_a_held_out_volume_with_grey_and_white_matter():
    lv = datasets.load("mni152")
    assert lv.structures("train") == [] and lv.structures("test") == [1, 2]
    gm, wm = lv.mask(1), lv.mask(2)
    assert gm.sum() > 1e5 and wm.sum() > 1e5 and not (gm & wm).any()
    # white matter is brighter than grey matter on T1
    assert lv.image.array[wm].mean() > lv.image.array[gm].mean()


def test_inia19_labels_lie_on_its_image():
    lv = datasets.load("inia19")
    assert lv.labels.labelmap.shape == lv.image.shape
    assert len(lv.structures("test")) > 100


def test_missing_data_is_a_clear_error(monkeypatch, tmp_path):
    datasets.load.cache_clear()
    monkeypatch.setenv("INTERACTIVESEG_MRICRON_DIR", str(tmp_path))
    with pytest.raises(ImageError, match="mricron-data"):
        datasets.load("colin27")
    datasets.load.cache_clear()
    with pytest.raises(ImageError, match="unknown dataset"):
        datasets.load("nope")
