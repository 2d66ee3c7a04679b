"""Building blocks shared by every backbone and head."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

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


class ConvBNAct(nn.Sequential):
    """Conv2d -> norm -> activation, the one convolution brick of seglite.

    Same-padding is ``(kernel_size - 1) // 2 * dilation`` so a stride-1 conv keeps the spatial
    size at any dilation. The conv has no bias when a norm follows. Indices 0/1/2 match
    torchvision's ``Conv2dNormActivation`` so state dicts line up.
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
        padding = (kernel_size - 1) // 2 * dilation
        if bias is None:
            bias = norm_layer is None
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=bias,
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)
        self.out_channels = out_channels


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018) with the MobileNetV3 hard-sigmoid gate.

    Attribute names ``fc1``/``fc2`` follow torchvision's ``SqueezeExcitation``.
    """

    def __init__(
        self,
        channels: int,
        squeeze_channels: int,
        activation: ActivationLayer = nn.ReLU,
        gate: ActivationLayer = nn.Hardsigmoid,
    ) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.activation = activation()
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * scale


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups (ShuffleNet, Zhang et al. 2018, section 3.1).

    For 9 channels in 3 groups the order [0..8] becomes [0 3 6 1 4 7 2 5 8].
    """
    batch, channels, height, width = x.shape
    if channels % groups:
        raise ValueError(f"channel_shuffle: {channels} channels are not divisible by groups={groups}")
    x = x.view(batch, groups, channels // groups, height, width)
    return x.transpose(1, 2).contiguous().view(batch, channels, height, width)
