"""FCN-style auxiliary head for deep supervision on an intermediate feature."""

from __future__ import annotations

import torch
from torch import nn

from seglite.checks import check_fraction, check_positive_int

from ..layers import ConvBNAct


class FCNHead(nn.Module):
    """A 3x3 conv-BN-ReLU, dropout and a 1x1 classifier (Long et al. 2015; torchvision's ``FCNHead``).

    Used as the auxiliary head: its loss on an intermediate feature (PSPNet's deep supervision)
    helps training and it is dropped at inference.

    Args:
        in_channels: channels of the backbone feature.
        num_classes: classes to predict.
        channels: width of the 3x3 conv; ``None`` for a quarter of ``in_channels`` (torchvision).
        dropout: dropout before the classifier.
        feature: backbone feature name the head reads.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channels: int | None = None,
        dropout: float = 0.1,
        feature: str = "layer3",
    ) -> None:
        super().__init__()
        channels = max(1, in_channels // 4) if channels is None else channels
        owner = type(self).__name__
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("channels", channels)):
            check_positive_int(name, value, owner)
        check_fraction("dropout", dropout, owner, include_one=False)
        self.in_features = {feature: in_channels}
        self.feature = feature
        self.num_classes = num_classes
        self.block = nn.Sequential(ConvBNAct(in_channels, channels, 3), nn.Dropout(dropout))
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.block(features[self.feature]))
