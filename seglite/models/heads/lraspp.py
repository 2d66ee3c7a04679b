"""Lite Reduced Atrous Spatial Pyramid Pooling (LR-ASPP), MobileNetV3 paper section 6.4."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from ..layers import ConvBNAct
from .common import check_positive

POOLINGS = ("global", "paper")
# The paper's pool: 49x49 is a 769x769 training crop at output stride 16, stride (16, 20) its TF DeepLab setting.
PAPER_POOL_KERNEL = (49, 49)
PAPER_POOL_STRIDE = (16, 20)


class ClampedAvgPool2d(nn.Module):
    """Average pooling whose kernel is clamped to the feature map, so small inputs never fail.

    Where the feature map is smaller than the kernel along a side, the kernel spans the whole
    side: pooling along it degrades to global pooling (a 512x1024 input at output stride 16
    gives a 32x64 map, pooled 32x49 with stride (16, 20) into 1x1).
    """

    def __init__(self, kernel_size: tuple[int, int], stride: tuple[int, int]) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = (min(self.kernel_size[0], x.shape[-2]), min(self.kernel_size[1], x.shape[-1]))
        return F.avg_pool2d(x, kernel, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, clamped to the input"


class LRASPPHead(nn.Module):
    """LR-ASPP (Howard et al. 2019, "Searching for MobileNetV3", section 6.4, figure 10).

    The deep feature goes through a 1x1 conv-BN-ReLU branch gated by a pooled 1x1 conv and a
    sigmoid (squeeze-and-excitation like), is upsampled to the low-level feature and classified;
    a 1x1 classifier of the low-level feature is added. Logits come out at the low-level
    feature's resolution. Modules are registered in the order of torchvision's ``LRASPPHead``
    (``cbr``, ``scale``, ``low_classifier``, ``high_classifier``) so its weights load by position.

    Args:
        high_channels: channels of the deep feature (MobileNetV3-Large: 960, 480 with reduced tail).
        low_channels: channels of the low-level feature (MobileNetV3-Large layer2: 40).
        num_classes: classes to predict.
        inner_channels: filters of the two branches (paper: 128).
        pooling: ``"global"`` (torchvision; any input size) or ``"paper"`` (49x49 average pool
            with stride (16, 20), clamped to the feature map, see ``ClampedAvgPool2d``).
        high_feature: backbone feature name of the deep feature.
        low_feature: backbone feature name of the low-level feature (stride 8 in the paper).
    """

    def __init__(
        self,
        high_channels: int,
        low_channels: int,
        num_classes: int,
        inner_channels: int = 128,
        pooling: Literal["global", "paper"] = "global",
        high_feature: str = "layer4",
        low_feature: str = "layer2",
    ) -> None:
        super().__init__()
        check_positive(
            "LRASPPHead",
            high_channels=high_channels,
            low_channels=low_channels,
            num_classes=num_classes,
            inner_channels=inner_channels,
        )
        if pooling not in POOLINGS:
            raise ValueError(f"LRASPPHead: pooling must be one of {POOLINGS}, got {pooling!r}")
        self.in_features = {high_feature: high_channels, low_feature: low_channels}
        self.high_feature = high_feature
        self.low_feature = low_feature
        self.num_classes = num_classes
        self.pooling = pooling
        self.cbr = ConvBNAct(high_channels, inner_channels, kernel_size=1)
        if pooling == "global":
            pool: nn.Module = nn.AdaptiveAvgPool2d(1)
        else:
            pool = ClampedAvgPool2d(PAPER_POOL_KERNEL, PAPER_POOL_STRIDE)
        self.scale = nn.Sequential(pool, nn.Conv2d(high_channels, inner_channels, 1, bias=False), nn.Sigmoid())
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(inner_channels, num_classes, 1)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        low = features[self.low_feature]
        high = features[self.high_feature]
        x = self.cbr(high)
        scale = self.scale(high)
        if scale.shape[-2:] != (1, 1):  # the paper's strided pool leaves a coarse map: stretch it over x
            scale = F.interpolate(scale, size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = F.interpolate(x * scale, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)
