"""Parameter and multiply-accumulate counts of a model, shared by tests and tools/complexity.py."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params_and_macs(model: nn.Module, input_size: tuple[int, int], in_channels: int = 3) -> tuple[int, int]:
    """(parameters, MACs) of one eval-mode forward pass of a batch of one ``input_size`` image.

    MACs are ``FlopCounterMode``'s FLOPs halved (it counts a multiply-add as 2 FLOPs); like the
    papers' MAdds they cover convolutions and matrix products only. A model built on the meta
    device (``with torch.device("meta"): ...``) is counted without computing anything.
    """
    parameter = next(model.parameters())
    x = torch.zeros(1, in_channels, *input_size, device=parameter.device, dtype=parameter.dtype)
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2
