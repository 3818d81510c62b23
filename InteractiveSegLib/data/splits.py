"""Labelled volumes and the explicit rules that split them into train and test.

Every volume names one rule of ``SPLIT_RULES``; a model card quotes
``LabelledVolume.split_description()`` so that what a model saw in training (and what it
was validated on) can be read back without running any code.

- ``odd-label-id`` (colin27, inia19): structures with odd label ids train, even ids test.
- ``odd-number-or-left`` (ct-abdomen): a name with a trailing number trains when the number is
  odd and is test when even, on either side (rib_left_7, rib_right_9, vertebrae_L1/L3/L5/T11
  train; rib_left_8, vertebrae_L2, vertebrae_T12 test); otherwise a name ending in ``_left``
  trains; everything else (right-sided organs and unpaired organs such as liver, spleen,
  stomach, pancreas, aorta, colon) is test, so no training sample contains them.
- ``held-out-volume`` (mni152, the shared MR lesion and phantom volumes, test cases of a user
  folder): every structure is test, the volume is for validation only.
- ``train-volume`` (train cases of a user folder): every structure trains.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from InteractiveSegLib.errors import ConfigError
from InteractiveSegLib.intensity import MODALITIES
from InteractiveSegLib.io import Segmentation
from InteractiveSegLib.labels import LabelTable
from InteractiveSegLib.volume import Volume

ODD_LABEL_ID = "odd-label-id"
ODD_NUMBER_OR_LEFT = "odd-number-or-left"
HELD_OUT_VOLUME = "held-out-volume"
TRAIN_VOLUME = "train-volume"

SPLIT_RULES: dict[str, str] = {
    ODD_LABEL_ID: "structures with odd label ids train; even ids are test (unseen structures)",
    ODD_NUMBER_OR_LEFT: (
        "a structure whose name ends in a number trains when the number is odd and is test when it is even "
        "(either side); otherwise a name ending in '_left' trains; every other structure (right-sided and "
        "unpaired organs) is test"
    ),
    HELD_OUT_VOLUME: "every structure is test: a held-out volume, for validation only",
    TRAIN_VOLUME: "every structure trains: a training volume",
}
"""Split rule name -> the rule in words (for model cards)."""

SPLITS = ("train", "test", "all")

_TRAILING_NUMBER = re.compile(r"(\d+)$")


def name_is_train(name: str) -> bool:
    """The ``odd-number-or-left`` rule for one structure name.

    Args:
        name: structure name, e.g. ``rib_left_7`` or ``liver``.
    Returns:
        True when the structure trains (odd trailing number, or no number and ``_left``).
    """
    m = _TRAILING_NUMBER.search(name)
    if m:
        return int(m.group(1)) % 2 == 1
    return name.endswith("_left")


def split_structures(rule: str, table: LabelTable, split: str) -> list[int]:
    """The label values of ``table`` in ``split`` under ``rule``.

    Args:
        rule: a key of ``SPLIT_RULES``.
        table: the volume's label table (names matter for ``odd-number-or-left``).
        split: 'train', 'test' or 'all'.
    Returns:
        Label values, in table order.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    if rule not in SPLIT_RULES:
        raise ConfigError(f"unknown split rule {rule!r}; known: {list(SPLIT_RULES)}")
    values = table.values
    if split == "all":
        return list(values)
    if rule == HELD_OUT_VOLUME:
        return list(values) if split == "test" else []
    if rule == TRAIN_VOLUME:
        return list(values) if split == "train" else []
    if rule == ODD_LABEL_ID:
        train = {v for v in values if v % 2 == 1}
    else:
        train = {e.value for e in table if name_is_train(e.name)}
    return [v for v in values if (v in train) == (split == "train")]


class LabelledVolume:
    """An image, its reference labels, its modality and the rule that splits its structures.

    A volume either holds its image and labels or a ``loader`` that reads them on first use
    (then keeps them; ``release()`` drops them): a folder of many cases can be listed and
    described without reading every image.
    """

    def __init__(
        self,
        name: str,
        image: Volume | None = None,
        labels: Segmentation | None = None,
        modality: str | None = None,
        rule: str = ODD_LABEL_ID,
        *,
        note: str = "",
        source: str = "builtin",
        loader: Callable[[], tuple[Volume, Segmentation]] | None = None,
    ) -> None:
        """Args:
        name: the volume's name (data set name or case id).
        image, labels: the data, or None with a ``loader``.
        modality: 'ct' or 'mr'; None when unknown (the caller detects it from the image).
        rule: a key of ``SPLIT_RULES``.
        note: why this volume has its rule (for a folder case: why it is train or test).
        source: 'builtin', 'shared' or the folder the volume was read from.
        loader: reads (image, labels) when they are first needed.
        """
        if rule not in SPLIT_RULES:
            raise ConfigError(f"unknown split rule {rule!r}; known: {list(SPLIT_RULES)}")
        if modality is not None and modality not in MODALITIES:
            raise ConfigError(f"unknown modality {modality!r}; expected one of {list(MODALITIES)} or None")
        if (image is None or labels is None) and loader is None:
            raise ConfigError(f"{name}: give an image and labels, or a loader")
        self.name, self.modality, self.rule, self.note, self.source = name, modality, rule, note, source
        self._image, self._labels, self._loader = image, labels, loader

    def __repr__(self) -> str:
        return f"LabelledVolume({self.name!r}, modality={self.modality!r}, rule={self.rule!r}, source={self.source!r})"

    def _load(self) -> None:
        if self._image is None or self._labels is None:
            assert self._loader is not None
            self._image, self._labels = self._loader()

    @property
    def image(self) -> Volume:
        self._load()
        assert self._image is not None
        return self._image

    @property
    def labels(self) -> Segmentation:
        self._load()
        assert self._labels is not None
        return self._labels

    @property
    def loaded(self) -> bool:
        """Whether the image and labels are in memory."""
        return self._image is not None and self._labels is not None

    def release(self) -> None:
        """Drop the image and labels (read again on next use); only for volumes with a loader."""
        if self._loader is not None:
            self._image = self._labels = None

    def in_split(self, split: str) -> bool:
        """Whether the volume can hold structures of ``split``, known without reading it.

        Args:
            split: 'train', 'test' or 'all'.
        Returns:
            False only when the rule excludes the whole volume from ``split``.
        """
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
        if split == "all":
            return True
        return not (
            (self.rule == HELD_OUT_VOLUME and split == "train") or (self.rule == TRAIN_VOLUME and split == "test")
        )

    def structures(self, split: str = "all") -> list[int]:
        """Label values of ``split`` ('train', 'test' or 'all') under the volume's rule."""
        if not self.in_split(split):
            return []
        return split_structures(self.rule, self.labels.labels, split)

    def mask(self, value: int) -> np.ndarray:
        """The boolean mask of one label value."""
        return self.labels.labelmap == value

    def split_description(self) -> str:
        """The split in words, for a model card.

        Returns:
            The rule, why the volume has it, and for rules that split structures by id or
            name the counts (and for named rules the names) of both sides. Volume-level
            rules do not read the data.
        """
        text = f"{self.name} ({self.modality or 'modality detected from the image'}): {SPLIT_RULES[self.rule]}"
        if self.note:
            text += f"; {self.note}"
        if self.rule in (ODD_LABEL_ID, ODD_NUMBER_OR_LEFT):
            table = self.labels.labels
            train, test = (split_structures(self.rule, table, s) for s in ("train", "test"))
            text += f" ({len(train)} train, {len(test)} test)"
            if self.rule == ODD_NUMBER_OR_LEFT:
                text += f"; train: {', '.join(table[v].name for v in train)}"
                text += f"; test: {', '.join(table[v].name for v in test)}"
        return text


def check_modality(name: str) -> str | None:
    """Map a modality name of dataset.json ('CT', 'MRI', 'T2', 'ADC', 'FLAIR', ...) to 'ct'/'mr'.

    Args:
        name: the name as written in dataset.json.
    Returns:
        'ct', 'mr', or None for anything else (PET, 'noNorm', ...): the caller then detects
        the modality from the intensities.
    """
    n = name.strip().lower()
    if n in ("ct", "cect", "ncct", "cta"):
        return "ct"
    mr = ("mr", "mri", "flair", "adc", "dwi", "pd", "hbv", "swi", "tof")
    if n in mr or n.startswith(("t1", "t2", "mr")):
        return "mr"
    return None
