"""Class probabilities for whole images: single pass, sliding window, flip and multi-scale test-time augmentation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from seglite.checks import check_size
from seglite.errors import ConfigurationError

InferenceMode = Literal["whole", "slide"]


def check_windows(crop_size: object, stride: object) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(crop_size, stride)`` as int pairs if windows ``stride`` apart cover every pixel.

    A stride larger than the crop along an axis leaves the pixels between two windows without
    a prediction: a ``ConfigurationError`` (a ``ValueError``) naming both values.
    """
    crop_size = check_size("crop_size", crop_size)
    stride = check_size("stride", stride)
    if stride[0] > crop_size[0] or stride[1] > crop_size[1]:
        raise ConfigurationError(
            f"sliding-window stride {list(stride)} is larger than crop_size {list(crop_size)}: the pixels "
            "between windows would get no prediction; give a stride no larger than the crop size on each axis"
        )
    return crop_size, stride


def _window_starts(length: int, window: int, stride: int) -> list[int]:
    if length <= window:
        return [0]
    starts = list(range(0, length - window, stride))
    starts.append(length - window)  # the last window is flush with the border
    return starts


def slide_logits(
    model: nn.Module, images: torch.Tensor, crop_size: tuple[int, int], stride: tuple[int, int]
) -> torch.Tensor:
    """Average the logits of overlapping ``crop_size`` windows (mmseg ``slide_inference``).

    ``stride`` must not exceed ``crop_size`` on either axis (:func:`check_windows`).
    """
    crop_size, stride = check_windows(crop_size, stride)
    batch, _, height, width = images.shape
    crop_h, crop_w = crop_size
    logits = None
    counts = images.new_zeros((1, 1, height, width))
    for top in _window_starts(height, crop_h, stride[0]):
        for left in _window_starts(width, crop_w, stride[1]):
            window = images[:, :, top : top + crop_h, left : left + crop_w]
            window_logits = model(window)
            if logits is None:
                logits = images.new_zeros((batch, window_logits.shape[1], height, width))
            logits[:, :, top : top + window.shape[2], left : left + window.shape[3]] += window_logits
            counts[:, :, top : top + window.shape[2], left : left + window.shape[3]] += 1
    if not bool((counts > 0).all()):  # would be NaN logits, which argmax turns into class 0
        missed = int((counts == 0).sum())
        raise RuntimeError(
            f"sliding windows (crop {crop_size}, stride {stride}) left {missed} pixels of a {height}x{width} image uncovered"
        )
    return logits / counts


def predict_probabilities(
    model: nn.Module,
    images: torch.Tensor,
    mode: InferenceMode = "whole",
    crop_size: tuple[int, int] = (768, 768),
    stride: tuple[int, int] = (512, 512),
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
) -> torch.Tensor:
    """Class probabilities (N, C, H, W) at the size of ``images``, averaged over scales and flips.

    Args:
        model: returns (N, C, h, w) logits at its input size (``SegmentationModel``).
        mode: ``"whole"`` runs the image at once; ``"slide"`` runs ``crop_size`` windows
            ``stride`` apart (for models trained on crops, evaluated at full resolution); a
            stride larger than the crop is an error (it would leave pixels unpredicted).
        flip: also run the horizontally flipped image and average.
        scales: image scale factors of multi-scale testing; logits are resized back and averaged.
    """
    if mode not in ("whole", "slide"):
        raise ValueError(f"mode must be 'whole' or 'slide', got {mode!r}")
    if not scales or any(scale <= 0 for scale in scales):
        raise ValueError(f"scales must be positive numbers, got {list(scales)}")
    if mode == "slide":
        crop_size, stride = check_windows(crop_size, stride)
    height, width = images.shape[-2:]
    total = None
    for scale in scales:
        scaled = images
        if scale != 1.0:
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            scaled = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        for flipped in (False, True) if flip else (False,):
            batch = scaled.flip(-1) if flipped else scaled
            if mode == "slide":
                logits = slide_logits(model, batch, crop_size, stride)
            else:
                logits = model(batch)
            if flipped:
                logits = logits.flip(-1)
            if logits.shape[-2:] != (height, width):
                logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            # averaging probabilities rather than raw logits keeps one scale from dominating
            probabilities = logits.float().softmax(dim=1)
            total = probabilities if total is None else total + probabilities
    return total / (len(scales) * (2 if flip else 1))
