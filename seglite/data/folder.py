"""Custom data sets as plain folders of images and class-id masks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from seglite.errors import DataFormatError, DatasetNotFoundError
from seglite.files import IMAGE_EXTENSIONS

from .io import IGNORE_INDEX, check_label_values, make_sample, pair_files, read_pair, require_dir

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
            _refuse_lossy_masks(images, masks, masks_dir)
            self.samples: list[tuple[Path, Path | None]] = list(pair_files(images, masks, images_dir, masks_dir))
        else:
            self.samples = [(images[stem], None) for stem in sorted(images)]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_path, mask_path = self.samples[index]
        image, mask = read_pair(image_path, mask_path)
        if mask_path is not None:
            if self.num_classes is None:
                mask = check_label_values(mask, mask_path, IGNORE_INDEX - 1, "class ids")
            else:
                reason = f" but num_classes is {self.num_classes}"
                mask = check_label_values(mask, mask_path, self.num_classes - 1, "class ids", reason=reason)
        return make_sample(image, mask, image_path, self.transform)


def _refuse_lossy_masks(images: Mapping[str, Path], masks: Mapping[str, Path], masks_dir: Path) -> None:
    """An image whose only mask is another image format (``a.jpg``) is told that masks must be PNG."""
    unmatched = {stem for stem in images if stem not in masks}
    if not unmatched:
        return
    for path in sorted(masks_dir.iterdir()):
        if path.stem in unmatched and path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            raise DataFormatError(
                f"mask {path} is a {path.suffix} file: masks must be PNG (lossless class ids; "
                f"JPEG and other lossy formats change them), e.g. {path.with_suffix('.png').name}"
            )


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
