"""Large images in overlapping tiles, so that prediction memory stays bounded whatever the image size.

A whole 8000x6000 photo through the predictor's graph peaked at 6.9 GB of memory (the network's
activations grow with the pixels). Above :data:`MAX_PIXELS` the predictor runs the image in
tiles of :data:`TILE` pixels a side that overlap by :data:`OVERLAP` (sliding windows, as
mmsegmentation's ``mode="slide"`` does), averages the head's coarse logits where tiles overlap,
and takes the exact upsampled argmax of the averaged logits once for the whole image
(``seglite.inference.postprocess``). Every tile has the same shape (the last row and column of
tiles are moved inward), so a runtime that compiles per shape compiles once.

The masks are those of sliding-window inference, not of one pass over the whole image: each pixel
sees the context of its tiles (2048 pixels, four times a Cityscapes crop's side), and the
LR-ASPP gate pools within a tile.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from seglite.data.constants import IMAGENET_MEAN
from seglite.inference.postprocess import upsampled_argmax
from seglite.models.segmentor import padded_size

MAX_PIXELS = 2048 * 4096
"""Images with more pixels than this (8.4 MP) are predicted in tiles."""
TILE = 2048
"""Side of a tile, in pixels (a multiple of every backbone's output stride)."""
OVERLAP = 256
"""Pixels two neighbouring tiles share."""
MEAN_COLOUR = tuple(round(255 * value) for value in IMAGENET_MEAN)
"""Padding colour: zero after normalisation, as a model's own padding of its normalised input."""


def tile_origins(length: int, tile: int, step: int) -> list[int]:
    """Starts of tiles of ``tile`` pixels every ``step`` along ``length``, the last one ending at ``length``."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


def tiled_masks(
    image: np.ndarray,
    coarse_logits: Callable[[np.ndarray], np.ndarray],
    stride: int,
    tile: int = TILE,
    overlap: int = OVERLAP,
) -> np.ndarray:
    """The ``(H, W)`` uint8 mask of ``image`` predicted in overlapping tiles.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        coarse_logits: ``(1, t, t, 3)`` uint8 tile -> ``(1, C, t / r, t / r)`` float logits of the
            predictor's coarse graph (its input padded to ``stride``; here tiles are multiples of it).
        stride: the backbone's output stride; the image is padded to a multiple of it.
        tile, overlap: tile side and overlap in pixels (multiples of ``stride``).
    """
    if tile % stride or overlap % stride or overlap >= tile:
        raise ValueError(f"tile {tile} and overlap {overlap} must be multiples of the stride {stride}, overlap < tile")
    height, width = image.shape[:2]
    padded = _padded(image, stride)
    tile_height, tile_width = min(tile, padded.shape[0]), min(tile, padded.shape[1])
    summed: np.ndarray | None = None
    counts: np.ndarray | None = None
    ratio = 1
    for top in tile_origins(padded.shape[0], tile_height, tile - overlap):
        for left in tile_origins(padded.shape[1], tile_width, tile - overlap):
            window = np.ascontiguousarray(padded[top : top + tile_height, left : left + tile_width])[None]
            logits = np.asarray(coarse_logits(window), dtype=np.float32)[0]
            if summed is None:
                ratio = tile_height // logits.shape[1]
                shape = (padded.shape[0] // ratio, padded.shape[1] // ratio)
                summed = np.zeros((logits.shape[0], *shape), dtype=np.float32)
                counts = np.zeros(shape, dtype=np.float32)
            rows = slice(top // ratio, top // ratio + logits.shape[1])
            columns = slice(left // ratio, left // ratio + logits.shape[2])
            summed[:, rows, columns] += logits
            counts[rows, columns] += 1
    summed /= counts
    return upsampled_argmax(summed[None], padded.shape[:2], (height, width))[0]


def _padded(image: np.ndarray, stride: int) -> np.ndarray:
    """``image`` padded at the bottom and right to multiples of ``stride`` with :data:`MEAN_COLOUR`."""
    height, width = image.shape[:2]
    size = padded_size(height, width, stride)
    if size == (height, width):
        return image
    padded = np.empty((*size, 3), dtype=np.uint8)
    padded[...] = MEAN_COLOUR
    padded[:height, :width] = image
    return padded
