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
- ``StagedOutputs`` replaces only on success: a run writes its files into a hidden folder and
  moves them in once it has succeeded, so a failed or interrupted run costs no earlier output.

Pure Python (OpenCV only inside ``encode_image``): safe to import from any layer.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import json
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from seglite.errors import OutputExistsError, SegliteError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""Image files seglite reads as inputs (data sets, prediction, frame folders), lower case."""

CACHE_ENVIRONMENT = "SEGLITE_CACHE_DIR"


def cache_dir() -> Path:
    """seglite's cache folder: ``$SEGLITE_CACHE_DIR``, else ``$XDG_CACHE_HOME/seglite``, else ``~/.cache/seglite``."""
    if os.environ.get(CACHE_ENVIRONMENT):
        return Path(os.environ[CACHE_ENVIRONMENT])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "seglite"


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


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def _read_umask() -> int:
    mask = os.umask(0)  # the portable way to read it sets it; set back at once, while importing
    os.umask(mask)
    return mask


_IMPORT_UMASK = _read_umask()


def current_umask() -> int:
    """The process's umask now: from /proc on Linux (reading it with ``os.umask`` would change it
    for a moment under other threads), else as it was when seglite was imported."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return _IMPORT_UMASK


def atomic_write(path: str | Path, write: Callable[[Path], None], durable: bool = True) -> Path:
    """Write ``path`` through a temporary file in its folder: ``write(temporary)``, fsync, rename.

    A failure at any point (an exception in ``write``, a full disk, an interrupt) removes the
    temporary file and leaves ``path`` as it was. ``OSError`` becomes ``OutputWriteError``.
    A symbolic link at ``path`` is refused rather than replaced. ``durable=False`` skips the
    fsyncs (still atomic for other processes, not across a power cut): for many small outputs
    such as per-frame masks, where an fsync each would cost more than the write.
    """
    path = Path(path)
    _refuse_link(path, "output")
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as error:
        raise write_error(path, error) from error
    os.close(descriptor)
    try:
        write(Path(temporary))
        if durable:
            with open(temporary, "rb+") as file:
                os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(temporary, path)
        if durable:
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


def write_bytes(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """Atomically write ``data`` to ``path`` (see ``atomic_write``)."""
    return atomic_write(path, lambda temporary: temporary.write_bytes(data), durable)


def write_text(path: str | Path, text: str, durable: bool = True) -> Path:
    """Atomically write UTF-8 ``text`` to ``path`` (see ``atomic_write``)."""
    return write_bytes(path, text.encode("utf-8"), durable)


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


def write_image(path: str | Path, image: np.ndarray, durable: bool = True) -> Path:
    """Encode and atomically write an image (grey or BGR); a failure is an ``OutputWriteError``."""
    return write_bytes(path, encode_image(path, image), durable)


MANIFEST_NAME = ".seglite-outputs.json"


class OutputManifest:
    """The files seglite wrote into an output folder, so that ``--overwrite`` replaces only those.

    A file enters the manifest (``<folder>/.seglite-outputs.json``, written atomically) only
    once seglite has written it: tools ``claim`` each output after its write, so a run that fails
    or is killed claims nothing it did not write (a file written but not yet claimed when the
    process was killed counts as foreign: refused, never replaced). Only exact file names are
    listed; the wildcard patterns of older manifests no longer count. ``check`` refuses an
    existing output unless ``overwrite`` is given, and refuses it even then when seglite did not
    write it (a user's own file that happens to have an output's name) or when it, or a folder
    on the way to it, is a symbolic link.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST_NAME
        self._files: set[str] = set()
        self._unsaved = False
        self._saved_at = -math.inf
        if self.path.is_file() and not self.path.is_symlink():
            try:
                recorded = json.loads(self.path.read_text(encoding="utf-8"))
                self._files = {name for name in recorded.get("files", []) if isinstance(name, str)}
            except (OSError, ValueError, AttributeError, TypeError):
                pass  # unreadable: nothing counts as ours, so nothing is replaced

    def _key(self, path: str | Path) -> str:
        """``path`` relative to the folder, checking that no part of the way is a link."""
        path = Path(path)
        try:
            relative = path.relative_to(self.folder)
        except ValueError:
            raise OutputExistsError(f"{path} is not inside the output folder {self.folder}") from None
        current = self.folder
        for part in relative.parts:
            current = current / part
            _refuse_link(current, "output")
        return relative.as_posix()

    def owns(self, path: str | Path) -> bool:
        """True when seglite recorded ``path`` as one of its outputs in this folder."""
        return self._key(path) in self._files

    def check(self, paths: Iterable[str | Path], overwrite: bool, shown: int = 5) -> None:
        """Raise ``OutputExistsError`` if writing ``paths`` would replace anything it may not."""
        existing = [Path(path) for path in paths if self._key(path) and Path(path).exists()]
        if not existing:
            return
        listed = lambda found: ", ".join(map(str, found[:shown])) + (  # noqa: E731
            f" and {len(found) - shown} more" if len(found) > shown else ""
        )
        if not overwrite:
            raise OutputExistsError(
                f"outputs exist: {listed(existing)}; pass --overwrite to replace them or choose another folder"
            )
        foreign = [path for path in existing if not self.owns(path)]
        if foreign:
            raise OutputExistsError(
                f"{listed(foreign)} exist but were not written by seglite (they are not listed in {self.path}); "
                "--overwrite replaces only seglite's own outputs: move them away or choose another folder"
            )

    def record(self, paths: Iterable[str | Path]) -> None:
        """Note ``paths``, just written, as seglite's outputs; ``save`` writes the manifest."""
        added = {self._key(path) for path in paths} - self._files
        if added:
            self._files |= added
            self._unsaved = True

    def save(self, durable: bool = True, at_most_every: float = 0.0) -> None:
        """Write the manifest if ``record`` or ``remove`` changed it (``durable=False``: no fsync).

        ``at_most_every`` seconds: skip the write when the last one was more recent (for a loop
        writing thousands of outputs; save once more, without it, when the loop ends).
        """
        if not self._unsaved or time.monotonic() - self._saved_at < at_most_every:
            return
        make_dir(self.folder)
        write_text(self.path, json.dumps({"files": sorted(self._files)}, indent=0) + "\n", durable)
        self._unsaved = False
        self._saved_at = time.monotonic()

    def claim(self, paths: Iterable[str | Path], durable: bool = True) -> None:
        """Record ``paths`` as seglite's outputs and write the manifest at once: call it after
        writing them (``record`` and ``save`` to write the manifest less often)."""
        self.record(paths)
        self.save(durable)

    def foreign(self, pattern: str = "*") -> list[Path]:
        """Existing files matching ``pattern`` (relative, ``fnmatch``) that seglite did not write."""
        if not self.folder.is_dir():
            return []
        found = (path for path in self.folder.rglob("*") if path.name != MANIFEST_NAME and not path.is_dir())
        return sorted(
            path for path in found
            if fnmatch.fnmatchcase(path.relative_to(self.folder).as_posix(), pattern) and not self.owns(path)
        )

    def owned(self, pattern: str = "*") -> list[Path]:
        """Existing files seglite wrote here whose relative path matches ``pattern`` (``fnmatch``)."""
        return sorted(
            self.folder / name
            for name in self._files
            if fnmatch.fnmatchcase(name, pattern) and (self.folder / name).is_file()
        )

    def remove(self, path: str | Path, save: bool = True) -> None:
        """Delete one of seglite's own outputs (never through a link) and drop it from the manifest;
        others are refused. ``save=False`` leaves writing the manifest to a later ``save``."""
        if not self.owns(path):
            raise OutputExistsError(f"{path} was not written by seglite; it is left alone")
        Path(path).unlink(missing_ok=True)
        self._files.discard(self._key(path))
        self._unsaved = True
        if save:
            self.save()


def missing_folders(path: str | Path) -> list[Path]:
    """The folders of ``path`` (itself and its parents) that do not exist yet, deepest first: what
    ``make_dir(path)`` would create, for ``remove_empty_folders`` to undo after a failed run."""
    missing = []
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists() or folder.is_symlink() or str(folder) in ("", "."):
            break
        missing.append(folder)
    return missing


def remove_empty_folders(folders: Iterable[str | Path]) -> None:
    """Remove each of ``folders`` (deepest first) that is empty; a folder with anything in it stays."""
    for folder in folders:
        with contextlib.suppress(OSError):
            os.rmdir(folder)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then deliver them (a no-op outside the main thread).

    For the few renames that swap a run's outputs in: stopped half-way, a folder would mix two runs.
    A signal that is ignored, or handled outside Python, is left as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {}
    for number in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(number)
        if handler is not None and handler is not signal.SIG_IGN:
            previous[number] = signal.signal(number, lambda caught, frame: received.append(caught))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in received:
            signal.raise_signal(number)


class StagedOutputs:
    """A run's new files for an output folder, written into a hidden folder inside it and moved in on success.

    Replace only on success (house style, rule 23): until ``commit`` the folder holds exactly what
    it held before, so a run that fails or is interrupted costs no earlier output, and ``discard``
    removes what it staged. Files move in one by one (``os.replace``, atomic for each), not as one
    folder, because the output folder may also hold the user's own files, which stay where they are;
    the moves are not interrupted by Ctrl-C or SIGTERM (``signals_deferred``).

    Args:
        folder: the output folder; created if missing (see ``make_dir``).
        what: what the folder is, for error messages.
        staging: an existing staging folder to use (the processes of one run share it), else a new one.
    """

    def __init__(self, folder: str | Path, what: str = "output folder", staging: str | Path | None = None) -> None:
        self.folder = make_dir(folder, what)
        if staging is None:
            try:
                staging = tempfile.mkdtemp(prefix=".seglite-", suffix=".partial", dir=self.folder)
            except OSError as error:
                raise write_error(self.folder, error) from error
        self.path = Path(staging)

    def staged(self) -> list[Path]:
        """The files staged so far, relative to the staging folder (a manifest written there left out)."""
        if not self.path.is_dir():
            return []
        files = (path for path in self.path.rglob("*") if path.is_file() and path.name != MANIFEST_NAME)
        return sorted(path.relative_to(self.path) for path in files)

    def commit(self, overwrite: bool, stale: Iterable[str | Path] = ()) -> list[Path]:
        """Move the staged files into the folder and list them in its manifest; returns their paths there.

        What they replace is checked again (``OutputManifest.check``): a file that appeared during the
        run is refused as it would have been at the start, and then nothing moves. ``stale``: seglite's
        own earlier outputs to remove unless this run rewrote them (an earlier, longer run's masks).
        """
        names = self.staged()
        targets = [self.folder / name for name in names]
        manifest = OutputManifest(self.folder)
        manifest.check(targets, overwrite)
        with signals_deferred():
            manifest.claim(targets)  # listed before the moves: a listed name not yet moved is harmless
            for name, target in zip(names, targets):
                make_dir(target.parent)
                try:
                    os.replace(self.path / name, target)
                except OSError as error:
                    raise write_error(target, error) from error
            for path in map(Path, stale):
                if path not in targets and path.is_file() and not path.is_symlink() and manifest.owns(path):
                    manifest.remove(path, save=False)
            manifest.save()
            self.discard()
        return targets

    def discard(self) -> list[Path]:
        """Remove the staging folder and all it holds; returns the files it held (relative)."""
        held = self.staged()
        shutil.rmtree(self.path, ignore_errors=True)
        return held
