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

One module per concern: ``looks`` (labels, colours, textures), ``geometry`` (camera, canvas),
``street`` (ground and facades), ``things`` (what stands in the street), ``scene`` (the random
layout), ``textures`` (noise fields and the texture of each look), ``render`` (image and labels
of a scene), ``writer`` (the data set and video files).
"""

from .looks import LABEL_ID, LOOKS, Look, Paint
from .render import make_scene_image, render
from .scene import Scene, sample_scene
from .writer import (
    DEMO_MARKER,
    SPLIT_CITIES,
    VIDEO_NAME,
    check_demo_root,
    is_demo_folder,
    make_demo_dataset,
    read_demo_marker,
    write_demo_video,
)

__all__ = [
    "DEMO_MARKER",
    "LABEL_ID",
    "LOOKS",
    "SPLIT_CITIES",
    "VIDEO_NAME",
    "Look",
    "Paint",
    "Scene",
    "check_demo_root",
    "is_demo_folder",
    "make_demo_dataset",
    "make_scene_image",
    "read_demo_marker",
    "render",
    "sample_scene",
    "write_demo_video",
]
