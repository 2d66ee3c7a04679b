"""An up-front read of every mask of a split: a bad file is an error before training, not when it is sampled.

:func:`check_masks` reads each mask through the data set's own ``read_mask``, the reader and
label encoding training uses (PNG bit depths, palette indices, the void value, ``label_map``,
colour palettes, Cityscapes' id table), and raises one ``DataFormatError`` naming every bad
file with its values, their pixel counts and what was expected.

``check_masks: auto`` reads a split of at most :data:`AUTO_LIMIT` masks every time (CamVid's
367 training masks take about a third of a second on two cores), and a larger split when it
has not been read clean before. A clean read of a larger split leaves a small record in
seglite's cache folder (``mask-checks/<key>``); the key hashes seglite's version, the data
set's class and label encoding, and every mask's path, size and modification time, so
changing, adding or removing a mask, or the encoding, makes the split new again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, Protocol

from seglite.errors import DataFormatError, DataReadError, SegliteError
from seglite.files import cache_dir, write_text

AUTO_LIMIT = 2000
"""``auto`` reads a split of at most this many masks every time; a larger one once (until it changes)."""

CheckMasks = bool | Literal["auto"]
RECORD_FOLDER = "mask-checks"


class LabelledDataset(Protocol):
    """A seglite data set: its (image, mask or ``None``) file pairs, and one mask read as training reads it."""

    samples: list[tuple[Path, Path | None]]

    def __len__(self) -> int: ...

    def read_mask(self, index: int): ...


def check_setting(value: object, owner: str) -> None:
    """``ValueError`` naming ``check_masks`` unless it is ``True``, ``False`` or ``"auto"``."""
    if not (isinstance(value, bool) or value == "auto"):
        raise ValueError(f"{owner}: check_masks must be true, false or 'auto', got {value!r}")


def check_masks(dataset: LabelledDataset, split: str, setting: CheckMasks = "auto") -> str | None:
    """Read every mask of ``dataset`` when ``setting`` asks for it; a line for the log saying what was done.

    Raises:
        DataFormatError: one or more masks cannot be read or hold values the encoding does not
            account for; the message has a line per file (one line in all for one file).
    """
    masks = [mask for _, mask in dataset.samples if mask is not None]
    if setting is False or not masks:
        return None
    record = _record_path(dataset, masks) if len(masks) > AUTO_LIMIT else None
    if setting == "auto" and record is not None and record.is_file():
        return (
            f"check_masks: the {len(masks)} masks of split {split!r} were read clean before and are unchanged; "
            "not read again (check_masks: true reads them)"
        )
    start = time.perf_counter()
    problems = _read_all(dataset)
    if len(problems) == 1:
        raise DataFormatError(f"check_masks: 1 of the {len(masks)} masks of split {split!r} is not usable: {problems[0]}")
    if problems:
        raise DataFormatError(
            f"check_masks: {len(problems)} of the {len(masks)} masks of split {split!r} are not usable "
            "(every mask was read before training; fix or remove these files):\n" + "\n".join(f"  {problem}" for problem in problems)
        )
    if record is not None:
        _save_record(record, split, len(masks))
    return f"check_masks: read the {len(masks)} masks of split {split!r} in {time.perf_counter() - start:.1f} s: all usable"


def _read_all(dataset: LabelledDataset) -> list[str]:
    """The error message of every mask that does not read, in the data set's order."""

    def problem(index: int) -> str | None:
        try:
            dataset.read_mask(index)
        except (DataFormatError, DataReadError) as error:
            return str(error)
        return None

    # threads, not processes: PNG decoding (OpenCV, zlib) releases the GIL, and nothing is forked
    with ThreadPoolExecutor(max_workers=_usable_cpus()) as pool:
        return [message for message in pool.map(problem, range(len(dataset))) if message is not None]


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _record_path(dataset: LabelledDataset, masks: list[Path]) -> Path | None:
    """The record of a clean read of exactly these mask files; ``None`` when one cannot be looked at."""
    import seglite

    files = []
    for mask in masks:
        try:
            status = mask.stat()
        except OSError:
            return None  # the read names the file
        files.append([os.path.abspath(mask), status.st_size, status.st_mtime_ns])
    identity = {
        "seglite": seglite.__version__,
        "dataset": f"{type(dataset).__module__}.{type(dataset).__qualname__}",
        "encoding": repr(getattr(dataset, "encoding", None)),
        "masks": files,
    }
    key = hashlib.sha256(json.dumps(identity).encode("utf-8")).hexdigest()
    return cache_dir() / RECORD_FOLDER / key


def _save_record(record: Path, split: str, count: int) -> None:
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        write_text(record, json.dumps({"split": split, "masks": count}) + "\n", durable=False)
    except (OSError, SegliteError):
        pass  # a read-only or full cache costs the record, nothing else: the split is read again next time
