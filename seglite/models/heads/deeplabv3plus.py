"""DeepLabV3+ head: ASPP plus a decoder over a stride-4 low-level feature."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from seglite.checks import check_positive_int

from ..layers import ConvBNAct
from .aspp import ASPP, DEEPLAB_RATES, conv3x3


class DeepLabV3PlusHead(nn.Module):
    """DeepLabV3+ (Chen et al. 2018, "Encoder-Decoder with Atrous Separable Convolution", section 3.1).

    ASPP on the deep feature, upsampled to the stride-4 low-level feature, concatenated with that
    feature reduced to ``low_level_channels`` by a 1x1 conv, refined by two 3x3 convs and
    classified. Logits come out at stride 4.

    Args:
        high_channels: channels of the deep feature.
        low_channels: channels of the low-level feature.
        num_classes: classes to predict.
        channels: width of the ASPP and of the decoder convs (the paper: 256).
        atrous_rates: ASPP rates, for the deep feature's stride (see ``scaled_atrous_rates``).
        separable: depthwise-separable 3x3 convs in the ASPP and the decoder (the paper's choice;
            the decoder runs at stride 4, where a dense 3x3 conv dominates the cost).
        low_level_channels: channels the low-level feature is reduced to (the paper: 48).
        dropout: dropout after the ASPP projection.
        high_feature: backbone feature name of the deep feature.
        low_feature: backbone feature name of the low-level feature; must have stride 4.
    """

    low_level_stride = 4

    def __init__(
        self,
        high_channels: int,
        low_channels: int,
        num_classes: int,
        channels: int = 128,
        atrous_rates: Sequence[int] = DEEPLAB_RATES,
        separable: bool = True,
        low_level_channels: int = 48,
        dropout: float = 0.1,
        high_feature: str = "layer4",
        low_feature: str = "layer1",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        for name, value in (
            ("low_channels", low_channels),
            ("num_classes", num_classes),
            ("low_level_channels", low_level_channels),
        ):
            check_positive_int(name, value, owner)
        self.in_features = {high_feature: high_channels, low_feature: low_channels}
        self.feature_strides = {low_feature: self.low_level_stride}
        self.high_feature = high_feature
        self.low_feature = low_feature
        self.num_classes = num_classes
        self.aspp = ASPP(high_channels, channels, atrous_rates, separable, dropout)
        self.low_level = ConvBNAct(low_channels, low_level_channels, 1)
        self.decoder = nn.Sequential(
            conv3x3(channels + low_level_channels, channels, separable=separable),
            conv3x3(channels, channels, separable=separable),
        )
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        low = self.low_level(features[self.low_feature])
        high = self.aspp(features[self.high_feature])
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.decoder(torch.cat([high, low], dim=1)))
