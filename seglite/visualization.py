"""Colour masks and overlays shared by training logs, evaluation and inference tools."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np

IGNORE_COLOR = (0, 0, 0)


def palette_array(palette: Sequence[Sequence[int]], ignore_index: int = 255) -> np.ndarray:
    """A 256x3 uint8 lookup table: class colours, then black for every other value (ignore)."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    colors = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    if len(colors) > 255:
        raise ValueError(f"palette: at most 255 classes can be coloured, got {len(colors)}")
    lut[: len(colors)] = colors
    lut[ignore_index] = IGNORE_COLOR
    return lut


def colorize(mask: np.ndarray, palette: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """HxW class-id mask -> HxWx3 uint8 RGB image in the palette's colours; ids outside 0..255 are black."""
    lut = palette if isinstance(palette, np.ndarray) and palette.shape == (256, 3) else palette_array(palette)
    mask = np.asarray(mask)
    if mask.dtype != np.uint8:  # a cast alone would wrap ids such as 256 or -1 onto class colours
        mask = np.where((mask >= 0) & (mask < 256), mask, 255).astype(np.uint8)
    return lut[mask]


def overlay(image: np.ndarray, mask: np.ndarray, palette, alpha: float = 0.5) -> np.ndarray:
    """Blend the colourised mask over an RGB uint8 image with opacity ``alpha`` (0: image only)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(f"overlay: image {image.shape[:2]} and mask {mask.shape[:2]} differ in size")
    colors = colorize(mask, palette).astype(np.float32)
    blended = image.astype(np.float32) * (1.0 - alpha) + colors * alpha
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def default_palette(num_classes: int) -> np.ndarray:
    """Distinct colours for ``num_classes`` classes (hues spread by the golden ratio)."""
    colours = [
        colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65 + 0.35 * (i % 2), 0.95 - 0.3 * ((i // 2) % 2))
        for i in range(num_classes)
    ]
    return np.array(np.round(np.array(colours) * 255), dtype=np.uint8).reshape(num_classes, 3)
