"""Colour masks and overlays."""

import numpy as np
import pytest

from seglite.visualization import colorize, overlay

PALETTE = [[10, 20, 30], [200, 100, 0]]


def test_colorize_maps_classes_and_blacks_out_ignore_and_out_of_range_ids():
    mask = np.array([[0, 1, 255, 256, -1]])
    colours = colorize(mask, PALETTE)
    assert colours.dtype == np.uint8 and colours.shape == (1, 5, 3)
    assert colours[0].tolist() == [[10, 20, 30], [200, 100, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]


def test_overlay_blends_with_the_given_opacity():
    image = np.full((2, 2, 3), 100, dtype=np.uint8)
    mask = np.array([[0, 1], [1, 255]], dtype=np.uint8)
    blended = overlay(image, mask, PALETTE, alpha=0.5)
    assert blended[0, 0].tolist() == [55, 60, 65]
    assert blended[1, 1].tolist() == [50, 50, 50]
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, mask, PALETTE, alpha=1.5)
