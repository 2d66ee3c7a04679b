"""ShuffleNetV2 (Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design", ECCV 2018).

Modules are registered in torchvision's order (conv1, stage2..4 with branch1 before branch2 in
each unit, conv5, fc) so ``load_torchvision_weights`` pairs every tensor with its counterpart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from seglite.checks import check_choice

from ..layers import ConvBNAct, channel_shuffle
from ..weights import load_imagenet_weights
from ._shufflenet import ShuffleNetClassifier, ShuffleNetLayout, depthwise_bn
from .base import BlockGeometry


@dataclass(frozen=True)
class ShuffleNetV2Width:
    """Output channels of stages 2, 3, 4 and of conv5 at one width multiplier."""

    stage_channels: tuple[int, int, int]
    conv5_channels: int


# ShuffleNetV2 paper, Table 5 ("Overall architecture of ShuffleNet v2"), columns 0.5x .. 2x.
SHUFFLENET_V2_WIDTHS = {
    0.5: ShuffleNetV2Width(stage_channels=(48, 96, 192), conv5_channels=1024),
    1.0: ShuffleNetV2Width(stage_channels=(116, 232, 464), conv5_channels=1024),
    1.5: ShuffleNetV2Width(stage_channels=(176, 352, 704), conv5_channels=1024),
    2.0: ShuffleNetV2Width(stage_channels=(244, 488, 976), conv5_channels=2048),
}
# what the ``weights`` option loads, for its error messages
IMAGENET_FILES = (
    "ShuffleNetV2 with in_channels 3 loads torchvision's shufflenet_v2_x0_5, x1_0, x1_5 and x2_0 "
    "(shufflenetv2_x*.pth) with width_mult 0.5, 1.0, 1.5 and 2.0"
)


class ShuffleV2Unit(nn.Module):
    """ShuffleNetV2 unit (paper Figure 3c/3d), torchvision's ``InvertedResidual``.

    A basic unit splits the channels in two halves and transforms one (``branch2``); a
    downsampling unit feeds the whole input to both branches (``branch1`` has the depthwise conv
    of the shortcut). The halves are concatenated and shuffled. The unit's kind follows
    ``downsample`` (its nominal stride), so an atrous unit keeps ``branch1`` and its weights.
    """

    def __init__(self, in_channels: int, out_channels: int, geometry: BlockGeometry, downsample: bool) -> None:
        super().__init__()
        branch_channels = out_channels // 2
        assert downsample or in_channels == out_channels, (in_channels, out_channels)
        self.downsample = downsample
        # an empty branch1 in a basic unit, as in torchvision: TorchScript compiles both paths of forward
        self.branch1 = (
            nn.Sequential(depthwise_bn(in_channels, geometry), ConvBNAct(in_channels, branch_channels, 1))
            if downsample
            else nn.Sequential()
        )
        self.branch2 = nn.Sequential(
            ConvBNAct(in_channels if downsample else branch_channels, branch_channels, 1),
            depthwise_bn(branch_channels, geometry),
            ConvBNAct(branch_channels, branch_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        else:
            kept, transformed = x.chunk(2, dim=1)
            out = torch.cat((kept, self.branch2(transformed)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(ShuffleNetLayout):
    """ShuffleNetV2 backbone (Ma et al. 2018, Table 5), including conv5 as torchvision's features do.

    Features: ``stem`` (conv1, 24 channels), ``layer1`` (max pool), ``layer2``, ``layer3``
    (stages 2, 3) and ``layer4`` (stage 4 followed by conv5).

    Args:
        width_mult: the paper's 0.5x, 1x, 1.5x or 2x.
        output_stride: 8, 16 or 32; later downsampling units become atrous.
        reduced_tail: halve the channels of stage 4 and conv5 (MobileNetV3 section 6.4).
        in_channels: channels of the input image.
        weights: path of a local file holding torchvision's ImageNet ``state_dict`` of the
            ``shufflenet_v2_x*`` of this width (``shufflenetv2_x0.5-f707e7126e.pth``,
            ``shufflenetv2_x1-5666bf0f80.pth``, ``shufflenetv2_x1_5-3c479a10.pth``,
            ``shufflenetv2_x2_0-8be3c8ee.pth``), copied in once the network is built (any output
            stride; needs ``reduced_tail=False``). The classifier (``fc``) is skipped;
            ``self.loaded_weights`` reports what was copied. seglite never downloads weights.
            Checkpoints record the model config without the path, and a model rebuilt from one
            never reads it: the checkpoint holds the trained weights (``seglite.checkpoints``).
    """

    def __init__(
        self,
        width_mult: float = 1.0,
        output_stride: int = 32,
        reduced_tail: bool = False,
        in_channels: int = 3,
        weights: str | None = None,
    ) -> None:
        check_choice("width_mult", width_mult, tuple(SHUFFLENET_V2_WIDTHS), type(self).__name__)
        width = SHUFFLENET_V2_WIDTHS[width_mult]
        stage_channels = list(width.stage_channels)
        conv5_channels = width.conv5_channels
        if reduced_tail:
            stage_channels[-1] //= 2
            conv5_channels //= 2

        def make_unit(in_ch: int, out_ch: int, geometry: BlockGeometry, stage_index: int, unit_index: int) -> nn.Module:
            return ShuffleV2Unit(in_ch, out_ch, geometry, downsample=unit_index == 0)

        super().__init__(stage_channels, make_unit, output_stride, in_channels)
        self.conv5 = ConvBNAct(stage_channels[-1], conv5_channels, 1)
        self.feature_info[-1] = replace(self.feature_info[-1], channels=conv5_channels)
        self.loaded_weights = None if weights is None else load_imagenet_weights(self, weights, reduced_tail, IMAGENET_FILES)


class ShuffleNetV2Classifier(ShuffleNetClassifier):
    """ShuffleNetV2 ImageNet classifier (torchvision's ``shufflenet_v2_x*``): backbone, pooling, fc."""

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, in_channels: int = 3) -> None:
        super().__init__(ShuffleNetV2(width_mult=width_mult, in_channels=in_channels), num_classes)
