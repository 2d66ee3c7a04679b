"""The pipeline that segments a ``FrameSource`` into a ``VideoSink``: threads, queues and timings.

Decoding, inference and encoding overlap: a reader thread decodes frames into a bounded
queue, the calling thread runs the model on batches, and a writer thread draws the overlays
and encodes them. OpenCV's decoding, blending and encoding release the GIL, so end-to-end
throughput approaches the model's own when the model is the slowest stage (a PyTorch model
should leave the threads a core: see ``--threads`` of ``tools/infer_video.py``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
from tqdm import tqdm

from seglite.inference.video.sink import MaskFolder, VideoSink
from seglite.inference.video.source import Frame, FrameSource
from seglite.visualization import default_palette, palette_array


class SegmentationPredictor(Protocol):
    """What the pipeline needs of ``seglite.inference.predictor.Predictor``."""

    palette: Sequence[Sequence[int]] | None
    class_names: Sequence[str]

    def predict_batch(self, images: list[np.ndarray]) -> list[np.ndarray]: ...


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
