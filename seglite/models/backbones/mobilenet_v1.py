"""MobileNetV1 (Howard et al. 2017, "MobileNets"), and what the three MobileNet families share.

The shared parts are ``StagedBackbone`` (blocks grouped into the named stages at strides 2..32),
``MobileNetClassifier`` (a backbone plus an ImageNet head) and ``init_weights``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol, Sequence, TypeVar

import torch
from torch import nn

from ..layers import ConvBNAct, make_divisible
from .base import (
    FEATURE_NAMES,
    Backbone,
    BlockGeometry,
    FeatureInfo,
    check_output_stride,
    check_width_mult,
    plan_output_stride,
)


class TableRow(Protocol):
    """What the table helpers read from a row of an architecture table (a frozen dataclass)."""

    stride: int
    out_channels: int


Row = TypeVar("Row", bound=TableRow)


def init_weights(module: nn.Module) -> None:
    """Initialise as torchvision's MobileNets do: He (fan-out) convs, unit BN, small-normal linears."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0, 0.01)
            nn.init.zeros_(layer.bias)


def last_stage_start(rows: Sequence[Row]) -> int:
    """Index of the last downsampling row of an architecture table: the last stage starts there."""
    return max(index for index, row in enumerate(rows) if row.stride > 1)


def halve_last_stage(rows: Sequence[Row]) -> list[Row]:
    """The table with the ``out_channels`` of its last stage halved: ``reduced_tail`` (MobileNetV3 section 6.4)."""
    tail = last_stage_start(rows)
    return [*rows[:tail], *(dataclasses.replace(row, out_channels=row.out_channels // 2) for row in rows[tail:])]


class StagedBackbone(Backbone):
    """A backbone whose blocks are grouped into ``stem``, ``layer1`` .. ``layer4`` (nominal strides 2..32).

    Subclasses build all their blocks in network order (so that state dicts line up with
    torchvision's) with the geometry of ``plan_output_stride``, then call ``_set_stages``.
    """

    stem: nn.Sequential
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def _set_stages(self, blocks: Sequence[nn.Module], strides: Sequence[int], plan: Sequence[BlockGeometry]) -> None:
        """Register each block in the stage of its nominal stride and describe the stage outputs.

        Args:
            blocks: every block of the network, each with an ``out_channels`` attribute.
            strides: the nominal stride of each block (as given to ``plan_output_stride``).
            plan: the geometry the blocks were built with; gives the effective stride of each stage.
        """
        stages: dict[str, list[nn.Module]] = {name: [] for name in FEATURE_NAMES}
        effective_strides: dict[str, int] = {}
        nominal_stride = 1
        for block, stride, geometry in zip(blocks, strides, plan, strict=True):
            nominal_stride *= stride
            name = FEATURE_NAMES[nominal_stride.bit_length() - 2]  # stride 2 -> "stem", 32 -> "layer4"
            stages[name].append(block)
            effective_strides[name] = geometry.total_stride
        assert all(stages.values()), f"a stage is empty: nominal strides {list(strides)}"
        for name, stage in stages.items():
            self.add_module(name, nn.Sequential(*stage))
        self.feature_info = [
            FeatureInfo(name, stages[name][-1].out_channels, effective_strides[name]) for name in FEATURE_NAMES
        ]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = {}
        for name in FEATURE_NAMES:
            x = getattr(self, name)(x)
            features[name] = x
        return features


class MobileNetClassifier(nn.Module):
    """An ImageNet classifier: ``head`` applied to the backbone's deepest feature."""

    def __init__(self, backbone: StagedBackbone, head: nn.Sequential) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        init_weights(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)["layer4"])


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
        check_output_stride(output_stride)
        check_width_mult(width_mult)
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
