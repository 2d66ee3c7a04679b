"""What stands in the street: trees, poles with lights and signs, people, two-wheelers, vehicles and clutter.

Each object is a function of (canvas, camera, depth offset) drawing itself; the scene sorts them
far to near (painter's algorithm).
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .geometry import NEAR, Camera, Canvas
from .looks import LAMP_HUES, LOOKS, SIGN_CORNERS, Look, Paint, sample_colour


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

