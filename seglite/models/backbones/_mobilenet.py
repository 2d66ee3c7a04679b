"""What the three MobileNet families share: table helpers, the staged layout and the classifier."""

from __future__ import annotations

import dataclasses
from typing import Protocol, Sequence, TypeVar

import torch
from torch import nn

from .base import FEATURE_NAMES, Backbone, BlockGeometry, FeatureInfo


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


class StagedBackbone(Backbone):
    """A backbone whose blocks are grouped into ``stem``, ``layer1`` .. ``layer4`` (nominal strides 2..32).

    Subclasses build all their blocks in network order (so that state dicts line up with
    torchvision's) with the geometry of ``plan_output_stride``, then call ``_set_stages``.
    """

    stem: nn.Sequential
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def _set_stages(self, blocks: Sequence[nn.Module], strides: Sequence[int], plan: Sequence[BlockGeometry]) -> None:
        """Register each block in the stage of its nominal stride and describe the stage outputs.

        Args:
            blocks: every block of the network, each with an ``out_channels`` attribute.
            strides: the nominal stride of each block (as given to ``plan_output_stride``).
            plan: the geometry the blocks were built with; gives the effective stride of each stage.
        """
        stages: dict[str, list[nn.Module]] = {name: [] for name in FEATURE_NAMES}
        effective_strides: dict[str, int] = {}
        nominal_stride = 1
        for block, stride, geometry in zip(blocks, strides, plan, strict=True):
            nominal_stride *= stride
            name = FEATURE_NAMES[nominal_stride.bit_length() - 2]  # stride 2 -> "stem", 32 -> "layer4"
            stages[name].append(block)
            effective_strides[name] = geometry.total_stride
        assert all(stages.values()), f"a stage is empty: nominal strides {list(strides)}"
        for name, stage in stages.items():
            self.add_module(name, nn.Sequential(*stage))
        self.feature_info = [
            FeatureInfo(name, stages[name][-1].out_channels, effective_strides[name]) for name in FEATURE_NAMES
        ]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = {}
        for name in FEATURE_NAMES:
            x = getattr(self, name)(x)
            features[name] = x
        return features


class MobileNetClassifier(nn.Module):
    """An ImageNet classifier: ``head`` applied to the backbone's deepest feature."""

    def __init__(self, backbone: StagedBackbone, head: nn.Sequential) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        init_weights(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)["layer4"])
