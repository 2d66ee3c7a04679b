"""Optimiser parameter groups and the poly learning-rate schedule with linear warm-up."""

from __future__ import annotations

from torch import nn

NORMS = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
    nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm,
)  # fmt: skip
"""Normalisation layers (the lazy variants become these once built)."""


def split_decay_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decayed, not decayed) parameters.

    Norm weights and biases, all biases and depthwise kernels get no weight decay: the
    MobileNetV1 paper (section 3.2) puts "very little or no weight decay" on depthwise
    filters because they have so few parameters.
    """
    decay, no_decay = [], []
    seen: set[int] = set()
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad or id(parameter) in seen:
                continue
            seen.add(id(parameter))
            is_norm = isinstance(module, NORMS)
            is_depthwise = (
                isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels
            )
            if name == "bias" or is_norm or is_depthwise:
                no_decay.append(parameter)
            else:
                decay.append(parameter)
    return decay, no_decay


def poly_warmup_factor(step: int, total_steps: int, power: float = 0.9, warmup_steps: int = 0,
                       warmup_ratio: float = 1e-3) -> float:
    """Learning-rate factor at ``step``: linear warm-up from ``warmup_ratio``, then (1 - step/total)^power."""
    if warmup_steps > 0 and step < warmup_steps:
        return warmup_ratio + (1.0 - warmup_ratio) * step / warmup_steps
    return max(0.0, 1.0 - step / max(1, total_steps)) ** power
