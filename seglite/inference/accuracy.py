"""How accurate and how fast predictors are on a data set: mIoU and time per image, side by side.

The measure every deployment path is judged by (the mIoU change of bf16, int8 or a phone file
against PyTorch fp32): ``tools/export.py`` and ``benchmarks/predictor.py`` print it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from seglite.data import CityscapesDataset
from seglite.inference.predictor import Predictor
from seglite.metrics import SegmentationScores, confusion_matrix, scores_from_confusion


def dataset_images(root: str | Path, split: Literal["train", "val", "test"] = "train", count: int | None = 32) -> list[np.ndarray]:
    """``count`` RGB images spread evenly over a Cityscapes-layout split (all with ``None``)."""
    dataset = CityscapesDataset(str(root), split)
    total = len(dataset) if count is None else min(count, len(dataset))
    indices = np.linspace(0, len(dataset) - 1, total).round().astype(int) if total else []
    return [dataset[int(index)]["image"] for index in indices]


@dataclass(frozen=True)
class ModelEvaluation:
    """Scores of one model on a split and its median time per image (``Predictor.predict``, pre- and postprocessing included)."""

    name: str
    scores: SegmentationScores
    median_seconds: float


def evaluate_predictors(
    predictors: Mapping[str, Predictor],
    root: str | Path,
    split: Literal["train", "val"] = "val",
    limit: int | None = None,
    ignore_index: int = 255,
) -> list[ModelEvaluation]:
    """mIoU of each predictor on a Cityscapes-layout split, and its median time per image.

    The models take turns on every image (after one warm-up image each), so that a machine
    that gets busier or quieter during the run affects them alike.
    """
    if not predictors:
        raise ValueError("predictors is empty")
    dataset = CityscapesDataset(str(root), split)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    num_classes = {predictor.num_classes for predictor in predictors.values()}
    if len(num_classes) != 1:
        raise ValueError(f"the predictors disagree on the number of classes: {sorted(num_classes)}")
    classes = min(num_classes)
    confusions = {name: torch.zeros(classes, classes, dtype=torch.int64) for name in predictors}
    times: dict[str, list[float]] = {name: [] for name in predictors}
    for predictor in predictors.values():
        predictor.predict(dataset[0]["image"])
    for index in range(count):
        sample = dataset[index]
        target = torch.from_numpy(sample["mask"].astype(np.int64))
        for name, predictor in predictors.items():
            start = time.perf_counter()
            mask = predictor.predict(sample["image"])
            times[name].append(time.perf_counter() - start)
            confusions[name] += confusion_matrix(torch.from_numpy(mask), target, classes, ignore_index)
    return [
        ModelEvaluation(name, scores_from_confusion(confusions[name]), statistics.median(times[name]))
        for name in predictors
    ]


def comparison_table(evaluations: Sequence[ModelEvaluation]) -> str:
    """A plain-text table of mIoU and time per image, with the change against the first row."""
    base = evaluations[0]
    width = max(8, *(len(evaluation.name) for evaluation in evaluations))
    lines = [f"{'model':<{width}}  mIoU (%)  change   ms/image  speed-up", "-" * (width + 42)]
    for evaluation in evaluations:
        change = 100 * (evaluation.scores.miou - base.scores.miou)
        speedup = base.median_seconds / evaluation.median_seconds if evaluation.median_seconds > 0 else float("nan")
        lines.append(
            f"{evaluation.name:<{width}}  {100 * evaluation.scores.miou:8.2f}  {change:+6.2f}  "
            f"{1000 * evaluation.median_seconds:9.1f}  {speedup:7.2f}x"
        )
    return "\n".join(lines)
