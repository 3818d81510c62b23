"""A pack of training structures stands for the sources it was made from: the trainers read
the same structures from it, and a file that is not a pack is refused with a clear error."""

import numpy as np
import pytest

from InteractiveSegLib.cli.main import main
from InteractiveSegLib.errors import ConfigError
from InteractiveSegLib.methods.vmn.train import training_structures


def test_a_pack_gives_the_trainers_the_structures_of_its_sources(tmp_path, decathlon, capsys):
    pack = tmp_path / "balls.npz"
    assert main(["pack-training-data", "--dataset", str(decathlon), "--out", str(pack)]) == 0, capsys.readouterr().err
    assert "train structures" in capsys.readouterr().out
    direct, packed = (training_structures([spec], min_voxels=100) for spec in (str(decathlon), str(pack)))
    assert [s.name for s in packed] == [s.name for s in direct] and len(direct) == 4  # the fifth case is held out
    for a, b in zip(direct, packed, strict=True):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
        assert np.array_equal(a.labelmap, b.labelmap) and a.spacing == b.spacing and a.value == b.value
    with pytest.raises(ConfigError, match="scaled by modality"):
        training_structures([str(pack)], normalization="percentile")


def test_a_file_that_is_not_a_pack_is_refused(tmp_path, capsys):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip file")
    other = tmp_path / "other.npz"
    np.savez(other, image=np.zeros(3))
    for path in (broken, other):
        with pytest.raises(ConfigError, match="training pack"):
            training_structures([str(path)])
    out = tmp_path / "p3.pt"
    assert main(["train-prompt3d", "--dataset", str(broken), "--out", str(out), "--iterations", "1"]) == 2
    assert "is not a readable training pack" in capsys.readouterr().err and not out.exists()
