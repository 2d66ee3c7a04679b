"""Where a run's results go: the overlay video (``VideoSink``) and the per-frame masks (``MaskFolder``).

Both replace only on success: they write into hidden temporary files or folders and move them in
once the run has succeeded. ``check_video_output`` checks a video output before any slow work;
``partial_path`` names where an interrupted run keeps the frames done.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from seglite.errors import OutputExistsError, SegliteError
from seglite.files import (
    OutputManifest,
    StagedOutputs,
    check_output_file,
    current_umask,
    make_dir,
    missing_folders,
    remove_empty_folders,
    same_file,
    write_error,
    write_image,
)
from seglite.inference.video.source import FrameSource, ImageFilesSource, VideoIOError

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
