"""What each surface of the demo scenes looks like: label, colour range and texture, and the paint drawn with it."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from ..cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_LABEL_IDS

LABEL_ID = dict(zip(CITYSCAPES_CLASSES, CITYSCAPES_LABEL_IDS))
# ignored label ids drawn as well, so the label mapping is exercised
LABEL_ID.update({"unlabeled": 0, "ego vehicle": 1, "rectification border": 2, "static": 4, "ground": 6, "parking": 9})

# textures: how a surface's brightness varies around its colour
FLAT, GRAIN, FOLIAGE, SKY, TILES, GRASS, BRICKS, SLATS, ASPHALT = range(9)


@dataclass(frozen=True)
class Look:
    """How one kind of surface is drawn: the label it carries, an HSV colour range and a texture."""

    label: str
    hue: tuple[float, float]  # degrees
    saturation: tuple[float, float]
    value: tuple[float, float]
    texture: int = GRAIN
    amplitude: float = 0.06


# One row a surface. Hue families are kept apart so that colour alone nearly tells the class;
# texture and shape tell the rest (a learnable demo matters more here than realism).
LOOKS = {look.label if key is None else key: look for key, look in [
    (None, Look("sky", (198, 212), (0.25, 0.5), (0.78, 0.95), SKY, 0.18)),
    (None, Look("road", (0, 360), (0.0, 0.06), (0.27, 0.37), ASPHALT, 0.12)),
    ("road mark", Look("road", (0, 360), (0.0, 0.05), (0.82, 0.95), GRAIN, 0.04)),
    (None, Look("sidewalk", (325, 345), (0.08, 0.2), (0.55, 0.7), TILES, 0.16)),
    (None, Look("terrain", (68, 82), (0.45, 0.62), (0.55, 0.72), GRASS, 0.22)),
    (None, Look("vegetation", (95, 130), (0.5, 0.78), (0.25, 0.48), FOLIAGE, 0.45)),
    ("trunk", Look("vegetation", (25, 35), (0.3, 0.5), (0.22, 0.35), GRAIN, 0.12)),
    (None, Look("building", (20, 45), (0.08, 0.3), (0.45, 0.75), GRAIN, 0.05)),
    ("window", Look("building", (200, 220), (0.15, 0.35), (0.12, 0.28), FOLIAGE, 0.12)),
    (None, Look("wall", (5, 15), (0.45, 0.65), (0.38, 0.52), BRICKS, 0.3)),
    (None, Look("fence", (30, 40), (0.4, 0.55), (0.5, 0.65), SLATS, 0.45)),
    (None, Look("pole", (0, 360), (0.0, 0.05), (0.6, 0.75), GRAIN, 0.05)),
    (None, Look("traffic light", (0, 360), (0.0, 0.1), (0.06, 0.14), GRAIN, 0.1)),
    ("lamp", Look("traffic light", (0, 360), (0.85, 1.0), (0.85, 1.0), FLAT, 0.0)),
    (None, Look("traffic sign", (52, 60), (0.85, 1.0), (0.85, 1.0), GRAIN, 0.04)),
    ("sign border", Look("traffic sign", (0, 360), (0.0, 0.1), (0.05, 0.15), FLAT, 0.0)),
    (None, Look("person", (345, 365), (0.7, 0.9), (0.65, 0.85), GRAIN, 0.08)),
    ("skin", Look("person", (18, 30), (0.35, 0.5), (0.7, 0.9), FLAT, 0.0)),
    ("trousers", Look("person", (215, 235), (0.3, 0.5), (0.15, 0.3), GRAIN, 0.08)),
    (None, Look("rider", (24, 34), (0.8, 0.95), (0.8, 0.95), GRAIN, 0.08)),
    ("helmet", Look("rider", (0, 360), (0.0, 0.1), (0.85, 0.95), FLAT, 0.0)),
    ("rider trousers", Look("rider", (215, 235), (0.3, 0.5), (0.12, 0.25), GRAIN, 0.08)),
    (None, Look("car", (215, 235), (0.6, 0.85), (0.45, 0.75), GRAIN, 0.05)),
    ("car glass", Look("car", (200, 220), (0.2, 0.4), (0.1, 0.2), FLAT, 0.0)),
    ("car light", Look("car", (355, 365), (0.85, 1.0), (0.75, 0.9), FLAT, 0.0)),
    (None, Look("truck", (268, 285), (0.45, 0.7), (0.4, 0.65), GRAIN, 0.05)),
    (None, Look("bus", (170, 185), (0.6, 0.85), (0.45, 0.65), GRAIN, 0.05)),
    (None, Look("train", (303, 318), (0.5, 0.7), (0.6, 0.8), GRAIN, 0.05)),
    ("vehicle glass", Look("bus", (200, 220), (0.2, 0.4), (0.08, 0.18), FLAT, 0.0)),
    (None, Look("motorcycle", (148, 160), (0.7, 0.85), (0.5, 0.68), GRAIN, 0.05)),
    ("chrome", Look("motorcycle", (0, 360), (0.0, 0.05), (0.7, 0.85), FLAT, 0.0)),
    (None, Look("bicycle", (345, 355), (0.75, 0.9), (0.32, 0.45), FLAT, 0.0)),
    ("spokes", Look("bicycle", (0, 360), (0.0, 0.05), (0.55, 0.7), GRAIN, 0.2)),
    ("tyre", Look("car", (0, 360), (0.0, 0.1), (0.04, 0.1), FLAT, 0.0)),  # label set per vehicle
    (None, Look("ego vehicle", (0, 360), (0.0, 0.15), (0.1, 0.25), SKY, -0.4)),
    (None, Look("static", (20, 40), (0.1, 0.4), (0.3, 0.6), GRAIN, 0.08)),
    (None, Look("unlabeled", (0, 360), (0.1, 0.6), (0.3, 0.8), GRAIN, 0.08)),
    (None, Look("ground", (30, 40), (0.15, 0.3), (0.35, 0.5), GRAIN, 0.1)),
    (None, Look("parking", (5, 15), (0.15, 0.3), (0.35, 0.45), TILES, 0.1)),
    (None, Look("rectification border", (0, 360), (0.0, 0.0), (0.0, 0.02), FLAT, 0.0)),
]}  # fmt: skip

LAMP_HUES = (0.0, 40.0, 130.0)  # red, amber, green
SIGN_CORNERS = {"triangle": [90, 210, 330], "square": [45, 135, 225, 315], "diamond": [0, 90, 180, 270]}


def sample_colour(rng: np.random.Generator, look: Look) -> tuple[float, float, float]:
    hue = rng.uniform(*look.hue) % 360 / 360
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(*look.saturation), rng.uniform(*look.value))
    return tuple(255.0 * c for c in rgb)


@dataclass
class Paint:
    """A surface colour fixed when the scene is made, so a video keeps it from frame to frame."""

    look: str
    rgb: tuple[float, float, float]
    label: str = ""

    @staticmethod
    def of(rng: np.random.Generator, look: str, label: str = "") -> Paint:
        return Paint(look, sample_colour(rng, LOOKS[look]), label)

