"""The street itself: road, sidewalks and verges on the ground plane, and surfaces along it (facades, walls, fences, hedges)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .geometry import NEAR, Camera, Canvas
from .looks import Paint
from .textures import Fields


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


def draw_ground(canvas: Canvas, camera: Camera, street: Street, travelled: float, fields: Fields) -> None:
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

