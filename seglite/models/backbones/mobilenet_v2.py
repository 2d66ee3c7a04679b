"""MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks")."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from seglite.checks import check_choice

from ..layers import (
    ActivationLayer,
    ConvBNAct,
    NormLayer,
    SqueezeExcite,
    make_divisible,
)
from ..weights import load_imagenet_weights
from ._mobilenet import (
    MobileNetClassifier,
    StagedBackbone,
    halve_last_stage,
    init_weights,
    last_stage_start,
)
from .base import check_output_stride, check_width_mult, plan_output_stride

# How reduced_tail halves the last stage (MobileNetV3 section 6.4 says only "reduce the filters by 2"):
# "outputs": halve the stage's outputs and keep every block's expansion ratio, so the downsampling
#     block, whose input is not halved, keeps its expanded width (torchvision's reduced_tail);
# "all": halve every width of the stage, the downsampling block's expansion included (the
#     MobileNetV3 authors' TF DeepLab mobilenet_v3_large_seg / mobilenet_v3_small_seg).
TailReduction = Literal["outputs", "all"]
TAIL_REDUCTIONS = ("outputs", "all")


class InvertedResidual(nn.Module):
    """Inverted residual with linear bottleneck (MobileNetV2 section 3.3, Table 1).

    1x1 expansion (absent when ``expanded_channels == in_channels``), depthwise conv, optional
    squeeze-and-excite (MobileNetV3 section 5.3), linear 1x1 projection; registered in
    torchvision's order. Shared by MobileNetV2 and MobileNetV3.

    Args:
        residual: add the input to the output. The caller decides from the block's nominal
            stride, so a block that gave up its stride for dilation keeps the original design.
        squeeze_channels: bottleneck width of the squeeze-and-excite; 0 for none.
    """

    def __init__(
        self,
        in_channels: int,
        expanded_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        residual: bool = False,
        activation: ActivationLayer = nn.ReLU6,
        norm_layer: NormLayer = nn.BatchNorm2d,
        squeeze_channels: int = 0,
    ) -> None:
        super().__init__()
        assert not residual or (stride == 1 and in_channels == out_channels), "residual needs equal shapes"
        layers: list[nn.Module] = []
        if expanded_channels != in_channels:
            layers.append(ConvBNAct(in_channels, expanded_channels, 1, norm_layer=norm_layer, activation=activation))
        layers.append(
            ConvBNAct(
                expanded_channels,
                expanded_channels,
                kernel_size,
                stride,
                dilation,
                groups=expanded_channels,
                norm_layer=norm_layer,
                activation=activation,
            )
        )
        self.depthwise_index = len(layers) - 1
        if squeeze_channels:
            layers.append(SqueezeExcite(expanded_channels, squeeze_channels))
        layers.append(ConvBNAct(expanded_channels, out_channels, 1, norm_layer=norm_layer, activation=None))
        self.block = nn.Sequential(*layers)
        self.residual = residual
        self.out_channels = out_channels
        self.depthwise_channels = expanded_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.residual:
            return x + self.block(x)
        return self.block(x)

    def forward_with_depthwise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(block output, depthwise conv-BN-activation output): the ``depthwise_output`` end point of
        TF-slim's ``expanded_conv``, taken before the squeeze-and-excite."""
        out = x
        depthwise = x
        for index, layer in enumerate(self.block):
            out = layer(out)
            if index == self.depthwise_index:
                depthwise = out
        if self.residual:
            out = x + out
        return out, depthwise


@dataclass(frozen=True)
class BottleneckStage:
    """A row of MobileNetV2 Table 2: ``repeats`` blocks of expansion ``expansion``, the first with ``stride``."""

    expansion: float
    out_channels: int
    repeats: int
    stride: int
    first_expansion: float | None = None  # the first block's, when it differs (a reduced tail)


STEM_CHANNELS = 32
LAST_CHANNELS = 1280
# what the ``weights`` option loads, for its error messages
IMAGENET_FILES = "MobileNetV2 with width_mult 1.0 and in_channels 3 loads torchvision's mobilenet_v2 (mobilenet_v2-*.pth)"
# MobileNetV2 paper, Table 2 (columns t, c, n, s), after the 3x3 stride-2 stem conv to 32
# channels. The backbone ends at the 320-channel block, like DeepLab's MobileNetV2 feature
# extractor; the 1x1 conv to 1280, pooling and classifier belong to MobileNetV2Classifier.
MOBILENET_V2_STAGES = [
    BottleneckStage(expansion=1, out_channels=16, repeats=1, stride=1),
    BottleneckStage(expansion=6, out_channels=24, repeats=2, stride=2),
    BottleneckStage(expansion=6, out_channels=32, repeats=3, stride=2),
    BottleneckStage(expansion=6, out_channels=64, repeats=4, stride=2),
    BottleneckStage(expansion=6, out_channels=96, repeats=3, stride=1),
    BottleneckStage(expansion=6, out_channels=160, repeats=3, stride=2),
    BottleneckStage(expansion=6, out_channels=320, repeats=1, stride=1),
]


class MobileNetV2(StagedBackbone):
    """MobileNetV2 feature extractor (Sandler et al. 2018, Table 2), up to the 320-channel block.

    Stages: ``stem`` 16 channels, ``layer1`` 24, ``layer2`` 32, ``layer3`` 96, ``layer4`` 320
    (160 with ``reduced_tail``), at nominal strides 2 to 32.

    Args:
        width_mult: width multiplier; channels are rounded to multiples of 8 (section 6.1).
        output_stride: 8, 16 or 32; later strides become dilation (atrous convolution).
        reduced_tail: halve the channels of the last stage (160 -> 80, 320 -> 160), as the
            MobileNetV3 paper does for segmentation (section 6.4).
        tail_reduction: with ``reduced_tail``, ``"outputs"`` keeps the expansion of the stage's
            downsampling block, whose input is not halved (96 -> 576), ``"all"`` halves it too
            (96 -> 288), as the MobileNetV3 authors do for MobileNetV3 (see ``TailReduction``).
            The MobileNetV3 paper's MobileNetV2 RF2 row of Table 7 (0.98M parameters) matches
            ``"outputs"``; the authors released no MobileNetV2 segmentation tail to check against.
        in_channels: channels of the input image.
        weights: path of a local file holding torchvision's ``mobilenet_v2`` ImageNet
            ``state_dict`` (``mobilenet_v2-b0353104.pth`` or ``mobilenet_v2-7ebf99e0.pth``), copied in
            once the network is built (any output stride; needs ``reduced_tail=False``). Its 1x1
            conv to 1280 channels and classifier, which the backbone leaves out, are skipped;
            ``self.loaded_weights`` reports what was copied. seglite never downloads weights.
            Checkpoints record the model config without the path, and a model rebuilt from one
            never reads it: the checkpoint holds the trained weights (``seglite.checkpoints``).

    Besides the stage outputs, the backbone offers ``layer1..3_first`` and ``layer1..3_depthwise``
    (see ``StagedBackbone``); ``layer2_depthwise`` (192 channels) is TF DeepLab's stride-8 decoder
    end point for MobileNetV2 (``layer_7/depthwise_output``).
    """

    def __init__(
        self,
        width_mult: float = 1.0,
        output_stride: int = 32,
        reduced_tail: bool = False,
        tail_reduction: TailReduction = "outputs",
        in_channels: int = 3,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        check_output_stride(output_stride, owner)
        check_width_mult(width_mult, owner)
        check_choice("tail_reduction", tail_reduction, TAIL_REDUCTIONS, owner)
        stages = list(MOBILENET_V2_STAGES)
        if reduced_tail:
            tail = last_stage_start(stages)
            stages = halve_last_stage(stages)
            if tail_reduction == "all":
                stages[tail] = dataclasses.replace(stages[tail], first_expansion=stages[tail].expansion / 2)
        # one (expansion, out_channels, stride) per block: the first block of a row has its stride
        rows = [
            (stage.first_expansion or stage.expansion, stage.out_channels, stage.stride)
            if repeat == 0
            else (stage.expansion, stage.out_channels, 1)
            for stage in stages
            for repeat in range(stage.repeats)
        ]
        strides = [2] + [stride for _, _, stride in rows]
        plan = plan_output_stride(strides, output_stride)

        channels = make_divisible(STEM_CHANNELS * width_mult)
        blocks: list[nn.Module] = [ConvBNAct(in_channels, channels, 3, plan[0].stride, activation=nn.ReLU6)]
        for (expansion, out_channels, stride), geometry in zip(rows, plan[1:]):
            out_channels = make_divisible(out_channels * width_mult)
            blocks.append(
                InvertedResidual(
                    channels,
                    round(channels * expansion),
                    out_channels,
                    stride=geometry.stride,
                    dilation=geometry.dilation,
                    residual=stride == 1 and channels == out_channels,
                )
            )
            channels = out_channels
        self._set_stages(blocks, strides, plan)
        init_weights(self)
        self.loaded_weights = None if weights is None else load_imagenet_weights(self, weights, reduced_tail, IMAGENET_FILES)


class MobileNetV2Classifier(MobileNetClassifier):
    """MobileNetV2 ImageNet classifier, torchvision's ``mobilenet_v2`` layout (Table 2's last rows).

    Backbone, 1x1 conv to 1280 channels (more when ``width_mult`` > 1), global average pooling,
    dropout, linear. At ``width_mult=1`` it has torchvision's 3,504,872 parameters and loads its
    weights with ``load_torchvision_weights``.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        dropout: float = 0.2,
        in_channels: int = 3,
    ) -> None:
        backbone = MobileNetV2(width_mult=width_mult, in_channels=in_channels)
        # the paper does not shrink the last conv below 1280 for width_mult < 1 (section 6.1)
        last_channels = make_divisible(LAST_CHANNELS * max(1.0, width_mult))
        head = nn.Sequential(
            ConvBNAct(backbone.out_channels, last_channels, 1, activation=nn.ReLU6),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Dropout(dropout),
            nn.Linear(last_channels, num_classes),
        )
        super().__init__(backbone, head)
