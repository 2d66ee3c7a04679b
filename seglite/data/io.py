"""Reading images and label maps, and the checks every data set shares.

OpenCV answers an unreadable file with ``None``; these helpers turn that into an error that
names the file, and pair image and label files so that a missing partner is reported up front.

Orientation: an image and its mask are read in the order their pixels are stored, ignoring an
EXIF orientation tag (phones write 6 or 8 rather than turning the pixels), because labelling
tools draw masks over the stored pixels and mask PNGs are never turned. Photos given to
prediction are turned as the tag says, as viewers show them (``read_rgb``'s ``orientation``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch

from seglite.errors import DataFormatError, DataReadError, DatasetNotFoundError

from .constants import IGNORE_INDEX
from .labels import read_id_mask

DATA_README = "data/README.md"
DEMO_HINT = (
    f"See the data section of the README ({DATA_README}) for where to put the data, "
    "or write the synthetic demo set with `python tools/make_demo_data.py data/demo` "
    "and train on it with `python tools/train.py configs/lraspp_mnv3.yaml configs/demo.yaml`."
)

_SHOWN_UNMATCHED = 5
_SHOWN_ROTATED = 10

ImageOrientation = Literal["stored", "exif"]
_READ_FLAGS = {"exif": cv2.IMREAD_COLOR_RGB, "stored": cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION}
_EXIF_ORIENTATION = 0x0112  # TIFF/EXIF tag 274; 1 = upright, 2..8 = mirrored and/or turned


def read_rgb(path: str | Path, orientation: ImageOrientation = "exif") -> np.ndarray:
    """Read an 8-bit colour image as an ``(H, W, 3)`` RGB uint8 array.

    Args:
        orientation: ``"exif"``: turned as the file's EXIF orientation tag says, as viewers show
            it (prediction on photos); ``"stored"``: the pixels as the file stores them, the order
            masks are drawn in (training and evaluation pairs, :func:`read_pair`).
    """
    image = cv2.imread(str(path), _READ_FLAGS[orientation])
    if image is None:
        raise DataReadError(f"cannot read image {path}: the file is missing, unreadable or not a valid image")
    return image


def read_label(path: str | Path) -> np.ndarray:
    """Read a single-channel label map (class or label ids) as an ``(H, W)`` integer array.

    Any PNG bit depth, and palette PNGs as their indices (:func:`seglite.data.labels.read_id_mask`).
    """
    return read_id_mask(path)


def check_label_values(
    label: np.ndarray, path: str | Path, largest: int, what: str, ignore: int | None = IGNORE_INDEX, reason: str = ""
) -> np.ndarray:
    """``label`` as uint8 if every value is ``0..largest`` (or ``ignore``); ``DataFormatError`` naming the file otherwise.

    The narrowing of Cityscapes' label maps to 8 bits (folder data sets narrow through their
    ``LabelEncoding``, checked the same way): a 16-bit value such as 269 would otherwise
    wrap onto a class (269 -> 13, car).
    """
    if int(label.max(initial=0)) > largest:
        bad = label > largest
        if ignore is not None:
            bad &= label != ignore
        if bad.any():
            values = np.unique(label[bad])
            allowed = f"0..{largest}" + (f" or {ignore} (ignore)" if ignore is not None else "")
            shown = ", ".join(str(int(value)) for value in values[:10]) + (", ..." if len(values) > 10 else "")
            raise DataFormatError(
                f"label map {path} holds {what} {shown} ({int(bad.sum())} pixels){reason}; {what} must be {allowed}"
            )
    return label.astype(np.uint8, copy=False)


def read_pair(
    image_path: Path, label_path: Path | None, read: Callable[[Path], np.ndarray] = read_label
) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image and its label map as ``read`` decodes it (all ``IGNORE_INDEX`` when there is no label file).

    Both as stored: an image's EXIF orientation is ignored, as it is for its mask (see the module's docstring).
    """
    image = read_rgb(image_path, orientation="stored")
    if label_path is None:
        return image, np.full(image.shape[:2], IGNORE_INDEX, dtype=np.uint8)
    label = read(label_path)
    if image.shape[:2] != label.shape[:2]:
        raise DataFormatError(
            f"image {image_path} is {image.shape[1]}x{image.shape[0]} but its label map {label_path} "
            f"is {label.shape[1]}x{label.shape[0]}; they must have the same size"
        )
    return image, label


def exif_orientation(path: str | Path) -> int:
    """The EXIF orientation tag of an image file, 1 (upright) when it has none or cannot be read.

    Reads the file's header only. A file that cannot be read is named by the image reader later.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            # a PNG whose eXIf chunk Pillow has not met yet would be decoded by getexif() to look for it
            if "exif" not in image.info and image.format != "TIFF":
                return 1
            return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except (OSError, ValueError, SyntaxError):  # Pillow's errors for files it cannot parse
        return 1


def turned_as_tagged(image: np.ndarray, orientation: int) -> np.ndarray:
    """``image`` (as stored) turned and mirrored as the EXIF ``orientation`` tag (1-8) says, as OpenCV's
    own reader does without ``IMREAD_IGNORE_ORIENTATION``."""
    turns = {
        2: lambda a: cv2.flip(a, 1),
        3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
        4: lambda a: cv2.flip(a, 0),
        5: lambda a: cv2.transpose(a),
        6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
        7: lambda a: cv2.rotate(cv2.transpose(a), cv2.ROTATE_180),
        8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
    }
    return turns[orientation](image) if orientation in turns else image


def warn_exif_rotated(image_paths: Sequence[Path], split: str) -> None:
    """One warning naming the images of a labelled split whose EXIF orientation is not 1, and their count.

    They are read as stored, aligned with masks drawn over the stored pixels; a mask drawn over
    the turned view would not be, and only the user can tell which was done.
    """
    rotated = [(path, orientation) for path in image_paths if (orientation := exif_orientation(path)) != 1]
    if not rotated:
        return
    shown = ", ".join(f"{path} ({orientation})" for path, orientation in rotated[:_SHOWN_ROTATED])
    more = f" and {len(rotated) - _SHOWN_ROTATED} more" if len(rotated) > _SHOWN_ROTATED else ""
    warnings.warn(
        f"{len(rotated)} of the {len(image_paths)} images of split {split!r} carry an EXIF orientation other than 1 "
        f"(turned or mirrored by the camera): {shown}{more}. Training and evaluation read images as stored, ignoring "
        "the tag, as labelling tools draw masks over the stored pixels; if these masks were drawn over the turned "
        "view, turn the images' pixels and clear the tag (e.g. `exiftran -ai FILES`)",
        UserWarning,
        stacklevel=3,
    )


def require_dir(path: Path, what: str, layout: str) -> None:
    """Raise ``FileNotFoundError`` naming ``path`` and the expected layout when it is not a folder."""
    if not path.is_dir():
        raise DatasetNotFoundError(f"{what} not found: {path} is not a folder.\nExpected layout:\n{layout}\n{DEMO_HINT}")


def pair_files(
    images: Mapping[str, Path], labels: Mapping[str, Path], images_dir: Path, labels_dir: Path
) -> list[tuple[Path, Path]]:
    """Match image and label files by key; any file without its partner is an error naming the first few."""
    for have, lack, have_dir, lack_dir, kind in (
        (images, labels, images_dir, labels_dir, "label"),
        (labels, images, labels_dir, images_dir, "image"),
    ):
        unmatched = sorted(key for key in have if key not in lack)
        if unmatched:
            shown = ", ".join(str(have[key]) for key in unmatched[:_SHOWN_UNMATCHED])
            raise DatasetNotFoundError(
                f"{len(unmatched)} file(s) in {have_dir} have no matching {kind} file in {lack_dir}; "
                f"first: {shown}"
            )
    return [(images[key], labels[key]) for key in sorted(images)]


def make_sample(
    image: np.ndarray,
    mask: np.ndarray,
    path: Path,
    transform: Callable[..., Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """Apply an albumentations-style ``transform(image=, mask=)`` and build the sample dict.

    A tensor mask comes back as int64, whatever the transform produced, so losses can use it as is.
    """
    if transform is not None:
        out = transform(image=image, mask=mask)
        image, mask = out["image"], out["mask"]
        if isinstance(mask, torch.Tensor):
            mask = mask.long()
    return {"image": image, "mask": mask, "path": str(path)}
