"""Rendering a scene into an RGB image and its label-id map: painter's order, textures, lighting and noise."""

from __future__ import annotations

import cv2
import numpy as np

from .geometry import Canvas
from .looks import LABEL_ID, LOOKS, Paint
from .scene import Scene, sample_scene
from .street import draw_ground
from .textures import Fields, texture_field


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

