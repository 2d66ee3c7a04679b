"""One random street layout: camera, ground, facades, and the walls, trees, poles, people and vehicles in it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .geometry import Camera
from .looks import Paint
from .street import Street, facade
from .things import clutter, person, pole, tree, two_wheeler, vehicle


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

