"""Shared pytest set-up.

- The source tree is importable without installing: ``InteractiveSegLib`` from the
  repository root and ``InteractiveSegSlicer`` from ``InteractiveSeg/`` (an editable
  install maps to the same files).
- ``slicer_app``: one real Slicer application core (slicer-core + trame-slicer's
  ``SlicerApp``: MRML scene with module logics registered) for the whole run, created
  only when a test asks for it, so library-only tests never pay for it nor need it.
  MRML is never mocked; the wheel is a test dependency, so its absence fails.
- ``scene``: that scene; nodes a test adds are removed after it.
- ``volume_node``: factory for scalar/vector volume nodes from KJI numpy arrays.
- ``colin_crop``: 32 axial slices of Colin27 as a NIfTI file (the controller, gesture and
  browser tests open it as Slicer or the web app would).
- ``shared_data``: the folder of ``../shared/data`` (the abdominal CT, MRI lesions,
  phantom). It lives beside the repository, never in it: a clone elsewhere has no such
  folder, and the tests that read it say so there, in this one place.
- ``decathlon``: a user's Decathlon folder of five small CT-like cases (the trainers' input).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
for _p in (ROOT, ROOT / "InteractiveSeg"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py`` as a module (the scripts are no package), to call its functions in-process."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def shared_data() -> Path:
    from InteractiveSegLib.data import datasets
    from InteractiveSegLib.errors import ImageError

    try:
        for name in datasets.SHARED_DATASETS:
            datasets.shared_source_files(name)
    except ImageError as e:
        pytest.skip(str(e))
    return datasets.shared_data_dir()


@pytest.fixture(scope="session")
def slicer_app():
    from trame_slicer import core  # a test dependency (pip install -e '.[test]'): missing is a failure

    return core.SlicerApp()


@pytest.fixture
def scene(slicer_app):
    scene = slicer_app.scene
    before = {scene.GetNthNode(n).GetID() for n in range(scene.GetNumberOfNodes())}
    yield scene
    added = [scene.GetNthNode(n) for n in range(scene.GetNumberOfNodes())]
    for node in added:
        if node is not None and node.GetID() not in before and scene.GetNodeByID(node.GetID()) is not None:
            scene.RemoveNode(node)


@pytest.fixture
def volume_node(scene):
    """``volume_node(array_kji, ijk_to_ras=None, name="volume", components=1)`` -> a volume node in ``scene``."""
    import vtk
    from vtk.util import numpy_support

    def make(array, ijk_to_ras=None, name="volume", components=1):
        a = np.asarray(array)
        vtk_type = numpy_support.get_vtk_array_type(a.dtype)
        if components == 1:
            k, j, i = a.shape
            node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        else:
            k, j, i, _ = a.shape
            node = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", name)
        image = vtk.vtkImageData()
        image.SetDimensions(i, j, k)
        image.AllocateScalars(vtk_type, components)
        numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = a.reshape(k * j * i, components).squeeze()
        node.SetAndObserveImageData(image)
        m = vtk.vtkMatrix4x4()
        matrix = np.eye(4) if ijk_to_ras is None else np.asarray(ijk_to_ras, float)
        for r in range(4):
            for c in range(4):
                m.SetElement(r, c, matrix[r, c])
        node.SetIJKToRASMatrix(m)
        return node

    return make


@pytest.fixture(scope="module")
def colin_crop(tmp_path_factory) -> Path:
    """32 axial slices through the middle of Colin27 (T1 MRI), as NIfTI."""
    from InteractiveSegLib import io
    from InteractiveSegLib.data import datasets
    from InteractiveSegLib.volume import Volume

    image = datasets.load("colin27").image  # make setup installs mricron-data: missing is a failure
    k0 = image.shape[0] // 2 - 16
    origin = tuple(float(c) for c in image.geometry.ijk_to_ras_points([[0, 0, k0]])[0])
    crop = Volume(np.ascontiguousarray(image.array[k0 : k0 + 32]), dataclasses.replace(image.geometry, origin=origin))
    return io.write_volume(tmp_path_factory.mktemp("colin") / "colin_crop.nii.gz", crop)


@pytest.fixture
def decathlon(tmp_path):
    """A user's Decathlon folder of five CT-like cases, a ball of soft tissue in air each
    (the fifth held out by the folder's split)."""
    import json

    from InteractiveSegLib.io import write_volume
    from InteractiveSegLib.volume import Geometry

    root = tmp_path / "Task00_Ball"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    k, j, i = np.mgrid[:16, :48, :48]
    training = []
    for n in range(5):
        ball = (k - 8) ** 2 * 4 + (j - 24 - n) ** 2 + (i - 22) ** 2 < 15**2
        image = np.where(ball, 40.0, -900.0) + np.random.default_rng(n).normal(0, 10, ball.shape)
        for folder, array in (("imagesTr", image.astype(np.float32)), ("labelsTr", ball.astype(np.uint8))):
            write_volume(root / folder / f"ball_{n}.nii.gz", array, Geometry(spacing=(1.0, 1.0, 2.0)))
        training.append({"image": f"./imagesTr/ball_{n}.nii.gz", "label": f"./labelsTr/ball_{n}.nii.gz"})
    meta = {"modality": {"0": "CT"}, "labels": {"0": "background", "1": "ball"}, "training": training}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root
