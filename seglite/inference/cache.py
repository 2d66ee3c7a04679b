"""The cache of converted models: entries keyed by content, verified on every load, never an error.

``Predictor.from_checkpoint`` converts a checkpoint (the ONNX segmenter graph, NNCF's int8 OpenVINO
IR) once and keeps the result in a folder, under a name that hashes the checkpoint's SHA-256, the
conversion settings and the versions that convert. Two rules:

- An entry is used only when its files hash to the SHA-256 recorded when they were written (a
  sidecar ``KEY.sha256`` in ``sha256sum`` format, written atomically after the files). A runtime
  reads altered weight bytes without complaint and then computes wrong masks, run after run; so an
  entry that is altered, truncated, or has no recorded hash (an older seglite's, or one cut short)
  is discarded with one line on stderr and converted again.
- A cache is an optimisation: an entry that cannot be written (read-only folder, full disk, a
  runtime's own error type from its writer) is skipped and leaves no half-written files behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

import seglite
from seglite.errors import ModelLoadError
from seglite.files import file_sha256, write_bytes, write_text
from seglite.inference.engine import error_reason

if TYPE_CHECKING:
    import openvino

HASHES_SUFFIX = ".sha256"
"""The sidecar of an entry ``KEY.onnx`` or ``KEY.xml`` + ``KEY.bin``: ``KEY.sha256``, ``sha256sum -c`` checks it."""


def hashes_path(path: Path) -> Path:
    """The file recording the SHA-256 of the entry whose main file is ``path``."""
    return path.with_suffix(HASHES_SUFFIX)


def format_hashes(digests: dict[str, str]) -> str:
    """``sha256sum`` lines (``HEX  NAME``) of ``{file name: hex digest}``."""
    return "".join(f"{digest}  {name}\n" for name, digest in digests.items())


def read_hashes(path: Path) -> dict[str, str] | None:
    """``{file name: hex digest}`` recorded in ``path``; ``None`` when it is missing or malformed."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    recorded = {}
    for line in lines:
        digest, separator, name = line.partition("  ")
        if not separator or len(digest) != 64 or not name:
            return None
        recorded[name] = digest
    return recorded or None


def mismatch(path: Path, digests: dict[str, str]) -> str | None:
    """Why the entry of ``path`` with files hashing to ``digests`` may not be used; ``None`` when it matches its record."""
    recorded = read_hashes(hashes_path(path))
    if recorded is None:
        return f"no SHA-256 recorded in {hashes_path(path).name}: written by an older seglite or cut short"
    for name, digest in digests.items():
        if recorded.get(name) != digest:
            return f"the SHA-256 of {name} differs from the one recorded when it was written: altered or damaged on disk"
    return None


def file_digests(files: Iterable[Path]) -> dict[str, str] | str:
    """``{file name: hex SHA-256}`` of ``files``, or why one cannot be read."""
    digests = {}
    for file in files:
        try:
            digests[file.name] = file_sha256(file)
        except OSError as error:
            return f"cannot read {file.name}: {error.strerror or error}"
    return digests


def discard(reason: str, *paths: Path) -> None:
    """Remove a cache entry that may not be used (and its recorded hashes), saying so in one line."""
    for path in (*paths, hashes_path(paths[0])):
        with contextlib.suppress(OSError):  # rebuilt anyway; the atomic writes then replace it
            path.unlink(missing_ok=True)
    print(f"seglite: discarded the damaged cache entry {paths[0]} ({reason[:200]}); rebuilding it from the checkpoint",
          file=sys.stderr)


def remove_entry(*paths: Path) -> None:
    """Delete what a failed write put in place of an entry, quietly: a half entry is not worth a message."""
    for path in (*paths, hashes_path(paths[0])):
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


class ConversionCache:
    """Converted graphs of one checkpoint, in a folder keyed by content: never beside the user's files.

    The key hashes the checkpoint's SHA-256, the conversion settings and the versions that
    convert. Entries are verified against their recorded SHA-256 on load (module docstring). A
    cache that cannot be written (read-only home, full disk) is skipped, not an error.

    Args:
        folder: where entries live; ``None``: no cache.
        checkpoint_sha256: the checkpoint's hex SHA-256; ``None``: no cache (nothing to key it by).
    """

    def __init__(self, folder: Path | None, checkpoint_sha256: str | None) -> None:
        self.folder = folder if checkpoint_sha256 else None
        self.checkpoint_sha256 = checkpoint_sha256

    def path(self, *settings: Any, suffix: str) -> Path | None:
        """The main file of the entry for ``settings``; ``None`` without a cache."""
        if self.folder is None:
            return None
        versions = (seglite.__version__, torch.__version__)
        key = hashlib.sha256(repr((self.checkpoint_sha256, settings, versions)).encode()).hexdigest()[:24]
        return self.folder / f"{self.checkpoint_sha256[:12]}-{key}{suffix}"

    def load(self, make: Callable[[], bytes], load: Callable[[bytes], Any], *settings: Any, suffix: str = ".onnx") -> Any:
        """``load(data)`` of the cached entry for ``settings`` when it is verified and loads; otherwise
        the entry is discarded (a note on stderr) and made again by ``make``, so a damaged cache never
        outlives one run."""
        path = self.path(*settings, suffix=suffix)
        if path is not None and path.is_file():
            loaded = self._load_verified(path, load)
            if loaded is not None:
                return loaded
        data = make()
        if path is not None:
            self._store_bytes(path, data)
        return load(data)

    def _load_verified(self, path: Path, load: Callable[[bytes], Any]) -> Any | None:
        """``load`` of the bytes at ``path`` if they match their recorded hash and load; ``None`` after discarding them."""
        try:
            data = path.read_bytes()
        except OSError as error:
            discard(f"cannot read it: {error.strerror or error}", path)
            return None
        # hashed in memory: the bytes checked are the bytes loaded, even if another process replaces the file
        reason = mismatch(path, {path.name: hashlib.sha256(data).hexdigest()})
        if reason is not None:
            discard(reason, path)
            return None
        try:
            return load(data)
        except Exception as error:  # each runtime raises its own types on a graph it cannot read
            discard(error_reason(error), path)
            return None

    @staticmethod
    def _store_bytes(path: Path, data: bytes) -> None:
        """Write the entry and then its hash, each atomically; any failure skips the cache."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(path, data)
            write_text(hashes_path(path), format_hashes({path.name: hashlib.sha256(data).hexdigest()}))
        except Exception:  # a cache is an optimisation: a full disk or a link in the way is no error
            remove_entry(path)

    def load_ir(self, make: Callable[[], openvino.Model], *settings: Any) -> openvino.Model:
        """The OpenVINO IR cached for ``settings`` (``KEY.xml`` + ``KEY.bin``) when verified and
        readable; otherwise ``make()``, stored for the next run when the cache can be written."""
        from seglite.inference import openvino as ov_backend

        xml = self.path(*settings, suffix=".xml")
        if xml is None:
            return make()
        weights = xml.with_suffix(".bin")
        if xml.is_file():
            digests = file_digests((weights, xml))
            reason = digests if isinstance(digests, str) else mismatch(xml, digests)
            if reason is None:
                try:
                    return ov_backend.read_ir(xml)
                except ModelLoadError as error:
                    reason = str(error)
            discard(reason, xml, weights)
        model = make()
        self._store_ir(xml, model)
        return model

    @staticmethod
    def _store_ir(xml: Path, model: openvino.Model) -> None:
        """Save ``model`` beside the entry, move weights then graph into place, then record their hashes.

        Any failure skips the cache: OpenVINO's writer reports a full disk as a ``RuntimeError``
        (``basic_ios::clear: iostream error``), not an ``OSError``.
        """
        from seglite.inference import openvino as ov_backend

        weights = xml.with_suffix(".bin")
        try:
            xml.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".seglite-cache-", dir=xml.parent) as folder:
                staged_xml, staged_weights = Path(folder) / xml.name, Path(folder) / weights.name
                ov_backend.write_ir(model, staged_xml, staged_weights)
                digests = file_digests((staged_weights, staged_xml))
                if isinstance(digests, str):
                    raise OSError(digests)
                # renames within one folder: a reader sees whole files; weights first, since the .xml names them
                os.replace(staged_weights, weights)
                os.replace(staged_xml, xml)
            write_text(hashes_path(xml), format_hashes(digests))
        except Exception:  # a cache is an optimisation (see the docstring for why not only OSError)
            remove_entry(xml, weights)
