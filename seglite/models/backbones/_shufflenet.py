"""What both ShuffleNets share: the macro layout (conv1, max pool, three stages, conv5) and the classifier."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from seglite.checks import check_positive_int

from ..layers import ConvBNAct
from .base import Backbone, BlockGeometry, FeatureInfo, check_output_stride, keep_feature, plan_output_stride

STEM_CHANNELS = 24
# Units per stage (stage2, stage3, stage4): ShuffleNetV1 Table 1 and ShuffleNetV2 Table 5 alike.
STAGE_REPEATS = (4, 8, 4)

WIDTH_MULTS = (0.5, 1.0, 1.5, 2.0)


# make_unit(in_channels, out_channels, geometry, stage_index, unit_index) -> unit
UnitFactory = Callable[[int, int, BlockGeometry, int, int], nn.Module]


def depthwise_bn(channels: int, geometry: BlockGeometry) -> ConvBNAct:
    """3x3 depthwise conv and BN without ReLU, as in both ShuffleNets (V1 section 3.2, after Xception)."""
    return ConvBNAct(
        channels, channels, 3, stride=geometry.stride, dilation=geometry.dilation, groups=channels, activation=None
    )


class ShuffleNetLayout(Backbone):
    """conv1 -> maxpool -> stage2 -> stage3 -> stage4 -> conv5, the macro layout of both ShuffleNets.

    Builds the 3x3 stride-2 stem, the 3x3 stride-2 max pool and the three stages of
    ``STAGE_REPEATS`` units (the first of each nominally stride 2), with stride and dilation
    planned once by ``plan_output_stride``. A subclass supplies the units through ``make_unit``
    (which must pick its kind from ``unit_index``, not from the planned stride, so an atrous unit
    keeps the weights of a strided one) and sets ``conv5`` (``nn.Identity`` when it has none).
    """

    def __init__(
        self,
        stage_channels: Sequence[int],
        make_unit: UnitFactory,
        output_stride: int,
        in_channels: int,
    ) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels, type(self).__name__)
        check_output_stride(output_stride, type(self).__name__)
        unit_strides = [stride for repeats in STAGE_REPEATS for stride in [2] + [1] * (repeats - 1)]
        stem_plan, pool_plan, *unit_plans = plan_output_stride([2, 2, *unit_strides], output_stride)
        # the plan never gives up the stem's strides (output_stride >= 8), so no dilation here
        self.conv1 = ConvBNAct(in_channels, STEM_CHANNELS, 3, stride=stem_plan.stride)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=pool_plan.stride, padding=1)
        self.feature_info = [
            FeatureInfo("stem", STEM_CHANNELS, stem_plan.total_stride),
            FeatureInfo("layer1", STEM_CHANNELS, pool_plan.total_stride),
        ]
        channels = STEM_CHANNELS
        plans = iter(unit_plans)
        for stage_index, (repeats, out_channels) in enumerate(zip(STAGE_REPEATS, stage_channels)):
            units = []
            for unit_index in range(repeats):
                geometry = next(plans)
                units.append(make_unit(channels, out_channels, geometry, stage_index, unit_index))
                channels = out_channels
            setattr(self, f"stage{stage_index + 2}", nn.Sequential(*units))
            self.feature_info.append(FeatureInfo(f"layer{stage_index + 2}", out_channels, geometry.total_stride))
        self.set_out_features()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # the stages up to the deepest feature asked for, keeping only those in out_features
        wanted = self.out_features
        features: dict[str, torch.Tensor] = {}
        x = self.conv1(x)
        keep_feature(features, wanted, "stem", x)
        if self.deepest_stage < 1:
            return features
        x = self.maxpool(x)
        keep_feature(features, wanted, "layer1", x)
        if self.deepest_stage < 2:
            return features
        x = self.stage2(x)
        keep_feature(features, wanted, "layer2", x)
        if self.deepest_stage < 3:
            return features
        x = self.stage3(x)
        keep_feature(features, wanted, "layer3", x)
        if self.deepest_stage < 4:
            return features
        keep_feature(features, wanted, "layer4", self.conv5(self.stage4(x)))
        return features


class ShuffleNetClassifier(nn.Module):
    """A ShuffleNet backbone, global average pooling and a linear classifier (both papers)."""

    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes, type(self).__name__)
        self.backbone = backbone
        self.fc = nn.Linear(backbone.out_channels, num_classes)
        backbone.set_out_features(["layer4"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x)["layer4"].mean((2, 3)))
