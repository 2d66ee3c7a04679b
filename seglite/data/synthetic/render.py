"""Rendering a scene into an RGB image and its label-id map: painter's order, textures, lighting and noise."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import Camera, Canvas
from .looks import ASPHALT, BRICKS, FLAT, FOLIAGE, GRAIN, GRASS, LABEL_ID, LOOKS, SKY, SLATS, TILES, Paint
from .scene import Scene, sample_scene
from .street import draw_ground


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


def render(
    scene: Scene, rng: np.random.Generator, time: float = 0.0, fields: Fields | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the scene ``time`` seconds into the drive; returns (RGB uint8 image, label-id uint8 map)."""
    camera = scene.camera
    height, width = camera.image_height, camera.image_width
    fields = fields or Fields.make(rng, height, width)
    canvas = Canvas(height, width)
    canvas.index[:] = canvas.paint_id(scene.sky)
    travelled = scene.camera_speed * time
    draw_ground(canvas, camera, scene.street, travelled, fields)
    for layer in (scene.facades, scene.boundaries):
        for _, draw in sorted(layer, key=lambda item: -item[0]):
            draw(canvas, camera, travelled)
    # a thing moving at `speed` is `(camera_speed - speed) * time` nearer than at the start
    approaches = [(scene.camera_speed - speed) * time for _, _, speed in scene.things]
    things = [(depth - approach, approach, draw) for (depth, draw, _), approach in zip(scene.things, approaches)]
    for _, approach, draw in sorted(things, key=lambda item: -item[0]):
        draw(canvas, camera, approach)
    hood = height - scene.ego_height * (1 - 0.5 * ((np.arange(width) - width / 2) / (width / 2)) ** 2)
    hood_polygon = np.concatenate([np.stack([np.arange(width), hood], 1), [[width, height], [0, height]]])
    canvas.polygon(hood_polygon, scene.ego)
    if scene.border:
        border = Paint("rectification border", (0.0, 0.0, 0.0))
        canvas.rectangle(0, 0, scene.border - 1, height, border)
        canvas.rectangle(width - scene.border, 0, width, height, border)

    paints = canvas.paints
    colours = np.array([p.rgb for p in paints], np.float32)
    labels = np.array([LABEL_ID[p.label or LOOKS[p.look].label] for p in paints], np.uint8)
    looks = [LOOKS[p.look] for p in paints]
    amplitudes = np.array([look.amplitude for look in looks], np.float32)
    kinds = np.array([look.texture for look in looks])
    kind_map = kinds[canvas.index]
    modulation = np.zeros((height, width), np.float32)
    for kind in np.unique(kind_map):
        where = kind_map == kind
        modulation[where] = np.broadcast_to(texture_field(int(kind), fields, camera), (height, width))[where]
    image = colours[canvas.index] * (1.0 + amplitudes[canvas.index] * modulation)[..., None]
    image *= np.array(scene.lighting, np.float32)
    image += rng.normal(0.0, scene.noise, (height, width, 1)).astype(np.float32)
    if scene.blur:
        image = cv2.GaussianBlur(image, (3, 3), 0.6)
    return np.clip(image, 0, 255).astype(np.uint8), labels[canvas.index]


def make_scene_image(rng: np.random.Generator, size: tuple[int, int] = (256, 512)) -> tuple[np.ndarray, np.ndarray]:
    """One random street scene: ``(RGB uint8 image, label-id uint8 map)`` of ``size`` (height, width)."""
    return render(sample_scene(rng, *size), rng)

