"""Build backbones, classifiers and segmentation models by name.

Plain functions over a name table, no registry: every entry points at a class whose typed
constructor documents its options (jump to it from here).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from torch import nn

from .backbones import (
    Backbone,
    MobileNetV1,
    MobileNetV1Classifier,
    MobileNetV2,
    MobileNetV2Classifier,
    MobileNetV3,
    MobileNetV3Classifier,
    ShuffleNetV1,
    ShuffleNetV1Classifier,
    ShuffleNetV2,
    ShuffleNetV2Classifier,
)

BACKBONES: dict[str, Callable[..., Backbone]] = {
    "mobilenet_v1": MobileNetV1,
    "mobilenet_v2": MobileNetV2,
    "mobilenet_v3_large": partial(MobileNetV3, variant="large"),
    "mobilenet_v3_small": partial(MobileNetV3, variant="small"),
    "shufflenet_v1": ShuffleNetV1,
    "shufflenet_v2": ShuffleNetV2,
}

CLASSIFIERS: dict[str, Callable[..., nn.Module]] = {
    "mobilenet_v1": MobileNetV1Classifier,
    "mobilenet_v2": MobileNetV2Classifier,
    "mobilenet_v3_large": partial(MobileNetV3Classifier, variant="large"),
    "mobilenet_v3_small": partial(MobileNetV3Classifier, variant="small"),
    "shufflenet_v1": ShuffleNetV1Classifier,
    "shufflenet_v2": ShuffleNetV2Classifier,
}


def _lookup(table: dict[str, Callable[..., Any]], name: str, what: str) -> Callable[..., Any]:
    if name not in table:
        raise ValueError(f"unknown {what} name {name!r}; choose one of {sorted(table)}")
    return table[name]


def build_backbone(name: str, **options: Any) -> Backbone:
    """A segmentation backbone by name, e.g. ``build_backbone("mobilenet_v3_large", output_stride=16)``.

    ``options`` are the family class's constructor arguments (``width_mult``, ``output_stride``,
    ``reduced_tail`` and family-specific ones such as ShuffleNetV1's ``groups``).
    """
    return _lookup(BACKBONES, name, "backbone")(**options)


def build_classifier(name: str, num_classes: int = 1000, **options: Any) -> nn.Module:
    """The ImageNet classification network of a backbone family, returning (N, num_classes) logits."""
    return _lookup(CLASSIFIERS, name, "classifier")(num_classes=num_classes, **options)
