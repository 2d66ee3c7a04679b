"""Segment a video file, a camera or a folder of frames into an overlay video.

Decoding, inference and encoding overlap: a reader thread decodes frames into a bounded
queue, the calling thread runs the model on batches, and a writer thread draws the overlays
and encodes them. OpenCV's decoding, blending and encoding release the GIL, so end-to-end
throughput approaches the model's own when the model is the slowest stage (a PyTorch model
should leave the threads a core: see ``--threads`` of ``tools/infer_video.py``).
"""

from __future__ import annotations

import glob
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from tqdm import tqdm

from seglite.errors import OutputExistsError, SegliteError
from seglite.files import (
    IMAGE_EXTENSIONS,
    OutputManifest,
    StagedOutputs,
    check_output_file,
    current_umask,
    is_image_file,
    make_dir,
    missing_folders,
    remove_empty_folders,
    same_file,
    write_error,
    write_image,
)
from seglite.visualization import default_palette, palette_array

# Output container -> (fourcc, OpenCV writer backend). OpenCV's FFmpeg writer silently drops
# the last row or column of odd-sized frames, so those containers get frames padded to even
# sides; OpenCV's own MJPEG/AVI writer keeps any size exactly.
VIDEO_FORMATS = {
    ".mp4": ("mp4v", cv2.CAP_FFMPEG),
    ".m4v": ("mp4v", cv2.CAP_FFMPEG),
    ".mov": ("mp4v", cv2.CAP_FFMPEG),
    ".mkv": ("mp4v", cv2.CAP_FFMPEG),
    ".avi": ("MJPG", cv2.CAP_OPENCV_MJPEG),
}


class VideoIOError(SegliteError, OSError):
    """A video input that cannot be opened or decoded, or an output that cannot be written."""


class SegmentationPredictor(Protocol):
    """What the pipeline needs of ``seglite.inference.predictor.Predictor``."""

    palette: Sequence[Sequence[int]] | None
    class_names: Sequence[str]

    def predict_batch(self, images: list[np.ndarray]) -> list[np.ndarray]: ...


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


MASK_PATTERN = "frame_*.png"  # the masks of a video or camera source, named frame_NNNNNN.png


class MaskFolder:
    """The folder of a run's per-frame train-id masks (``--masks``; see ``seglite.files.OutputManifest``).

    Checked when made, before the model loads. Refused: masks that exist (unless ``overwrite``,
    and then only masks seglite wrote), a mask that would be one of the input frames, and two
    input frames with the same name. A video or camera gives masks ``frame_NNNNNN.png`` whose
    number is not known in advance, so every existing ``frame_*.png`` is checked.

    Replaced only on success: ``write`` puts each mask into a hidden staging folder inside the
    folder (``seglite.files.StagedOutputs``). ``commit``, once the run has succeeded, moves them in
    and lists them in the folder's manifest; with ``overwrite`` it then removes the masks the
    manifest lists that this run did not rewrite (an earlier, longer run's), so the folder holds
    this run's masks only; it never touches a file the manifest does not list. ``discard``, after a
    failure or an interrupt, leaves the folder as it was and removes the folders it made.
    """

    def __init__(self, folder: str | Path, source: FrameSource, overwrite: bool = False) -> None:
        self.folder = Path(folder)
        self.overwrite = overwrite
        self.written: set[Path] = set()  # where this run's masks go once committed
        self._created = missing_folders(self.folder)
        make_dir(self.folder, "masks folder")
        try:
            self.manifest = OutputManifest(self.folder)
            self._check(source)
            self.staging = StagedOutputs(self.folder, "masks folder")
        except BaseException:
            remove_empty_folders(self._created)
            raise

    def _check(self, source: FrameSource) -> None:
        if isinstance(source, ImageFilesSource):
            planned = [self.folder / f"{path.stem}.png" for path in source.paths]
            seen: dict[Path, Path] = {}
            for mask, frame_path in zip(planned, source.paths):
                if mask in seen:
                    raise VideoIOError(f"frames {seen[mask]} and {frame_path} would write the same mask {mask}")
                seen[mask] = frame_path
                if same_file(mask, frame_path):
                    raise OutputExistsError(f"mask {mask} would replace the input frame {frame_path}; choose another --masks folder")
            self.manifest.check(planned, self.overwrite)
        else:
            self.manifest.check(sorted(self.folder.glob(MASK_PATTERN)), self.overwrite)

    def write(self, name: str, mask: np.ndarray) -> Path:
        """Stage ``<name>.png`` (written atomically); returns the path ``commit`` gives it."""
        path = self.folder / f"{name}.png"
        write_image(self.staging.path / path.name, mask, durable=False)
        self.written.add(path)
        return path

    def commit(self) -> None:
        """Move this run's masks in (see the class docstring)."""
        # the masks of an earlier run: in the folder itself, never through a link
        stale = [path for path in OutputManifest(self.folder).owned("*.png") if path.parent == self.folder]
        self.staging.commit(self.overwrite, stale if self.overwrite else ())

    def discard(self) -> None:
        """Drop this run's masks: the folder stays as it was; folders this run made are removed."""
        self.staging.discard()
        remove_empty_folders(self._created)


def partial_path(path: Path) -> Path:
    """Where a run that stopped early keeps the frames done: ``NAME.partial.EXT`` beside ``NAME.EXT``."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def check_video_output(path: str | Path, overwrite: bool = False, inputs: Sequence[Path] = ()) -> Path:
    """Check, before any slow work, that ``path`` may be written as a video (see ``check_output_file``); returns it."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_FORMATS:
        raise VideoIOError(f"cannot write video {path}: use one of {', '.join(VIDEO_FORMATS)}")
    return check_output_file(path, overwrite, inputs, what="output video")


class VideoSink:
    """An OpenCV video writer whose every frame is checked and whose output appears only when whole.

    Containers in ``VIDEO_FORMATS``: ``.mp4``/``.m4v``/``.mov``/``.mkv`` (MPEG-4 'mp4v'; odd
    sides are padded by one replicated row/column, since OpenCV's FFmpeg writer would crop them)
    and ``.avi`` (Motion JPEG, any size exactly).

    Frames go to a hidden temporary file beside ``path``; ``path`` stays as it was until the run
    has succeeded. ``finish`` releases the writer (which writes the container's index) and checks
    that the file holds every frame written; ``commit`` (or leaving the ``with`` block without an
    error) then renames it to ``path``. A frame the encoder could not write, or a file that comes
    out short (a full disk: OpenCV's MJPEG writer reports no error of its own), raises
    ``VideoIOError`` naming the output and the reason. After a failure or an interrupt,
    ``abandon`` (or leaving the ``with`` block on an exception) keeps the frames done, when the
    file holds them all, in ``partial_path(path)`` (replacing an earlier one only with
    ``overwrite``), and removes the temporary file: no broken or partial video is ever left under
    the output's name.

    Args:
        path: the output video.
        fps: frames per second.
        size: ``(width, height)`` of the frames.
        overwrite: replace an existing ``path`` (and an earlier run's partial file).
        inputs: files the output must not be (a hard link to the input counts).
    """

    def __init__(
        self,
        path: Path,
        fps: float,
        size: tuple[int, int],
        overwrite: bool = False,
        inputs: Sequence[Path] = (),
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = check_video_output(path, overwrite, inputs)
        self.partial = partial_path(self.path)
        self.overwrite = overwrite
        self.inputs = list(inputs)
        suffix = self.path.suffix.lower()
        fourcc, backend = VIDEO_FORMATS[suffix]
        width, height = size
        self.frame_shape = (height, width)
        self.padding = (height % 2, width % 2) if backend == cv2.CAP_FFMPEG else (0, 0)
        encoded_size = (width + self.padding[1], height + self.padding[0])
        try:
            # the container follows the file name's extension, so the temporary file keeps it
            descriptor, temporary = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".partial{suffix}", dir=self.path.parent)
        except OSError as error:
            raise write_error(self.path, error) from error
        os.close(descriptor)
        self.temporary = Path(temporary)
        self.writer = cv2.VideoWriter(str(self.temporary), backend, cv2.VideoWriter_fourcc(*fourcc), fps, encoded_size)
        if not self.writer.isOpened():
            self.temporary.unlink(missing_ok=True)
            raise VideoIOError(f"cannot write video {self.path}: OpenCV's '{fourcc}' writer did not open it")
        self.frames_written = 0
        self.failed = False
        self.released = False
        self.closed = False

    def _failure(self, what: str) -> VideoIOError:
        self.failed = True
        free = shutil.disk_usage(self.path.parent).free
        reason = "disk full" if free < 1 << 20 else what
        return VideoIOError(f"cannot write video {self.path}: {reason} ({self.frames_written} frames written)")

    def write(self, bgr: np.ndarray) -> None:
        if bgr.shape[:2] != self.frame_shape:
            raise ValueError(f"frame of size {bgr.shape[:2]} written to a {self.frame_shape} video")
        if any(self.padding):
            bgr = cv2.copyMakeBorder(bgr, 0, self.padding[0], 0, self.padding[1], cv2.BORDER_REPLICATE)
        # OpenCV 5's FFmpeg writer answers False for a frame it could not write; 4.x answers None
        if self.writer.write(bgr) is False:
            raise self._failure(f"the encoder could not write frame {self.frames_written}")
        self.frames_written += 1

    def _frames_in_file(self) -> int:
        """Frames the finished temporary file holds: the container's count, or a decode when that disagrees."""
        capture = cv2.VideoCapture(str(self.temporary))
        try:
            if not capture.isOpened():
                return 0
            if int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == self.frames_written:
                return self.frames_written
            count = 0  # some containers only estimate their count: decode to be sure
            while capture.grab():
                count += 1
            return count
        finally:
            capture.release()

    def finish(self) -> None:
        """Release the writer and check that the file holds every frame written (``VideoIOError`` if not)."""
        if self.released:
            return
        self.released = True
        self.writer.release()
        if self.failed or self.frames_written == 0:
            return
        found = self._frames_in_file()
        if found != self.frames_written:
            raise self._failure(f"the file holds {found} of the {self.frames_written} frames written")

    def commit(self) -> Path | None:
        """Finish, then move the file to ``path``; returns it. A video without frames cannot be opened
        by players (nor by OpenCV), so none is kept (``None``)."""
        if self.closed:
            return None
        self.finish()
        self.closed = True
        try:
            if self.failed or self.frames_written == 0:
                return None
            os.chmod(self.temporary, 0o666 & ~current_umask())
            os.replace(self.temporary, self.path)
            return self.path
        except OSError as error:
            raise write_error(self.path, error) from error
        finally:
            self.temporary.unlink(missing_ok=True)

    def abandon(self) -> Path | None:
        """After a failure or an interrupt: leave ``path`` as it was and keep the frames done in
        ``partial`` when the file holds them all and that name may be written; returns where they are
        kept, or ``None`` when they are not (the run's own error is the one to report)."""
        if self.closed:
            return None
        self.closed = True
        try:
            self.finish()
            if self.failed or self.frames_written == 0:
                return None
            check_output_file(self.partial, self.overwrite, self.inputs, "partial video", make_parent=False)
            os.chmod(self.temporary, 0o666 & ~current_umask())
            os.replace(self.temporary, self.partial)
            return self.partial
        except (OSError, SegliteError):
            return None
        finally:
            self.temporary.unlink(missing_ok=True)

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is None:
            self.commit()
        else:
            self.abandon()


@dataclass
class VideoStats:
    """Frame counts and timings of a run; ``model_seconds`` is the time spent inside the predictor."""

    frames: int = 0  # written to the output
    frames_predicted: int = 0
    model_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def model_fps(self) -> float:
        return self.frames_predicted / self.model_seconds if self.model_seconds > 0 else 0.0

    @property
    def end_to_end_fps(self) -> float:
        return self.frames / self.total_seconds if self.total_seconds > 0 else 0.0


_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class VideoPipeline:
    """Reader thread -> model (calling thread) -> writer thread, joined by bounded queues.

    ``stats`` stays readable after an interruption: everything predicted before it is
    written, and the caller's ``VideoSink.abandon`` keeps those frames in a playable partial file.

    Args:
        predictor: a ``Predictor`` (``predict_batch`` of RGB uint8 images, ``palette``).
        batch_size: frames per ``predict_batch`` call.
        opacity: overlay opacity, 0 (frame only) to 1 (colours only).
        side_by_side: write ``frame | overlay``, twice the input width.
        masks: a ``MaskFolder`` to write each frame's train-id mask into, as ``<frame name>.png``.
        queue_batches: capacity of each queue, in batches.
    """

    def __init__(
        self,
        predictor: SegmentationPredictor,
        batch_size: int = 1,
        opacity: float = 0.5,
        side_by_side: bool = False,
        masks: MaskFolder | None = None,
        queue_batches: int = 4,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0.0 <= opacity <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {opacity}")
        self.predictor = predictor
        self.batch_size = batch_size
        self.opacity = opacity
        self.side_by_side = side_by_side
        self.masks = masks
        self.queue_batches = queue_batches
        palette = predictor.palette
        if palette is None:  # e.g. an ONNX model exported without metadata
            palette = default_palette(len(predictor.class_names))
        # a cv2.LUT table: BGR colours, as the frames are
        self.palette_lut = np.ascontiguousarray(palette_array(palette)[:, ::-1].reshape(256, 1, 3))
        self.stats = VideoStats()

    def output_size(self, frame_size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) of the written video for frames of ``frame_size``."""
        width, height = frame_size
        return (2 * width if self.side_by_side else width, height)

    def compose(self, bgr: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The output frame: the overlay, or the input and the overlay side by side."""
        # seglite.visualization.overlay in OpenCV: 8 ms instead of 65 ms at 1024x2048 (same result
        # within one grey level), time the writer thread would otherwise take from the model
        colours = cv2.LUT(cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR), self.palette_lut)
        blended = cv2.addWeighted(bgr, 1.0 - self.opacity, colours, self.opacity, 0.0)
        return np.concatenate([bgr, blended], axis=1) if self.side_by_side else blended

    def run(self, source: FrameSource, sink: VideoSink, max_frames: int | None = None, progress: bool = True) -> VideoStats:
        """Segment ``source`` into ``sink``; returns (and keeps in ``stats``) counts and timings."""
        self.stats = stats = VideoStats()
        stop = threading.Event()
        decoded: queue.Queue = queue.Queue(self.queue_batches)
        predicted: queue.Queue = queue.Queue(self.queue_batches)
        writer_failure: list[BaseException] = []
        reader = threading.Thread(target=self._read, args=(source, max_frames, decoded, stop), daemon=True)
        writer = threading.Thread(target=self._write, args=(sink, predicted, writer_failure, stop), daemon=True)
        total = source.frame_count if max_frames is None else min(max_frames, source.frame_count or max_frames)
        bar = tqdm(total=total, unit="frame", desc="segmenting", disable=not progress, dynamic_ncols=True)
        start = time.perf_counter()
        reader.start()
        writer.start()
        try:
            while True:
                item = decoded.get()
                if item is _END:
                    break
                if isinstance(item, _Failure):
                    raise item.error
                if writer_failure:
                    raise writer_failure[0]
                tick = time.perf_counter()
                masks = self.predictor.predict_batch([frame.rgb for frame in item])
                stats.model_seconds += time.perf_counter() - tick
                stats.frames_predicted += len(item)
                _put(predicted, list(zip(item, masks)), stop)
                bar.update(len(item))
                bar.set_postfix(model_fps=f"{stats.model_fps:.1f}", refresh=False)
        finally:
            stop.set()  # the reader quits; the writer finishes what was predicted
            _put(predicted, _END, None)
            # both threads must be done before the caller releases the source and the sink:
            # FFmpeg deadlocks when a capture is released during a read
            for thread in (writer, reader):
                while thread.is_alive():
                    thread.join(0.1)
            stats.total_seconds = time.perf_counter() - start
            bar.close()
        if writer_failure:
            raise writer_failure[0]
        return stats

    def _read(self, source: FrameSource, max_frames: int | None, decoded: queue.Queue, stop: threading.Event) -> None:
        try:
            batch: list[Frame] = []
            for frame in source.frames():
                if stop.is_set() or (max_frames is not None and frame.index >= max_frames):
                    break
                frame.rgb = cv2.cvtColor(frame.bgr, cv2.COLOR_BGR2RGB)
                batch.append(frame)
                if len(batch) == self.batch_size:
                    _put(decoded, batch, stop)
                    batch = []
            if batch:
                _put(decoded, batch, stop)
            _put(decoded, _END, stop)
        except BaseException as error:  # re-raised in the calling thread
            _put(decoded, _Failure(error), stop)

    def _write(self, sink: VideoSink, predicted: queue.Queue, failure: list, stop: threading.Event) -> None:
        while True:
            item = predicted.get()
            if item is _END:
                return
            if failure:
                continue  # drain, so the model thread never blocks on a full queue
            try:
                for frame, mask in item:
                    sink.write(self.compose(frame.bgr, mask))
                    if self.masks is not None:
                        self.masks.write(frame.name, mask)
                    self.stats.frames += 1
            except BaseException as error:
                failure.append(error)
                stop.set()


def _put(target: queue.Queue, item: object, stop: threading.Event | None) -> None:
    """Put, giving up once ``stop`` is set so a thread never waits on a consumer that quit."""
    while True:
        try:
            target.put(item, timeout=0.1)
            return
        except queue.Full:
            if stop is not None and stop.is_set():
                return
