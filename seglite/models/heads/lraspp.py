"""Lite Reduced Atrous Spatial Pyramid Pooling (LR-ASPP), MobileNetV3 paper section 6.4."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from seglite.checks import check_choice, check_positive_int

from ..layers import ConvBNAct

PoolFallback = Literal["clamp", "global", "error"]
POOL_FALLBACKS = ("clamp", "global", "error")
GateActivation = Literal["hardsigmoid", "sigmoid"]
GATE_ACTIVATIONS: dict[str, type[nn.Module]] = {"hardsigmoid": nn.Hardsigmoid, "sigmoid": nn.Sigmoid}

# The authors' pool (TF DeepLab model zoo flags --image_pooling_crop_size=769,769
# --image_pooling_stride=4,5): a 769x769 crop at output stride 16 is 49x49 feature pixels, and the
# window moves by (4, 5) feature pixels. The paper's text gives the stride as (16, 20).
AUTHORS_POOL_KERNEL = (49, 49)
AUTHORS_POOL_STRIDE = (4, 5)


def _pair(name: str, value: Any, owner: str) -> tuple[int, int]:
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ValueError(f"{owner}: {name} must be (height, width) of positive integers, got {value!r}")
    return check_positive_int(f"{name}[0]", value[0], owner), check_positive_int(f"{name}[1]", value[1], owner)


class WindowAvgPool2d(nn.Module):
    """Average pooling with a fixed window, and a stated fallback for maps smaller than the window.

    TF DeepLab pools with ``padding='VALID'``, which has no output when the map is smaller than
    the window (a 49x49 window needs a 784-pixel side at output stride 16; a 512x1024 input gives
    a 32x64 map). ``fallback`` says what happens then:

    - ``"clamp"``: the window is clamped to the map along each side that is too short, so that side
      is pooled whole while the other keeps its sliding windows (32x64 -> a 1x4 map with a
      32x49 window and stride (4, 5)).
    - ``"global"``: global average pooling over the whole map (what the authors' pool amounts to
      on their 769x769 training crops, and what torchvision always does).
    - ``"error"``: ``ValueError`` naming the smallest map the window fits.
    """

    def __init__(self, kernel_size: tuple[int, int], stride: tuple[int, int], fallback: PoolFallback = "clamp") -> None:
        super().__init__()
        owner = type(self).__name__
        self.kernel_size = _pair("kernel_size", kernel_size, owner)
        self.stride = _pair("stride", stride, owner)
        self.fallback: str = check_choice("fallback", fallback, POOL_FALLBACKS, owner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        kernel_height, kernel_width = self.kernel_size
        if height >= kernel_height and width >= kernel_width:
            return F.avg_pool2d(x, self.kernel_size, self.stride)
        if self.fallback == "clamp":
            # Averaging a short side whole, then pooling with a constant window, is the clamped window
            # written without a size-dependent kernel, which inductor miscompiles with dynamic shapes.
            if height < kernel_height:
                x = x.mean(2, keepdim=True)
                kernel_height = 1
            if width < kernel_width:
                x = x.mean(3, keepdim=True)
                kernel_width = 1
            return F.avg_pool2d(x, (kernel_height, kernel_width), self.stride)
        if self.fallback == "global":
            return x.mean((2, 3), keepdim=True)
        raise ValueError(
            f"WindowAvgPool2d: a {height}x{width} feature map is smaller than the {kernel_height}x{kernel_width} "
            "pooling window; use larger inputs or fallback='clamp' or 'global'"
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, fallback={self.fallback!r}"


class LRASPPHead(nn.Module):
    """LR-ASPP (Howard et al. 2019, "Searching for MobileNetV3", section 6.4, figure 10).

    The deep feature goes through a 1x1 conv-BN-ReLU branch gated by a pooled 1x1 conv and a
    (hard) sigmoid, squeeze-and-excitation like; the gated feature is upsampled to the low-level
    feature and classified by a 1x1 conv, and a 1x1 conv classifier of the low-level feature is
    added (the authors' ``decoder_use_sum_merge`` with ``decoder_output_is_logits``; torchvision
    merges the same way). Logits come out at the low-level feature's resolution. Modules are
    registered in the order of torchvision's ``LRASPPHead`` (``cbr``, ``scale``,
    ``low_classifier``, ``high_classifier``) so its weights load by position.

    The defaults are the authors' TF DeepLab head (model zoo flags ``--image_pooling_crop_size=769,769
    --image_pooling_stride=4,5 --aspp_with_squeeze_and_excitation=1 --image_se_uses_qsigmoid=1``):
    49x49 pool with stride (4, 5), gate conv with bias and no BN, hard sigmoid. torchvision's head:
    ``pool_kernel=None, gate_activation="sigmoid", gate_bias=False``.

    Args:
        high_channels: channels of the deep feature (MobileNetV3-Large: 960, 480 with reduced tail).
        low_channels: channels of the low-level feature (MobileNetV3-Large ``layer2_depthwise``: 120).
        num_classes: classes to predict.
        inner_channels: filters of the two branches (paper: 128).
        pool_kernel: average-pooling window of the gate, in feature pixels; ``None`` for global
            average pooling. A window smaller than the map leaves a coarse gate map, which is
            resized (bilinear) to the feature map, as TF DeepLab does.
        pool_stride: stride of that window, in feature pixels.
        pool_fallback: what the window does on maps smaller than it (see ``WindowAvgPool2d``).
        gate_activation: ``"hardsigmoid"`` (the authors' ``q_sigmoid``) or ``"sigmoid"`` (the
            paper's figure 10, torchvision).
        gate_bias: the gate's 1x1 conv has a bias (the authors': slim adds one when there is no BN).
        high_feature: backbone feature name of the deep feature.
        low_feature: backbone feature name of the low-level feature (stride 8 in the paper).
    """

    def __init__(
        self,
        high_channels: int,
        low_channels: int,
        num_classes: int,
        inner_channels: int = 128,
        pool_kernel: tuple[int, int] | None = AUTHORS_POOL_KERNEL,
        pool_stride: tuple[int, int] = AUTHORS_POOL_STRIDE,
        pool_fallback: PoolFallback = "clamp",
        gate_activation: GateActivation = "hardsigmoid",
        gate_bias: bool = True,
        high_feature: str = "layer4",
        low_feature: str = "layer2",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        for name, value in (
            ("high_channels", high_channels),
            ("low_channels", low_channels),
            ("num_classes", num_classes),
            ("inner_channels", inner_channels),
        ):
            check_positive_int(name, value, owner)
        check_choice("gate_activation", gate_activation, tuple(GATE_ACTIVATIONS), owner)
        if not isinstance(gate_bias, bool):
            raise TypeError(f"{owner}: gate_bias must be True or False, got {gate_bias!r}")
        self.in_features = {high_feature: high_channels, low_feature: low_channels}
        self.high_feature = high_feature
        self.low_feature = low_feature
        self.num_classes = num_classes
        self.cbr = ConvBNAct(high_channels, inner_channels, kernel_size=1)
        if pool_kernel is None:
            pool: nn.Module = nn.AdaptiveAvgPool2d(1)
        else:
            pool = WindowAvgPool2d(pool_kernel, pool_stride, pool_fallback)
        gate = nn.Conv2d(high_channels, inner_channels, 1, bias=gate_bias)
        self.scale = nn.Sequential(pool, gate, GATE_ACTIVATIONS[gate_activation]())
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(inner_channels, num_classes, 1)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        low = features[self.low_feature]
        high = features[self.high_feature]
        x = self.cbr(high)
        scale = self.scale(high)
        if scale.shape[-2] != 1 or scale.shape[-1] != 1:  # a window pool leaves a coarse map: stretch it over x
            scale = F.interpolate(scale, size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = F.interpolate(x * scale, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)
