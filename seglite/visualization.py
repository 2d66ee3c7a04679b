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


def error_map(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """Where a prediction is wrong: red over a darkened image; right pixels show the darkened image, unlabelled ones black."""
    if not image.shape[:2] == truth.shape == prediction.shape:
        raise ValueError(f"error_map: image {image.shape[:2]}, truth {truth.shape} and prediction {prediction.shape} differ")
    out = (image.astype(np.uint16) * 2 // 5).astype(np.uint8)
    out[(truth != prediction) & (truth != ignore_index)] = (255, 32, 32)
    out[truth == ignore_index] = IGNORE_COLOR
    return out


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.5, color=(255, 255, 255)) -> None:
    import cv2

    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def comparison_figure(
    rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    palette: Sequence[Sequence[int]] | np.ndarray,
    class_names: Sequence[str],
    ignore_index: int = 255,
) -> np.ndarray:
    """An RGB figure with a row per image: image | ground truth | prediction | errors, and a class legend.

    Args:
        rows: ``(caption, image, truth, prediction)`` per row: an RGB uint8 image and two ``(H, W)``
            id masks of its size (the truth with ``ignore_index`` for unlabelled pixels).
        palette: a colour per class; class_names: a name per class, for the legend.
    """
    if not rows:
        raise ValueError("comparison_figure: no rows")
    lut = palette_array(palette, ignore_index)
    titles = ("image", "ground truth", "prediction", "errors (red; black: unlabelled)")
    gap, header, caption = 6, 26, 22
    height, width = rows[0][1].shape[:2]
    panels = []
    for name, image, truth, prediction in rows:
        if image.shape[:2] != (height, width):
            image, truth, prediction = resize_panels(image, truth, prediction, (height, width))
        tiles = [image, lut[truth], lut[prediction], error_map(image, truth, prediction, ignore_index)]
        row = np.full((caption + height, 4 * width + 3 * gap, 3), 255, np.uint8)
        for column, tile in enumerate(tiles):
            row[caption:, column * (width + gap) : column * (width + gap) + width] = tile
        _text(row, name, (4, caption - 6), color=(0, 0, 0))
        panels.append(row)
    top = np.full((header, panels[0].shape[1], 3), 255, np.uint8)
    for column, title in enumerate(titles):
        _text(top, title, (column * (width + gap) + 4, header - 8), 0.6, (0, 0, 0))
    legend = _legend(lut, class_names, panels[0].shape[1])
    return np.concatenate([top, *panels, legend], axis=0)


def resize_panels(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, size: tuple[int, int]):
    """The image (area-averaged) and both id masks (nearest) at ``size`` ``(height, width)``."""
    import cv2

    height, width = size
    return (
        cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA),
        cv2.resize(truth, (width, height), interpolation=cv2.INTER_NEAREST),
        cv2.resize(prediction, (width, height), interpolation=cv2.INTER_NEAREST),
    )


def _legend(lut: np.ndarray, class_names: Sequence[str], width: int) -> np.ndarray:
    entry, swatch, line = 150, 16, 24
    per_line = max(1, width // entry)
    lines = -(-len(class_names) // per_line)
    legend = np.full((lines * line + 8, width, 3), 255, np.uint8)
    for index, name in enumerate(class_names):
        x, y = (index % per_line) * entry + 4, (index // per_line) * line + 6
        legend[y : y + swatch, x : x + swatch] = lut[index]
        _text(legend, str(name), (x + swatch + 6, y + swatch - 3), 0.5, (0, 0, 0))
    return legend
