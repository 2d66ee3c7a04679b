"""The pinhole camera of the demo scenes and the canvas they are drawn on (one map of paint indices)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .looks import Paint


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
        centre_fixed = tuple(round(float(v) * 16) for v in np.clip(centre, -1e5, 1e5))
        axes_fixed = tuple(max(round(float(a) * 16), 8) for a in axes)
        cv2.ellipse(self.index, centre_fixed, axes_fixed, 0, 0, 360, self.paint_id(paint), -1, cv2.LINE_8, 4)

    def circle(self, centre: np.ndarray, radius: float, paint: Paint) -> None:
        self.ellipse(centre, (radius, radius), paint)

    def line(self, start: np.ndarray, end: np.ndarray, thickness: float, paint: Paint) -> None:
        """A thick segment as a quad (cv2.line's integer thickness is too coarse for small images)."""
        start, end = np.asarray(start, float), np.asarray(end, float)
        direction = end - start
        normal = np.array([-direction[1], direction[0]]) / max(np.hypot(*direction), 1e-6) * thickness / 2
        self.polygon(np.array([start + normal, end + normal, end - normal, start - normal]), paint)

