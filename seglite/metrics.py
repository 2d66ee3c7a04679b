"""Segmentation scores from a confusion matrix accumulated over a whole split: per-class IoU, mIoU, accuracy.

Plain torch. The training system accumulates the matrix with torchmetrics (which sums it over
DDP processes, ``seglite.lit.metrics``); :func:`confusion_matrix` computes the same matrix for one
batch without Lightning or torchmetrics, for deployment code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


def confusion_matrix(
    predictions: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """``(C, C)`` int64 pixel counts, rows ground truth, columns prediction; ``ignore_index`` pixels are left out.

    Target values outside ``0..num_classes-1`` (other than ``ignore_index``) are an error: they
    would otherwise land in another class's row.
    """
    target, predictions = target.reshape(-1).long(), predictions.reshape(-1).long()
    if target.shape != predictions.shape:
        raise ValueError(f"predictions and target must have as many pixels, got {predictions.numel()} and {target.numel()}")
    valid = target != ignore_index
    target, predictions = target[valid], predictions[valid]
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ValueError(f"target holds class ids outside 0..{num_classes - 1} (and {ignore_index} = ignore)")
    counts = torch.bincount(target * num_classes + predictions.clamp(0, num_classes - 1), minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


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
