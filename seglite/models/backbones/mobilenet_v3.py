"""MobileNetV3 Large and Small (Howard et al. 2019, "Searching for MobileNetV3")."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Literal

from torch import nn

from seglite.checks import check_choice

from ..layers import ConvBNAct, make_divisible
from ..weights import load_imagenet_weights
from ._mobilenet import (
    MobileNetClassifier,
    StagedBackbone,
    halve_last_stage,
    init_weights,
    last_stage_start,
)
from .base import DILATION_RULES, DilationRule, check_output_stride, check_width_mult, plan_output_stride
from .mobilenet_v2 import TAIL_REDUCTIONS, InvertedResidual, TailReduction

VARIANTS = ("large", "small")
# TensorFlow's batch-norm defaults, which the paper's models (and torchvision's) use
BATCH_NORM = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)


@dataclass(frozen=True)
class Bneck:
    """A ``bneck`` row of MobileNetV3 Tables 1 and 2.

    The paper's columns: operator (``kernel_size``), exp size (``expanded``), #out
    (``out_channels``), SE (``squeeze_excite``), NL (``activation``: ReLU or h-swish), s (``stride``).
    """

    kernel_size: int
    expanded: int
    out_channels: int
    squeeze_excite: bool
    activation: type[nn.Module]
    stride: int


STEM_CHANNELS = 16
LAST_CONV_EXPANSION = 6  # the 1x1 conv after the bnecks: 160 -> 960 (Large), 96 -> 576 (Small)

# MobileNetV3 paper, Table 1 (MobileNetV3-Large), after the 3x3 stride-2 conv to 16 channels
# with h-swish. Hidden width of the classifier: Table 1's "conv2d 1x1, NBN, 1280".
MOBILENET_V3_LARGE = [
    Bneck(kernel_size=3, expanded=16, out_channels=16, squeeze_excite=False, activation=nn.ReLU, stride=1),
    Bneck(kernel_size=3, expanded=64, out_channels=24, squeeze_excite=False, activation=nn.ReLU, stride=2),
    Bneck(kernel_size=3, expanded=72, out_channels=24, squeeze_excite=False, activation=nn.ReLU, stride=1),
    Bneck(kernel_size=5, expanded=72, out_channels=40, squeeze_excite=True, activation=nn.ReLU, stride=2),
    Bneck(kernel_size=5, expanded=120, out_channels=40, squeeze_excite=True, activation=nn.ReLU, stride=1),
    Bneck(kernel_size=5, expanded=120, out_channels=40, squeeze_excite=True, activation=nn.ReLU, stride=1),
    Bneck(kernel_size=3, expanded=240, out_channels=80, squeeze_excite=False, activation=nn.Hardswish, stride=2),
    Bneck(kernel_size=3, expanded=200, out_channels=80, squeeze_excite=False, activation=nn.Hardswish, stride=1),
    Bneck(kernel_size=3, expanded=184, out_channels=80, squeeze_excite=False, activation=nn.Hardswish, stride=1),
    Bneck(kernel_size=3, expanded=184, out_channels=80, squeeze_excite=False, activation=nn.Hardswish, stride=1),
    Bneck(kernel_size=3, expanded=480, out_channels=112, squeeze_excite=True, activation=nn.Hardswish, stride=1),
    Bneck(kernel_size=3, expanded=672, out_channels=112, squeeze_excite=True, activation=nn.Hardswish, stride=1),
    Bneck(kernel_size=5, expanded=672, out_channels=160, squeeze_excite=True, activation=nn.Hardswish, stride=2),
    Bneck(kernel_size=5, expanded=960, out_channels=160, squeeze_excite=True, activation=nn.Hardswish, stride=1),
    Bneck(kernel_size=5, expanded=960, out_channels=160, squeeze_excite=True, activation=nn.Hardswish, stride=1),
]
LARGE_HIDDEN_CHANNELS = 1280

# MobileNetV3 paper, Table 2 (MobileNetV3-Small), after the 3x3 stride-2 conv to 16 channels
# with h-swish. The table marks SE on the last 1x1 conv (576); the authors' TF code
# (slim mobilenet_v3.py) and torchvision have none there, and neither do we.
MOBILENET_V3_SMALL = [
    Bneck(kernel_size=3, expanded=16, out_channels=16, squeeze_excite=True, activation=nn.ReLU, stride=2),
    Bneck(kernel_size=3, expanded=72, out_channels=24, squeeze_excite=False, activation=nn.ReLU, stride=2),
    Bneck(kernel_size=3, expanded=88, out_channels=24, squeeze_excite=False, activation=nn.ReLU, stride=1),
    Bneck(kernel_size=5, expanded=96, out_channels=40, squeeze_excite=True, activation=nn.Hardswish, stride=2),
    Bneck(kernel_size=5, expanded=240, out_channels=40, squeeze_excite=True, activation=nn.Hardswish, stride=1),
    Bneck(kernel_size=5, expanded=240, out_channels=40, squeeze_excite=True, activation=nn.Hardswish, stride=1),
    Bneck(kernel_size=5, expanded=120, out_channels=48, squeeze_excite=True, activation=nn.Hardswish, stride=1),
    Bneck(kernel_size=5, expanded=144, out_channels=48, squeeze_excite=True, activation=nn.Hardswish, stride=1),
    Bneck(kernel_size=5, expanded=288, out_channels=96, squeeze_excite=True, activation=nn.Hardswish, stride=2),
    Bneck(kernel_size=5, expanded=576, out_channels=96, squeeze_excite=True, activation=nn.Hardswish, stride=1),
    Bneck(kernel_size=5, expanded=576, out_channels=96, squeeze_excite=True, activation=nn.Hardswish, stride=1),
]
SMALL_HIDDEN_CHANNELS = 1024

# what the ``weights`` option loads, for its error messages
IMAGENET_FILES = (
    "MobileNetV3 with width_mult 1.0 and in_channels 3 loads torchvision's mobilenet_v3_large (variant: large) "
    "and mobilenet_v3_small (variant: small)"
)


def _variant_table(variant: str, owner: str) -> tuple[list[Bneck], int]:
    check_choice("variant", variant, VARIANTS, owner)
    if variant == "large":
        return list(MOBILENET_V3_LARGE), LARGE_HIDDEN_CHANNELS
    return list(MOBILENET_V3_SMALL), SMALL_HIDDEN_CHANNELS


def _reduce_tail(rows: list[Bneck], tail_reduction: TailReduction) -> list[Bneck]:
    """Halve the last stage's filters, the paper's "RF2" (section 6.4), in the style ``tail_reduction``.

    Both styles halve the stage's outputs and the expansions of the blocks after its
    downsampling block (they expand the halved width: 960 -> 480). ``"outputs"`` (torchvision's
    ``reduce_divider=2``) keeps the downsampling block's expansion, whose input is not halved
    (Large 112 -> 672, Small 48 -> 288); ``"all"`` halves it too (336, 144), as the authors'
    ``mobilenet_v3_large_seg`` / ``mobilenet_v3_small_seg`` in TF DeepLab's ``feature_extractor.py``
    do (``for layer, expansion in [(13, 336), (14, 480), (15, 480), (16, None)]``).
    """
    tail = last_stage_start(rows)
    first_halved_expansion = tail if tail_reduction == "all" else tail + 1
    rows = halve_last_stage(rows)
    return rows[:first_halved_expansion] + [
        dataclasses.replace(row, expanded=row.expanded // 2) for row in rows[first_halved_expansion:]
    ]


class MobileNetV3(StagedBackbone):
    """MobileNetV3 feature extractor (Howard et al. 2019, Tables 1 and 2), up to the last 1x1 conv.

    Stages (Large / Small channels): ``stem`` 16 / 16, ``layer1`` 24 / 16, ``layer2`` 40 / 24,
    ``layer3`` 112 / 48, ``layer4`` 960 / 576 (480 / 288 with ``reduced_tail``), at nominal
    strides 2 to 32. Taps (see ``StagedBackbone``): ``layer2_depthwise`` (Large 120, Small 88
    channels, stride 8) is the authors' LR-ASPP low-level feature (TF DeepLab's
    ``layer_7/depthwise_output`` / ``layer_4/depthwise_output``); ``layer2_first`` (40 / 24) is
    torchvision's.

    Args:
        variant: "large" (Table 1) or "small" (Table 2).
        width_mult: width multiplier; channels are rounded to multiples of 8.
        output_stride: 8, 16 or 32; later strides become dilation (atrous convolution).
        reduced_tail: halve the filters of the last stage, as the paper does for segmentation
            ("RF2", section 6.4).
        tail_reduction: how ``reduced_tail`` halves: ``"all"`` widths of the stage (the authors'
            models: Large 112 -> 336 -> 80, the paper's Table 7 parameter counts) or only its
            ``"outputs"`` (torchvision's ``reduced_tail``: 112 -> 672 -> 80); see ``_reduce_tail``.
        dilation_rule: at output stride 8 or 16, whether the block that gives up its stride keeps
            the previous dilation (``"deeplab"``: TF DeepLab, the authors) or is dilated itself
            (``"torchvision"``); see ``plan_output_stride``.
        in_channels: channels of the input image.
        weights: path of a local file holding torchvision's ImageNet ``state_dict`` of
            ``mobilenet_v3_large`` (``mobilenet_v3_large-8738ca79.pth`` or ``-5c1a4163.pth``) or
            ``mobilenet_v3_small`` (``mobilenet_v3_small-047dcff4.pth``), matching ``variant``;
            copied in once the network is built (any output stride and dilation rule; needs
            ``reduced_tail=False``: torchvision's ``lraspp_mobilenet_v3_large`` keeps the full tail
            for the same reason). The classifier is skipped; ``self.loaded_weights`` reports what
            was copied. seglite never downloads weights.
            Checkpoints record the model config without the path, and a model rebuilt from one
            never reads it: the checkpoint holds the trained weights (``seglite.checkpoints``).
    """

    def __init__(
        self,
        variant: Literal["large", "small"] = "large",
        width_mult: float = 1.0,
        output_stride: int = 32,
        reduced_tail: bool = False,
        tail_reduction: TailReduction = "all",
        dilation_rule: DilationRule = "deeplab",
        in_channels: int = 3,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        rows, _ = _variant_table(variant, owner)
        check_output_stride(output_stride, owner)
        check_width_mult(width_mult, owner)
        check_choice("tail_reduction", tail_reduction, TAIL_REDUCTIONS, owner)
        check_choice("dilation_rule", dilation_rule, DILATION_RULES, owner)
        if reduced_tail:
            rows = _reduce_tail(rows, tail_reduction)
        strides = [2] + [row.stride for row in rows] + [1]  # stem conv, bnecks, last 1x1 conv
        plan = plan_output_stride(strides, output_stride, dilation_rule)

        channels = make_divisible(STEM_CHANNELS * width_mult)
        blocks: list[nn.Module] = [
            ConvBNAct(in_channels, channels, 3, plan[0].stride, norm_layer=BATCH_NORM, activation=nn.Hardswish)
        ]
        for row, geometry in zip(rows, plan[1:]):
            expanded = make_divisible(row.expanded * width_mult)
            out_channels = make_divisible(row.out_channels * width_mult)
            blocks.append(
                InvertedResidual(
                    channels,
                    expanded,
                    out_channels,
                    row.kernel_size,
                    geometry.stride,
                    geometry.dilation,
                    residual=row.stride == 1 and channels == out_channels,
                    activation=row.activation,
                    norm_layer=BATCH_NORM,
                    squeeze_channels=make_divisible(expanded // 4) if row.squeeze_excite else 0,
                )
            )
            channels = out_channels
        last_channels = LAST_CONV_EXPANSION * channels
        blocks.append(ConvBNAct(channels, last_channels, 1, norm_layer=BATCH_NORM, activation=nn.Hardswish))
        self._set_stages(blocks, strides, plan)
        init_weights(self)
        self.loaded_weights = None if weights is None else load_imagenet_weights(self, weights, reduced_tail, IMAGENET_FILES)


class MobileNetV3Classifier(MobileNetClassifier):
    """MobileNetV3 ImageNet classifier, torchvision's ``mobilenet_v3_large`` / ``_small`` layout.

    Backbone, global average pooling, linear to 1280 (Large) or 1024 (Small) channels, h-swish,
    dropout, linear (the 1x1 convs without BN of Tables 1 and 2). At ``width_mult=1`` it has
    torchvision's parameter count and loads its weights with ``load_torchvision_weights``
    (torchvision's ``reduced_tail=True`` classifiers with ``tail_reduction="outputs"``).
    """

    def __init__(
        self,
        variant: Literal["large", "small"] = "large",
        num_classes: int = 1000,
        width_mult: float = 1.0,
        dropout: float = 0.2,
        reduced_tail: bool = False,
        tail_reduction: TailReduction = "all",
        in_channels: int = 3,
    ) -> None:
        _, hidden_channels = _variant_table(variant, type(self).__name__)
        backbone = MobileNetV3(
            variant, width_mult, reduced_tail=reduced_tail, tail_reduction=tail_reduction, in_channels=in_channels
        )
        # torchvision halves the hidden width with the tail
        hidden_channels = make_divisible(hidden_channels // (2 if reduced_tail else 1) * width_mult)
        head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(backbone.out_channels, hidden_channels),
            nn.Hardswish(),
            nn.Dropout(dropout),
            nn.Linear(hidden_channels, num_classes),
        )
        super().__init__(backbone, head)
