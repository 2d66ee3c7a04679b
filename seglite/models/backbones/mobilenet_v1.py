"""MobileNetV1 (Howard et al. 2017, "MobileNets")."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import ConvBNAct, make_divisible
from ._mobilenet import (
    MobileNetClassifier,
    StagedBackbone,
    halve_last_stage,
    init_weights,
)
from .base import (
    check_output_stride,
    check_width_mult,
    plan_output_stride,
)


@dataclass(frozen=True)
class SeparableRow:
    """A depthwise separable layer: 3x3 depthwise conv with ``stride``, 1x1 conv to ``out_channels``."""

    out_channels: int
    stride: int


STEM_CHANNELS = 32
# MobileNetV1 paper, Table 1, after the 3x3 stride-2 stem conv to 32 channels. The table's
# second-to-last depthwise conv reads "s2", but its input and output are both 7x7: it has
# stride 1, as in the authors' TF-slim code (mobilenet_v1.py).
MOBILENET_V1_LAYERS = [
    SeparableRow(out_channels=64, stride=1),
    SeparableRow(out_channels=128, stride=2),
    SeparableRow(out_channels=128, stride=1),
    SeparableRow(out_channels=256, stride=2),
    SeparableRow(out_channels=256, stride=1),
    SeparableRow(out_channels=512, stride=2),
    *[SeparableRow(out_channels=512, stride=1)] * 5,  # the table's "5x" row
    SeparableRow(out_channels=1024, stride=2),
    SeparableRow(out_channels=1024, stride=1),
]


class DepthwiseSeparable(nn.Sequential):
    """Depthwise 3x3 conv, BN, ReLU6, then pointwise 1x1 conv, BN, ReLU6 (MobileNetV1 Figure 3)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__(
            ConvBNAct(in_channels, in_channels, 3, stride, dilation, groups=in_channels, activation=nn.ReLU6),
            ConvBNAct(in_channels, out_channels, 1, activation=nn.ReLU6),
        )
        self.out_channels = out_channels
        self.depthwise_channels = in_channels

    def forward_with_depthwise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(layer output, depthwise conv-BN-ReLU6 output)."""
        depthwise = self[0](x)
        return self[1](depthwise), depthwise


class MobileNetV1(StagedBackbone):
    """MobileNetV1 feature extractor (Howard et al. 2017, section 3, Table 1), without pooling and FC.

    Stages: ``stem`` (conv and first separable layer, 64 channels), ``layer1`` 128, ``layer2``
    256, ``layer3`` 512, ``layer4`` 1024, at nominal strides 2 to 32.

    Args:
        width_mult: the paper's width multiplier alpha; channels are rounded to multiples of 8.
        output_stride: 8, 16 or 32; later strides become dilation (atrous convolution).
        reduced_tail: halve the channels of the last stage (1024 -> 512).
        in_channels: channels of the input image.
    """

    def __init__(
        self,
        width_mult: float = 1.0,
        output_stride: int = 32,
        reduced_tail: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        check_output_stride(output_stride, type(self).__name__)
        check_width_mult(width_mult, type(self).__name__)
        rows = halve_last_stage(MOBILENET_V1_LAYERS) if reduced_tail else MOBILENET_V1_LAYERS
        strides = [2] + [row.stride for row in rows]
        plan = plan_output_stride(strides, output_stride)

        channels = make_divisible(STEM_CHANNELS * width_mult)
        blocks: list[nn.Module] = [ConvBNAct(in_channels, channels, 3, plan[0].stride, activation=nn.ReLU6)]
        for row, geometry in zip(rows, plan[1:]):
            out_channels = make_divisible(row.out_channels * width_mult)
            blocks.append(DepthwiseSeparable(channels, out_channels, geometry.stride, geometry.dilation))
            channels = out_channels
        self._set_stages(blocks, strides, plan)
        init_weights(self)


class MobileNetV1Classifier(MobileNetClassifier):
    """MobileNetV1 ImageNet classifier: backbone, global average pooling, dropout, FC (Table 1).

    ``dropout`` defaults to 0: the paper trains small models with little regularisation (section 4).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        dropout: float = 0.0,
        in_channels: int = 3,
    ) -> None:
        backbone = MobileNetV1(width_mult=width_mult, in_channels=in_channels)
        head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Dropout(dropout),
            nn.Linear(backbone.out_channels, num_classes),
        )
        super().__init__(backbone, head)
