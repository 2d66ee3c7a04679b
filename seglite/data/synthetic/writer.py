"""Writing the demo set in the Cityscapes layout, and the demo video.

The demo set is only ever written into a missing or empty folder, or into one it wrote itself:
``make_demo_dataset`` first leaves a marker file (``.seglite-demo.json``, recording its options),
and marks it complete only once every file is written. A folder without the marker that holds
anything is refused, so a user's own data is never mixed with (or replaced by) synthetic scenes.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from seglite.checks import check_non_negative_int, check_size
from seglite.errors import OutputExistsError
from seglite.files import OutputWriteError, current_umask, make_dir, write_error, write_image, write_text

from .render import make_scene_image, render
from .scene import Scene, sample_scene
from .textures import Fields

SPLIT_CITIES = {"train": "synthtown", "val": "mockville", "test": "fakeburg"}
VIDEO_NAME = "demo_street.mp4"
DEMO_MARKER = ".seglite-demo.json"
"""Marker file of a folder the demo generator wrote: its options and whether it finished."""


def read_demo_marker(root: str | Path) -> dict[str, Any] | None:
    """The marker of a demo folder (``{"complete": bool, "options": {...}}``), or ``None`` if ``root`` has none."""
    path = Path(root) / DEMO_MARKER
    if path.is_symlink() or not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("seglite_demo") == 1 else None


def is_demo_folder(root: str | Path) -> bool:
    """True when ``root`` holds a demo set's marker (finished or not)."""
    return read_demo_marker(root) is not None


def check_demo_root(root: str | Path) -> Path:
    """``root`` as a ``Path`` if the demo set may be written there: missing, empty, or a demo folder.

    ``OutputExistsError`` naming the folder and a few of its entries otherwise.
    """
    root = Path(root)
    if root.is_symlink():
        raise OutputExistsError(f"demo folder {root} is a symbolic link; seglite never writes through links: give the real path")
    if root.exists() and not root.is_dir():
        raise OutputExistsError(f"demo folder {root} is a file; give a folder")
    if root.is_dir() and not is_demo_folder(root):
        entries = sorted(entry.name for entry in root.iterdir())
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise OutputExistsError(
                f"will not write the synthetic demo set into {root}: the folder holds other files ({shown}) and was "
                f"not written by seglite (no {DEMO_MARKER}); give a missing or empty folder"
            )
    return root


def _demo_files(options: dict[str, Any]) -> list[str]:
    """The files (relative paths) a demo set with these options consists of, marker and video excepted."""
    names = []
    for split, city in SPLIT_CITIES.items():
        for i in range(int(options.get(f"num_{split}", 0))):
            name = f"{city}_{i:06d}_000019"
            names.append(f"leftImg8bit/{split}/{city}/{name}_leftImg8bit.png")
            if split != "test":
                names.append(f"gtFine/{split}/{city}/{name}_gtFine_labelIds.png")
    return names


def _remove_stale(root: Path, previous: dict[str, Any] | None, options: dict[str, Any]) -> None:
    """Delete the files an earlier demo run wrote into ``root`` (its marker names them) that this run will not
    rewrite, so that no stale image joins the new set."""
    if previous is None:
        return
    stale = set(_demo_files(previous.get("options", {}))) - set(_demo_files(options))
    if previous.get("options", {}).get("video") and not options["video"]:
        stale.add(VIDEO_NAME)
    for name in sorted(stale):
        path = root / name
        if path.is_file() and not path.is_symlink():
            path.unlink()


def make_demo_dataset(
    root: str | Path,
    num_train: int = 200,
    num_val: int = 30,
    num_test: int = 10,
    size: tuple[int, int] = (256, 512),
    seed: int = 0,
    video: bool = True,
    video_seconds: float = 4.0,
) -> Path:
    """Write the demo set in the Cityscapes layout at ``root`` (label-id PNGs; test images unlabelled).

    Deterministic for a ``seed``: image ``i`` of a split depends only on (seed, split, i).
    Also writes ``root/demo_street.mp4`` (a moving street, ``video_seconds`` long) when ``video``.
    ``root`` must be missing, empty, or a folder this function wrote before (whose files it then
    replaces); anything else is refused with ``OutputExistsError``. A failed write raises
    ``OutputWriteError`` naming the file. Returns ``root``.
    """
    height, width = check_size("size", size, owner="make_demo_dataset")
    if height < 32 or width < 32:
        raise ValueError(f"make_demo_dataset: size must be at least 32x32, got {size}")
    counts = {"train": num_train, "val": num_val, "test": num_test}
    for split, count in counts.items():
        check_non_negative_int(f"num_{split}", count, owner="make_demo_dataset")
    root = check_demo_root(root)
    options = {f"num_{split}": count for split, count in counts.items()}
    options.update(size=[height, width], seed=seed, video=bool(video), video_seconds=video_seconds)
    previous = read_demo_marker(root)
    make_dir(root, "demo folder")
    _remove_stale(root, previous, options)
    _write_marker(root, options, complete=False)  # first, so an interrupted run is recognised as ours
    for split_index, (split, count) in enumerate(counts.items()):
        city = SPLIT_CITIES[split]
        image_dir, label_dir = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
        make_dir(image_dir, "demo folder")
        if split != "test":
            make_dir(label_dir, "demo folder")
        for i in range(count):
            rng = np.random.default_rng([seed, split_index, i])
            image, label_ids = make_scene_image(rng, (height, width))
            name = f"{city}_{i:06d}_000019"
            # no fsync per image: the marker, written last with one, says whether the set is complete
            write_image(image_dir / f"{name}_leftImg8bit.png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), durable=False)
            if split != "test":
                write_image(label_dir / f"{name}_gtFine_labelIds.png", label_ids, durable=False)
    if video:
        write_demo_video(root / VIDEO_NAME, size=(height, width), seconds=video_seconds, seed=seed)
    _write_marker(root, options, complete=True)
    return root


def _write_marker(root: Path, options: dict[str, Any], complete: bool) -> None:
    marker = {"seglite_demo": 1, "complete": complete, "options": options}
    write_text(root / DEMO_MARKER, json.dumps(marker, indent=2) + "\n")


def write_demo_video(
    path: str | Path, size: tuple[int, int] = (256, 512), seconds: float = 4.0, fps: int = 10, seed: int = 0
) -> Path:
    """Write an MP4 (OpenCV, ``mp4v``) of the camera driving down one synthetic street.

    Written through a temporary file that is read back before it replaces ``path``: OpenCV's
    writer reports no errors, so a full disk is caught by counting the frames that arrived.
    """
    height, width = size
    path = Path(path)
    rng = np.random.default_rng([seed, 99])
    scene = sample_scene(rng, height, width, travel=Scene.camera_speed * seconds)
    fields = Fields.make(rng, height, width)
    frames = max(int(seconds * fps), 1)

    # OpenCV picks the container from the extension, so the temporary file ends in .mp4
    make_dir(path.parent, "demo folder")
    if path.is_symlink():
        raise OutputExistsError(f"{path} is a symbolic link; seglite never writes through links")
    descriptor, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(descriptor)
    temporary = Path(name)
    try:
        writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise OutputWriteError(f"cannot write {path}: OpenCV cannot open an MP4 writer")
        try:
            for frame in range(frames):
                image, _ = render(scene, rng, time=frame / fps, fields=fields)
                writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
        capture = cv2.VideoCapture(str(temporary))
        written = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        capture.release()
        if written != frames:
            raise OutputWriteError(f"cannot write {path}: {written} of {frames} frames reached the disk (disk full?)")
        os.chmod(temporary, 0o666 & ~current_umask())  # mkstemp makes 0600
        os.replace(temporary, path)
    except OSError as error:
        if isinstance(error, OutputWriteError):
            raise
        raise write_error(path, error) from error
    finally:
        temporary.unlink(missing_ok=True)
    return path
