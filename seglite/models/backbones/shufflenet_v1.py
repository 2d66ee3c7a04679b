"""ShuffleNetV1 (Zhang et al., "ShuffleNet", CVPR 2018) and the layout both ShuffleNets share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import torch
from torch import nn

from ..layers import ConvBNAct, channel_shuffle, make_divisible
from .base import Backbone, BlockGeometry, FeatureInfo, plan_output_stride

STEM_CHANNELS = 24
# Units per stage (stage2, stage3, stage4): ShuffleNetV1 Table 1 and ShuffleNetV2 Table 5 alike.
STAGE_REPEATS = (4, 8, 4)

WIDTH_MULTS = (0.5, 1.0, 1.5, 2.0)


@dataclass(frozen=True)
class ShuffleNetV1Width:
    """Output channels of stages 2, 3 and 4 for one group count at width 1x."""

    groups: int
    stage_channels: tuple[int, int, int]


# ShuffleNetV1 paper, Table 1 ("ShuffleNet architecture"), output channels for g = 1, 2, 3, 4, 8.
SHUFFLENET_V1_WIDTHS = {
    row.groups: row
    for row in (
        ShuffleNetV1Width(groups=1, stage_channels=(144, 288, 576)),
        ShuffleNetV1Width(groups=2, stage_channels=(200, 400, 800)),
        ShuffleNetV1Width(groups=3, stage_channels=(240, 480, 960)),
        ShuffleNetV1Width(groups=4, stage_channels=(272, 544, 1088)),
        ShuffleNetV1Width(groups=8, stage_channels=(384, 768, 1536)),
    )
}

# make_unit(in_channels, out_channels, geometry, stage_index, unit_index) -> unit
UnitFactory = Callable[[int, int, BlockGeometry, int, int], nn.Module]


def check_choice(name: str, value: object, allowed: Sequence[object]) -> None:
    """``ValueError`` naming ``name`` and the ``allowed`` values unless ``value`` is one of them."""
    if isinstance(value, bool) or value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


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

    conv5: nn.Module

    def __init__(
        self,
        stage_channels: Sequence[int],
        make_unit: UnitFactory,
        output_stride: int,
        in_channels: int,
    ) -> None:
        super().__init__()
        if not isinstance(in_channels, int) or isinstance(in_channels, bool) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
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

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        stem = self.conv1(x)
        layer1 = self.maxpool(stem)
        layer2 = self.stage2(layer1)
        layer3 = self.stage3(layer2)
        layer4 = self.conv5(self.stage4(layer3))
        return {"stem": stem, "layer1": layer1, "layer2": layer2, "layer3": layer3, "layer4": layer4}


class ShuffleNetClassifierHead(nn.Module):
    """A ShuffleNet backbone, global average pooling and a linear classifier (both papers)."""

    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.backbone = backbone
        self.fc = nn.Linear(backbone.out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x)["layer4"].mean((2, 3)))


class ShuffleV1Unit(nn.Module):
    """ShuffleNet unit (paper Figure 2b/2c): 1x1 group conv, shuffle, 3x3 depthwise, 1x1 group conv.

    The shortcut (identity, or a 3x3 average pool with the unit's stride in a downsampling
    unit) is concatenated when the unit widens, so the residual branch yields the missing
    ``out_channels - in_channels``; otherwise it is added. Only ``reduced_tail`` makes a
    downsampling unit that does not widen; it adds its pooled shortcut.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        groups: int,
        geometry: BlockGeometry,
        downsample: bool,
        group_first_conv: bool = True,
    ) -> None:
        super().__init__()
        bottleneck = out_channels // 4
        self.concat = out_channels > in_channels
        branch_channels = out_channels - in_channels if self.concat else out_channels
        assert bottleneck % groups == 0 and branch_channels % groups == 0, (in_channels, out_channels, groups)
        self.groups = groups
        self.compress = ConvBNAct(in_channels, bottleneck, 1, groups=groups if group_first_conv else 1)
        self.depthwise = depthwise_bn(bottleneck, geometry)
        self.expand = ConvBNAct(bottleneck, branch_channels, 1, groups=groups, activation=None)
        # an atrous unit (planned stride 1) pools with stride 1 too, which keeps the size
        self.shortcut = nn.AvgPool2d(3, stride=geometry.stride, padding=1) if downsample else nn.Identity()
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.expand(self.depthwise(channel_shuffle(self.compress(x), self.groups)))
        shortcut = self.shortcut(x)
        out = torch.cat((shortcut, branch), dim=1) if self.concat else shortcut + branch
        return self.activation(out)


class ShuffleNetV1(ShuffleNetLayout):
    """ShuffleNetV1 backbone (Zhang et al. 2018, Table 1), "ShuffleNet s x" width scaling.

    Features: ``stem`` (conv1, 24 channels), ``layer1`` (max pool), ``layer2``..``layer4``
    (stages 2..4). The stem stays at 24 channels at every width.

    Args:
        groups: groups of the pointwise convolutions (Table 1 columns).
        width_mult: the paper's scale factor s; stage widths are rounded to multiples of
            ``4 * groups`` so the bottleneck (a quarter of the output) splits into the groups.
        output_stride: 8, 16 or 32; later downsampling units become atrous.
        reduced_tail: halve stage 4's channels (MobileNetV3 section 6.4, for segmentation).
        in_channels: channels of the input image.
    """

    def __init__(
        self,
        groups: Literal[1, 2, 3, 4, 8] = 3,
        width_mult: float = 1.0,
        output_stride: int = 32,
        reduced_tail: bool = False,
        in_channels: int = 3,
    ) -> None:
        check_choice("groups", groups, tuple(SHUFFLENET_V1_WIDTHS))
        check_choice("width_mult", width_mult, WIDTH_MULTS)
        stage_channels = [
            make_divisible(channels * width_mult, 4 * groups)
            for channels in SHUFFLENET_V1_WIDTHS[groups].stage_channels
        ]
        if reduced_tail:
            stage_channels[-1] //= 2

        def make_unit(in_ch: int, out_ch: int, geometry: BlockGeometry, stage_index: int, unit_index: int) -> nn.Module:
            # paper section 3.3: stage 2's first pointwise conv sees only 24 channels, so no groups
            first_grouped = not (stage_index == 0 and unit_index == 0)
            return ShuffleV1Unit(in_ch, out_ch, groups, geometry, downsample=unit_index == 0, group_first_conv=first_grouped)

        super().__init__(stage_channels, make_unit, output_stride, in_channels)
        self.conv5 = nn.Identity()  # ShuffleNetV1 has no conv5


class ShuffleNetV1Classifier(ShuffleNetClassifierHead):
    """ShuffleNetV1 ImageNet classifier: the backbone, global average pooling and a linear layer."""

    def __init__(
        self,
        num_classes: int = 1000,
        groups: Literal[1, 2, 3, 4, 8] = 3,
        width_mult: float = 1.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__(ShuffleNetV1(groups=groups, width_mult=width_mult, in_channels=in_channels), num_classes)
