"""Segmentation metrics from a confusion matrix accumulated over a whole split.

Accumulation (and the sum across DDP processes) is torchmetrics' ``MulticlassConfusionMatrix``;
this module reduces the matrix to the Cityscapes numbers: per-class IoU, mIoU, pixel accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torchmetrics.classification import MulticlassConfusionMatrix


def confusion_matrix_metric(num_classes: int, ignore_index: int = 255) -> MulticlassConfusionMatrix:
    """A confusion-matrix accumulator (rows: ground truth, columns: prediction) that syncs under DDP."""
    # validate_args=False: the per-batch input checks cost more than the update itself
    return MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index, validate_args=False)


@dataclass(frozen=True)
class SegmentationScores:
    """The scores of one evaluation; ``iou`` holds NaN for classes absent from both labels and predictions."""

    confusion: torch.Tensor  # (C, C) pixel counts, rows: ground truth, columns: prediction
    iou: torch.Tensor
    miou: float
    pixel_accuracy: float
    mean_accuracy: float

    def table(self, class_names: Sequence[str] | None = None) -> str:
        """A plain-text per-class IoU table, as printed at the end of validation and test."""
        names = list(class_names) if class_names is not None else [str(i) for i in range(len(self.iou))]
        width = max(12, max(len(name) for name in names))
        lines = [f"{'class':<{width}}  IoU (%)", "-" * (width + 9)]
        for name, value in zip(names, self.iou.tolist()):
            shown = "   n/a" if value != value else f"{100 * value:6.2f}"
            lines.append(f"{name:<{width}}  {shown}")
        lines.append("-" * (width + 9))
        lines.append(f"{'mIoU':<{width}}  {100 * self.miou:6.2f}")
        lines.append(f"{'pixel acc.':<{width}}  {100 * self.pixel_accuracy:6.2f}")
        return "\n".join(lines)


def scores_from_confusion(confusion: torch.Tensor) -> SegmentationScores:
    """IoU per class = TP / (TP + FP + FN); mIoU is the mean over classes that occur (Cityscapes rule)."""
    confusion = confusion.double()
    true_positive = confusion.diag()
    ground_truth = confusion.sum(dim=1)
    predicted = confusion.sum(dim=0)
    union = ground_truth + predicted - true_positive
    iou = torch.where(union > 0, true_positive / union.clamp(min=1), torch.full_like(union, float("nan")))
    class_accuracy = torch.where(
        ground_truth > 0, true_positive / ground_truth.clamp(min=1), torch.full_like(union, float("nan"))
    )
    total = confusion.sum()
    return SegmentationScores(
        confusion=confusion.long(),
        iou=iou.float(),
        miou=float(iou.nanmean()) if (union > 0).any() else 0.0,
        pixel_accuracy=float(true_positive.sum() / total) if total > 0 else 0.0,
        mean_accuracy=float(class_accuracy.nanmean()) if (ground_truth > 0).any() else 0.0,
    )
