"""Build backbones, classifiers and segmentation models by name.

Plain functions over a name table, no registry: every entry points at a class whose typed
constructor documents its options (jump to it from here).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Literal

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
from .segmentor import LRASPP, RASPP, DeepLabV3, DeepLabV3Plus, SegmentationModel

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


HEADS: dict[str, Callable[..., SegmentationModel]] = {
    "lraspp": LRASPP,
    "raspp": RASPP,
    "deeplabv3": DeepLabV3,
    "deeplabv3plus": DeepLabV3Plus,
}


def build_model(
    backbone: str,
    head: Literal["lraspp", "raspp", "deeplabv3", "deeplabv3plus"],
    num_classes: int = 19,
    output_stride: int = 16,
    reduced_tail: bool = False,
    width_mult: float = 1.0,
    aux: bool = False,
    backbone_options: dict[str, Any] | None = None,
    **head_options: Any,
) -> SegmentationModel:
    """A segmentation model by backbone and head name, e.g. ``build_model("mobilenet_v2", "deeplabv3plus")``.

    Args:
        backbone: a name of ``BACKBONES``.
        head: a name of ``HEADS``; its model class (``LRASPP``, ``RASPP``, ``DeepLabV3``,
            ``DeepLabV3Plus``) documents ``head_options``.
        num_classes: classes to predict.
        output_stride: the backbone's output stride, 8, 16 or 32.
        reduced_tail: halve the backbone's last stage (the MobileNetV3 paper's segmentation setting).
        width_mult: the backbone's width multiplier.
        aux: add an ``FCNHead`` auxiliary head (its feature: ``aux_feature`` in ``head_options``).
        backbone_options: further backbone arguments, e.g. ``{"groups": 8}`` for ShuffleNetV1.
        head_options: arguments of the head's model class.
    """
    model_class = _lookup(HEADS, head, "head")
    network = build_backbone(
        backbone,
        output_stride=output_stride,
        reduced_tail=reduced_tail,
        width_mult=width_mult,
        **(backbone_options or {}),
    )
    return model_class(network, num_classes=num_classes, aux=aux, **head_options)


# Presets: the papers' configurations. Keyword arguments override any setting of build_model.


def lraspp_mobilenet_v3_large(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """LR-ASPP on MobileNetV3-Large as in the MobileNetV3 paper (section 6.4, Table 7):
    reduced tail, output stride 16, 128 head filters."""
    settings = {"output_stride": 16, "reduced_tail": True, "inner_channels": 128, **options}
    return build_model("mobilenet_v3_large", "lraspp", num_classes, **settings)


def lraspp_mobilenet_v3_small(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """LR-ASPP on MobileNetV3-Small as in the MobileNetV3 paper (Table 7): reduced tail, OS16, 128 filters."""
    settings = {"output_stride": 16, "reduced_tail": True, "inner_channels": 128, **options}
    return build_model("mobilenet_v3_small", "lraspp", num_classes, **settings)


def raspp_mobilenet_v3_large(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """R-ASPP on MobileNetV3-Large, the MobileNetV3 paper's Table 7 baseline: full tail, OS16, 256 filters."""
    settings = {"output_stride": 16, "reduced_tail": False, "channels": 256, **options}
    return build_model("mobilenet_v3_large", "raspp", num_classes, **settings)


def lraspp_mobilenet_v2(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """LR-ASPP on MobileNetV2 as in the MobileNetV3 paper's Table 7: reduced tail, OS16, 128 filters."""
    settings = {"output_stride": 16, "reduced_tail": True, "inner_channels": 128, **options}
    return build_model("mobilenet_v2", "lraspp", num_classes, **settings)


def raspp_mobilenet_v2(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """R-ASPP on MobileNetV2 (MobileNetV2 paper section 6.3; MobileNetV3 paper Table 7): OS16, 256 filters."""
    settings = {"output_stride": 16, "reduced_tail": False, "channels": 256, **options}
    return build_model("mobilenet_v2", "raspp", num_classes, **settings)


def deeplabv3_mobilenet_v2(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """DeepLabV3 on MobileNetV2: OS16, separable ASPP of 128 filters."""
    return build_model("mobilenet_v2", "deeplabv3", num_classes, **{"output_stride": 16, **options})


def deeplabv3plus_mobilenet_v2(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """DeepLabV3+ on MobileNetV2: OS16, separable ASPP and decoder of 128 filters, 48-channel low level."""
    return build_model("mobilenet_v2", "deeplabv3plus", num_classes, **{"output_stride": 16, **options})


def deeplabv3_shufflenet_v2(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """DeepLabV3 on ShuffleNetV2 1x: OS16, separable ASPP of 128 filters."""
    return build_model("shufflenet_v2", "deeplabv3", num_classes, **{"output_stride": 16, **options})


def deeplabv3plus_shufflenet_v2(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """DeepLabV3+ on ShuffleNetV2 1x: OS16, separable ASPP and decoder of 128 filters, 48-channel low level."""
    return build_model("shufflenet_v2", "deeplabv3plus", num_classes, **{"output_stride": 16, **options})


PRESETS: dict[str, Callable[..., SegmentationModel]] = {
    preset.__name__: preset
    for preset in (
        lraspp_mobilenet_v3_large,
        lraspp_mobilenet_v3_small,
        raspp_mobilenet_v3_large,
        lraspp_mobilenet_v2,
        raspp_mobilenet_v2,
        deeplabv3_mobilenet_v2,
        deeplabv3plus_mobilenet_v2,
        deeplabv3_shufflenet_v2,
        deeplabv3plus_shufflenet_v2,
    )
}


def build_preset(name: str, **options: Any) -> SegmentationModel:
    """A named preset of ``PRESETS``, e.g. ``build_preset("lraspp_mobilenet_v3_large", num_classes=21)``."""
    return _lookup(PRESETS, name, "preset")(**options)
