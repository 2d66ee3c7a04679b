"""Texture fields: the noise images of one image size, and the texture each look kind draws from them."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import Camera
from .looks import ASPHALT, BRICKS, FLAT, FOLIAGE, GRAIN, GRASS, SKY, SLATS, TILES


@dataclass
class Fields:
    """Texture fields of one image size, made once per image (or once per video)."""

    grain: np.ndarray
    foliage: np.ndarray
    grass: np.ndarray
    ground_x: np.ndarray
    ground_z: np.ndarray

    @staticmethod
    def make(rng: np.random.Generator, height: int, width: int) -> Fields:
        grain = rng.standard_normal((height, width), dtype=np.float32)
        def smooth_noise(cell: int) -> np.ndarray:
            noise = rng.standard_normal((height // cell + 2, width // cell + 2), dtype=np.float32)
            return cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)

        coarse, blobs = smooth_noise(6), smooth_noise(24)
        foliage = np.clip(0.7 * coarse + 0.5 * blobs + 0.35 * grain, -2.5, 2.5) / 1.2
        grass = cv2.blur(grain, (1, 7)) * 2.0 + 0.3 * blobs
        return Fields(grain, foliage, grass, np.zeros_like(grain), np.zeros_like(grain))


def texture_field(kind: int, fields: Fields, camera: Camera) -> np.ndarray:
    height, width = fields.grain.shape
    if kind == FLAT:
        return 0.3 * fields.grain
    if kind in (GRAIN, ASPHALT):
        return fields.grain if kind == GRAIN else 0.6 * fields.grain + 0.8 * fields.foliage
    if kind == FOLIAGE:
        return fields.foliage
    if kind == GRASS:
        return fields.grass
    rows = np.arange(height, dtype=np.float32)[:, None]
    columns = np.arange(width, dtype=np.float32)[None, :]
    if kind == SKY:
        return np.broadcast_to(rows / max(camera.horizon, 1.0) - 0.5, (height, width)) + 0.1 * fields.foliage
    if kind == TILES:
        tile_x = (fields.ground_x / 0.6) % 1.0
        tile_z = (fields.ground_z / 0.6) % 1.0
        return np.where((tile_x < 0.08) | (tile_z < 0.08), -1.5, 0.0) + 0.4 * fields.grain
    scale = width / 512
    if kind == BRICKS:
        brick_h, brick_w = 4 * scale, 10 * scale
        course = np.floor(rows / brick_h)
        mortar = (rows % brick_h < scale) | ((columns + (course % 2) * brick_w / 2) % brick_w < scale)
        return np.where(mortar, 1.2, 0.0) + 0.4 * fields.grain
    if kind == SLATS:
        return np.where(columns % (6 * scale) < 2 * scale, -1.2, 0.2) + 0.3 * fields.grain + 0 * rows
    raise ValueError(f"unknown texture {kind}")
