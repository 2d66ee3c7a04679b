"""Where frames come from: a video file, a camera, or image files (a folder or a glob).

``open_source`` opens any of them as a ``FrameSource``, whose ``frames()`` yields ``Frame``s at the
first frame's size, converted to 8-bit BGR (``to_bgr``). ``VideoIOError`` is the error of the video
code, inputs and outputs alike (``seglite.inference.video.sink`` raises it too).
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from seglite.errors import SegliteError
from seglite.files import IMAGE_EXTENSIONS, is_image_file


class VideoIOError(SegliteError, OSError):
    """A video input that cannot be opened or decoded, or an output that cannot be written."""


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """A decoded frame (grey, BGR or BGRA; 8 or 16 bits) as an HxWx3 uint8 BGR image."""
    if frame.dtype == np.uint16:
        frame = cv2.convertScaleAbs(frame, alpha=255.0 / 65535.0)
    elif frame.dtype != np.uint8:
        raise VideoIOError(f"unsupported frame type {frame.dtype}: expected 8- or 16-bit images")
    channels = 1 if frame.ndim == 2 else frame.shape[2]
    if channels == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if channels == 3:
        return frame
    if channels == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    raise VideoIOError(f"unsupported frame with {channels} channels: expected 1 (grey), 3 (BGR) or 4 (BGRA)")


@dataclass
class Frame:
    index: int
    name: str  # file stem for image sources, frame_NNNNNN otherwise; names the mask PNG
    bgr: np.ndarray
    rgb: np.ndarray | None = None  # what the model takes, converted in the reader thread


class FrameSource:
    """Frames of a video file, a camera or a list of image files, all at the first frame's size.

    Opening reads the first frame, so an unreadable input fails here rather than mid-run.
    """

    inputs: list[Path]
    """The files frames come from (none for a camera), which no output may replace."""

    def __init__(self, description: str, fps: float | None, frame_count: int | None) -> None:
        self.description = description
        self.fps = fps
        self.frame_count = frame_count
        self.first = self._read(0)
        if self.first is None:
            raise VideoIOError(f"no frame could be decoded from {description}")
        self.size = (self.first.shape[1], self.first.shape[0])  # (width, height), as OpenCV takes it

    def _read(self, index: int) -> np.ndarray | None:
        raise NotImplementedError

    def _name(self, index: int) -> str:
        return f"frame_{index:06d}"

    def frames(self) -> Iterator[Frame]:
        index, frame = 0, self.first
        while frame is not None:
            if frame.shape[:2] != self.first.shape[:2]:  # frame folders may mix sizes
                frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
            yield Frame(index, self._name(index), frame)
            index += 1
            frame = self._read(index)

    def close(self) -> None:
        pass

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class CaptureSource(FrameSource):
    """A video file or camera through ``cv2.VideoCapture``."""

    def __init__(
        self, capture: cv2.VideoCapture, description: str, camera: bool = False, path: Path | None = None
    ) -> None:
        self.capture = capture
        self.inputs = [path] if path is not None else []
        fps = capture.get(cv2.CAP_PROP_FPS)
        count = 0 if camera else int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        try:
            super().__init__(description, fps if 0 < fps < 1000 else None, count if count > 0 else None)
        except BaseException:
            capture.release()
            raise

    def _read(self, index: int) -> np.ndarray | None:
        ok, frame = self.capture.read()
        return to_bgr(frame) if ok and frame is not None else None

    def close(self) -> None:
        self.capture.release()


class ImageFilesSource(FrameSource):
    """A sorted list of image files, e.g. a folder of extracted frames."""

    def __init__(self, paths: Sequence[Path], description: str) -> None:
        self.paths = list(paths)
        self.inputs = self.paths
        super().__init__(description, None, len(self.paths))

    def _read(self, index: int) -> np.ndarray | None:
        if index >= len(self.paths):
            return None
        from seglite.data.io import exif_orientation, turned_as_tagged

        # IMREAD_UNCHANGED keeps grey, BGRA and 16-bit frames as they are (to_bgr converts them) but
        # ignores an EXIF orientation: frames are turned as tagged after, as tools/predict.py shows photos
        frame = cv2.imread(str(self.paths[index]), cv2.IMREAD_UNCHANGED)
        if frame is None:
            raise VideoIOError(f"cannot read image {self.paths[index]} (missing, empty or not an image)")
        return turned_as_tagged(to_bgr(frame), exif_orientation(self.paths[index]))

    def _name(self, index: int) -> str:
        return self.paths[index].stem


def open_source(source: str | int) -> FrameSource:
    """Open a video file, a camera index (``0`` or ``"0"``), a folder of images or a glob of images."""
    if isinstance(source, int) or (source.isdigit() and not Path(source).exists()):
        index = int(source)
        capture = cv2.VideoCapture(index)
        if not capture.isOpened():
            raise VideoIOError(f"cannot open camera {index}")
        return CaptureSource(capture, f"camera {index}", camera=True)
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if is_image_file(p))
        if not files:
            raise VideoIOError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {path}")
        return ImageFilesSource(files, f"folder {path}")
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return ImageFilesSource([path], f"image {path}")
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise VideoIOError(f"cannot open video {path}: not a video OpenCV's decoders can read")
        return CaptureSource(capture, f"video {path}", path=path)
    if glob.has_magic(source):
        files = sorted(Path(p) for p in glob.glob(source) if is_image_file(p))
        if not files:
            raise VideoIOError(f"no images match {source!r}")
        return ImageFilesSource(files, f"images {source!r}")
    raise VideoIOError(f"input not found: {source} (expected a video file, a camera index, a folder or a glob of images)")
