"""Segmentation losses: cross-entropy, OHEM cross-entropy, and smp's Dice/Lovasz/Focal, combined by weight."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_warn
from segmentation_models_pytorch.losses import DiceLoss, FocalLoss, LovaszLoss
from torch import nn

LOSS_NAMES: tuple[str, ...] = ("ce", "ohem", "dice", "lovasz", "focal")
CLASS_WEIGHTED_LOSSES: tuple[str, ...] = ("ce", "ohem")
"""The losses that take per-class weights (smp's Dice, Lovasz and Focal losses have none)."""


def check_class_weighted(losses: Iterable[str]) -> None:
    """Refuse class weights without a cross-entropy loss (they would do nothing); warn that the other losses ignore them."""
    weighted = [name for name in losses if name in CLASS_WEIGHTED_LOSSES]
    unweighted = [name for name in losses if name not in CLASS_WEIGHTED_LOSSES]
    if not weighted:
        raise ValueError(
            f"class_weights weigh the cross-entropy losses {CLASS_WEIGHTED_LOSSES}, but losses has none of them: "
            f"{sorted(losses)}; add one (e.g. ce: 1.0) or leave class_weights unset"
        )
    if unweighted:
        rank_zero_warn(f"class_weights apply to {', '.join(weighted)} only: {', '.join(unweighted)} stay unweighted")


class CrossEntropy(nn.Module):
    """``F.cross_entropy`` ignoring ``ignore_index``, its class weights a buffer left out of the state dict.

    ``nn.CrossEntropyLoss`` would put its weights in the state dict, and a checkpoint's state dict
    would then differ with the weights' presence.
    """

    def __init__(self, ignore_index: int = 255, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, weight=self.weight, ignore_index=self.ignore_index)


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
        class_weights: per-class weights for the cross-entropy terms (``ce``/``ohem``); also
            set later with ``set_class_weights``. With other losses too, those stay unweighted (a
            warning says so); with no cross-entropy term they are refused.
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
        self.weights = dict(weights)
        self.terms = nn.ModuleDict()
        for name in weights:
            if name == "ce":
                self.terms[name] = CrossEntropy(ignore_index)
            elif name == "ohem":
                self.terms[name] = OHEMCrossEntropy(ohem_threshold, ohem_min_kept, ignore_index)
            elif name == "dice":
                self.terms[name] = DiceLoss("multiclass", ignore_index=ignore_index)
            elif name == "lovasz":
                self.terms[name] = LovaszLoss("multiclass", ignore_index=ignore_index)
            else:
                self.terms[name] = FocalLoss("multiclass", ignore_index=ignore_index)
        if class_weights is not None:
            check_class_weighted(weights)
            self.set_class_weights(class_weights)

    @property
    def class_weights(self) -> torch.Tensor | None:
        """The per-class weights of the cross-entropy terms (``None``: unweighted)."""
        return next((self.terms[name].weight for name in CLASS_WEIGHTED_LOSSES if name in self.terms), None)

    def set_class_weights(self, class_weights: Sequence[float] | torch.Tensor | None) -> None:
        """Weigh the cross-entropy terms' pixels by their class (``None``: unweighted), e.g. once computed from the data.

        A tensor keeps its device. The weights are not in the state dict: the task stores them in
        the checkpoint itself, with how they were obtained.
        """
        weight = None
        if class_weights is not None:
            weight = torch.as_tensor(class_weights, dtype=torch.float32)
            if weight.ndim != 1 or not len(weight) or not torch.isfinite(weight).all() or (weight < 0).any() or not weight.any():
                raise ValueError(f"class_weights must be finite, non-negative numbers, not all 0, one per class; got {class_weights!r}")
            if not any(name in self.terms for name in CLASS_WEIGHTED_LOSSES):
                raise ValueError(f"class_weights need a cross-entropy loss {CLASS_WEIGHTED_LOSSES}; losses are {sorted(self.terms)}")
        for name in CLASS_WEIGHTED_LOSSES:
            if name in self.terms:
                self.terms[name].weight = weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # losses are computed in fp32 whatever the autocast precision of the logits
        logits = logits.float()
        return sum(self.weights[name] * term(logits, target) for name, term in self.terms.items())
