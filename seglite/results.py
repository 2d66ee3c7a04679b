"""Evaluation results as files: per-class JSON and CSV, a confusion-matrix image, Cityscapes-format predictions.

Plain code (no Lightning): the callback that feeds it during ``seglite test`` is
``seglite.lit.evaluation.EvaluationWriter``. Every file goes through :mod:`seglite.files`: written
atomically, never through a link, and recorded in the folder's manifest first, so that
``--overwrite`` replaces or deletes only what seglite wrote.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from seglite.data.cityscapes import trainids_to_labelids
from seglite.errors import OutputExistsError
from seglite.files import OutputManifest, make_dir, write_image, write_text
from seglite.metrics import SegmentationScores

RESULTS_JSON = "results.json"
RESULTS_CSV = "per_class_iou.csv"
CONFUSION_IMAGE = "confusion_matrix.png"
CONFIG_FILE = "config.yaml"  # where tools/test.py has Lightning save the evaluation's config
CITYSCAPES_FOLDER = "cityscapes"  # point CITYSCAPES_RESULTS here: it must hold nothing but the predictions
CITYSCAPES_IMAGE_SUFFIX = "_leftImg8bit"


# ------------------------------------------------------------------ the output folder
def _result_files(output_dir: Path, extra: Sequence[str]) -> list[Path]:
    return [output_dir / name for name in (RESULTS_JSON, RESULTS_CSV, CONFUSION_IMAGE, *extra)]


def _predictions(output_dir: Path) -> list[Path]:
    folder = output_dir / CITYSCAPES_FOLDER
    if folder.is_symlink() or not folder.is_dir():
        return []
    return sorted(folder.iterdir())


def result_paths(output_dir: Path, cityscapes: bool = False, extra: Sequence[str] = ()) -> list[Path]:
    """The files an evaluation writes into ``output_dir``, with the Cityscapes predictions there now."""
    output_dir = Path(output_dir)
    return _result_files(output_dir, extra) + (_predictions(output_dir) if cityscapes else [])


def existing_results(output_dir: Path, cityscapes: bool = False, extra: Sequence[str] = ()) -> list[Path]:
    """The result files (and a non-empty Cityscapes folder) that writing to ``output_dir`` would replace."""
    output_dir = Path(output_dir)
    found = [path for path in _result_files(output_dir, extra) if path.exists() or path.is_symlink()]
    if cityscapes and _predictions(output_dir):
        found.append(output_dir / CITYSCAPES_FOLDER)
    return found


def check_results_writable(
    output_dir: Path, cityscapes: bool = False, overwrite: bool = False, extra: Sequence[str] = ()
) -> None:
    """Check, before any slow work, that an evaluation may write into ``output_dir``.

    ``OutputExistsError`` when: the folder or its ``cityscapes/`` sub-folder is a symbolic link
    (nothing is written or deleted through one); results exist and ``overwrite`` is false; or,
    with ``overwrite``, a file that would be replaced or deleted is not in the folder's manifest
    (seglite did not write it: it stays, and so would be mixed with the new results).
    """
    output_dir = Path(output_dir)
    for folder, what in ((output_dir, "output folder"), (output_dir / CITYSCAPES_FOLDER, "Cityscapes folder")):
        if folder.is_symlink():
            raise OutputExistsError(
                f"{what} {folder} is a symbolic link; seglite never writes or deletes through links: "
                "remove the link or give the real path"
            )
        if folder.exists() and not folder.is_dir():
            raise OutputExistsError(f"{what} {folder} is a file; give a folder")
    OutputManifest(output_dir).check(result_paths(output_dir, cityscapes, extra), overwrite)


def clear_results(output_dir: Path, cityscapes: bool = False, extra: Sequence[str] = ()) -> None:
    """Delete the results of an earlier run that seglite wrote (its manifest lists them) and nothing else.

    Stale predictions would be found by the official evaluation's pattern search, so the
    Cityscapes folder is emptied of ours; call :func:`check_results_writable` first.
    """
    output_dir = Path(output_dir)
    manifest = OutputManifest(output_dir)
    for path in result_paths(output_dir, cityscapes, extra):
        if path.exists() and manifest.owns(path):
            manifest.remove(path)


def prepare_cityscapes_folder(output_dir: Path) -> Path:
    """Create ``output_dir/cityscapes`` (refusing links) and return it."""
    make_dir(Path(output_dir), "output folder")
    return make_dir(Path(output_dir) / CITYSCAPES_FOLDER, "Cityscapes folder")


# ------------------------------------------------------------------ per-class tables
def results_dict(scores: SegmentationScores, class_names: Sequence[str], **settings: Any) -> dict[str, Any]:
    """The scores as plain JSON data: summary, one entry per class and the raw confusion matrix."""
    confusion = scores.confusion.double()
    ground_truth = confusion.sum(dim=1).tolist()
    predicted = confusion.sum(dim=0).tolist()
    classes = []
    for index, name in enumerate(class_names):
        true_positive = float(confusion[index, index])
        classes.append(
            {
                "train_id": index,
                "name": name,
                "iou": _number(float(scores.iou[index])),
                "accuracy": true_positive / ground_truth[index] if ground_truth[index] > 0 else None,
                "ground_truth_pixels": int(ground_truth[index]),
                "predicted_pixels": int(predicted[index]),
            }
        )
    return {
        **settings,
        "miou": scores.miou,
        "pixel_accuracy": scores.pixel_accuracy,
        "mean_accuracy": scores.mean_accuracy,
        "classes": classes,
        "confusion": scores.confusion.tolist(),  # rows: ground truth, columns: prediction
    }


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value  # JSON has no NaN


def write_results(
    output_dir: Path, scores: SegmentationScores, class_names: Sequence[str], **settings: Any
) -> dict[str, Path]:
    """Write ``results.json``, ``per_class_iou.csv`` and ``confusion_matrix.png``; returns their paths.

    A failed write raises ``seglite.files.OutputWriteError`` naming the file and the reason.
    """
    output_dir = make_dir(Path(output_dir), "output folder")
    results = results_dict(scores, class_names, **settings)
    paths = {"json": output_dir / RESULTS_JSON, "csv": output_dir / RESULTS_CSV, "confusion": output_dir / CONFUSION_IMAGE}
    OutputManifest(output_dir).claim(paths.values())
    write_text(paths["json"], json.dumps(results, indent=2) + "\n")
    table = io.StringIO(newline="")
    columns = ["train_id", "name", "iou", "accuracy", "ground_truth_pixels", "predicted_pixels"]
    writer = csv.DictWriter(table, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(results["classes"])
    writer.writerow({"name": "mean", "iou": results["miou"], "accuracy": results["mean_accuracy"]})
    write_text(paths["csv"], table.getvalue())
    write_image(paths["confusion"], confusion_image(scores.confusion, class_names))
    return paths


# ------------------------------------------------------------------ confusion-matrix image
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_DARK = np.array([110, 50, 10], dtype=np.float32)  # BGR of a fully filled cell (dark blue)


def confusion_image(confusion: torch.Tensor | np.ndarray, class_names: Sequence[str], cell: int = 34) -> np.ndarray:
    """A BGR image of the row-normalised confusion matrix in percent, class names on both axes.

    Rows are ground truth, columns predictions; a row without ground-truth pixels is grey.
    Drawn with OpenCV so that matplotlib is not needed.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    count = len(confusion)
    if len(class_names) != count:
        raise ValueError(f"class_names has {len(class_names)} names for a {count}x{count} confusion matrix")
    row_sums = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, row_sums, out=np.zeros_like(confusion), where=row_sums > 0)

    name_scale, value_scale, thickness = 0.45, 0.36, 1
    name_width = max(cv2.getTextSize(name, _FONT, name_scale, thickness)[0][0] for name in class_names) + 12
    axis_band = 22  # room for the axis titles
    left, top = axis_band + name_width, axis_band + name_width
    side = count * cell
    titles = ("prediction (% of each ground-truth row)", "ground truth")
    spans = [max(side, cv2.getTextSize(text, _FONT, 0.5, 1)[0][0] + 4) for text in titles]
    image = np.full((top + spans[1] + 10, left + spans[0] + 10, 3), 255, dtype=np.uint8)

    for row in range(count):
        for column in range(count):
            x, y = left + column * cell, top + row * cell
            value = normalised[row, column]
            if row_sums[row, 0] == 0:
                color = (220, 220, 220)
            else:
                color = tuple(int(c) for c in 255 - (255 - _DARK) * value)
            cv2.rectangle(image, (x, y), (x + cell - 1, y + cell - 1), color, -1)
            if row_sums[row, 0] > 0 and value >= 0.005:
                text = f"{100 * value:.0f}"
                (width, height), _ = cv2.getTextSize(text, _FONT, value_scale, thickness)
                ink = (255, 255, 255) if value > 0.5 else (0, 0, 0)
                origin = (x + (cell - width) // 2, y + (cell + height) // 2)
                cv2.putText(image, text, origin, _FONT, value_scale, ink, thickness, cv2.LINE_AA)
    cv2.rectangle(image, (left - 1, top - 1), (left + side, top + side), (0, 0, 0), 1)

    # row names, right-aligned against the matrix
    for row, name in enumerate(class_names):
        (width, height), _ = cv2.getTextSize(name, _FONT, name_scale, thickness)
        origin = (left - 6 - width, top + row * cell + (cell + height) // 2)
        cv2.putText(image, name, origin, _FONT, name_scale, (0, 0, 0), thickness, cv2.LINE_AA)
    # column names: drawn as rows of a strip, then turned to read bottom-up above the matrix
    strip = np.full((side, name_width, 3), 255, dtype=np.uint8)
    for column, name in enumerate(class_names):
        (_, height), _ = cv2.getTextSize(name, _FONT, name_scale, thickness)
        cv2.putText(strip, name, (6, column * cell + (cell + height) // 2), _FONT, name_scale, (0, 0, 0), thickness, cv2.LINE_AA)
    image[top - name_width : top, left : left + side] = cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)

    for text, span, rotate in zip(titles, spans, (False, True)):
        band = np.full((axis_band, span, 3), 255, dtype=np.uint8)
        width = cv2.getTextSize(text, _FONT, 0.5, 1)[0][0]
        start = max(2, (side - width) // 2)
        # turned counter-clockwise, the band's right end lands at the matrix's top
        x = span - start - width if rotate else start
        cv2.putText(band, text, (x, axis_band - 7), _FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        if rotate:
            image[top : top + span, :axis_band] = cv2.rotate(band, cv2.ROTATE_90_COUNTERCLOCKWISE)
        else:
            image[:axis_band, left : left + span] = band
    return image


# ------------------------------------------------------------------ Cityscapes benchmark format
def cityscapes_prediction_name(image_path: str | Path) -> str:
    """``<name>_leftImg8bit.png`` for an input image ``<name>_leftImg8bit.<ext>`` (or ``<name>.<ext>``).

    The official evaluation finds the prediction of ``<city>_<seq>_<frame>_gtFine_labelIds.png``
    by the pattern ``<city>_<seq>_<frame>*.png``.
    """
    stem = Path(image_path).stem
    if stem.endswith(CITYSCAPES_IMAGE_SUFFIX):
        stem = stem[: -len(CITYSCAPES_IMAGE_SUFFIX)]
    return f"{stem}{CITYSCAPES_IMAGE_SUFFIX}.png"


def _image_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from the image header, without decoding the pixels (OpenCV cannot)."""
    from PIL import Image  # a dependency of torchvision

    try:
        with Image.open(path) as image:
            return image.height, image.width
    except OSError:
        return None


def cityscapes_prediction_path(image_path: str | Path, folder: Path) -> Path:
    """Where the prediction for ``image_path`` goes in ``folder``."""
    return Path(folder) / cityscapes_prediction_name(image_path)


def write_cityscapes_prediction(train_ids: np.ndarray, image_path: str | Path, folder: Path) -> Path:
    """Write one prediction as a label-id PNG at the input image's full size; returns its path.

    Predictions made at a reduced size (a data module that downscales for testing) are
    enlarged with nearest-neighbour sampling: the benchmark compares at full resolution.
    Written without an fsync each (many small files); a results folder's writer lists the
    path in the folder's manifest once it is written.
    """
    label_ids = trainids_to_labelids(np.asarray(train_ids))
    size = _image_size(Path(image_path))
    if size is not None and size != label_ids.shape:
        label_ids = cv2.resize(label_ids, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return write_image(cityscapes_prediction_path(image_path, folder), label_ids, durable=False)
