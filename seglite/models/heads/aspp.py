"""Atrous Spatial Pyramid Pooling: DeepLabV3 and the MobileNetV2 paper's reduced R-ASPP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from seglite.checks import check_fraction, check_positive_int

from ..layers import ConvBNAct

DEEPLAB_RATES = (6, 12, 18)  # DeepLabV3 paper section 3.3, at output stride 16


def scaled_atrous_rates(output_stride: int, rates: Sequence[int] = DEEPLAB_RATES) -> tuple[int, ...]:
    """ASPP rates for ``output_stride``: the paper's rates at 16, doubled at 8, halved at 32."""
    return tuple(max(1, rate * 16 // output_stride) for rate in rates)


def conv3x3(in_channels: int, out_channels: int, dilation: int = 1, separable: bool = False) -> nn.Sequential:
    """A 3x3 conv-BN-ReLU, or its depthwise-separable form (DeepLabV3+ paper section 3.1).

    The separable form has BN and ReLU after both the depthwise and the pointwise conv, as in
    TF DeepLab's ``split_separable_conv2d``.
    """
    if not separable:
        return ConvBNAct(in_channels, out_channels, 3, dilation=dilation)
    return nn.Sequential(
        ConvBNAct(in_channels, in_channels, 3, dilation=dilation, groups=in_channels),
        ConvBNAct(in_channels, out_channels, 1),
    )


class ImagePooling(nn.Module):
    """ASPP's image-level branch: global average pool, 1x1 conv-BN-ReLU, broadcast back.

    Its BatchNorm sees one value per channel and image, so training needs two or more images
    per batch, as in torchvision's ``ASPPPooling`` and mmseg's ``ASPPHead`` (see ``pooled_batch_norms``).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = ConvBNAct(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x)).expand(-1, -1, x.shape[-2], x.shape[-1])


def pooled_batch_norms(model: nn.Module) -> dict[str, nn.Module]:
    """The BatchNorm layers of ``model``'s image-pooling branches, by module name.

    Each normalises a 1x1 map: in training it needs more than one image per batch (summed over
    processes for ``SyncBatchNorm``), or torch stops mid-step with "Expected more than 1 value per channel".
    """
    return {
        f"{name}.{inner}": norm
        for name, module in model.named_modules()
        if isinstance(module, ImagePooling)
        for inner, norm in module.named_modules()
        if isinstance(norm, (nn.BatchNorm2d, nn.SyncBatchNorm))
    }


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling (Chen et al. 2017, "Rethinking Atrous Convolution", section 3.3).

    A 1x1 branch, one 3x3 branch per atrous rate and an image-pooling branch, concatenated and
    projected by a 1x1 conv-BN-ReLU. With no rates it is the MobileNetV2 paper's R-ASPP.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        atrous_rates: Sequence[int] = DEEPLAB_RATES,
        separable: bool = False,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        check_positive_int("in_channels", in_channels, owner)
        check_positive_int("out_channels", out_channels, owner)
        for index, rate in enumerate(atrous_rates):
            check_positive_int(f"atrous_rates[{index}]", rate, owner)
        check_fraction("dropout", dropout, owner, include_one=False)
        branches: list[nn.Module] = [ConvBNAct(in_channels, out_channels, 1)]
        branches += [conv3x3(in_channels, out_channels, rate, separable) for rate in atrous_rates]
        branches.append(ImagePooling(in_channels, out_channels))
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(ConvBNAct(len(branches) * out_channels, out_channels, 1), nn.Dropout(dropout))
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class DeepLabV3Head(nn.Module):
    """DeepLabV3 head: ASPP then a 1x1 classifier (DeepLabV3 paper section 3.3).

    The ASPP output feeds the classifier directly, as in the paper and TF DeepLab; with
    ``conv_after_aspp`` a 3x3 conv-BN-ReLU comes in between, as in torchvision's ``DeepLabHead``
    (whose weights then load by position). Logits come out at the feature's resolution.

    Args:
        in_channels: channels of the backbone feature.
        num_classes: classes to predict.
        channels: width of every ASPP branch and of the projection (the paper: 256).
        atrous_rates: rates of the 3x3 branches, for the feature's stride (see ``scaled_atrous_rates``).
        separable: depthwise-separable 3x3 branches (DeepLabV3+ paper), far cheaper on wide features.
        dropout: dropout after the projection.
        feature: backbone feature name the head reads.
        conv_after_aspp: a 3x3 conv-BN-ReLU of ``channels`` filters between the ASPP and the
            classifier (torchvision's ``DeepLabHead``).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channels: int = 128,
        atrous_rates: Sequence[int] = DEEPLAB_RATES,
        separable: bool = True,
        dropout: float = 0.1,
        feature: str = "layer4",
        conv_after_aspp: bool = False,
    ) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes, type(self).__name__)
        self.in_features = {feature: in_channels}
        self.feature = feature
        self.num_classes = num_classes
        self.aspp = ASPP(in_channels, channels, atrous_rates, separable, dropout)
        # registered between aspp and classifier: torchvision's DeepLabHead order
        self.refine: nn.Module = ConvBNAct(channels, channels, 3) if conv_after_aspp else nn.Identity()
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.refine(self.aspp(features[self.feature])))


class RASPPHead(DeepLabV3Head):
    """Reduced ASPP (Sandler et al. 2018, "MobileNetV2", section 6.3): a 1x1 branch and image pooling.

    Args:
        in_channels: channels of the backbone feature.
        num_classes: classes to predict.
        channels: width of both branches and of the projection (paper: 256).
        dropout: dropout after the projection.
        feature: backbone feature name the head reads.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channels: int = 256,
        dropout: float = 0.1,
        feature: str = "layer4",
    ) -> None:
        super().__init__(
            in_channels, num_classes, channels, atrous_rates=(), separable=False, dropout=dropout, feature=feature
        )
