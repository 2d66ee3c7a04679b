"""The confusion-matrix accumulator of validation and test: torchmetrics, so DDP processes sum their counts.

The reduction of the matrix to scores is plain torch and lives in :mod:`seglite.metrics`.
"""

from __future__ import annotations

from torchmetrics.classification import MulticlassConfusionMatrix


def confusion_matrix_metric(num_classes: int, ignore_index: int = 255) -> MulticlassConfusionMatrix:
    """A confusion-matrix accumulator (rows: ground truth, columns: prediction) that syncs under DDP."""
    # validate_args=False: the per-batch input checks cost more than the update itself
    return MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index, validate_args=False)
