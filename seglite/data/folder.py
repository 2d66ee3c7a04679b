"""Custom data sets as folders of images and masks, in the layouts data sets are shared in."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from seglite.errors import DataFormatError, DatasetNotFoundError
from seglite.files import IMAGE_EXTENSIONS

from .io import IGNORE_INDEX, make_sample, pair_files, read_pair, require_dir, warn_exif_rotated
from .labels import LabelEncoding

FOLDER_LAYOUT = """\
  <root>/<split>/images/<name>.<png|jpg|...>
  <root>/<split>/masks/<name>.png    (class ids 0..num_classes-1; 255, or ignore_index, = not labelled)
  images and masks are matched by file stem; a split without masks/ (e.g. test) serves prediction only.
  Other layouts: image_dir / mask_dir name the folders ({split} stands for the split's name, e.g. SegNet's
  CamVid: image_dir "{split}", mask_dir "{split}annot"), and split_list a text file naming each split's images."""


def check_layout(image_dir: str, mask_dir: str, split_list: str | None) -> None:
    """``ValueError`` naming the argument for a folder template other than ``{split}``, or one folder for both."""
    for name, template in (("image_dir", image_dir), ("mask_dir", mask_dir), ("split_list", split_list)):
        if template is None:
            continue
        try:
            template.format(split="train")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"{name} {template!r} is not a folder template: the only placeholder is {{split}} ({error})"
            ) from None
    if image_dir == mask_dir:
        raise ValueError(f"image_dir and mask_dir are both {image_dir!r}; images and masks need folders of their own")


def _split_path(root: Path, template: str, split: str) -> Path:
    return root / template.format(split=split)


class FolderDataset(Dataset):
    """Images and masks matched by file stem, the masks decoded by a :class:`LabelEncoding`.

    The default layout is ``root/<split>/images/`` and ``root/<split>/masks/``. A split whose
    masks folder does not exist serves prediction only (its masks are all 255), unless
    ``require_masks`` is set: training and evaluation splits must be labelled. Images are read
    as stored, ignoring an EXIF orientation (masks are drawn over the stored pixels); a labelled
    split with such images gets one warning naming them.

    Args:
        root: the data set's folder.
        split: the split's name, e.g. ``"train"``, ``"val"``, ``"test"``.
        num_classes: number of classes; a mask value the encoding does not account for is an
            error naming the file. ``None``: ids 0..254, 255 ignored. Ignored when ``encoding`` is given.
        transform: albumentations-style callable ``transform(image=, mask=) -> dict``.
        encoding: how the masks store class ids (format, ignore value, value mapping, palette).
        image_dir: the images' folder below ``root``; ``{split}`` is replaced by the split.
        mask_dir: the masks' folder below ``root``, likewise.
        split_list: a text file below ``root`` naming the split's images, one per line (a stem,
            a file name or a path; further fields on a line, such as SegNet's mask paths, are
            ignored; ``#`` starts a comment). ``None``: every image of ``image_dir``.
        require_masks: refuse a split without a masks folder, naming the folders there are.
    """

    def __init__(
        self,
        root: str,
        split: str = "train",
        num_classes: int | None = None,
        transform: Callable[..., Mapping[str, Any]] | None = None,
        encoding: LabelEncoding | None = None,
        image_dir: str = "{split}/images",
        mask_dir: str = "{split}/masks",
        split_list: str | None = None,
        require_masks: bool = False,
    ) -> None:
        if encoding is None:
            encoding = LabelEncoding(IGNORE_INDEX if num_classes is None else num_classes)
        check_layout(image_dir, mask_dir, split_list)
        self.root = Path(root)
        self.split = split
        self.encoding = encoding
        self.num_classes = encoding.num_classes
        self.transform = transform
        require_dir(self.root, "folder data set root", FOLDER_LAYOUT)
        images_dir = _split_path(self.root, image_dir, split)
        require_dir(images_dir, f"{split!r} images", FOLDER_LAYOUT)
        images = _index(images_dir, IMAGE_EXTENSIONS)
        if split_list is not None:
            images = _select(images, _split_path(self.root, split_list, split), images_dir)
        if not images:
            raise DatasetNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {images_dir}")
        masks_dir = _split_path(self.root, mask_dir, split)
        if masks_dir.is_dir():
            masks = _index(masks_dir, (".png",))
            _refuse_lossy_masks(images, masks, masks_dir)
            if split_list is not None:
                masks = {stem: path for stem, path in masks.items() if stem in images}
            self.samples: list[tuple[Path, Path | None]] = list(pair_files(images, masks, images_dir, masks_dir))
            warn_exif_rotated([image for image, _ in self.samples], split)
        elif require_masks:
            found = sorted(path.name for path in masks_dir.parent.iterdir() if path.is_dir()) if masks_dir.parent.is_dir() else []
            raise DatasetNotFoundError(
                f"the {split!r} split has no masks: {masks_dir} is not a folder (folders in {masks_dir.parent}: "
                f"{', '.join(found) or 'none'}); training and evaluation need labelled images. Name the masks' "
                "folder with mask_dir (e.g. mask_dir: \"{split}/labels\")"
            )
        else:
            self.samples = [(images[stem], None) for stem in sorted(images)]

    def __len__(self) -> int:
        return len(self.samples)

    def read_mask(self, index: int) -> np.ndarray | None:
        """The ``(H, W)`` uint8 class ids of sample ``index`` (255 = ignore), ``None`` when it has no mask."""
        mask_path = self.samples[index][1]
        return None if mask_path is None else self.encoding.read(mask_path)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_path, mask_path = self.samples[index]
        image, mask = read_pair(image_path, mask_path, self.encoding.read)
        return make_sample(image, mask, image_path, self.transform)


def _select(images: Mapping[str, Path], list_file: Path, images_dir: Path) -> dict[str, Path]:
    """The images a split list names (a name with no image, or named twice, is an error)."""
    if not list_file.is_file():
        raise DatasetNotFoundError(f"split list {list_file} not found (split_list names a text file below root)")
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataFormatError(f"cannot read split list {list_file}: {error}") from error
    selected: dict[str, Path] = {}
    for number, line in enumerate(lines, start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        name = fields[0].replace("\\", "/").rsplit("/", 1)[-1]
        stem = name.rsplit(".", 1)[0] if Path(name).suffix.lower() in IMAGE_EXTENSIONS else name
        if stem not in images:
            raise DatasetNotFoundError(f"{list_file}, line {number}: {fields[0]!r} names no image in {images_dir}")
        if stem in selected:
            raise DataFormatError(f"{list_file}, line {number}: {fields[0]!r} is listed twice")
        selected[stem] = images[stem]
    if not selected:
        raise DataFormatError(f"split list {list_file} names no image")
    return selected


def _refuse_lossy_masks(images: Mapping[str, Path], masks: Mapping[str, Path], masks_dir: Path) -> None:
    """An image whose only mask is a lossy image format (``a.jpg``) is told that masks must be lossless."""
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
