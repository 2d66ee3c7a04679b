"""What every backbone shares: named feature outputs and the output-stride plan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

OUTPUT_STRIDES = (8, 16, 32)
FEATURE_NAMES = ("stem", "layer1", "layer2", "layer3", "layer4")


@dataclass(frozen=True)
class FeatureInfo:
    """A named backbone output: its channels and its effective stride (after dilation)."""

    name: str
    channels: int
    stride: int


@dataclass(frozen=True)
class BlockGeometry:
    """Stride and dilation a block is built with, and the total stride after it."""

    stride: int
    dilation: int
    total_stride: int


def check_output_stride(output_stride: int) -> None:
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}")


def check_width_mult(width_mult: float) -> None:
    if not isinstance(width_mult, (int, float)) or width_mult <= 0:
        raise ValueError(f"width_mult must be a positive number, got {width_mult!r}")


def plan_output_stride(strides: Sequence[int], output_stride: int) -> list[BlockGeometry]:
    """Turn the nominal stride of each block into (stride, dilation) for ``output_stride``.

    The one output-stride mechanism of seglite, applied while a network is built (as timm's
    ``EfficientNetBuilder`` does): the cumulative stride is tracked, and a stride-2 block that
    would take it beyond ``output_stride`` gets stride 1 instead, while every block after it
    gets its dilation multiplied by that stride (atrous convolution, DeepLab). The block that
    gave up its stride keeps the previous dilation, as in TF DeepLab's MobileNet extractor.
    """
    check_output_stride(output_stride)
    plan = []
    total_stride, dilation = 1, 1
    for stride in strides:
        next_dilation = dilation
        if stride > 1:
            if total_stride * stride > output_stride:
                next_dilation = dilation * stride
                stride = 1
            else:
                total_stride *= stride
        plan.append(BlockGeometry(stride=stride, dilation=dilation, total_stride=total_stride))
        dilation = next_dilation
    return plan


class Backbone(nn.Module):
    """Base of seglite backbones: ``forward`` returns ``{name: feature}`` for ``feature_info``.

    Subclasses build their layers, fill ``self.feature_info`` (ordered from shallow to deep,
    names from ``FEATURE_NAMES``) and implement ``forward``.
    """

    feature_info: list[FeatureInfo]

    def feature(self, name: str) -> FeatureInfo:
        """The ``FeatureInfo`` called ``name``; ``KeyError`` naming the available ones if absent."""
        for info in self.feature_info:
            if info.name == name:
                return info
        names = [info.name for info in self.feature_info]
        raise KeyError(f"{type(self).__name__} has no feature {name!r}; available: {names}")

    @property
    def out_channels(self) -> int:
        """Channels of the deepest feature."""
        return self.feature_info[-1].channels

    @property
    def output_stride(self) -> int:
        return self.feature_info[-1].stride

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError
