"""Safe file output shared by every tool: refuse to overwrite, never write through links, atomic writes.

The one place seglite decides whether an output may be written (house style, rule 18):

- ``check_output_file`` / ``check_output_dir`` refuse an existing output unless asked to
  overwrite, a symbolic link (nothing is written or deleted through one), and an output that
  is one of the inputs (``os.path.samefile``: a hard link to the input counts).
- ``atomic_write`` writes through a temporary file beside the target, flushed to disk and
  renamed over it, so a crash or a full disk leaves the previous file (or none), never a
  truncated one; the result gets the usual permissions (``0o666`` less the umask).
- A failed write raises ``OutputWriteError`` naming the file and the reason (disk full,
  read-only file system, permission denied).

Pure Python (OpenCV only inside ``encode_image``): safe to import from any layer.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from seglite.errors import OutputExistsError, SegliteError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""Image files seglite reads as inputs (data sets, prediction, frame folders), lower case."""


class InputNotFoundError(SegliteError, FileNotFoundError):
    """An input file (checkpoint, model, image, video) does not exist."""


class OutputWriteError(SegliteError, OSError):
    """An output could not be written; the message names the file and the reason."""


def is_image_file(path: str | Path) -> bool:
    """True for a regular file (or a link to one) with an extension of ``IMAGE_EXTENSIONS``."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def require_file(path: str | Path, what: str) -> Path:
    """``path`` as a ``Path``; ``InputNotFoundError`` naming it and ``what`` it should be otherwise."""
    path = Path(path)
    if not path.is_file():
        reason = "is a folder" if path.is_dir() else "does not exist"
        raise InputNotFoundError(f"{what} not found: {path} {reason}")
    return path


def describe_os_error(error: OSError) -> str:
    """A short reason for a failed write: 'disk full', 'read-only file system', ..."""
    reasons = {
        errno.ENOSPC: "disk full",
        errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.ENOENT: "folder does not exist",
        errno.EISDIR: "is a folder",
        errno.ENOTDIR: "a parent is not a folder",
        errno.EFBIG: "file too large",
    }
    return reasons.get(error.errno, error.strerror or str(error))


def write_error(path: str | Path, error: OSError) -> OutputWriteError:
    """The ``OutputWriteError`` for ``error`` while writing ``path`` (raise it ``from error``)."""
    result = OutputWriteError(f"cannot write {path}: {describe_os_error(error)}")
    result.errno = error.errno
    return result


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when both paths exist and are the same file (hard links and symlinks resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _refuse_link(path: Path, what: str) -> None:
    if path.is_symlink():
        raise OutputExistsError(
            f"{what} {path} is a symbolic link; seglite never writes or deletes through links: "
            "remove the link or give the real path"
        )


def check_output_file(
    path: str | Path,
    overwrite: bool = False,
    inputs: Iterable[str | Path] = (),
    what: str = "output",
    make_parent: bool = True,
) -> Path:
    """Check that ``path`` may be written, before any slow work; returns it as a ``Path``.

    Refused (``OutputExistsError``): a symbolic link, a folder, an existing file unless
    ``overwrite``, and a file that is one of ``inputs`` (also with ``overwrite``). The parent
    folder is created with ``make_parent`` (``OutputWriteError`` if it cannot be).
    """
    path = Path(path)
    _refuse_link(path, what)
    if path.is_dir():
        raise OutputExistsError(f"{what} {path} is a folder; give a file path")
    for source in inputs:
        if same_file(path, source):
            raise OutputExistsError(f"{what} {path} is the input {source}; choose another path")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{what} {path} exists; pass --overwrite to replace it or choose another path")
    if make_parent:
        make_dir(path.parent)
    elif not path.parent.is_dir():
        raise OutputWriteError(f"cannot write {path}: folder {path.parent} does not exist")
    return path


def make_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path`` (and its parents); refuse a symbolic link or a file there; check it is writable."""
    path = Path(path)
    _refuse_link(path, what)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{what} {path} is a file; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputWriteError(f"cannot create {what} {path}: {describe_os_error(error)}") from error
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputWriteError(f"cannot write into {what} {path}: permission denied or read-only file system")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], None], suffix: str = ".partial") -> Path:
    """Write ``path`` through a temporary file in its folder: ``write(temporary)``, fsync, rename.

    A failure at any point (an exception in ``write``, a full disk, an interrupt) removes the
    temporary file and leaves ``path`` as it was. ``OSError`` becomes ``OutputWriteError``.
    A symbolic link at ``path`` is refused rather than replaced. ``suffix`` ends the temporary
    file's name, for writers that choose the format by extension (``".mp4"`` for OpenCV's).
    """
    path = Path(path)
    _refuse_link(path, "output")
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as error:
        raise write_error(path, error) from error
    os.close(descriptor)
    try:
        write(Path(temporary))
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(temporary, path)
        _fsync_dir(path.parent)
    except OSError as error:
        raise write_error(path, error) from error
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable; not every file system allows opening a folder, which is fine."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically write ``data`` to ``path`` (see ``atomic_write``)."""
    return atomic_write(path, lambda temporary: temporary.write_bytes(data))


def write_text(path: str | Path, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path`` (see ``atomic_write``)."""
    return write_bytes(path, text.encode("utf-8"))


def encode_image(path: str | Path, image: np.ndarray) -> bytes:
    """``image`` (grey, or BGR as OpenCV takes it) encoded in the format of ``path``'s extension."""
    import cv2

    suffix = Path(path).suffix.lower() or ".png"
    try:
        ok, buffer = cv2.imencode(suffix, image)
    except cv2.error as error:
        raise OutputWriteError(f"cannot encode {path} as {suffix}: {str(error).strip().splitlines()[-1]}") from error
    if not ok:
        raise OutputWriteError(f"cannot encode {path} as {suffix}")
    return buffer.tobytes()


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Encode and atomically write an image (grey or BGR); a failure is an ``OutputWriteError``."""
    return write_bytes(path, encode_image(path, image))


MANIFEST_NAME = ".seglite-manifest"
"""The file in an output folder that lists what seglite wrote there (one relative path a line)."""


class OutputManifest:
    """What a tool wrote into an output folder, so that ``--overwrite`` replaces or deletes only that.

    A path is recorded *before* its file is written, so after a crash the manifest lists every
    file that may exist (appends of one short line are atomic, also from several processes).
    Anything in the folder that the manifest does not list is the user's and is never touched.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST_NAME

    def names(self) -> set[str]:
        """The recorded paths, relative to the folder."""
        if self.path.is_symlink() or not self.path.is_file():
            return set()
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        return {line for line in lines if line and not line.startswith("#")}

    def _relative(self, path: str | Path) -> str:
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(self.folder))
        if relative.startswith(".."):
            raise ValueError(f"{path} is not inside {self.folder}")
        return Path(relative).as_posix()

    def owns(self, path: str | Path) -> bool:
        """True when ``path`` (a path inside the folder) was recorded and is still a regular file, not a link."""
        path = Path(path)
        relative = self._relative(path)
        through_link = any((self.folder / parent).is_symlink() for parent in Path(relative).parents if parent != Path("."))
        return relative in self.names() and path.is_file() and not path.is_symlink() and not through_link

    def record(self, *paths: str | Path) -> None:
        """Add ``paths`` (paths inside the folder) to the manifest; call before writing them."""
        lines = "".join(f"{self._relative(path)}\n" for path in paths)
        _refuse_link(self.path, "manifest")
        try:
            new = not self.path.exists()
            with open(self.path, "a", encoding="utf-8") as file:
                if new:
                    file.write("# files written by seglite; --overwrite replaces or deletes only these\n")
                file.write(lines)
        except OSError as error:
            raise write_error(self.path, error) from error

    def check_replaceable(self, paths: Iterable[str | Path], what: str = "output") -> None:
        """``OutputExistsError`` naming the existing ``paths`` that seglite did not write (or that are links)."""
        foreign = [Path(path) for path in paths if (Path(path).exists() or Path(path).is_symlink()) and not self.owns(path)]
        if foreign:
            shown = ", ".join(str(path) for path in foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise OutputExistsError(
                f"--overwrite replaces only files seglite wrote, and {len(foreign)} {what} file(s) are not in "
                f"{self.path} or are links: {shown}; remove them yourself or choose another output folder"
            )

    def remove(self, paths: Iterable[str | Path]) -> None:
        """Delete ``paths`` that the manifest owns (never through a link); others are left alone."""
        for path in paths:
            if self.owns(path):
                try:
                    Path(path).unlink()
                except OSError as error:
                    raise OutputWriteError(f"cannot delete {path}: {describe_os_error(error)}") from error
