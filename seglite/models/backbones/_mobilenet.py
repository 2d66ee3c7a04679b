"""What the three MobileNet families share: table helpers, the staged layout and the classifier."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol, TypeVar

import torch
from torch import nn

from .base import FEATURE_NAMES, Backbone, BlockGeometry, FeatureInfo, keep_feature


class TableRow(Protocol):
    """What the table helpers read from a row of an architecture table (a frozen dataclass)."""

    stride: int
    out_channels: int


Row = TypeVar("Row", bound=TableRow)


def init_weights(module: nn.Module) -> None:
    """Initialise as torchvision's MobileNets do: He (fan-out) convs, unit BN, small-normal linears."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0, 0.01)
            nn.init.zeros_(layer.bias)


def last_stage_start(rows: Sequence[Row]) -> int:
    """Index of the last downsampling row of an architecture table: the last stage starts there."""
    return max(index for index, row in enumerate(rows) if row.stride > 1)


def halve_last_stage(rows: Sequence[Row]) -> list[Row]:
    """The table with the ``out_channels`` of its last stage halved: ``reduced_tail`` (MobileNetV3 section 6.4)."""
    tail = last_stage_start(rows)
    return [*rows[:tail], *(dataclasses.replace(row, out_channels=row.out_channels // 2) for row in rows[tail:])]


# Stages whose first-block output and last depthwise output a staged backbone also offers (returned when in out_features):
# TF DeepLab's decoder end points for output strides 4, 8 and 16 are such depthwise outputs.
TAPPED_STAGES = ("layer1", "layer2", "layer3")


class Stage(nn.Sequential):
    """The blocks of one stage, run in order; ``forward_taps`` also returns two intermediate outputs.

    A block that has a depthwise convolution exposes ``forward_with_depthwise(x) -> (output,
    depthwise output)`` and ``depthwise_channels``; the stage's ``depthwise`` tap is that output of
    its last such block (the MobileNetV3 authors' ``layer_7/depthwise_output``), its ``first`` tap
    the output of its first block (where torchvision's segmentation models read MobileNetV3).
    """

    def forward_taps(
        self, x: torch.Tensor, keep_first: bool = True, keep_depthwise: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(stage output, output of the first block, depthwise output of the last block having one).

        A tap not kept is ``None``, and is freed as soon as the next layer has read it.
        """
        first: torch.Tensor | None = None
        depthwise: torch.Tensor | None = None
        for index, block in enumerate(self):
            if hasattr(block, "forward_with_depthwise"):
                if keep_depthwise:
                    x, depthwise = block.forward_with_depthwise(x)
                else:
                    x = block(x)
            else:
                x = block(x)
            if keep_first and index == 0:
                first = x
        return x, first, depthwise


class StagedBackbone(Backbone):
    """A backbone whose blocks are grouped into ``stem``, ``layer1`` .. ``layer4`` (nominal strides 2..32).

    Subclasses build all their blocks in network order (so that state dicts line up with
    torchvision's) with the geometry of ``plan_output_stride``, then call ``_set_stages``.
    Besides the five stage outputs, ``forward`` can return for each stage of ``TAPPED_STAGES`` the
    output of its first block (``layer2_first``) and the depthwise output of its last block
    (``layer2_depthwise``): the low-level features torchvision's and the MobileNetV3 authors'
    segmentation heads read. Returning them costs no computation; keeping them costs memory,
    so only those in ``out_features`` are kept.
    """

    def _set_stages(self, blocks: Sequence[nn.Module], strides: Sequence[int], plan: Sequence[BlockGeometry]) -> None:
        """Register each block in the stage of its nominal stride and describe the stage outputs and taps.

        Args:
            blocks: every block of the network, each with an ``out_channels`` attribute.
            strides: the nominal stride of each block (as given to ``plan_output_stride``).
            plan: the geometry the blocks were built with; gives the effective stride of each stage.
        """
        stages: dict[str, list[tuple[nn.Module, int]]] = {name: [] for name in FEATURE_NAMES}
        nominal_stride = 1
        for block, stride, geometry in zip(blocks, strides, plan, strict=True):
            nominal_stride *= stride
            name = FEATURE_NAMES[nominal_stride.bit_length() - 2]  # stride 2 -> "stem", 32 -> "layer4"
            stages[name].append((block, geometry.total_stride))
        assert all(stages.values()), f"a stage is empty: nominal strides {list(strides)}"
        for name, stage in stages.items():
            self.add_module(name, Stage(*(block for block, _ in stage)))
        self.feature_info = [
            FeatureInfo(name, stages[name][-1][0].out_channels, stages[name][-1][1]) for name in FEATURE_NAMES
        ]
        for name in TAPPED_STAGES:
            first, first_stride = stages[name][0]
            depthwise = [(block, stride) for block, stride in stages[name] if hasattr(block, "depthwise_channels")]
            assert depthwise, f"stage {name} has no block with a depthwise convolution"
            last, last_stride = depthwise[-1]
            self.feature_info += [
                FeatureInfo(f"{name}_first", first.out_channels, first_stride),
                FeatureInfo(f"{name}_depthwise", last.depthwise_channels, last_stride),
            ]
        self.set_out_features()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # Written out stage by stage so that TorchScript compiles it (no getattr by name).
        wanted = self.out_features
        features: dict[str, torch.Tensor] = {}
        x = self.stem(x)
        keep_feature(features, wanted, "stem", x)
        if self.deepest_stage < 1:
            return features
        x, first, depthwise = self.layer1.forward_taps(x, "layer1_first" in wanted, "layer1_depthwise" in wanted)
        keep_feature(features, wanted, "layer1", x)
        keep_feature(features, wanted, "layer1_first", first)
        keep_feature(features, wanted, "layer1_depthwise", depthwise)
        if self.deepest_stage < 2:
            return features
        x, first, depthwise = self.layer2.forward_taps(x, "layer2_first" in wanted, "layer2_depthwise" in wanted)
        keep_feature(features, wanted, "layer2", x)
        keep_feature(features, wanted, "layer2_first", first)
        keep_feature(features, wanted, "layer2_depthwise", depthwise)
        if self.deepest_stage < 3:
            return features
        x, first, depthwise = self.layer3.forward_taps(x, "layer3_first" in wanted, "layer3_depthwise" in wanted)
        keep_feature(features, wanted, "layer3", x)
        keep_feature(features, wanted, "layer3_first", first)
        keep_feature(features, wanted, "layer3_depthwise", depthwise)
        if self.deepest_stage < 4:
            return features
        keep_feature(features, wanted, "layer4", self.layer4(x))
        return features


class MobileNetClassifier(nn.Module):
    """An ImageNet classifier: ``head`` applied to the backbone's deepest feature."""

    def __init__(self, backbone: StagedBackbone, head: nn.Sequential) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        init_weights(self.head)
        backbone.set_out_features(["layer4"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)["layer4"])
