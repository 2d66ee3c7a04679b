"""Lite Reduced Atrous Spatial Pyramid Pooling (LR-ASPP), MobileNetV3 paper section 6.4."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from seglite.checks import check_choice, check_positive_int

from ..layers import ConvBNAct

PoolFallback = Literal["clamp", "global"]
POOL_FALLBACKS = ("clamp", "global")
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


def _window_means(x: torch.Tensor, dim: int, window: torch.Tensor, stride: int) -> torch.Tensor:
    """Means of ``window`` consecutive elements along ``dim`` (-2 or -1), every ``stride`` elements.

    Computed from a cumulative sum, so the window length may be a tensor that depends on the input
    size: the same graph then serves every size when traced (ONNX with dynamic axes), scripted,
    exported or compiled with dynamic shapes (``F.avg_pool2d`` needs its kernel as constants).
    Accumulates in float32.
    """
    # index arithmetic on the CPU (also for meta and GPU inputs: arange needs the count's value)
    size = torch.as_tensor(x.shape[dim], device="cpu")
    count = torch.div(size - window, stride, rounding_mode="floor") + 1
    starts = torch.arange(count, device="cpu") * stride
    sums = x.float().cumsum(dim)
    # the sum of elements [start, start + window) is sums[start + window - 1] - sums[start - 1]
    before = sums.index_select(dim, (starts - 1).clamp(min=0).to(x.device))
    before = before * (starts > 0).to(x.device, before.dtype).view([-1, 1] if dim == -2 else [-1])
    window_sums = sums.index_select(dim, (starts + window - 1).to(x.device)) - before
    return (window_sums / window.to(x.device)).to(x.dtype)


def _traced_clamped_pool(x: torch.Tensor, kernel_size: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """``WindowAvgPool2d._clamped_pool`` when traced (the ONNX export): sizes are then 0-d tensors, and
    the padding and the area are computed from them in the graph (``Shape`` -> ``Pad``), right at every size."""
    kernel_height, kernel_width = kernel_size
    height = torch.as_tensor(x.shape[-2], device="cpu")
    width = torch.as_tensor(x.shape[-1], device="cpu")
    x = F.pad(x, [0, torch.clamp(kernel_width - width, min=0), 0, torch.clamp(kernel_height - height, min=0)])
    area = torch.clamp(height, max=kernel_height) * torch.clamp(width, max=kernel_width)
    return F.avg_pool2d(x, kernel_size, stride) * ((kernel_height * kernel_width) / area).to(x.device, x.dtype)


class WindowAvgPool2d(nn.Module):
    """Average pooling with a fixed window, and a stated fallback for maps smaller than the window.

    TF DeepLab pools with ``padding='VALID'``, which has no output when the map is smaller than
    the window (a 49x49 window needs a 784-pixel side at output stride 16; a 512x1024 input gives
    a 32x64 map). ``fallback`` says what happens then:

    - ``"clamp"``: the window is clamped to the map along each side that is too short, so that side
      is pooled whole while the other keeps its sliding windows (32x64 -> a 1x4 map with a
      32x49 window and stride (4, 5)).
    - ``"global"``: global average pooling over the whole map as soon as one side is too short
      (what the authors' pool amounts to on their 769x769 training crops, and what torchvision
      always does).

    ``"clamp"`` is one native average pool over a map zero-padded up to the window (see
    ``_clamped_pool``); ``"global"`` is an integral image (``_window_means``), whose window lengths
    are tensors. Neither branches on the input size, so a dynamic-size ONNX export or
    ``torch.compile(dynamic=True)`` is right at every size, on both sides of the window size.
    """

    def __init__(self, kernel_size: tuple[int, int], stride: tuple[int, int], fallback: PoolFallback = "clamp") -> None:
        super().__init__()
        owner = type(self).__name__
        self.kernel_size = _pair("kernel_size", kernel_size, owner)
        self.stride = _pair("stride", stride, owner)
        self.fallback: str = check_choice("fallback", fallback, POOL_FALLBACKS, owner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fallback == "clamp":
            return self._clamped_pool(x)
        height = torch.as_tensor(x.shape[-2], device="cpu")
        width = torch.as_tensor(x.shape[-1], device="cpu")
        window_height = torch.clamp(height, max=self.kernel_size[0])
        window_width = torch.clamp(width, max=self.kernel_size[1])
        short = (height < self.kernel_size[0]) | (width < self.kernel_size[1])
        window_height = torch.where(short, height, window_height)
        window_width = torch.where(short, width, window_width)
        # width first: its cumulative sum runs along contiguous memory over the whole map, the
        # height's then over the few pooled columns
        x = _window_means(x, -1, window_width, self.stride[1])
        return _window_means(x, -2, window_height, self.stride[0])

    def _clamped_pool(self, x: torch.Tensor) -> torch.Tensor:
        """The ``"clamp"`` window as one native average pool with a constant kernel.

        A side shorter than the window is zero-padded at its end to the window's length: the one
        window then sums the whole side, and the mean is rescaled from the window's area to the
        area it covers. Every runtime has an optimised average pool (OpenVINO and ONNX Runtime ran
        the integral image's ``CumSum`` with a reference kernel; ExecuTorch and LiteRT left it
        off XNNPACK and could not quantise around it).
        """
        if not torch.jit.is_scripting() and torch.jit.is_tracing():  # TorchScript skips this branch
            return _traced_clamped_pool(x, self.kernel_size, self.stride)
        kernel_height, kernel_width = self.kernel_size
        height, width = x.shape[-2], x.shape[-1]
        x = F.pad(x, [0, max(kernel_width - width, 0), 0, max(kernel_height - height, 0)])
        area = min(height, kernel_height) * min(width, kernel_width)
        return F.avg_pool2d(x, self.kernel_size, self.stride) * ((kernel_height * kernel_width) / area)

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
        # a global gate broadcasts; a window gate's coarse map is resized (decided here, not by the map's size)
        self.global_gate = pool_kernel is None
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(inner_channels, num_classes, 1)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        low = features[self.low_feature]
        high = features[self.high_feature]
        x = self.cbr(high)
        scale = self.scale(high)
        if not self.global_gate:  # stretch the window pool's coarse map over x, as TF DeepLab does
            scale = F.interpolate(scale, size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = F.interpolate(x * scale, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)
