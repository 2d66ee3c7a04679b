"""What every backbone shares: named feature outputs and the output-stride plan."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from seglite.checks import check_choice, check_positive_number

OUTPUT_STRIDES = (8, 16, 32)
FEATURE_NAMES = ("stem", "layer1", "layer2", "layer3", "layer4")

DilationRule = Literal["deeplab", "torchvision"]
DILATION_RULES = ("deeplab", "torchvision")


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


def check_output_stride(output_stride: Any, owner: str | None = None) -> int:
    """``output_stride`` if it is 8, 16 or 32; ``ValueError`` naming ``owner`` and the argument otherwise."""
    return int(check_choice("output_stride", output_stride, OUTPUT_STRIDES, owner))


def check_width_mult(width_mult: Any, owner: str | None = None) -> float:
    """``width_mult`` as a float if it is a positive number (``True`` is not one)."""
    return check_positive_number("width_mult", width_mult, owner)


def plan_output_stride(
    strides: Sequence[int], output_stride: int, dilation_rule: DilationRule = "deeplab"
) -> list[BlockGeometry]:
    """Turn the nominal stride of each block into (stride, dilation) for ``output_stride``.

    The one output-stride mechanism of seglite, applied while a network is built (as timm's
    ``EfficientNetBuilder`` does): the cumulative stride is tracked, and a stride-2 block that
    would take it beyond ``output_stride`` gets stride 1 instead, while the blocks after it get
    their dilation multiplied by that stride (atrous convolution, DeepLab).

    Args:
        strides: the nominal stride of each block, in network order.
        output_stride: 8, 16 or 32.
        dilation_rule: what the block that gives up its stride is built with. ``"deeplab"``:
            the previous dilation (TF DeepLab's ``mobilenet_base`` and the MobileNetV3 authors'
            segmentation models, timm); ``"torchvision"``: already the multiplied one
            (torchvision's ``mobilenet_v3_large(dilated=True)``, whose stride-2 block of the last
            stage has dilation 2). The blocks after it are the same under both rules.
    """
    check_output_stride(output_stride, "plan_output_stride")
    check_choice("dilation_rule", dilation_rule, DILATION_RULES, "plan_output_stride")
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
        block_dilation = next_dilation if dilation_rule == "torchvision" else dilation
        plan.append(BlockGeometry(stride=stride, dilation=block_dilation, total_stride=total_stride))
        dilation = next_dilation
    return plan


def stage_of(name: str) -> int:
    """Index in ``FEATURE_NAMES`` of the stage a feature comes from (``layer2_depthwise`` -> 3)."""
    return FEATURE_NAMES.index(name.split("_", 1)[0])


def keep_feature(features: dict[str, torch.Tensor], wanted: list[str], name: str, value: torch.Tensor | None) -> None:
    """Put ``value`` in ``features`` as ``name`` if ``name`` is ``wanted`` (a helper of backbones' ``forward``)."""
    if value is not None and name in wanted:
        features[name] = value


class Backbone(nn.Module):
    """Base of seglite backbones: ``forward`` returns ``{name: feature}`` for ``out_features``.

    Subclasses build their layers, fill ``self.feature_info`` (the stage outputs
    ``FEATURE_NAMES`` from shallow to deep, then any extra taps such as ``layer2_depthwise``),
    call ``set_out_features()`` and implement ``forward``, which computes the stages up to
    ``deepest_stage`` only and returns the features named in ``out_features`` only (every
    feature until a model narrows them: ``SegmentationModel`` sets its heads' ``in_features``,
    so no other activation is kept alive). Those with a ``weights`` option (ImageNet
    initialisation from a local torchvision file) set ``self.loaded_weights``: the
    ``LoadedWeights`` report, or ``None``. ``feature_info``, ``loaded_weights`` and the
    properties below describe the module for Python code; TorchScript ignores them, so every
    backbone can be scripted.
    """


    # Described in __init__ of the subclasses; TorchScript compiles none of them (dataclasses, properties).
    __jit_ignored_attributes__ = ("feature_info", "loaded_weights")
    __jit_unused_properties__ = ("out_channels", "output_stride")

    def feature(self, name: str) -> FeatureInfo:
        """The ``FeatureInfo`` called ``name``; ``KeyError`` naming the available ones if absent."""
        for info in self.feature_info:
            if info.name == name:
                return info
        names = [info.name for info in self.feature_info]
        raise KeyError(f"{type(self).__name__} has no feature {name!r}; available: {names}")

    def set_out_features(self, names: Iterable[str] | None = None) -> None:
        """Make ``forward`` compute and return only the features ``names`` (``None``: every feature).

        Stages deeper than the deepest of them are not run, and no other output is kept.
        ``ValueError`` naming the available features for a name the backbone does not have.
        """
        available = [info.name for info in self.feature_info]
        wanted = available if names is None else list(dict.fromkeys(names))
        unknown = [name for name in wanted if name not in available]
        if unknown or not wanted:
            raise ValueError(
                f"{type(self).__name__}.set_out_features: unknown features {unknown} (or none asked for); "
                f"available: {available}"
            )
        # plain attributes (a list of str and an int), so TorchScript compiles them into forward
        self.out_features = [name for name in available if name in wanted]  # in feature_info order
        self.deepest_stage = max(stage_of(name) for name in wanted)  # FEATURE_NAMES index

    @property
    def out_channels(self) -> int:
        """Channels of the deepest stage output (``layer4``)."""
        return self.feature(FEATURE_NAMES[-1]).channels

    @property
    def output_stride(self) -> int:
        """Effective stride of the deepest stage output (``layer4``)."""
        return self.feature(FEATURE_NAMES[-1]).stride

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError
