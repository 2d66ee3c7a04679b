"""Custom data sets as plain folders of images and class-id masks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from torch.utils.data import Dataset

from seglite.errors import DataFormatError, DatasetNotFoundError

from .io import IGNORE_INDEX, make_sample, pair_files, read_pair, require_dir

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

FOLDER_LAYOUT = """\
  <root>/<split>/images/<name>.<png|jpg|...>
  <root>/<split>/masks/<name>.png    (single-channel class ids 0..num_classes-1, 255 = ignore)
  images and masks are matched by file stem; a split without masks/ (e.g. test) serves prediction only"""


class FolderDataset(Dataset):
    """Images and masks matched by file stem, masks holding class ids with 255 as ignore.

    Layout: ``root/<split>/images/`` and ``root/<split>/masks/``. A split with no ``masks/``
    folder is for prediction: its masks are all 255.

    Args:
        root: folder holding one sub-folder per split.
        split: the split's folder name, e.g. ``"train"``, ``"val"``, ``"test"``.
        num_classes: number of classes; a mask value ``>= num_classes`` other than 255 is an
            error naming the file. ``None`` skips that check.
        transform: albumentations-style callable ``transform(image=, mask=) -> dict``.
    """

    def __init__(
        self,
        root: str,
        split: str = "train",
        num_classes: int | None = None,
        transform: Callable[..., Mapping[str, Any]] | None = None,
    ) -> None:
        if num_classes is not None and not 1 <= num_classes <= IGNORE_INDEX:
            raise ValueError(f"num_classes must be between 1 and {IGNORE_INDEX}, got {num_classes!r}")
        self.root = Path(root)
        self.split = split
        self.num_classes = num_classes
        self.transform = transform
        require_dir(self.root, "folder data set root", FOLDER_LAYOUT)
        images_dir = self.root / split / "images"
        require_dir(images_dir, f"{split!r} images", FOLDER_LAYOUT)
        images = _index(images_dir, IMAGE_EXTENSIONS)
        if not images:
            raise DatasetNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {images_dir}")
        masks_dir = self.root / split / "masks"
        if masks_dir.is_dir():
            masks = _index(masks_dir, (".png",))
            self.samples: list[tuple[Path, Path | None]] = list(pair_files(images, masks, images_dir, masks_dir))
        else:
            self.samples = [(images[stem], None) for stem in sorted(images)]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_path, mask_path = self.samples[index]
        image, mask = read_pair(image_path, mask_path)
        if mask.dtype != np.uint8 and mask.max() > IGNORE_INDEX:
            raise DataFormatError(f"mask {mask_path} has class value {int(mask.max())}; class ids must fit in 0..255")
        if self.num_classes is not None:
            bad = (mask >= self.num_classes) & (mask != IGNORE_INDEX)
            if bad.any():
                values = np.unique(mask[bad])
                raise DataFormatError(
                    f"mask {mask_path} has class value {int(values[0])} (all bad values: {values.tolist()[:10]}) "
                    f"but num_classes is {self.num_classes}; values must be 0..{self.num_classes - 1} or "
                    f"{IGNORE_INDEX} (ignore)"
                )
        return make_sample(image, mask.astype(np.uint8, copy=False), image_path, self.transform)


def _index(folder: Path, extensions: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in extensions:
            if path.stem in found:
                raise DataFormatError(
                    f"two files in {folder} share the stem {path.stem!r}: {found[path.stem].name}, {path.name}"
                )
            found[path.stem] = path
    return found
