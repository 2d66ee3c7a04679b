"""Segment a video file, a camera or a folder of frames into an overlay video.

- ``source``: where frames come from (``open_source``, ``FrameSource`` and its kinds, ``Frame``,
  ``to_bgr``) and ``VideoIOError``, the error of inputs and outputs alike.
- ``sink``: where results go (``VideoSink``, the overlay video; ``MaskFolder``, the per-frame masks),
  both replaced only on success.
- ``pipeline``: ``VideoPipeline``, the reader thread, model and writer thread joined by bounded
  queues, and its ``VideoStats``.

Imports go source <- sink <- pipeline; every public name is also importable from here.
"""

from seglite.inference.video.pipeline import SegmentationPredictor, VideoPipeline, VideoStats
from seglite.inference.video.sink import MASK_PATTERN, VIDEO_FORMATS, MaskFolder, VideoSink, check_video_output, partial_path
from seglite.inference.video.source import (
    CaptureSource,
    Frame,
    FrameSource,
    ImageFilesSource,
    VideoIOError,
    open_source,
    to_bgr,
)

__all__ = [
    "MASK_PATTERN",
    "VIDEO_FORMATS",
    "CaptureSource",
    "Frame",
    "FrameSource",
    "ImageFilesSource",
    "MaskFolder",
    "SegmentationPredictor",
    "VideoIOError",
    "VideoPipeline",
    "VideoSink",
    "VideoStats",
    "check_video_output",
    "open_source",
    "partial_path",
    "to_bgr",
]
