"""ShuffleNetV1 (Zhang et al., "ShuffleNet", CVPR 2018)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from seglite.checks import check_choice

from ..layers import ConvBNAct, channel_shuffle, make_divisible
from ._shufflenet import WIDTH_MULTS, ShuffleNetClassifier, ShuffleNetLayout, depthwise_bn
from .base import BlockGeometry


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
        check_choice("groups", groups, tuple(SHUFFLENET_V1_WIDTHS), type(self).__name__)
        check_choice("width_mult", width_mult, WIDTH_MULTS, type(self).__name__)
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


class ShuffleNetV1Classifier(ShuffleNetClassifier):
    """ShuffleNetV1 ImageNet classifier: the backbone, global average pooling and a linear layer."""

    def __init__(
        self,
        num_classes: int = 1000,
        groups: Literal[1, 2, 3, 4, 8] = 3,
        width_mult: float = 1.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__(ShuffleNetV1(groups=groups, width_mult=width_mult, in_channels=in_channels), num_classes)
