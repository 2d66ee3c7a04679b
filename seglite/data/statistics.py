"""Class statistics of a data set's labels: pixel counts per class, and class weights computed from them.

Works on any data set with ``__len__`` and ``read_mask(index)``, which returns the ``(H, W)``
uint8 mask of class ids (255 = ignore) without decoding the image, or ``None`` for an
unlabelled image. Ignored pixels belong to no class: every share and frequency here is over
labelled pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from torch.utils.data import DataLoader, Dataset

from seglite.checks import check_non_negative_int, check_positive_int
from seglite.errors import DataFormatError

from .constants import CLASS_WEIGHT_METHODS, IGNORE_INDEX, ClassWeightMethod
from .sampling import worker_signals

__all__ = ["CLASS_WEIGHT_METHODS", "ENET_C", "ClassCounts", "ClassWeightMethod", "class_table", "class_weights", "count_class_pixels"]

ENET_C = 1.02
"""ENet's ``c`` in ``1 / ln(c + p_class)``: bounds the weights to [1.42, 50.5] (ENet paper, section 5.2)."""


class MaskSource(Protocol):
    """What the counting reads: the number of images, and one image's class-id mask (``None``: unlabelled)."""

    def __len__(self) -> int: ...

    def read_mask(self, index: int) -> np.ndarray | None: ...


@dataclass(frozen=True, eq=False)
class ClassCounts:
    """Pixel counts of a data set's labels, per class.

    Attributes:
        pixels: ``(C,)`` int64, pixels of each class.
        image_pixels: ``(C,)`` int64, labelled pixels of the images in which the class is present
            (the denominator of SegNet's class frequency).
        images: ``(C,)`` int64, images in which the class is present.
        ignored: pixels labelled ``255`` (ignore) in the labelled images.
        total: all pixels of the labelled images, ignored ones included.
        num_images: images in the data set, unlabelled ones included.
        unlabelled_images: images without a mask (``read_mask`` returned ``None``).
    """

    pixels: np.ndarray
    image_pixels: np.ndarray
    images: np.ndarray
    ignored: int
    total: int
    num_images: int
    unlabelled_images: int = 0

    @property
    def num_classes(self) -> int:
        return len(self.pixels)

    @property
    def labelled(self) -> int:
        """Pixels of a class (not ignored) over all images."""
        return int(self.pixels.sum())

    @property
    def share(self) -> np.ndarray:
        """``(C,)`` each class's fraction of the labelled pixels (zeros when nothing is labelled)."""
        return self.pixels / self.labelled if self.labelled else np.zeros(self.num_classes)

    @property
    def absent(self) -> list[int]:
        """The classes with no pixel."""
        return np.flatnonzero(self.pixels == 0).tolist()


class _MaskHistograms(Dataset):
    """Each item: ``(index, 256-bin histogram of the mask's values)``, or ``(index, None)`` for an unlabelled image."""

    def __init__(self, dataset: MaskSource) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None]:
        mask = self.dataset.read_mask(index)
        if mask is None:
            return index, None
        if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.ndim != 2:
            described = f"{mask.dtype} array of shape {mask.shape}" if isinstance(mask, np.ndarray) else type(mask).__name__
            raise TypeError(f"{type(self.dataset).__name__}.read_mask({index}) returned a {described}; expected an (H, W) uint8 array")
        return index, np.bincount(mask.ravel(), minlength=256)


def _unchanged(item):
    return item


def count_class_pixels(dataset: MaskSource, num_classes: int, num_workers: int = 0) -> ClassCounts:
    """Count the pixels of every class over all masks of ``dataset``.

    The masks are read by a ``DataLoader`` with ``num_workers`` worker processes (one
    histogram per image), so a large data set is counted in parallel: reading the PNGs is the cost.

    Raises:
        DataFormatError: a mask holds a value from ``num_classes`` to 254.
    """
    check_positive_int("num_classes", num_classes, "count_class_pixels")
    check_non_negative_int("num_workers", num_workers, "count_class_pixels")
    if num_classes >= IGNORE_INDEX:
        raise ValueError(f"count_class_pixels: num_classes must be below {IGNORE_INDEX}, got {num_classes}")
    workers = min(num_workers, len(dataset))
    if workers > 0:
        import cv2

        # OpenCV's thread pool does not survive fork (as in the data module's loaders): single-threaded
        cv2.setNumThreads(0)
    loader = DataLoader(
        _MaskHistograms(dataset), batch_size=None, num_workers=workers, collate_fn=_unchanged,
        worker_init_fn=worker_signals if workers > 0 else None,
    )  # fmt: skip
    pixels = np.zeros(num_classes, np.int64)
    image_pixels = np.zeros(num_classes, np.int64)
    images = np.zeros(num_classes, np.int64)
    ignored = total = unlabelled = 0
    for index, histogram in loader:
        if histogram is None:
            unlabelled += 1
            continue
        stray = np.flatnonzero(histogram[num_classes:IGNORE_INDEX]) + num_classes
        if len(stray):
            raise DataFormatError(
                f"mask {index} of {type(dataset).__name__} holds class id {int(stray[0])}, but num_classes is {num_classes} "
                f"(ids 0..{num_classes - 1}, {IGNORE_INDEX} = ignore)"
            )
        counts = histogram[:num_classes]
        present = counts > 0
        pixels += counts
        image_pixels[present] += counts.sum()
        images[present] += 1
        ignored += int(histogram[IGNORE_INDEX])
        total += int(histogram.sum())
    return ClassCounts(pixels, image_pixels, images, ignored, total, len(dataset), unlabelled)


def class_weights(counts: ClassCounts, method: ClassWeightMethod) -> np.ndarray:
    """Per-class loss weights from a data set's pixel counts, as float64 ``(C,)``.

    - ``enet``: ``1 / ln(c + p_class)``, ``c = 1.02``, ``p_class`` the class's share of the
      labelled pixels (ENet, Paszke et al. 2016, section 5.2).
    - ``median_frequency``: ``median_freq / freq(class)``, ``freq(class)`` = the class's pixels over
      the labelled pixels of the images it is present in, the median over the present classes
      (SegNet, Badrinarayanan et al. 2017, section 4.1, after Eigen and Fergus 2015).

    A class absent from the labels gets weight 0 under both methods, and no part in the median:
    cross-entropy weighs each pixel by its own class's weight, so on these labels an absent
    class's weight is never used, and 0 says that nothing was learnt about it (ENet's formula
    would give it the largest weight, 50.5; SegNet's is 0 / 0).

    Raises:
        DataFormatError: no pixel is labelled.
    """
    if method not in CLASS_WEIGHT_METHODS:
        raise ValueError(f"class weight method must be one of {CLASS_WEIGHT_METHODS}, got {method!r}")
    if counts.labelled == 0:
        raise DataFormatError(
            f"no labelled pixel to compute class weights from: the {counts.num_images} images are unlabelled "
            f"({counts.unlabelled_images}) or entirely ignored (255)"
        )
    present = counts.pixels > 0
    weights = np.zeros(counts.num_classes, np.float64)
    if method == "enet":
        weights[present] = 1.0 / np.log(ENET_C + counts.share[present])
    else:
        frequency = counts.pixels[present] / counts.image_pixels[present]
        weights[present] = np.median(frequency) / frequency
    return weights


def class_table(
    counts: ClassCounts, class_names: Sequence[str] | None = None, weights: Mapping[str, np.ndarray] | None = None
) -> str:
    """A Markdown table: per class its pixels, share of the labelled pixels, images, and each of ``weights``."""
    names = list(class_names) if class_names is not None else [str(index) for index in range(counts.num_classes)]
    weights = dict(weights or {})
    header = ["class", "pixels", "share (%)", "images"] + [f"weight ({name})" for name in weights]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    share = counts.share
    for index, name in enumerate(names):
        cells = [name, f"{int(counts.pixels[index]):,}", f"{100 * share[index]:.2f}", str(int(counts.images[index]))]
        cells += [f"{float(values[index]):.4f}" for values in weights.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
