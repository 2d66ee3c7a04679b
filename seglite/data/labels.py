"""Label files as data sets ship them, turned into the class ids training reads.

Masks come as single-channel PNGs of ids at any bit depth (1, 2, 4, 8, 16), as palette ("P")
PNGs whose pixels are palette indices (Pascal VOC, most labelling tools), or as colour-coded
RGB images. Their "not labelled" value differs between data sets (255 in Cityscapes train ids
and VOC, 11 in SegNet's CamVid, 0 in ADE20K), and some need values merged or dropped.

:class:`LabelEncoding` says how one data set stores its labels and maps every mask to class
ids ``0..num_classes-1`` with :data:`IGNORE_INDEX` (255) for pixels that are not scored: the one
ignore label that crop padding, the loss and the metrics share. A value or colour the encoding
does not account for is an error naming the file and the value, never a silent relabel.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from seglite.errors import DataFormatError, DataReadError

from .constants import IGNORE_INDEX

MaskFormat = Literal["ids", "rgb"]
MASK_FORMATS: tuple[str, ...] = ("ids", "rgb")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = {0: "greyscale", 2: "RGB", 3: "palette", 4: "greyscale + alpha", 6: "RGBA"}
_SHOWN_VALUES = 10


@dataclass(frozen=True)
class PngHeader:
    """The two fields of a PNG's IHDR chunk that decide how its pixels are read."""

    bit_depth: int
    colour_type: int

    @property
    def kind(self) -> str:
        return f"{self.bit_depth}-bit {_PNG_COLOUR_TYPES.get(self.colour_type, f'colour type {self.colour_type}')}"


def read_png_header(path: str | Path) -> PngHeader | None:
    """Bit depth and colour type of a PNG file; ``None`` when the file is not a PNG."""
    try:
        with open(path, "rb") as file:
            head = file.read(29)
    except OSError as error:
        raise DataReadError(f"cannot read label map {path}: {error.strerror or error}") from error
    # signature (8), IHDR length (4), b"IHDR" (4), width (4), height (4), bit depth (1), colour type (1)
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    bit_depth, colour_type = struct.unpack(">BB", head[24:26])
    return PngHeader(bit_depth, colour_type)


def _read_palette_indices(path: Path) -> np.ndarray:
    # OpenCV expands a palette PNG into colours; Pillow keeps the indices the file stores
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError) as error:
        raise DataReadError(f"cannot read label map {path}: {error}") from error


def read_id_mask(path: str | Path) -> np.ndarray:
    """The ``(H, W)`` integer ids a mask file stores (uint8 or uint16), whatever its PNG encoding.

    - Greyscale PNGs of 1, 2 or 4 bits: decoders scale them to 0..255 (a 1-bit mask reads as
      0/255); the stored ids are restored exactly (``value // (255 // (2**depth - 1))``).
    - Palette PNGs: the palette indices, never the colours they stand for.
    - 8- and 16-bit greyscale PNGs, and single-channel TIFF/BMP: as stored.
    Colour masks are an error pointing to ``mask_format: rgb``.
    """
    path = Path(path)
    header = read_png_header(path)
    if header is not None and header.colour_type == 3:
        return _read_palette_indices(path)
    if header is not None and header.colour_type in (2, 4, 6):
        hint = (
            "colour-coded masks are read with mask_format: rgb and the data set's palette"
            if header.colour_type != 4
            else "expected a single-channel PNG of class ids (save the grey channel without alpha)"
        )
        raise DataFormatError(f"label map {path} is a {header.kind} PNG, not a PNG of class ids; {hint}")
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise DataReadError(f"cannot read label map {path}: the file is missing, unreadable or not a valid image")
    if label.ndim != 2:
        raise DataFormatError(
            f"label map {path} has {label.shape[2]} channels; expected a single-channel image of class ids "
            "(colour-coded masks are read with mask_format: rgb and the data set's palette)"
        )
    if label.dtype not in (np.uint8, np.uint16):
        raise DataFormatError(f"label map {path} has pixel type {label.dtype}; expected 8- or 16-bit integers")
    if header is not None and header.bit_depth < 8:
        label = label // (255 // (2**header.bit_depth - 1))
    return label


def read_colour_mask(path: str | Path) -> np.ndarray:
    """The ``(H, W, 3)`` RGB colours of a colour-coded mask (RGB, opaque RGBA or palette PNG)."""
    path = Path(path)
    header = read_png_header(path)
    if header is not None and header.colour_type in (0, 4):
        raise DataFormatError(
            f"label map {path} is a {header.kind} PNG, but mask_format is rgb (colour-coded masks); "
            "a single-channel mask of class ids is read with mask_format: ids"
        )
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataReadError(f"cannot read label map {path}: the file is missing, unreadable or not a valid image")
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise DataFormatError(
            f"label map {path} has {1 if image.ndim == 2 else image.shape[2]} channel(s), but mask_format is rgb: "
            "expected a colour-coded RGB image (a mask of class ids is read with mask_format: ids)"
        )
    if image.dtype != np.uint8:
        raise DataFormatError(f"label map {path} has pixel type {image.dtype}; colour-coded masks must be 8-bit RGB")
    if image.shape[2] == 4:
        translucent = image[..., 3] != 255
        if translucent.any():
            raise DataFormatError(
                f"label map {path} has {int(translucent.sum())} transparent pixels; a colour-coded mask must be opaque "
                "(mark unlabelled pixels with a colour of ignore_colors instead)"
            )
        image = image[..., :3]
    return np.ascontiguousarray(image[..., ::-1])  # OpenCV's BGR to RGB


def _shown(values: Sequence[object]) -> str:
    return ", ".join(str(value) for value in values[:_SHOWN_VALUES]) + (", ..." if len(values) > _SHOWN_VALUES else "")


def _pack(colours: np.ndarray) -> np.ndarray:
    colours = colours.astype(np.uint32)
    return (colours[..., 0] << 16) | (colours[..., 1] << 8) | colours[..., 2]


@dataclass(frozen=True)
class LabelEncoding:
    """How a data set's mask files store class ids, and their mapping to training ids (255 = ignore).

    Args:
        num_classes: number of classes; training ids are ``0..num_classes-1``.
        mask_format: ``"ids"``: single-channel masks of integer ids (any PNG bit depth; palette
            PNGs give their indices); ``"rgb"``: colour-coded masks, class ``i`` drawn in
            ``palette[i]``.
        ignore_index: the value in the mask files that marks unlabelled pixels (``"ids"`` only):
            255 for most data sets, 11 for SegNet's CamVid. It becomes 255 on loading.
        label_map: file value -> class id or ``ignore_index``, to merge or drop values
            (``"ids"`` only); values it does not name keep their id.
        palette: the colour of each class (``"rgb"`` only).
        ignore_colors: colours of unlabelled pixels (``"rgb"`` only), e.g. ``[[0, 0, 0]]``.
    """

    num_classes: int
    mask_format: MaskFormat = "ids"
    ignore_index: int = IGNORE_INDEX
    label_map: Mapping[int, int] = field(default_factory=dict)
    palette: tuple[tuple[int, int, int], ...] = ()
    ignore_colors: tuple[tuple[int, int, int], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.num_classes, int) or not 1 <= self.num_classes <= IGNORE_INDEX:
            raise ValueError(f"num_classes must be an integer from 1 to {IGNORE_INDEX}, got {self.num_classes!r}")
        if self.mask_format not in MASK_FORMATS:
            raise ValueError(f"mask_format must be one of {MASK_FORMATS}, got {self.mask_format!r}")
        if not isinstance(self.ignore_index, int) or not 0 <= self.ignore_index <= 65535:
            raise ValueError(f"ignore_index must be an integer from 0 to 65535 (a mask value), got {self.ignore_index!r}")
        if self.mask_format == "ids":
            if self.ignore_index < self.num_classes:
                raise ValueError(
                    f"ignore_index {self.ignore_index} is a class id (num_classes is {self.num_classes}); the value of "
                    f"unlabelled pixels must lie outside 0..{self.num_classes - 1}. To ignore a value and shift the "
                    "others down (ADE20K's 0), keep ignore_index 255 and map them: label_map {0: 255, 1: 0, 2: 1, ...}"
                )
            for source, target in self.label_map.items():
                if not isinstance(source, int) or not 0 <= source <= 65535:
                    raise ValueError(f"label_map: key {source!r} is not a mask value (an integer from 0 to 65535)")
                if not isinstance(target, int) or not (0 <= target < self.num_classes or target == self.ignore_index):
                    raise ValueError(
                        f"label_map: {source} -> {target!r}; a value must map to a class id 0..{self.num_classes - 1} "
                        f"or to ignore_index ({self.ignore_index})"
                    )
        else:
            if self.label_map:
                raise ValueError("label_map applies to mask_format ids; colour-coded masks map through palette")
            if len(self.palette) != self.num_classes:
                raise ValueError(
                    f"mask_format rgb needs the palette of the masks, one colour per class: "
                    f"got {len(self.palette)} colours for {self.num_classes} classes"
                )
            colours = [tuple(int(value) for value in colour) for colour in (*self.palette, *self.ignore_colors)]
            for colour in colours:
                if len(colour) != 3 or not all(0 <= value <= 255 for value in colour):
                    raise ValueError(f"palette and ignore_colors hold RGB triples of 0..255, got {colour}")
            duplicates = sorted({colour for colour in colours if colours.count(colour) > 1})
            if duplicates:
                raise ValueError(
                    f"the colour(s) {_shown(duplicates)} appear more than once in palette and ignore_colors; "
                    "each colour must name one class (or ignore)"
                )

    # ------------------------------------------------------------------ ids
    def _lookup_table(self) -> np.ndarray:
        table = np.full(65536, -1, dtype=np.int16)  # -1: a value the encoding does not account for
        table[: self.num_classes] = np.arange(self.num_classes)
        table[self.ignore_index] = IGNORE_INDEX
        for source, target in self.label_map.items():
            table[source] = IGNORE_INDEX if target == self.ignore_index else target
        return table

    def _expected_ids(self) -> str:
        text = f"class ids 0..{self.num_classes - 1} or {self.ignore_index} (ignore)"
        if self.label_map:
            text += f" or a value of label_map ({_shown(sorted(self.label_map))})"
        return text

    def _ids_to_train_ids(self, label: np.ndarray, path: Path) -> np.ndarray:
        table = self.__dict__.get("_table")
        if table is None:
            table = self._lookup_table()
            object.__setattr__(self, "_table", table)  # built once per encoding (and per loader worker)
        mapped = table[: 256 if label.dtype == np.uint8 else 65536][label]
        invalid = mapped < 0
        if invalid.any():
            values = np.unique(label[invalid]).tolist()
            raise DataFormatError(
                f"label map {path} holds the value(s) {_shown(values)} ({int(invalid.sum())} pixels) but num_classes is "
                f"{self.num_classes}; expected {self._expected_ids()}"
            )
        return mapped.astype(np.uint8)

    # ------------------------------------------------------------------ colours
    def _colours_to_train_ids(self, colours: np.ndarray, path: Path) -> np.ndarray:
        keys = np.array([_pack(np.array(colour)) for colour in (*self.palette, *self.ignore_colors)], dtype=np.uint32)
        ids = np.array([*range(self.num_classes), *[IGNORE_INDEX] * len(self.ignore_colors)], dtype=np.uint8)
        order = np.argsort(keys)
        keys, ids = keys[order], ids[order]
        packed = _pack(colours)
        position = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
        unknown = keys[position] != packed
        if unknown.any():
            found = np.unique(packed[unknown])
            shown = [f"({value >> 16}, {(value >> 8) & 255}, {value & 255})" for value in found.tolist()]
            raise DataFormatError(
                f"label map {path} holds the colour(s) {_shown(shown)} ({int(unknown.sum())} pixels) that are not in "
                f"the palette ({self.num_classes} class colours) or ignore_colors; every colour of a colour-coded mask "
                "must name a class or be ignored"
            )
        return ids[position]

    def read(self, path: str | Path) -> np.ndarray:
        """The ``(H, W)`` uint8 training ids of one mask file (255 = ignore)."""
        path = Path(path)
        if self.mask_format == "rgb":
            return self._colours_to_train_ids(read_colour_mask(path), path)
        return self._ids_to_train_ids(read_id_mask(path), path)
