"""Segmentation models: a backbone, a head and an optional auxiliary head."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from .backbones.base import Backbone
from .compat import lraspp_pooling_options
from .heads import DeepLabV3Head, DeepLabV3PlusHead, FCNHead, LRASPPHead, RASPPHead, scaled_atrous_rates
from .heads.lraspp import AUTHORS_POOL_KERNEL, AUTHORS_POOL_STRIDE, GateActivation, PoolFallback


def feature_channels(backbone: Backbone, name: str, reader: str) -> int:
    """Channels of ``backbone``'s feature ``name``; ``ValueError`` saying who asked if it has none."""
    names = [info.name for info in backbone.feature_info]
    if name not in names:
        raise ValueError(
            f"{reader} reads feature {name!r}, which {type(backbone).__name__} does not have; available: {names}"
        )
    return backbone.feature(name).channels


def padded_size(height: int, width: int, stride: int) -> tuple[int, int]:
    """``(height, width)`` rounded up to multiples of ``stride``: what a ``SegmentationModel`` pads its
    input to (at the bottom and right), and what its logits are upsampled to before the crop."""
    # rounded up by floor division: inductor (torch 2.14) fails on a modulo of symbolic sizes
    return (height + stride - 1) // stride * stride, (width + stride - 1) // stride * stride


class SegmentationModel(nn.Module):
    """A backbone whose named features feed a head, with logits resized to the input.

    At construction every feature a head reads is checked against the backbone: it must exist,
    have the channels the head was built for, and the stride the head requires (DeepLabV3+'s
    stride-4 low-level feature); otherwise ``ValueError`` says which head, feature and numbers.
    The backbone is then set to compute and return only those features (its ``out_features``).

    Inputs of any size work: where a side is not a multiple of the backbone's output stride,
    the input is zero-padded at the bottom/right to the next multiple (so every feature map
    is an exact fraction of it) and the logits are cropped back.

    Args:
        backbone: a seglite ``Backbone``.
        head: a head from ``seglite.models.heads`` (or any module with ``in_features``,
            ``num_classes`` and ``forward(features) -> logits``).
        aux_head: an optional auxiliary head for training (e.g. ``FCNHead`` on ``layer3``).

    ``torch.jit.script``, ``torch.compile(fullgraph=True)`` and ``torch.export`` all take it.
    """

    __jit_unused_properties__ = ("num_classes",)

    def __init__(self, backbone: Backbone, head: nn.Module, aux_head: nn.Module | None = None) -> None:
        super().__init__()
        for name, module in (("head", head), ("aux_head", aux_head)):
            if module is not None:
                self._check_fits(backbone, module, name)
        if aux_head is not None and aux_head.num_classes != head.num_classes:
            raise ValueError(
                f"aux_head predicts {aux_head.num_classes} classes but head predicts {head.num_classes}"
            )
        # The backbone computes and keeps only what the heads read (feature extraction on demand).
        backbone.set_out_features([*head.in_features, *(aux_head.in_features if aux_head is not None else ())])
        # Registration order (backbone, head) is torchvision's (backbone, classifier): weights load by position.
        self.backbone = backbone
        self.head = head
        self.aux_head = aux_head
        # inputs are padded to a multiple of it; an int attribute, so TorchScript reads it too
        self.output_stride: int = backbone.output_stride

    @staticmethod
    def _check_fits(backbone: Backbone, head: nn.Module, role: str) -> None:
        reader = f"{role} {type(head).__name__}"
        in_features = getattr(head, "in_features", None)
        if not isinstance(in_features, dict) or not hasattr(head, "num_classes"):
            raise TypeError(f"{reader} must expose in_features (feature name -> channels) and num_classes")
        for name, expected in in_features.items():
            found = feature_channels(backbone, name, reader)
            if found != expected:
                raise ValueError(
                    f"{reader} expects {expected} channels in feature {name!r} but "
                    f"{type(backbone).__name__} gives {found}; build the head from backbone.feature_info"
                )
        for name, stride in getattr(head, "feature_strides", {}).items():
            feature_channels(backbone, name, reader)
            found = backbone.feature(name).stride
            if found != stride:
                raise ValueError(
                    f"{reader} needs feature {name!r} at stride {stride} but {type(backbone).__name__} "
                    f"gives it at stride {found}"
                )

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def pad_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` zero-padded at the bottom and right to multiples of the output stride (:func:`padded_size`)."""
        height, width = padded_size(x.shape[-2], x.shape[-1], self.output_stride)
        pad_bottom, pad_right = height - x.shape[-2], width - x.shape[-1]
        if pad_bottom > 0 or pad_right > 0:
            x = F.pad(x, (0, pad_right, 0, pad_bottom))
        return x

    def _to_input_size(self, logits: torch.Tensor, padded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits = F.interpolate(logits, size=padded.shape[-2:], mode="bilinear", align_corners=False)
        # Nothing padded, nothing to crop: an exported graph (torch.export: ExecuTorch, LiteRT) would keep
        # the crop as a full-size copy. Not while tracing (the ONNX exporter): sizes are traced as tensors
        # there, and this test would fix the traced size into a dynamic-size export.
        if not torch.jit.is_tracing() and padded.shape[-2:] == x.shape[-2:]:
            return logits
        return logits[..., : x.shape[-2], : x.shape[-1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes, H, W) at the input size, in any mode."""
        padded = self.pad_input(x)
        return self._to_input_size(self.head(self.backbone(padded)), padded, x)

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, auxiliary logits or ``None`` without an aux head), both at the input size."""
        padded = self.pad_input(x)
        features = self.backbone(padded)
        logits = self._to_input_size(self.head(features), padded, x)
        if self.aux_head is None:
            return logits, None
        return logits, self._to_input_size(self.aux_head(features), padded, x)


def _aux_head(backbone: Backbone, num_classes: int, aux: bool, aux_feature: str) -> FCNHead | None:
    if not aux:
        return None
    return FCNHead(feature_channels(backbone, aux_feature, "FCNHead"), num_classes, feature=aux_feature)


class LRASPP(SegmentationModel):
    """LR-ASPP segmentation model (MobileNetV3 paper section 6.4); see ``LRASPPHead``.

    The authors' model (TF DeepLab ``mobilenet_v3_large_seg`` with the model zoo's flags) is
    ``LRASPP(MobileNetV3("large", output_stride=16, reduced_tail=True), low_feature="layer2_depthwise")``
    with the defaults below; the presets spell it out (``seglite.models.factory``).

    Args:
        backbone: the backbone; the paper uses MobileNetV3 with ``reduced_tail`` at output stride 16.
        num_classes: classes to predict.
        inner_channels: filters of the head's branches (paper: 128).
        pool_kernel: the gate's average-pooling window in feature pixels (the authors': 49x49);
            ``None`` for global pooling (torchvision).
        pool_stride: the window's stride in feature pixels (the authors': (4, 5)).
        pool_fallback: on feature maps smaller than the window: ``"clamp"`` it to the map or
            ``"global"`` pooling (see ``WindowAvgPool2d``).
        gate_activation: ``"hardsigmoid"`` (the authors') or ``"sigmoid"`` (torchvision).
        gate_bias: bias in the gate's 1x1 conv (the authors': yes; torchvision: no).
        high_feature: deep feature the head reads.
        low_feature: low-level feature (stride 8) the head reads: ``"layer2"`` (the stride-8 stage's
            output, any backbone), ``"layer2_depthwise"`` (the authors', MobileNets) or
            ``"layer2_first"`` (torchvision's, MobileNets).
        aux: add an ``FCNHead`` auxiliary head on ``aux_feature``.
        aux_feature: feature of the auxiliary head.
        pooling: deprecated (seglite 0.1's option, kept so its config files still parse):
            ``"global"`` means ``pool_kernel=None``; ``"paper"`` means ``pool_kernel=(49, 49)``,
            ``pool_stride=(16, 20)``, ``pool_fallback="clamp"`` (``models.compat`` holds the
            mapping). When given, it replaces those options.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int = 19,
        inner_channels: int = 128,
        pool_kernel: tuple[int, int] | None = AUTHORS_POOL_KERNEL,
        pool_stride: tuple[int, int] = AUTHORS_POOL_STRIDE,
        pool_fallback: PoolFallback = "clamp",
        gate_activation: GateActivation = "hardsigmoid",
        gate_bias: bool = True,
        high_feature: str = "layer4",
        low_feature: str = "layer2",
        aux: bool = False,
        aux_feature: str = "layer3",
        pooling: Literal["global", "paper"] | None = None,
    ) -> None:
        if pooling is not None:
            replacement = lraspp_pooling_options(pooling, "LRASPP")
            kernel, stride = replacement["pool_kernel"], replacement.get("pool_stride", pool_stride)
            pool_kernel = None if kernel is None else (kernel[0], kernel[1])
            pool_stride = (stride[0], stride[1])
            pool_fallback = replacement.get("pool_fallback", pool_fallback)
            warnings.warn(
                f"LRASPP: pooling={pooling!r} is deprecated; use pool_kernel={pool_kernel} and pool_stride={pool_stride}",
                FutureWarning,
                stacklevel=2,
            )
        head = LRASPPHead(
            high_channels=feature_channels(backbone, high_feature, "LRASPPHead"),
            low_channels=feature_channels(backbone, low_feature, "LRASPPHead"),
            num_classes=num_classes,
            inner_channels=inner_channels,
            pool_kernel=pool_kernel,
            pool_stride=pool_stride,
            pool_fallback=pool_fallback,
            gate_activation=gate_activation,
            gate_bias=gate_bias,
            high_feature=high_feature,
            low_feature=low_feature,
        )
        super().__init__(backbone, head, _aux_head(backbone, num_classes, aux, aux_feature))


class RASPP(SegmentationModel):
    """R-ASPP segmentation model (MobileNetV2 paper section 6.3); see ``RASPPHead``.

    Args:
        backbone: the backbone.
        num_classes: classes to predict.
        channels: filters of the head (paper: 256).
        dropout: dropout after the head's projection.
        feature: feature the head reads.
        aux: add an ``FCNHead`` auxiliary head on ``aux_feature``.
        aux_feature: feature of the auxiliary head.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int = 19,
        channels: int = 256,
        dropout: float = 0.1,
        feature: str = "layer4",
        aux: bool = False,
        aux_feature: str = "layer3",
    ) -> None:
        head = RASPPHead(feature_channels(backbone, feature, "RASPPHead"), num_classes, channels, dropout, feature)
        super().__init__(backbone, head, _aux_head(backbone, num_classes, aux, aux_feature))


def _atrous_rates(backbone: Backbone, feature: str, atrous_rates: Sequence[int] | None) -> tuple[int, ...]:
    if atrous_rates is not None:
        return tuple(atrous_rates)
    return scaled_atrous_rates(backbone.feature(feature).stride)


class DeepLabV3(SegmentationModel):
    """DeepLabV3 segmentation model (Chen et al. 2017); see ``DeepLabV3Head``.

    Args:
        backbone: the backbone.
        num_classes: classes to predict.
        channels: width of the ASPP.
        atrous_rates: ASPP rates; ``None`` for (6, 12, 18) scaled to the feature's actual stride
            ((12, 24, 36) at output stride 8, (3, 6, 9) at 32).
        separable: depthwise-separable atrous convs.
        dropout: dropout after the ASPP projection.
        feature: feature the head reads.
        conv_after_aspp: a 3x3 conv-BN-ReLU between the ASPP and the classifier (torchvision's
            ``DeepLabHead``).
        aux: add an ``FCNHead`` auxiliary head on ``aux_feature``.
        aux_feature: feature of the auxiliary head.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int = 19,
        channels: int = 128,
        atrous_rates: tuple[int, int, int] | None = None,
        separable: bool = True,
        dropout: float = 0.1,
        feature: str = "layer4",
        conv_after_aspp: bool = False,
        aux: bool = False,
        aux_feature: str = "layer3",
    ) -> None:
        in_channels = feature_channels(backbone, feature, "DeepLabV3Head")
        rates = _atrous_rates(backbone, feature, atrous_rates)
        head = DeepLabV3Head(in_channels, num_classes, channels, rates, separable, dropout, feature, conv_after_aspp)
        super().__init__(backbone, head, _aux_head(backbone, num_classes, aux, aux_feature))


class DeepLabV3Plus(SegmentationModel):
    """DeepLabV3+ segmentation model (Chen et al. 2018); see ``DeepLabV3PlusHead``.

    Args:
        backbone: the backbone.
        num_classes: classes to predict.
        channels: width of the ASPP and the decoder.
        atrous_rates: ASPP rates; ``None`` for (6, 12, 18) scaled to the deep feature's actual stride.
        separable: depthwise-separable 3x3 convs in the ASPP and the decoder.
        low_level_channels: channels the low-level feature is reduced to (paper: 48).
        dropout: dropout after the ASPP projection.
        high_feature: deep feature the head reads.
        low_feature: low-level feature the decoder fuses; must have stride 4.
        aux: add an ``FCNHead`` auxiliary head on ``aux_feature``.
        aux_feature: feature of the auxiliary head.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int = 19,
        channels: int = 128,
        atrous_rates: tuple[int, int, int] | None = None,
        separable: bool = True,
        low_level_channels: int = 48,
        dropout: float = 0.1,
        high_feature: str = "layer4",
        low_feature: str = "layer1",
        aux: bool = False,
        aux_feature: str = "layer3",
    ) -> None:
        head = DeepLabV3PlusHead(
            high_channels=feature_channels(backbone, high_feature, "DeepLabV3PlusHead"),
            low_channels=feature_channels(backbone, low_feature, "DeepLabV3PlusHead"),
            num_classes=num_classes,
            channels=channels,
            atrous_rates=_atrous_rates(backbone, high_feature, atrous_rates),
            separable=separable,
            low_level_channels=low_level_channels,
            dropout=dropout,
            high_feature=high_feature,
            low_feature=low_feature,
        )
        super().__init__(backbone, head, _aux_head(backbone, num_classes, aux, aux_feature))
