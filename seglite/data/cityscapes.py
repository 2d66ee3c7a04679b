"""The Cityscapes data set (Cordts et al., CVPR 2016): label mapping, class table and reader.

The 19 evaluation classes, their label ids and colours follow the official table,
``cityscapesscripts/helpers/labels.py``; every other label id is ignored (255) in training.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch.utils.data import Dataset

from seglite.errors import DataFormatError, DatasetNotFoundError

from .io import (
    IGNORE_INDEX,
    check_label_values,
    make_sample,
    pair_files,
    read_label,
    read_pair,
    require_dir,
    warn_exif_rotated,
)

CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip
"""The 19 classes, indexed by train id."""

CITYSCAPES_LABEL_IDS: tuple[int, ...] = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
"""The label id of each train id (the ids of the ground-truth PNGs and of benchmark submissions)."""

MAX_LABEL_ID = 33
"""The largest id of the official table (``bicycle``); ``*_labelIds.png`` hold 0..33 (the -1 of
the licence plate is not stored in PNGs)."""

CITYSCAPES_PALETTE = np.array(
    [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
        (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ],
    dtype=np.uint8,
)  # fmt: skip
"""Official RGB colour of each train id, shape ``(19, 3)``."""
CITYSCAPES_PALETTE.flags.writeable = False

_LABEL_TO_TRAIN = np.full(256, IGNORE_INDEX, dtype=np.uint8)
_LABEL_TO_TRAIN[list(CITYSCAPES_LABEL_IDS)] = np.arange(len(CITYSCAPES_LABEL_IDS))
_TRAIN_TO_LABEL = np.zeros(256, dtype=np.uint8)  # anything that is not a class becomes 0, "unlabeled"
_TRAIN_TO_LABEL[: len(CITYSCAPES_LABEL_IDS)] = CITYSCAPES_LABEL_IDS


def _lookup(table: np.ndarray, array: Any, outside: int) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return table[array]
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"expected an integer array of ids, got dtype {array.dtype}")
    inside = (array >= 0) & (array < 256)
    out = np.full(array.shape, outside, dtype=np.uint8)
    out[inside] = table[array[inside]]
    return out


def labelids_to_trainids(array: Any) -> np.ndarray:
    """Map Cityscapes label ids to train ids 0-18; every other id (and -1) becomes 255. Returns uint8."""
    return _lookup(_LABEL_TO_TRAIN, array, IGNORE_INDEX)


def trainids_to_labelids(array: Any) -> np.ndarray:
    """Map train ids 0-18 back to label ids for benchmark submissions; anything else becomes 0 (unlabeled)."""
    return _lookup(_TRAIN_TO_LABEL, array, 0)


CITYSCAPES_LAYOUT = """\
  <root>/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png
  <root>/gtFine/<split>/<city>/<name>_gtFine_labelIds.png   (or _gtFine_labelTrainIds.png)
  with <split> one of train, val, test (the test split needs no labels)"""

_IMAGE_SUFFIX = "_leftImg8bit.png"
_LABEL_SUFFIXES = ("_gtFine_labelTrainIds.png", "_gtFine_labelIds.png")  # train ids win when both exist


class CityscapesDataset(Dataset):
    """Cityscapes fine annotations, one sample per ``leftImg8bit`` image.

    Label ids are mapped to the 19 train ids on reading (``_gtFine_labelTrainIds.png`` is read
    as is when present). The test split has no usable labels: its masks are all 255 (ignore)
    and it serves prediction only.

    Args:
        root: folder holding ``leftImg8bit/`` and ``gtFine/``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        transform: albumentations-style callable ``transform(image=, mask=) -> dict``. Without
            one, a sample holds the RGB uint8 image and the uint8 train-id mask at full resolution.

    A sample is ``{"image", "mask", "path"}``, ``path`` being the image file.
    """

    classes = CITYSCAPES_CLASSES
    palette = CITYSCAPES_PALETTE

    def __init__(
        self,
        root: str,
        split: Literal["train", "val", "test"] = "train",
        transform: Callable[..., Mapping[str, Any]] | None = None,
    ) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        self.root = Path(root)
        self.split = split
        self.transform = transform
        require_dir(self.root, "Cityscapes root", CITYSCAPES_LAYOUT)
        images_dir = self.root / "leftImg8bit" / split
        require_dir(images_dir, f"Cityscapes {split} images", CITYSCAPES_LAYOUT)
        images = _index(images_dir, (_IMAGE_SUFFIX,))
        if not images:
            raise DatasetNotFoundError(
                f"no *{_IMAGE_SUFFIX} files in {images_dir}.\nExpected layout:\n{CITYSCAPES_LAYOUT}"
            )
        labels_dir = self.root / "gtFine" / split
        if split == "test":
            self.samples: list[tuple[Path, Path | None]] = [(images[key], None) for key in sorted(images)]
        else:
            require_dir(labels_dir, f"Cityscapes {split} labels", CITYSCAPES_LAYOUT)
            labels = _index(labels_dir, _LABEL_SUFFIXES)
            _check_image_extensions(images_dir, images, labels)
            self.samples = list(pair_files(images, labels, images_dir, labels_dir))
            warn_exif_rotated([image for image, _ in self.samples], split)

    def __len__(self) -> int:
        return len(self.samples)

    @staticmethod
    def _train_ids(mask: np.ndarray, label_path: Path) -> np.ndarray:
        if label_path.name.endswith("_gtFine_labelTrainIds.png"):
            return check_label_values(mask, label_path, len(CITYSCAPES_CLASSES) - 1, "train ids")
        return labelids_to_trainids(check_label_values(mask, label_path, MAX_LABEL_ID, "label ids", ignore=None))

    def read_mask(self, index: int) -> np.ndarray | None:
        """The ``(H, W)`` uint8 train ids of sample ``index`` (255 = ignore), ``None`` for the unlabelled test split."""
        label_path = self.samples[index][1]
        return None if label_path is None else self._train_ids(read_label(label_path), label_path)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_path, label_path = self.samples[index]
        image, mask = read_pair(image_path, label_path)
        if label_path is not None:
            mask = self._train_ids(mask, label_path)
        return make_sample(image, mask, image_path, self.transform)


def _check_image_extensions(images_dir: Path, images: dict[str, Path], labels: dict[str, Path]) -> None:
    """Name the images that exist under another extension than ``.png``, rather than call their labels orphans."""
    stem = _IMAGE_SUFFIX[: -len(".png")]
    misnamed = sorted(
        path
        for path in images_dir.glob(f"*/*{stem}.*")
        if path.suffix != ".png" and f"{path.parent.name}/{path.name[: -len(stem + path.suffix)]}" in labels
        and f"{path.parent.name}/{path.name[: -len(stem + path.suffix)]}" not in images
    )
    if misnamed:
        shown = ", ".join(str(path) for path in misnamed[:5])
        raise DataFormatError(
            f"{len(misnamed)} Cityscapes image(s) have the extension {misnamed[0].suffix!r} instead of '.png': {shown}; "
            f"Cityscapes images must be PNG files named <name>{_IMAGE_SUFFIX} (convert them, or use a folder "
            "data set, which reads any image format)"
        )


def _index(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Files ``<city>/<name><suffix>`` below ``folder``, keyed by ``<city>/<name>``; earlier suffixes win."""
    found: dict[str, Path] = {}
    for suffix in reversed(suffixes):
        for path in folder.glob(f"*/*{suffix}"):
            found[f"{path.parent.name}/{path.name[: -len(suffix)]}"] = path
    return found
