"""Large images in tiles: the tiles cover the image, overlaps average, and the stitched masks equal a whole pass of a local model."""

from __future__ import annotations

import numpy as np
import pytest
from test_predictor import checkpoint, random_images  # noqa: F401  (fixture, shared)

from seglite.inference import openvino, tiling
from seglite.inference.postprocess import upsampled_argmax
from seglite.inference.predictor import Predictor

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pytorch_lightning.cli")


@pytest.mark.parametrize("length, tile, step", [(100, 100, 80), (64, 100, 80), (500, 128, 96), (512, 128, 96)])
def test_tiles_cover_every_pixel_and_stay_inside(length: int, tile: int, step: int) -> None:
    starts = tiling.tile_origins(length, tile, step)
    covered = np.zeros(length, dtype=bool)
    for start in starts:
        assert start >= 0 and start + min(tile, length) <= length
        covered[start : start + min(tile, length)] = True
    assert covered.all() and starts == sorted(set(starts))


def colour_logits(window: np.ndarray) -> np.ndarray:
    """A model that looks at nothing but each 8x8 cell: its mean R, G and B are the logits of 3 classes."""
    _, height, width, _ = window.shape
    cells = window[0].reshape(height // 8, 8, width // 8, 8, 3).astype(np.float32).mean(axis=(1, 3))
    return cells.transpose(2, 0, 1)[None]


@pytest.mark.parametrize("size", [(300, 500), (257, 129), (64, 1000)])
def test_tiled_masks_equal_a_whole_pass_of_a_model_without_context(size: tuple[int, int]) -> None:
    """Overlapping tiles of the same local model average to the same logits: stitching puts them in place."""
    image = np.random.default_rng(1).integers(0, 256, (*size, 3), dtype=np.uint8)
    padded = tiling._padded(image, 32)
    expected = upsampled_argmax(colour_logits(padded[None]), padded.shape[:2], size)[0]
    found = tiling.tiled_masks(image, colour_logits, stride=32, tile=128, overlap=32)
    np.testing.assert_array_equal(found, expected)


def test_tile_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="must be multiples of the stride 16"):
        tiling.tiled_masks(np.zeros((64, 64, 3), np.uint8), colour_logits, stride=16, tile=100, overlap=16)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", pytest.param("openvino", marks=pytest.mark.skipif(
    not openvino.available(), reason="OpenVINO is not installed"))])
def test_a_large_image_runs_in_equal_tiles(checkpoint, monkeypatch, backend):  # noqa: F811
    """Above MAX_PIXELS every model call gets one tile shape; the mask has the image's size and mostly
    agrees with one whole pass (only context differs)."""
    monkeypatch.setattr(tiling, "MAX_PIXELS", 150 * 200)
    monkeypatch.setattr(tiling, "TILE", 128)
    monkeypatch.setattr(tiling, "OVERLAP", 32)
    predictor = Predictor.from_checkpoint(checkpoint, backend=backend)
    shapes = []
    run = predictor.engine.graph_output
    monkeypatch.setattr(predictor.engine, "graph_output", lambda batch: shapes.append(batch.shape) or run(batch))
    image = random_images([(250, 330)], seed=7)[0]
    (mask,) = predictor.predict_batch([image])
    tiles = len(tiling.tile_origins(256, 128, 96)) * len(tiling.tile_origins(336, 128, 96))  # padded to stride 16
    assert mask.shape == (250, 330) and set(shapes) == {(1, 128, 128, 3)} and len(shapes) == tiles == 12
    np.testing.assert_array_equal(predictor.predict(image), mask)
    monkeypatch.setattr(tiling, "MAX_PIXELS", 10**9)
    whole = predictor.predict(image)
    assert (whole == mask).mean() > 0.5  # random weights: context matters, the layout does not
