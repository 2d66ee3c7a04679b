"""Segmentation losses: cross-entropy, OHEM cross-entropy, and smp's Dice/Lovasz/Focal, combined by weight."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss, FocalLoss, LovaszLoss
from torch import nn

LOSS_NAMES: tuple[str, ...] = ("ce", "ohem", "dice", "lovasz", "focal")


class OHEMCrossEntropy(nn.Module):
    """Cross-entropy over the hardest pixels (online hard example mining, as in PSPNet/mmseg).

    Keeps pixels whose probability of the true class is below ``threshold``, and at least
    ``min_kept`` pixels per batch (the hardest ones) so the loss never runs on too few.
    """

    def __init__(
        self,
        threshold: float = 0.7,
        min_kept: int = 100_000,
        ignore_index: int = 255,
        weight: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.threshold = threshold
        self.min_kept = min_kept
        self.ignore_index = ignore_index
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pixel_loss = F.cross_entropy(
            logits, target, weight=self.weight, ignore_index=self.ignore_index, reduction="none"
        ).flatten()
        valid = target.flatten() != self.ignore_index
        num_valid = int(valid.sum())
        if num_valid == 0:
            return pixel_loss.sum() * 0.0
        # probability of the true class is below threshold <=> its loss is above -log(threshold)
        loss_threshold = -torch.log(torch.tensor(self.threshold, device=logits.device))
        valid_loss = pixel_loss[valid]
        num_kept = min(self.min_kept, num_valid)
        kth_largest = torch.topk(valid_loss, num_kept, sorted=False).values.min()
        keep = valid_loss >= torch.minimum(kth_largest, loss_threshold.to(valid_loss.dtype))
        return valid_loss[keep].mean()


class SegmentationLoss(nn.Module):
    """A weighted sum of named losses, each ignoring ``ignore_index`` pixels.

    Args:
        weights: loss name -> weight, e.g. ``{"ce": 1.0, "lovasz": 0.5}``; names from ``LOSS_NAMES``.
        class_weights: per-class weights for the cross-entropy terms (``ce``/``ohem``).
        ohem_threshold, ohem_min_kept: see ``OHEMCrossEntropy``.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        ignore_index: int = 255,
        class_weights: Sequence[float] | None = None,
        ohem_threshold: float = 0.7,
        ohem_min_kept: int = 100_000,
    ) -> None:
        super().__init__()
        if not weights:
            raise ValueError(f"losses must name at least one loss of {LOSS_NAMES}")
        unknown = sorted(set(weights) - set(LOSS_NAMES))
        if unknown:
            raise ValueError(f"losses: unknown loss name(s) {unknown}; choose from {LOSS_NAMES}")
        class_weight_tensor = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.weights = dict(weights)
        self.terms = nn.ModuleDict()
        for name in weights:
            if name == "ce":
                self.terms[name] = nn.CrossEntropyLoss(weight=class_weight_tensor, ignore_index=ignore_index)
            elif name == "ohem":
                self.terms[name] = OHEMCrossEntropy(ohem_threshold, ohem_min_kept, ignore_index, class_weight_tensor)
            elif name == "dice":
                self.terms[name] = DiceLoss("multiclass", ignore_index=ignore_index)
            elif name == "lovasz":
                self.terms[name] = LovaszLoss("multiclass", ignore_index=ignore_index)
            else:
                self.terms[name] = FocalLoss("multiclass", ignore_index=ignore_index)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # losses are computed in fp32 whatever the autocast precision of the logits
        logits = logits.float()
        return sum(self.weights[name] * term(logits, target) for name, term in self.terms.items())
