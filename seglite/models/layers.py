"""Building blocks shared by every backbone and head."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation

NormLayer = Callable[[int], nn.Module]
ActivationLayer = Callable[[], nn.Module]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never dropping more than 10%.

    The rule of the TensorFlow MobileNet reference code, also used by torchvision and timm.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNAct(Conv2dNormActivation):
    """Conv2d -> norm -> activation, the one convolution brick of seglite: torchvision's
    ``ops.Conv2dNormActivation``.

    Same-padding is ``(kernel_size - 1) // 2 * dilation`` so a stride-1 conv keeps the spatial
    size at any dilation. The conv has no bias when a norm follows. Layers 0/1/2 are
    torchvision's, so state dicts line up and outputs are equal (tests/test_layers.py).

    One difference, on purpose: the activation is built as ``activation()``, not in place
    (torchvision's default calls ``activation_layer(inplace=True)``). So any no-argument callable
    is an activation (``nn.GELU`` takes no ``inplace``), and nothing changes for the models
    trained so far; in place would not lower the eager peak memory either (LR-ASPP
    MobileNetV3-Large at 1024x2048: 320 MiB both ways, the conv -> norm step of layer1's
    64-channel expansion holds two full tensors anyway).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        norm_layer: NormLayer | None = nn.BatchNorm2d,
        activation: ActivationLayer | None = nn.ReLU,
        bias: bool | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            groups=groups,
            norm_layer=norm_layer,
            activation_layer=activation,
            dilation=dilation,
            inplace=None,  # activation() with no argument
            bias=bias,
        )


class SqueezeExcite(SqueezeExcitation):
    """Squeeze-and-excitation (Hu et al. 2018) with the MobileNetV3 hard-sigmoid gate: torchvision's
    ``ops.SqueezeExcitation`` with ``scale_activation=gate`` (same state-dict keys and outputs).

    The caller chooses ``squeeze_channels`` (MobileNetV3: ``make_divisible(expanded // 4)``), as
    torchvision's ``InvertedResidual`` does; the gate module is torchvision's ``scale_activation``.
    """

    def __init__(
        self,
        channels: int,
        squeeze_channels: int,
        activation: ActivationLayer = nn.ReLU,
        gate: ActivationLayer = nn.Hardsigmoid,
    ) -> None:
        super().__init__(channels, squeeze_channels, activation=activation, scale_activation=gate)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups (ShuffleNet, Zhang et al. 2018, section 3.1).

    For 9 channels in 3 groups the order [0..8] becomes [0 3 6 1 4 7 2 5 8].
    """
    batch, channels, height, width = x.shape
    if channels % groups:
        raise ValueError(f"channel_shuffle: {channels} channels are not divisible by groups={groups}")
    x = x.view(batch, groups, channels // groups, height, width)
    return x.transpose(1, 2).contiguous().view(batch, channels, height, width)
