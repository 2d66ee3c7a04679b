"""Sliding-window inference: every pixel covered, against a coverage count made another way (mmseg's grid)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from seglite import sliding
from seglite.errors import ConfigurationError
from seglite.sliding import predict_probabilities, slide_logits


def mmseg_starts(length: int, crop: int, stride: int) -> list[int]:
    """Window starts as mmsegmentation's ``slide_inference`` computes them: a grid count, then clamped."""
    grids = max(length - crop + stride - 1, 0) // stride + 1
    return sorted({max(min(index * stride, length - crop), 0) for index in range(grids)})


class WindowRecorder(nn.Module):
    """Returns its input (so averaged windows give back the image) and records each window's pixel coordinates.

    Channel 0 of the image holds the row index and channel 1 the column index of each pixel.
    """

    def __init__(self) -> None:
        super().__init__()
        self.windows: list[tuple[int, int, int, int]] = []  # top, left, height, width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        rows, columns = images[0, 0], images[0, 1]
        self.windows.append((int(rows[0, 0]), int(columns[0, 0]), images.shape[2], images.shape[3]))
        return images.clone()


def coordinates(height: int, width: int) -> torch.Tensor:
    rows, columns = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([rows, columns, rows * width + columns]).float()[None]


SIZES = [1, 2, 7, 16, 31, 32, 33, 50]
WINDOWS = [(crop, stride) for crop in (1, 3, 8, 16, 32) for stride in sorted({1, max(1, crop // 2), crop - 1 or 1, crop})]


@pytest.mark.parametrize(("crop", "stride"), WINDOWS)
def test_window_starts_cover_every_pixel_like_mmsegmentation(crop, stride):
    for length in range(1, 70):
        starts = sliding._window_starts(length, crop, stride)
        covered = np.zeros(length, dtype=int)
        for start in starts:
            covered[start : start + crop] += 1
        assert (covered > 0).all(), (length, crop, stride, starts)
        assert starts == mmseg_starts(length, crop, stride), (length, crop, stride)


@pytest.mark.parametrize(("height", "width"), [(7, 50), (32, 33), (50, 16), (1, 31)])
def test_slide_logits_covers_every_pixel_and_averages_back_the_image(height, width):
    image = coordinates(height, width)
    for (crop_h, stride_h), (crop_w, stride_w) in itertools.product([(8, 5), (16, 16), (3, 1)], [(8, 8), (32, 20), (4, 3)]):
        model = WindowRecorder()
        logits = slide_logits(model, image, (crop_h, crop_w), (stride_h, stride_w))
        torch.testing.assert_close(logits, image)  # NaN anywhere (an uncovered pixel) fails here
        count = np.zeros((height, width), dtype=int)
        for top, left, window_h, window_w in model.windows:
            assert (window_h, window_w) == (min(crop_h, height), min(crop_w, width))
            count[top : top + window_h, left : left + window_w] += 1
        assert (count > 0).all()
        expected = len(mmseg_starts(height, crop_h, stride_h)) * len(mmseg_starts(width, crop_w, stride_w))
        assert len(model.windows) == expected


@pytest.mark.parametrize(("crop", "stride"), [((128, 128), (768, 768)), ((64, 64), (64, 65)), ((32, 64), (33, 8))])
def test_a_stride_larger_than_the_crop_is_refused(crop, stride):
    image = torch.rand(1, 3, 100, 140)
    message = rf"stride \[{stride[0]}, {stride[1]}\] is larger than crop_size \[{crop[0]}, {crop[1]}\]"
    with pytest.raises(ConfigurationError, match=message):
        predict_probabilities(WindowRecorder(), image, mode="slide", crop_size=crop, stride=stride)
    with pytest.raises(ConfigurationError, match=message):
        slide_logits(WindowRecorder(), image, crop, stride)
    # whole-image inference ignores the windows
    assert predict_probabilities(WindowRecorder(), image, mode="whole", crop_size=crop, stride=stride).shape == image.shape


def test_an_uncovered_pixel_is_an_error_not_nan(monkeypatch):
    # windows that skip pixels, as the stride check now prevents: the guard must still catch them
    monkeypatch.setattr(sliding, "_window_starts", lambda length, window, stride: [0])
    with pytest.raises(RuntimeError, match="left 40 pixels of a 10x12 image uncovered"):
        slide_logits(WindowRecorder(), coordinates(10, 12), (10, 8), (10, 8))
