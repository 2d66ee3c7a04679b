"""A synthetic Cityscapes-layout demo set: procedurally drawn street scenes, quick to learn.

Each image is a small street seen from a car, drawn through a pinhole camera (focal length and
camera height close to Cityscapes'): sky, road with lane marks and sidewalks, terrain verges,
building facades with windows, walls and fences, trees and hedges, poles with traffic lights
and signs, cars, trucks, a bus and a tram, persons, riders on bicycles and motorcycles, plus
ignored labels (ego vehicle, rectification border, static clutter, parking, unlabeled).
Every class has its own colour family and texture, and positions, sizes, colours, lighting and
noise change from image to image. Labels are written as Cityscapes *label ids*.

:func:`make_demo_dataset` writes ``leftImg8bit/`` and ``gtFine/`` for train, val and test, plus
a short video of a moving street for the video tools.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_LABEL_IDS

LABEL_ID = dict(zip(CITYSCAPES_CLASSES, CITYSCAPES_LABEL_IDS))
# ignored label ids drawn as well, so the label mapping is exercised
LABEL_ID.update({"unlabeled": 0, "ego vehicle": 1, "rectification border": 2, "static": 4, "ground": 6, "parking": 9})

SPLIT_CITIES = {"train": "synthtown", "val": "mockville", "test": "fakeburg"}
VIDEO_NAME = "demo_street.mp4"

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
    def of(rng: np.random.Generator, look: str, label: str = "") -> "Paint":
        return Paint(look, sample_colour(rng, LOOKS[look]), label)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at height ``height`` (metres) looking down a flat street along +Z."""

    image_height: int
    image_width: int
    horizon: float  # image row of the horizon
    centre: float  # image column of the vanishing point
    focal: float  # pixels
    height: float

    def project(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """World points (lateral x, height y above the road, depth z) to ``(N, 2)`` pixel coordinates."""
        x, y, z = np.broadcast_arrays(np.atleast_1d(np.asarray(x, float)), np.asarray(y, float), np.maximum(z, NEAR))
        return np.stack([self.centre + self.focal * x / z, self.horizon + self.focal * (self.height - y) / z], -1)

    def pixels(self, metres: float, z: float, minimum: float = 0.0) -> float:
        """Image size of ``metres`` at depth ``z``, at least ``minimum`` pixels of a 512-wide image."""
        return max(self.focal * metres / max(z, NEAR), minimum * self.image_width / 512)

    def nearest_visible(self, x: float) -> float:
        """Smallest depth at which lateral position ``x`` is inside the image."""
        room = (self.image_width - self.centre) if x > 0 else self.centre
        return self.focal * abs(x) / max(room, 1.0)


NEAR = 1.0  # metres; nearer geometry is clipped


class Canvas:
    """Draws surfaces into one map of paint indices; image and labels are both read from it."""

    def __init__(self, height: int, width: int) -> None:
        self.index = np.zeros((height, width), np.uint16)
        self.paints: list[Paint] = [Paint("unlabeled", (0.0, 0.0, 0.0))]
        self._ids: dict[int, int] = {}

    def paint_id(self, paint: Paint) -> int:
        key = id(paint)
        if key not in self._ids:
            self._ids[key] = len(self.paints)
            self.paints.append(paint)
        return self._ids[key]

    def polygons(self, polygons: list[np.ndarray], paint: Paint) -> None:
        points = [np.round(np.clip(p, -1e5, 1e5) * 16).astype(np.int32) for p in polygons]
        cv2.fillPoly(self.index, points, self.paint_id(paint), lineType=cv2.LINE_8, shift=4)

    def polygon(self, points: np.ndarray, paint: Paint) -> None:
        self.polygons([points], paint)

    def rectangle(self, x0: float, y0: float, x1: float, y1: float, paint: Paint) -> None:
        self.polygon(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), paint)

    def ellipse(self, centre: np.ndarray, axes: tuple[float, float], paint: Paint) -> None:
        centre_fixed = tuple(int(round(v * 16)) for v in np.clip(centre, -1e5, 1e5))
        axes_fixed = tuple(max(int(round(a * 16)), 8) for a in axes)
        cv2.ellipse(self.index, centre_fixed, axes_fixed, 0, 0, 360, self.paint_id(paint), -1, cv2.LINE_8, 4)

    def circle(self, centre: np.ndarray, radius: float, paint: Paint) -> None:
        self.ellipse(centre, (radius, radius), paint)

    def line(self, start: np.ndarray, end: np.ndarray, thickness: float, paint: Paint) -> None:
        """A thick segment as a quad (cv2.line's integer thickness is too coarse for small images)."""
        start, end = np.asarray(start, float), np.asarray(end, float)
        direction = end - start
        normal = np.array([-direction[1], direction[0]]) / max(np.hypot(*direction), 1e-6) * thickness / 2
        self.polygon(np.array([start + normal, end + normal, end - normal, start - normal]), paint)


# --------------------------------------------------------------------------- scene objects
# Each object is a function of (canvas, camera, depth offset) drawing itself; the scene sorts
# them far to near (painter's algorithm) within layers: ground, facades, boundary, things.


@dataclass
class Street:
    """The ground plane: road between two kerbs, sidewalks, terrain verges, building lines."""

    kerb: tuple[float, float]  # lateral position of the left (negative) and right kerbs
    walk: tuple[float, float]  # sidewalk widths
    verge: tuple[float, float]  # terrain widths between sidewalk and building line
    centre_line: float
    paints: dict[str, Paint]
    parking: tuple[float, float] | None  # depth range of a parking strip by the right kerb

    def line(self, side: int, what: str) -> float:
        """Lateral position of the kerb, the sidewalk's outer edge or the building line on ``side`` (-1 or 1)."""
        i = 0 if side < 0 else 1
        offset = {"kerb": 0.0, "walk": self.walk[i], "building": self.walk[i] + self.verge[i]}[what]
        return side * (abs(self.kerb[i]) + offset)


def draw_ground(canvas: Canvas, camera: Camera, street: Street, travelled: float, fields: "Fields") -> None:
    first_row = int(np.floor(camera.horizon)) + 1
    rows = np.arange(first_row, camera.image_height, dtype=np.float32)
    if len(rows) == 0:
        return
    depth = (camera.focal * camera.height / (rows - camera.horizon))[:, None]
    lateral = (np.arange(camera.image_width, dtype=np.float32)[None, :] - camera.centre) * depth / camera.focal
    world_depth = depth + travelled
    fields.ground_x[first_row:] = lateral
    fields.ground_z[first_row:] = world_depth
    region = canvas.index[first_row:]
    p = street.paints
    left, right = street.line(-1, "kerb"), street.line(1, "kerb")
    # painted back to front: beyond the building lines stays "ground" (ignored)
    layers = [(np.ones_like(lateral, dtype=bool), p["ground"])]
    for side, key in ((-1, "terrain left"), (1, "terrain right")):
        inner, outer = abs(street.line(side, "walk")), abs(street.line(side, "building"))
        layers.append(((lateral * side >= inner) & (lateral * side < outer), p[key]))
    layers += [
        ((lateral > street.line(-1, "walk")) & (lateral < street.line(1, "walk")), p["sidewalk"]),
        ((lateral > left) & (lateral < right), p["road"]),
        ((np.abs(lateral - street.centre_line) < 0.08) & ((world_depth % 9.0) < 3.0), p["road mark"]),
    ]
    if street.parking is not None:
        near, far = street.parking
        strip = (lateral > right - 2.2) & (lateral < right) & (world_depth > near) & (world_depth < far)
        layers.append((strip, p["parking"]))
    for mask, paint in layers:
        region[np.broadcast_to(mask, region.shape)] = canvas.paint_id(paint)


def facade(x: float, z0: float, z1: float, height: float, wall: Paint, glass: Paint, windows: bool = True) -> Callable:
    """A surface along the street at lateral ``x`` from depth ``z0`` to ``z1``: a building face with
    a grid of windows, or (``windows=False``) a wall, fence or hedge."""

    def draw(canvas: Canvas, camera: Camera, travelled: float) -> None:
        near, far = z0 - travelled, z1 - travelled
        if far <= NEAR:
            return
        near = max(near, NEAR)
        canvas.polygon(camera.project([x, x, x, x], [0, 0, height, height], [near, far, far, near]), wall)
        if not windows:
            return
        floors = np.arange(1.0, height - 1.5, 3.2)
        columns = np.arange(z0 + 1.2, z1 - 1.5, 2.6) - travelled
        columns = columns[columns > NEAR]
        if len(floors) == 0 or len(columns) == 0:
            return
        f, c = np.meshgrid(floors, columns, indexing="ij")
        f, c = f.ravel(), c.ravel()
        corners_y = np.stack([f, f, f + 1.6, f + 1.6], 1)
        corners_z = np.stack([c, c + 1.3, c + 1.3, c], 1)
        quads = camera.project(np.full_like(corners_y, x), corners_y, corners_z)
        big = np.abs(quads[:, 1, 0] - quads[:, 0, 0]) > 1.5
        canvas.polygons(list(quads[big]), glass)

    return draw


def billboard(x: float, z: float, draw_parts: Callable) -> Callable:
    """An upright object facing the camera at depth ``z``; ``draw_parts(canvas, to_pixels, z)``."""

    def draw(canvas: Canvas, camera: Camera, travelled: float) -> None:
        depth = z - travelled
        if depth <= NEAR * 2:
            return

        def to_pixels(dx: float, y: float) -> np.ndarray:
            return camera.project(x + dx, y, depth)[0]

        draw_parts(canvas, camera, to_pixels, depth)

    return draw


def tree(rng: np.random.Generator, x: float, z: float) -> Callable:
    trunk_height = rng.uniform(2.0, 3.5)
    trunk, leaves = Paint.of(rng, "trunk", "vegetation"), Paint.of(rng, "vegetation")
    blobs = [
        (rng.uniform(-1.2, 1.2), trunk_height + rng.uniform(0.5, 2.5), rng.uniform(1.2, 2.4))
        for _ in range(rng.integers(3, 6))
    ]

    def parts(canvas: Canvas, camera: Camera, at: Callable, depth: float) -> None:
        width = camera.pixels(0.35, depth, 3)
        bottom, top = at(0, 0), at(0, trunk_height + 1)
        canvas.rectangle(bottom[0] - width / 2, top[1], bottom[0] + width / 2, bottom[1], trunk)
        for dx, y, radius in blobs:
            canvas.ellipse(at(dx, y), (camera.pixels(radius, depth), camera.pixels(radius * 0.85, depth)), leaves)

    return billboard(x, z, parts)


def pole(rng: np.random.Generator, x: float, z: float, side: int, attachment: str) -> Callable:
    """A pole with a traffic light (at the top or on an arm over the road), a sign, or nothing."""
    # short enough that a light at 16 m or more stays inside the frame
    height = rng.uniform(3.2, 4.2) if attachment == "light" else rng.uniform(3.0, 5.5)
    metal = Paint.of(rng, "pole")
    housing, lamp_on = Paint.of(rng, "traffic light"), Paint.of(rng, "lamp")
    lamp_index = int(rng.integers(3))
    lamp_on.rgb = tuple(255.0 * c for c in colorsys.hsv_to_rgb(LAMP_HUES[lamp_index] / 360, 0.9, 1.0))
    lamp_off = Paint("lamp", tuple(0.3 * c for c in lamp_on.rgb), "traffic light")
    arm = rng.uniform(1.5, 3.5) * -side if rng.random() < 0.5 else 0.0
    plate, border = Paint.of(rng, "traffic sign"), Paint.of(rng, "sign border", "traffic sign")
    shape = rng.choice(["circle", "triangle", "square", "diamond"])
    sign_height, sign_size = rng.uniform(2.2, 3.2), rng.uniform(0.6, 0.9)

    def parts(canvas: Canvas, camera: Camera, at: Callable, depth: float) -> None:
        width = camera.pixels(0.18, depth, 4)
        bottom, top = at(0, 0), at(0, height)
        canvas.rectangle(bottom[0] - width / 2, top[1], bottom[0] + width / 2, bottom[1], metal)
        if attachment == "light":
            centre = at(arm, height - 0.5) if arm else at(0, height + 0.45)
            if arm:
                canvas.line(top, at(arm, height), width, metal)
            box_w, box_h = camera.pixels(0.4, depth, 10), camera.pixels(1.0, depth, 22)
            (left, top_y), (right, bottom_y) = centre - (box_w / 2, box_h / 2), centre + (box_w / 2, box_h / 2)
            canvas.rectangle(left, top_y, right, bottom_y, housing)
            for i in range(3):
                lamp_centre = (centre[0], centre[1] + (i - 1) * box_h / 3.2)
                canvas.circle(np.array(lamp_centre), box_w * 0.32, lamp_on if i == lamp_index else lamp_off)
        elif attachment == "sign":
            centre = at(0.25 * -side, sign_height)
            radius = max(camera.pixels(sign_size / 2, depth), 6 * camera.image_width / 512)
            for paint, r in ((border, radius), (plate, radius * 0.78)):
                if shape == "circle":
                    canvas.circle(centre, r, paint)
                else:
                    angles = np.radians(SIGN_CORNERS[shape])
                    canvas.polygon(centre + r * np.stack([np.cos(angles), -np.sin(angles)], 1), paint)

    return billboard(x, z, parts)


def person(rng: np.random.Generator, x: float, z: float) -> Callable:
    height = rng.uniform(1.6, 1.9)
    shirt, skin = Paint.of(rng, "person"), Paint.of(rng, "skin", "person")
    trousers = Paint.of(rng, "trousers", "person")
    hair = Paint("skin", sample_colour(rng, Look("person", (20, 40), (0.3, 0.7), (0.05, 0.3))), "person")
    stride = rng.uniform(-0.25, 0.25)
    arm_swing = rng.uniform(-0.2, 0.2)

    def parts(canvas: Canvas, camera: Camera, at: Callable, depth: float) -> None:
        h = height
        limb = camera.pixels(0.13, depth, 3)
        hip = at(0, 0.5 * h)
        for sign in (-1, 1):
            canvas.line(hip + (sign * limb * 0.4, 0), at(sign * stride, 0.02), limb, trousers)
        shoulders = at(0, 0.8 * h)
        half = camera.pixels(0.2, depth, 3)
        torso = [shoulders + (-half, 0), shoulders + (half, 0), hip + (half * 0.85, 0), hip + (-half * 0.85, 0)]
        canvas.polygon(np.array(torso), shirt)
        for sign in (-1, 1):
            hand = at(sign * (0.24 + arm_swing * sign), 0.47 * h)
            canvas.line(shoulders + (sign * half, limb * 0.3), hand, limb * 0.8, shirt)
        head = at(0, 0.9 * h)
        radius = camera.pixels(0.11, depth, 2.5)
        canvas.circle(head, radius, skin)
        canvas.ellipse(head - (0, radius * 0.45), (radius, radius * 0.6), hair)

    return billboard(x, z, parts)


def two_wheeler(rng: np.random.Generator, x: float, z: float, kind: str, ridden: bool) -> Callable:
    """A bicycle or motorcycle seen from the side, facing left or right, with or without a rider."""
    facing = 1 if rng.random() < 0.5 else -1
    body = Paint.of(rng, kind)
    tyre = Paint.of(rng, "tyre", kind)
    hub = Paint.of(rng, "spokes" if kind == "bicycle" else "chrome", kind)
    radius = 0.34 if kind == "bicycle" else 0.32
    half = 0.55 if kind == "bicycle" else 0.7
    shirt, helmet = Paint.of(rng, "rider"), Paint.of(rng, "helmet", "rider")
    trousers = Paint.of(rng, "rider trousers", "rider")
    skin = Paint("skin", sample_colour(rng, LOOKS["skin"]), "rider")

    def parts(canvas: Canvas, camera: Camera, at: Callable, depth: float) -> None:
        f = facing
        rear, front = at(-half * f, radius), at(half * f, radius)
        r_px = camera.pixels(radius, depth, 5)
        thick = camera.pixels(0.07 if kind == "bicycle" else 0.12, depth, 2.5)
        for centre in (rear, front):
            canvas.circle(centre, r_px, tyre)
            canvas.circle(centre, r_px * (0.8 if kind == "bicycle" else 0.45), hub)
        seat, head = at(-0.2 * f, 0.95), at(0.42 * f, 1.02)
        if kind == "bicycle":
            crank = at(-0.05 * f, radius)
            for a, b in ((rear, crank), (crank, seat), (rear, seat), (seat, head), (crank, head), (head, front)):
                canvas.line(a, b, thick, body)
            canvas.line(head, at(0.32 * f, 1.12), thick, body)
        else:
            tank = [(-0.45, 0.55), (0.35, 0.5), (0.5, 0.95), (0.1, 1.0), (-0.55, 0.85)]
            canvas.polygon(np.array([at(dx * f, y) for dx, y in tank]), body)
            engine = at(-0.05 * f, 0.45)
            size = camera.pixels(0.2, depth, 2)
            canvas.rectangle(engine[0] - size, engine[1] - size, engine[0] + size, engine[1] + size, hub)
            canvas.line(at(0.45 * f, 0.9), front, thick, hub)
            canvas.line(at(0.45 * f, 0.95), at(0.35 * f, 1.15), thick, body)
        if ridden:
            limb = camera.pixels(0.13, depth, 3)
            hip, shoulders = at(-0.15 * f, 1.05), at(0.12 * f, 1.6)
            canvas.line(hip, at(0.0, radius + 0.1), limb * 1.2, trousers)
            canvas.line(hip, shoulders, camera.pixels(0.36, depth, 4), shirt)
            canvas.line(shoulders, at(0.32 * f, 1.15), limb * 0.8, shirt)
            head = at(0.2 * f, 1.78)
            r = camera.pixels(0.12, depth, 2.5)
            canvas.circle(head + (0, r * 0.3), r * 0.9, skin)
            canvas.ellipse(head - (0, r * 0.2), (r * 1.1, r * 0.8), helmet)

    return billboard(x, z, parts)


@dataclass(frozen=True)
class VehicleShape:
    width: float
    height: float
    length: float
    glass_from: float  # fraction of the height where windows start
    windows_along: bool  # a band of side windows (bus, tram) rather than one cabin window


VEHICLES = {
    "car": VehicleShape(1.8, 1.5, 4.4, 0.55, False),
    "truck": VehicleShape(2.45, 3.3, 7.5, 0.62, False),
    "bus": VehicleShape(2.55, 3.1, 12.0, 0.45, True),
    "train": VehicleShape(2.6, 3.5, 28.0, 0.42, True),
}


def vehicle(rng: np.random.Generator, kind: str, x: float, z: float) -> Callable:
    """A car, truck, bus or tram as a box: its rear (or front) face and the side facing the camera."""
    shape = VEHICLES[kind]
    length = shape.length * rng.uniform(0.9, 1.1)
    body, glass = Paint.of(rng, kind), Paint.of(rng, "car glass" if kind == "car" else "vehicle glass", kind)
    tyre, light = Paint.of(rng, "tyre", kind), Paint.of(rng, "car light", kind)
    w, h = shape.width, shape.height

    def draw(canvas: Canvas, camera: Camera, travelled: float) -> None:
        near = z - travelled
        if near + length <= NEAR * 2:
            return
        far = near + length
        near = max(near, NEAR)
        side_x = x - w / 2 if x - w / 2 > 0 else (x + w / 2 if x + w / 2 < 0 else None)
        if side_x is not None:
            xs = [side_x] * 4
            canvas.polygon(camera.project(xs, [0.25, 0.25, h, h], [near, far, far, near]), body)
            g = shape.glass_from * h
            if shape.windows_along:
                band = camera.project(xs, [g, g, h - 0.3, h - 0.3], [near + 0.8, far - 0.8, far - 0.8, near + 0.8])
                canvas.polygon(band, glass)
            else:
                cabin0, cabin1 = near + 0.3 * length, near + 0.75 * length if kind == "car" else far - 0.2
                if kind == "truck":
                    cabin0 = far - 1.8
                canvas.polygon(camera.project(xs, [g, g, h - 0.15, h - 0.15], [cabin0, cabin1, cabin1, cabin0]), glass)
            for wheel_z in (near + 0.18 * length, far - 0.18 * length):
                if wheel_z > NEAR:
                    centre = camera.project(side_x, 0.35, wheel_z)[0]
                    span = camera.project([side_x, side_x], [0.35, 0.35], [wheel_z - 0.35, wheel_z + 0.35])
                    canvas.ellipse(centre, (abs(span[0, 0] - span[1, 0]) / 2, camera.pixels(0.35, wheel_z)), tyre)
        if near <= NEAR:
            return
        corners = camera.project([x - w / 2, x + w / 2], [0.0, h], [near, near])
        (x0, y1), (x1, y0) = corners
        canvas.rectangle(x0, y0, x1, y1, body)
        wheel_w, wheel_top = camera.pixels(0.3, near), camera.project(x, 0.35, near)[0, 1]
        canvas.rectangle(x0 + wheel_w * 0.3, wheel_top, x0 + wheel_w * 1.3, y1, tyre)
        canvas.rectangle(x1 - wheel_w * 1.3, wheel_top, x1 - wheel_w * 0.3, y1, tyre)
        glass_low = camera.project(x, shape.glass_from * h, near)[0, 1]
        margin = (x1 - x0) * 0.1
        canvas.rectangle(x0 + margin, y0 + (y1 - y0) * 0.08, x1 - margin, glass_low, glass)
        light_y = camera.project(x, 0.45 * h, near)[0, 1]
        light_h = max((y1 - y0) * 0.08, 1.0)
        canvas.rectangle(x0 + margin * 0.3, light_y - light_h, x0 + margin * 1.6, light_y, light)
        canvas.rectangle(x1 - margin * 1.6, light_y - light_h, x1 - margin * 0.3, light_y, light)

    return draw


def clutter(rng: np.random.Generator, x: float, z: float, look: str) -> Callable:
    """A bin, bench or advertising column: an ignored label (static or unlabeled)."""
    paint = Paint.of(rng, look)
    width, height = rng.uniform(0.5, 1.5), rng.uniform(0.7, 2.5)

    def parts(canvas: Canvas, camera: Camera, at: Callable, depth: float) -> None:
        (x0, y1), (x1, y0) = at(-width / 2, 0), at(width / 2, height)
        canvas.rectangle(x0, y0, x1, y1, paint)

    return billboard(x, z, parts)


# --------------------------------------------------------------------------- the scene


@dataclass
class Scene:
    camera: Camera
    street: Street
    facades: list[tuple[float, Callable]] = field(default_factory=list)  # (sort depth, draw)
    boundaries: list[tuple[float, Callable]] = field(default_factory=list)
    things: list[tuple[float, Callable, float]] = field(default_factory=list)  # (depth, draw, speed m/s)
    camera_speed: float = 8.0  # m/s, for videos
    sky: Paint | None = None
    ego: Paint | None = None
    ego_height: float = 0.0
    border: int = 0
    lighting: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise: float = 4.0
    blur: bool = False


def sample_scene(rng: np.random.Generator, height: int, width: int, travel: float = 0.0) -> Scene:
    """Lay out one street: camera, ground and facades, then what stands in it.

    ``travel`` (metres) is how far a video will drive: the street is populated that much further.
    """
    camera = Camera(
        image_height=height,
        image_width=width,
        horizon=height * rng.uniform(0.36, 0.46),
        centre=width * rng.uniform(0.42, 0.58),
        focal=width * rng.uniform(1.0, 1.2),
        height=rng.uniform(1.1, 1.4),
    )
    parking_start = rng.uniform(8, 25)
    street = Street(
        kerb=(-rng.uniform(4.5, 7.5), rng.uniform(2.2, 3.8)),
        walk=(rng.uniform(2.5, 4.0), rng.uniform(2.5, 4.0)),
        verge=(rng.uniform(0.0, 4.0), rng.uniform(1.5, 4.5)),
        centre_line=-rng.uniform(1.5, 2.0),
        paints={k: Paint.of(rng, k) for k in ("road", "road mark", "sidewalk", "ground", "parking")}
        | {"terrain left": Paint.of(rng, "terrain"), "terrain right": Paint.of(rng, "terrain")},
        parking=(parking_start, parking_start + rng.uniform(10, 25)) if rng.random() < 0.4 else None,
    )
    scene = Scene(camera=camera, street=street, sky=Paint.of(rng, "sky"), ego=Paint.of(rng, "ego vehicle"))
    scene.ego_height = rng.uniform(0.05, 0.12) * height
    scene.border = int(rng.integers(0, 3)) * max(width // 256, 1)
    scene.lighting = tuple(rng.uniform(0.72, 1.25) * rng.uniform(0.93, 1.07, 3))
    scene.noise = rng.uniform(2.0, 7.0)
    scene.blur = bool(rng.random() < 0.5)
    for side in (-1, 1):
        x_building = street.line(side, "building")
        z = camera.nearest_visible(x_building) - rng.uniform(5, 15)
        while z < 120.0 + travel:
            run = rng.uniform(8, 25)
            wall, glass = Paint.of(rng, "building"), Paint.of(rng, "window", "building")
            scene.facades.append((z, facade(x_building, z, z + run, rng.uniform(7, 24), wall, glass)))
            z += run + (rng.uniform(2, 6) if rng.random() < 0.25 else 0.0)
    for offset in np.arange(0.0, travel + 1e-6, 40.0):
        populate(scene, rng, float(offset))
    return scene


def populate(scene: Scene, rng: np.random.Generator, offset: float) -> None:
    """Add one street section's walls, fences, hedges, trees, poles, people and vehicles, ``offset`` metres on."""
    camera, street = scene.camera, scene.street

    def depth_for(x: float, low: float, high: float) -> float:
        """A depth between low and high at which lateral position x is on screen."""
        low = max(low, camera.nearest_visible(x) + 2.0)
        return offset + rng.uniform(low, max(high, low + 5.0))

    for side in (-1, 1):
        x_building = street.line(side, "building")
        x_boundary = x_building - side * 0.3
        for kind, heights in (("wall", (1.2, 2.8)), ("fence", (1.0, 2.0))):
            for _ in range(int(rng.integers(1, 3)) if side == 1 else int(rng.integers(0, 2))):
                z = depth_for(x_boundary, 8, 45)
                paint = Paint.of(rng, kind)
                length, height = rng.uniform(6, 20), rng.uniform(*heights)
                scene.boundaries.append((z, facade(x_boundary, z, z + length, height, paint, paint, windows=False)))
        verge_mid = (street.line(side, "walk") + x_building) / 2
        if rng.random() < 0.6 and street.verge[0 if side < 0 else 1] > 0.8:
            z = depth_for(verge_mid, 8, 50)
            length, height, leaves = rng.uniform(5, 20), rng.uniform(0.7, 1.4), Paint.of(rng, "vegetation")
            scene.boundaries.append((z - 0.1, facade(verge_mid, z, z + length, height, leaves, leaves, windows=False)))
        for _ in range(int(rng.integers(1, 4))):
            x = verge_mid + rng.uniform(-0.3, 0.3)
            z = depth_for(x, 10, 60)
            scene.things.append((z, tree(rng, x, z), 0.0))

    kerb_left, kerb_right = street.line(-1, "kerb"), street.line(1, "kerb")
    walk_left, walk_right = street.line(-1, "walk"), street.line(1, "walk")
    attachments = ["light", "sign"] + list(rng.choice(["light", "sign", "none"], int(rng.integers(1, 4))))
    for i, attachment in enumerate(attachments):
        side = 1 if i < 2 or rng.random() < 0.5 else -1  # the right side is seldom hidden by the tram
        x = street.line(side, "kerb") + side * rng.uniform(0.4, 0.8)
        z = depth_for(x, 16 if attachment == "light" else 10, 40)
        scene.things.append((z, pole(rng, x, z, side, str(attachment)), 0.0))
    for _ in range(int(rng.integers(2, 6))):
        if rng.random() < 0.15:  # crossing the road
            x = rng.uniform(kerb_left + 1, kerb_right - 0.5)
        else:
            x = rng.uniform(kerb_right, walk_right) if rng.random() < 0.7 else rng.uniform(walk_left, kerb_left)
        z = depth_for(x, 9, 35)
        scene.things.append((z, person(rng, x, z), 0.0))
    riders = int(rng.integers(1, 3))
    kinds = ["bicycle", "motorcycle", *rng.choice(["bicycle", "motorcycle"], int(rng.integers(0, 3)))]
    for i, kind in enumerate(kinds):
        ridden = i < riders  # ridden ones on the road, the others parked on the sidewalk
        x = rng.uniform(kerb_right - 2.0, kerb_right - 0.6) if ridden else rng.uniform(kerb_right + 0.4, walk_right - 0.3)
        z = depth_for(x, 9, 35)
        scene.things.append((z, two_wheeler(rng, x, z, str(kind), ridden), 0.0))
    lanes = [("car", kerb_right - 1.1, 0.0)] * int(rng.integers(1, 3))  # parked
    lanes += [("car", rng.uniform(-0.3, 0.3), 1.0)] * int(rng.integers(1, 3))  # ahead in our lane
    lanes += [("car", street.centre_line - 1.8, -1.0)] * int(rng.integers(0, 3))  # oncoming
    # truck and bus take our lane or the opposite one, the tram runs by the left kerb
    heavy = rng.permutation([(0.0, 1.0), (street.centre_line - 1.8, -1.0)])
    lanes += [("truck", *heavy[0]), ("bus", *heavy[1])]
    if rng.random() < 0.9:
        lanes.append(("train", kerb_left + 1.8, -1.0))
    for kind, x, direction in lanes:
        z = depth_for(x, 12 if kind == "car" else 16, 55 if kind != "train" else 35)
        if kind == "bus" and direction < 0:  # keep the oncoming bus clear of the tram
            z = offset + (rng.uniform(14, 20) if rng.random() < 0.5 else rng.uniform(55, 70))
        speed = direction * rng.uniform(6, 12)
        scene.things.append((z, vehicle(rng, kind, x + rng.uniform(-0.2, 0.2), z), speed))
    for look in ("static", "unlabeled"):
        if rng.random() < 0.6:
            x = rng.uniform(walk_right - 1.0, walk_right - 0.3)
            z = depth_for(x, 10, 50)
            scene.things.append((z, clutter(rng, x, z, look), 0.0))


@dataclass
class Fields:
    """Texture fields of one image size, made once per image (or once per video)."""

    grain: np.ndarray
    foliage: np.ndarray
    grass: np.ndarray
    ground_x: np.ndarray
    ground_z: np.ndarray

    @staticmethod
    def make(rng: np.random.Generator, height: int, width: int) -> "Fields":
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


def make_demo_dataset(
    root: str | Path,
    num_train: int = 200,
    num_val: int = 30,
    num_test: int = 10,
    size: tuple[int, int] = (256, 512),
    seed: int = 0,
    video: bool = True,
    video_seconds: float = 4.0,
) -> Path:
    """Write the demo set in the Cityscapes layout at ``root`` (label-id PNGs; test images unlabelled).

    Deterministic for a ``seed``: image ``i`` of a split depends only on (seed, split, i).
    Also writes ``root/demo_street.mp4`` (a moving street, ``video_seconds`` long) when ``video``.
    Returns ``root``.
    """
    height, width = size
    if height < 32 or width < 32:
        raise ValueError(f"size must be at least 32x32, got {size}")
    counts = {"train": num_train, "val": num_val, "test": num_test}
    for split, count in counts.items():
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"num_{split} must be an integer >= 0, got {count!r}")
    root = Path(root)
    for split_index, (split, count) in enumerate(counts.items()):
        city = SPLIT_CITIES[split]
        image_dir, label_dir = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
        image_dir.mkdir(parents=True, exist_ok=True)
        if split != "test":
            label_dir.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            rng = np.random.default_rng([seed, split_index, i])
            image, label_ids = make_scene_image(rng, size)
            name = f"{city}_{i:06d}_000019"
            cv2.imwrite(str(image_dir / f"{name}_leftImg8bit.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            if split != "test":
                cv2.imwrite(str(label_dir / f"{name}_gtFine_labelIds.png"), label_ids)
    if video:
        write_demo_video(root / VIDEO_NAME, size=size, seconds=video_seconds, seed=seed)
    return root


def write_demo_video(
    path: str | Path, size: tuple[int, int] = (256, 512), seconds: float = 4.0, fps: int = 10, seed: int = 0
) -> Path:
    """Write an MP4 (OpenCV, ``mp4v``) of the camera driving down one synthetic street."""
    height, width = size
    rng = np.random.default_rng([seed, 99])
    scene = sample_scene(rng, height, width, travel=Scene.camera_speed * seconds)
    fields = Fields.make(rng, height, width)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write MP4 video to {path}")
    try:
        for frame in range(max(int(seconds * fps), 1)):
            image, _ = render(scene, rng, time=frame / fps, fields=fields)
            writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return Path(path)
