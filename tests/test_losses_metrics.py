"""Losses, metrics and optimiser helpers of the training system, checked against direct computations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seglite.lit.losses import OHEMCrossEntropy, SegmentationLoss
from seglite.lit.metrics import confusion_matrix_metric
from seglite.lit.optim import poly_warmup_factor, split_decay_parameters
from seglite.metrics import confusion_matrix, scores_from_confusion


def _numpy_iou(truth: np.ndarray, prediction: np.ndarray, num_classes: int, ignore: int = 255):
    """Per-class IoU straight from the masks, by set counting (no confusion matrix)."""
    valid = truth != ignore
    ious = []
    for cls in range(num_classes):
        t = (truth == cls) & valid
        p = (prediction == cls) & valid
        union = np.logical_or(t, p).sum()
        ious.append(np.logical_and(t, p).sum() / union if union else np.nan)
    return np.array(ious)


def test_scores_equal_direct_computation_over_batches():
    generator = torch.Generator().manual_seed(0)
    num_classes = 5
    truths = [torch.randint(0, num_classes, (2, 16, 24), generator=generator) for _ in range(3)]
    for truth in truths:
        truth[:, :3] = 255  # ignored rows
    predictions = [torch.randint(0, num_classes, (2, 16, 24), generator=generator) for _ in range(3)]
    metric = confusion_matrix_metric(num_classes)
    for truth, prediction in zip(truths, predictions):
        metric.update(prediction, truth)
    scores = scores_from_confusion(metric.compute())

    all_truth = torch.cat(truths).numpy()
    all_prediction = torch.cat(predictions).numpy()
    expected_iou = _numpy_iou(all_truth, all_prediction, num_classes)
    np.testing.assert_allclose(scores.iou.numpy(), expected_iou, rtol=1e-6)
    assert scores.miou == pytest.approx(np.nanmean(expected_iou), rel=1e-6)
    valid = all_truth != 255
    assert scores.pixel_accuracy == pytest.approx((all_truth[valid] == all_prediction[valid]).mean(), rel=1e-6)


def test_absent_class_is_nan_and_excluded_from_mean():
    confusion = torch.tensor([[5, 1, 0], [2, 7, 0], [0, 0, 0]])
    scores = scores_from_confusion(confusion)
    assert torch.isnan(scores.iou[2])
    assert scores.miou == pytest.approx((5 / 8 + 7 / 10) / 2)
    assert "n/a" in scores.table(["a", "b", "c"])


def test_ce_ignores_ignore_index_and_combines_weights():
    logits = torch.randn(2, 4, 8, 8)
    target = torch.randint(0, 4, (2, 8, 8))
    target[0] = 255
    ce = SegmentationLoss({"ce": 1.0})(logits, target)
    expected = F.cross_entropy(logits[1:], target[1:])
    assert torch.allclose(ce, expected, atol=1e-6)
    combined = SegmentationLoss({"ce": 2.0, "dice": 0.5, "lovasz": 1.0, "focal": 1.0})(logits, target)
    assert torch.isfinite(combined) and combined > 2 * expected


def test_ohem_keeps_hard_pixels_and_at_least_min_kept():
    logits = torch.zeros(1, 2, 1, 4)
    logits[0, 0] = torch.tensor([5.0, 5.0, -5.0, 0.0])  # class-0 confidence high, high, low, 0.5
    target = torch.zeros(1, 1, 4, dtype=torch.long)
    pixel_loss = F.cross_entropy(logits, target, reduction="none").flatten()
    hard = OHEMCrossEntropy(threshold=0.7, min_kept=1)(logits, target)
    assert torch.allclose(hard, pixel_loss[2:].mean())  # p(true) < 0.7 for the last two pixels
    kept = OHEMCrossEntropy(threshold=0.7, min_kept=4)(logits, target)
    assert torch.allclose(kept, pixel_loss.mean())


def test_unknown_loss_name_is_rejected():
    with pytest.raises(ValueError, match="unknown loss"):
        SegmentationLoss({"crossentropy": 1.0})


def test_no_weight_decay_on_norms_biases_and_depthwise():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, groups=8, bias=False), nn.Conv2d(8, 4, 1)
    )
    decay, no_decay = split_decay_parameters(model)
    assert {id(p) for p in decay} == {id(model[0].weight), id(model[3].weight)}
    assert {id(p) for p in no_decay} == {
        id(model[1].weight), id(model[1].bias), id(model[2].weight), id(model[3].bias)
    }


def test_poly_schedule_with_warmup():
    assert poly_warmup_factor(0, 100, warmup_steps=10, warmup_ratio=0.1) == pytest.approx(0.1)
    assert poly_warmup_factor(5, 100, warmup_steps=10, warmup_ratio=0.1) == pytest.approx(0.55)
    assert poly_warmup_factor(50, 100, power=0.9) == pytest.approx(0.5**0.9)
    assert poly_warmup_factor(100, 100) == 0.0


def test_plain_confusion_matrix_equals_torchmetrics_and_direct_counts():
    generator = torch.Generator().manual_seed(1)
    target = torch.randint(0, 6, (2, 9, 11), generator=generator)
    target[0, :2] = 255
    prediction = torch.randint(0, 6, (2, 9, 11), generator=generator)
    plain = confusion_matrix(prediction, target, 6)
    metric = confusion_matrix_metric(6)
    metric.update(prediction, target)
    assert torch.equal(plain, metric.compute())
    valid = target != 255
    direct = torch.zeros(6, 6, dtype=torch.long)
    for truth, predicted in zip(target[valid].tolist(), prediction[valid].tolist()):
        direct[truth, predicted] += 1
    assert torch.equal(plain, direct)
    with pytest.raises(ValueError, match="outside 0..5"):
        confusion_matrix(prediction, torch.full_like(target, 7), 6)
