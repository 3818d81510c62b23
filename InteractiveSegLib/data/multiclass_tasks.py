"""Multi-class segmentation tasks on the shipped data, with their train/held-out split.

``colin27-deep-grey``: Colin27 T1 with the AAL atlas; 5 classes: background, caudate,
putamen, pallidum, thalamus (left and right merged, so a transverse or coronal slice
holds two components of each class; the caudate's head and tail are two more). Split by
hemisphere: slices (sagittal) or half slices (axial, coronal) of the left hemisphere
train, those of the right hemisphere are held out. The two sides are mirror-like but no
held-out voxel is ever seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from InteractiveSegLib.data import datasets
from InteractiveSegLib.errors import ImageError


@dataclass(frozen=True)
class TaskSlice:
    """One 2D sample: slice ``index`` along KJI ``axis``, columns ``cols`` of it."""

    axis: int
    index: int
    cols: tuple[int, int]


@dataclass(frozen=True)
class Task:
    name: str
    dataset: str
    classes: tuple[str, ...]  # class names, index 0 the background
    sources: tuple[tuple[str, ...], ...]  # atlas structure names making each foreground class
    multilabel: bool = False
    description: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)


TASKS = {
    "colin27-deep-grey": Task(
        "colin27-deep-grey",
        "colin27",
        ("background", "caudate", "putamen", "pallidum", "thalamus"),
        (
            ("Caudate_L", "Caudate_R"),
            ("Putamen_L", "Putamen_R"),
            ("Pallidum_L", "Pallidum_R"),
            ("Thalamus_L", "Thalamus_R"),
        ),
        description="Colin27/AAL deep grey nuclei; left hemisphere trains, right hemisphere is held out",
    ),
    "colin27-striatum-multilabel": Task(
        "colin27-striatum-multilabel",
        "colin27",
        ("background", "striatum", "lentiform", "thalamus"),
        (
            ("Caudate_L", "Caudate_R", "Putamen_L", "Putamen_R"),
            ("Putamen_L", "Putamen_R", "Pallidum_L", "Pallidum_R"),
            ("Thalamus_L", "Thalamus_R"),
        ),
        multilabel=True,
        description="Colin27/AAL overlapping classes (the putamen is in both striatum and lentiform nucleus); "
        "left hemisphere trains, right hemisphere is held out",
    ),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ImageError(f"unknown task {name!r}; available: {sorted(TASKS)}")
    return TASKS[name]


@dataclass
class TaskData:
    """A task's image (normalised), reference (KJI) and split geometry.

    ``target`` is a class-index labelmap (for a multi-label task: the highest class
    wins); ``masks`` holds one boolean volume per foreground class when classes overlap.
    """

    task: Task
    image: np.ndarray
    target: np.ndarray
    midline: int  # I index (KJI axis 2) between the hemispheres
    train_side: str  # "low" if the training hemisphere has I < midline
    masks: np.ndarray | None = None  # (N-1, K, J, I) bool, multi-label tasks only

    def side_cols(self, split: str) -> tuple[int, int]:
        n = self.image.shape[2]
        low = (0, self.midline)
        high = (self.midline, n)
        train = low if self.train_side == "low" else high
        test = high if self.train_side == "low" else low
        return train if split == "train" else test

    def slices(self, split: str, min_area: int = 20, axes=(0, 1, 2)) -> list[TaskSlice]:
        """Samples of a split with at least ``min_area`` foreground pixels."""
        lo, hi = self.side_cols(split)
        fg = self.target > 0
        out = []
        for axis in axes:
            if axis == 2:  # sagittal: whole slices of one hemisphere
                for i in range(lo, hi):
                    if fg[:, :, i].sum() >= min_area:
                        out.append(TaskSlice(2, i, (0, self.image.shape[1])))
            else:
                part = fg[:, :, lo:hi]
                other = 1 if axis == 0 else 0
                areas = part.sum(axis=(other, 2))
                for idx in np.nonzero(areas >= min_area)[0]:
                    out.append(TaskSlice(axis, int(idx), (lo, hi)))
        return out

    def slice(self, s: TaskSlice) -> tuple[np.ndarray, np.ndarray]:
        """Image and class-index labelmap of a sample."""
        img = np.take(self.image, s.index, axis=s.axis)[:, s.cols[0] : s.cols[1]]
        lab = np.take(self.target, s.index, axis=s.axis)[:, s.cols[0] : s.cols[1]]
        return img, lab

    def slice_target(self, s: TaskSlice) -> np.ndarray:
        """(N, H, W) boolean reference of a sample; classes may overlap in a multi-label task."""
        if self.masks is None:
            from InteractiveSegLib.preprocessing import one_hot

            return one_hot(self.slice(s)[1], self.task.num_classes)
        fg = np.take(self.masks, s.index, axis=1 + s.axis)[:, :, s.cols[0] : s.cols[1]]
        return np.concatenate([~fg.any(0, keepdims=True), fg])


@lru_cache(maxsize=2)
def load_task(name: str) -> TaskData:
    from InteractiveSegLib.preprocessing import normalize_intensity

    task = get_task(name)
    lv = datasets.load(task.dataset)
    by_name = {e.name: e.value for e in lv.labels.labels}
    target = np.zeros(lv.image.shape, np.uint8)
    masks = np.zeros((len(task.sources), *lv.image.shape), bool)
    for cls, names in enumerate(task.sources, start=1):
        for n in names:
            if n not in by_name:
                raise ImageError(f"task {name}: structure {n} not in {task.dataset}")
            masks[cls - 1] |= lv.labels.labelmap == by_name[n]
        target[masks[cls - 1]] = cls
    left = [lv.labels.labelmap == by_name[n] for names in task.sources for n in names if n.endswith("_L")]
    right = [lv.labels.labelmap == by_name[n] for names in task.sources for n in names if n.endswith("_R")]
    ci_left = float(np.mean([np.nonzero(m)[2].mean() for m in left]))
    ci_right = float(np.mean([np.nonzero(m)[2].mean() for m in right]))
    midline = int(round((ci_left + ci_right) / 2))
    side = "low" if ci_left < ci_right else "high"
    return TaskData(
        task, normalize_intensity(lv.image.array), target, midline, side, masks if task.multilabel else None
    )


def dataset_tasks(specs: list[str], min_voxels: int = 100) -> list[TaskData]:
    """A multi-class task per train volume of labelled sources (``datasets.resolve``): every
    label of the volume's table is a class, the whole volume trains (the sources split by
    volume, not by hemisphere). All volumes must share their classes.

    Intensities are scaled as the shipped SIM networks were trained (non-zero percentiles).

    Args:
        specs: data set names or folders.
        min_voxels: a volume whose smallest class is absent (fewer voxels) still trains;
            classes are the table's, present or not.

    Returns:
        One ``TaskData`` per train volume, in the sources' order.
    """
    from InteractiveSegLib.preprocessing import normalize_intensity

    out: list[TaskData] = []
    classes: tuple[str, ...] | None = None
    for lv in datasets.resolve(specs):
        if not lv.in_split("train"):
            continue
        values = lv.structures("train")
        if not values:
            continue
        names = tuple(lv.labels.labels[v].name for v in values)
        if classes is None:
            classes = ("background", *names)
        elif classes[1:] != names:
            raise ImageError(f"{lv.name}: classes {list(names)} differ from the first volume's {list(classes[1:])}")
        task = Task(lv.name, lv.name, classes, tuple((n,) for n in names), description=lv.split_description())
        target = np.zeros(lv.image.shape, np.uint8)
        for cls, v in enumerate(values, start=1):
            target[lv.labels.labelmap == v] = cls
        if int((target > 0).sum()) < min_voxels:
            continue
        out.append(TaskData(task, normalize_intensity(lv.image.array), target, lv.image.shape[2], "low"))
    if not out:
        raise ImageError(f"no labelled train volume in {specs}")
    return out
