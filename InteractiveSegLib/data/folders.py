"""A user's folder of labelled volumes, read in place as one ``LabelledVolume`` per case.

Three layouts are recognised:

- Medical Segmentation Decathlon (``msd``): ``dataset.json`` with a ``"training"`` list of
  ``{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}``, ``"labels"`` as
  ``{"0": "background", "1": "liver"}`` and ``"modality"`` as ``{"0": "CT"}``.
- nnU-Net v2 (``nnunet``): ``dataset.json`` with ``"labels"`` as ``{"background": 0, "liver": 1}``,
  ``"channel_names"`` and ``"file_ending"``; images ``imagesTr/<case>_0000<ending>`` (the channel
  suffix), labels ``labelsTr/<case><ending>``.
- image/label pairs (``pairs``): ``X.nii.gz`` beside ``X_label.nii.gz``, ``X_labels.nii.gz`` or
  ``X.seg.nrrd``; or ``images/`` and ``labels/`` holding the same file names.

Multi-channel cases (several MR sequences) use channel 0 only, the first listed modality:
the engines take one scalar image. A 4D image (x, y, z, channel), as the Decathlon ships
its multi-sequence tasks, is cut to its first volume.

Volume split (explicit and deterministic, so a model card can state it): cases listed in
dataset.json ``"test"`` or ``"validation"`` are test when at least one of them is a labelled
case; otherwise every 5th case in sorted name order (index % 5 == 4) is test. Every structure
of a train case trains (rule ``train-volume``), every structure of a test case is test
(``held-out-volume``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from InteractiveSegLib.data.splits import HELD_OUT_VOLUME, TRAIN_VOLUME, LabelledVolume, check_modality
from InteractiveSegLib.errors import GeometryError, ImageError
from InteractiveSegLib.io import Segmentation, geometry_from_sitk, read_labels
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.volume import Volume, validate_image_array

IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
LABEL_SUFFIXES = ("_label", "_labels")
TEST_EVERY = 5  # without a listed test set, the case at index % TEST_EVERY == TEST_EVERY - 1 is test
LAYOUTS = ("msd", "nnunet", "pairs")


@dataclass(frozen=True)
class Case:
    """One labelled case of a folder, listed without reading it."""

    name: str
    image: Path
    label: Path
    split: str = "train"  # 'train' or 'test'
    reason: str = ""


@dataclass
class Folder:
    """A labelled folder: its layout, cases, modality of channel 0 and label names."""

    path: Path
    layout: str
    cases: list[Case]
    modality: str | None = None
    label_names: dict[int, str] = field(default_factory=dict)


def case_id(path: str | Path) -> str:
    """The file name without its image ending (``x.nii.gz`` -> ``x``, ``x.seg.nrrd`` -> ``x``)."""
    name = Path(path).name
    for ending in (".seg.nrrd", *IMAGE_ENDINGS):
        if name.endswith(ending):
            return name[: -len(ending)]
    return name


def _is_image(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.name.endswith(IMAGE_ENDINGS)


def _is_label(p: Path) -> bool:
    return p.name.endswith(".seg.nrrd") or case_id(p).endswith(LABEL_SUFFIXES)


def layout(path: str | Path) -> str:
    """Which layout a folder has.

    Args:
        path: the folder.
    Returns:
        'msd', 'nnunet' or 'pairs'; ImageError when it is none of them.
    """
    d = Path(path)
    if not d.is_dir():
        raise ImageError(f"{d}: no such folder")
    if (d / "dataset.json").is_file():
        meta = _read_json(d / "dataset.json")
        for sub in ("imagesTr", "labelsTr"):
            if not (d / sub).is_dir():
                raise ImageError(f"{d}: has dataset.json but no {sub}/ folder (Decathlon / nnU-Net layout)")
        return "msd" if isinstance(meta.get("training"), list) else "nnunet"
    if (d / "images").is_dir() and (d / "labels").is_dir():
        return "pairs"
    if any(_is_image(p) and _is_label(p) for p in d.iterdir()):
        return "pairs"
    raise ImageError(
        f"{d}: not a labelled folder: expected dataset.json with imagesTr/ and labelsTr/ (Medical Segmentation "
        "Decathlon / nnU-Net), images/ and labels/ with the same file names, or images beside their labels "
        "(X.nii.gz with X_label.nii.gz, X_labels.nii.gz or X.seg.nrrd)"
    )


def _read_json(p: Path) -> dict[str, Any]:
    try:
        meta = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ImageError(f"{p}: cannot read ({e})") from None
    if not isinstance(meta, dict):
        raise ImageError(f"{p}: expected a JSON object")
    return meta


def _label_names(labels: Any) -> dict[int, str]:
    """{"0": "background", "1": "liver"} (Decathlon) or {"background": 0, "liver": 1} (nnU-Net v2);
    region-based nnU-Net labels (lists of values) have no single value and are left out."""
    out: dict[int, str] = {}
    for k, v in (labels or {}).items():
        if isinstance(v, str) and str(k).isdigit():
            out[int(k)] = v
        elif isinstance(v, int) and not isinstance(v, bool):
            out[v] = str(k)
    out.pop(0, None)
    return out


def _modality(meta: dict[str, Any]) -> str | None:
    channels = meta.get("channel_names") or meta.get("modality") or {}
    first = channels.get("0") if isinstance(channels, dict) else None
    return check_modality(first) if isinstance(first, str) else None


def _entry_paths(d: Path, entry: Any) -> tuple[Path | None, Path | None]:
    if isinstance(entry, str):
        return d / entry, None
    if isinstance(entry, dict):
        image, label = entry.get("image"), entry.get("label")
        return (d / image if isinstance(image, str) else None), (d / label if isinstance(label, str) else None)
    return None, None


def _channel0(image: Path) -> Path:
    """The listed image, or its channel-0 file (nnU-Net's ``x_0000.nii.gz``) when only that exists."""
    if image.is_file():
        return image
    ending = image.name[len(case_id(image)) :]
    alt = image.with_name(f"{case_id(image)}_0000{ending}")
    return alt if alt.is_file() else image


def _decathlon_cases(d: Path, meta: dict[str, Any]) -> list[Case]:
    cases = []
    for n, entry in enumerate(meta["training"]):
        image, label = _entry_paths(d, entry)
        if image is None or label is None:
            raise ImageError(f"{d / 'dataset.json'}: training entry {n} needs 'image' and 'label' paths")
        cases.append(Case(case_id(image), _channel0(image), label))
    return cases


def _nnunet_cases(d: Path, meta: dict[str, Any]) -> list[Case]:
    ending = meta.get("file_ending", ".nii.gz")
    cases = []
    for label in sorted((d / "labelsTr").glob(f"*{ending}")):
        if label.name.startswith("."):
            continue
        name = label.name[: -len(ending)]
        cases.append(Case(name, d / "imagesTr" / f"{name}_0000{ending}", label))
    return cases


def _pairs_cases(d: Path) -> list[Case]:
    if (d / "images").is_dir() and (d / "labels").is_dir():
        images, label_dir = [p for p in sorted((d / "images").iterdir()) if _is_image(p)], d / "labels"
        candidates = ["{file}", "{id}.seg.nrrd", *(f"{{id}}{s}{{ending}}" for s in LABEL_SUFFIXES)]
    else:
        images, label_dir = [p for p in sorted(d.iterdir()) if _is_image(p) and not _is_label(p)], d
        candidates = ["{id}.seg.nrrd", *(f"{{id}}{s}{{ending}}" for s in LABEL_SUFFIXES)]
    cases, unpaired = [], []
    for image in images:
        cid = case_id(image)
        names = [c.format(file=image.name, id=cid, ending=image.name[len(cid) :]) for c in candidates]
        found = [label_dir / n for n in names if (label_dir / n).is_file()]
        if found:
            cases.append(Case(cid, image, found[0]))
        else:
            unpaired.append(image.name)
    if unpaired:
        raise ImageError(
            f"{d}: no labels for {', '.join(unpaired)} (expected in {label_dir}: "
            + ", ".join(c.format(file="<same name>", id="X", ending=".nii.gz") for c in candidates)
            + ")"
        )
    return cases


def _check_files(d: Path, cases: list[Case]) -> None:
    missing = [f"{c.name}: {p}" for c in cases for p in (c.image, c.label) if not p.is_file()]
    if missing:
        shown = "; ".join(missing[:5]) + (f"; and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ImageError(f"{d}: missing files: {shown}")
    if not cases:
        raise ImageError(f"{d}: holds no labelled case")
    names = [c.name for c in cases]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ImageError(f"{d}: several cases named {dup}")


def _split(d: Path, meta: dict[str, Any], cases: list[Case]) -> list[Case]:
    """Cases listed in dataset.json 'test'/'validation' (when any is labelled) are test, else
    every ``TEST_EVERY``-th case in sorted name order."""
    by_name = {c.name: c for c in cases}
    listed: set[str] = set()
    for key in ("test", "validation"):
        entries = meta.get(key)
        for entry in entries if isinstance(entries, list) else []:
            image, label = _entry_paths(d, entry)
            if image is None:
                continue
            cid = case_id(image)
            cid = cid[:-5] if cid not in by_name and cid.endswith("_0000") else cid
            if cid not in by_name and label is not None and label.is_file() and _channel0(image).is_file():
                by_name[cid] = Case(cid, _channel0(image), label)
            if cid in by_name:
                listed.add(cid)
    out = []
    for i, name in enumerate(sorted(by_name)):
        c = by_name[name]
        if listed:
            test = name in listed
            why = f"{'' if test else 'not '}listed in dataset.json 'test'/'validation'"
        else:
            test = i % TEST_EVERY == TEST_EVERY - 1
            rule = f"every {TEST_EVERY}th case, index % {TEST_EVERY} == {TEST_EVERY - 1}, is test"
            why = f"case {i} in sorted name order ({rule})"
        split = "test" if test else "train"
        reason = f"{split} volume: {why}"
        out.append(Case(c.name, c.image, c.label, split, reason))
    return out


def scan(path: str | Path) -> Folder:
    """List a folder's cases and their split without reading any image.

    Args:
        path: a Decathlon / nnU-Net v2 folder or a folder of image/label pairs.
    Returns:
        The folder's layout, cases (sorted by name, each with its split and why), the modality
        of channel 0 ('ct', 'mr' or None when dataset.json does not say) and the label names.
    """
    d = Path(path)
    kind = layout(d)
    meta = _read_json(d / "dataset.json") if kind != "pairs" else {}
    if kind == "msd":
        cases = _decathlon_cases(d, meta)
    elif kind == "nnunet":
        cases = _nnunet_cases(d, meta)
    else:
        cases = _pairs_cases(d)
    _check_files(d, cases)
    return Folder(d, kind, _split(d, meta, cases), _modality(meta), _label_names(meta.get("labels")))


def list_cases(path: str | Path) -> list[Case]:
    """The labelled cases of a folder with their split, without reading any image (see ``scan``)."""
    return scan(path).cases


def read_image(path: Path) -> Volume:
    """Read a case image; of a 4D (x, y, z, channel) or multi-component image, channel 0.

    Args:
        path: the image file.
    Returns:
        The 3D scalar volume.
    """
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as e:
        lines = str(e).strip().splitlines()
        raise ImageError(f"{path}: cannot read image ({lines[-1] if lines else 'unknown reason'})") from None
    if img.GetDimension() == 4:
        x, y, z, _ = img.GetSize()
        img = sitk.Extract(img, [x, y, z, 0], [0, 0, 0, 0], sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOSUBMATRIX)
    if img.GetNumberOfComponentsPerPixel() > 1:
        img = sitk.VectorIndexSelectionCast(img, 0)
    if img.GetDimension() != 3:
        raise ImageError(f"{path}: expected a 3D image (or 4D with channels last), got {img.GetDimension()}D")
    arr = validate_image_array(sitk.GetArrayFromImage(img), path.name)
    return Volume(arr, geometry_from_sitk(img), name=case_id(path))


def read_case(case: Case, label_names: dict[int, str] | None = None) -> tuple[Volume, Segmentation]:
    """Read a case's image and labels, checked to share one voxel grid.

    Args:
        case: from ``scan``/``list_cases``.
        label_names: value -> name (dataset.json); a ``.seg.nrrd`` keeps its own names otherwise.
    Returns:
        (image, labels).
    """
    image = read_image(case.image)
    try:
        seg = read_labels(case.label, reference=image)
    except GeometryError as err:
        raise GeometryError(
            f"case {case.name}: {case.label.name} does not lie on the grid of {case.image.name}: {err}"
        ) from None
    if label_names:
        table = LabelTable()
        for entry in seg.labels:
            table.add(entry.value, label_names.get(entry.value, entry.name), entry.color)
        seg.labels = table
    return image, seg


def load_folder(path: str | Path) -> list[LabelledVolume]:
    """One ``LabelledVolume`` per case of a folder, each read on first use.

    Args:
        path: a Decathlon / nnU-Net v2 folder or a folder of image/label pairs.
    Returns:
        The volumes in sorted case order; train cases have rule ``train-volume``, test cases
        ``held-out-volume``; modality from dataset.json or None (the caller detects it).
    """
    folder = scan(path)
    out = []
    for c in folder.cases:
        rule = TRAIN_VOLUME if c.split == "train" else HELD_OUT_VOLUME

        def loader(c: Case = c) -> tuple[Volume, Segmentation]:
            return read_case(c, folder.label_names)

        out.append(
            LabelledVolume(
                c.name, None, None, folder.modality, rule, note=c.reason, source=str(folder.path), loader=loader
            )
        )
    return out
