"""Build backbones, classifiers and segmentation models by name.

Plain functions over a name table, no registry: every entry points at a class whose typed
constructor documents its options (jump to it from here).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

from torch import nn

from seglite.checks import check_choice

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
    if not isinstance(name, str) or name not in table:
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


SEGMENTATION_MODELS: dict[str, Callable[..., SegmentationModel]] = {
    "lraspp": LRASPP,
    "raspp": RASPP,
    "deeplabv3": DeepLabV3,
    "deeplabv3plus": DeepLabV3Plus,
}
"""The segmentation model class of each head name of :func:`build_model`."""
HEADS = SEGMENTATION_MODELS  # seglite 0.1's name, kept for its users


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
        head: a name of ``SEGMENTATION_MODELS``; its model class (``LRASPP``, ``RASPP``, ``DeepLabV3``,
            ``DeepLabV3Plus``) documents ``head_options``.
        num_classes: classes to predict.
        output_stride: the backbone's output stride, 8, 16 or 32.
        reduced_tail: halve the backbone's last stage (the MobileNetV3 paper's segmentation setting).
        width_mult: the backbone's width multiplier.
        aux: add an ``FCNHead`` auxiliary head (its feature: ``aux_feature`` in ``head_options``).
        backbone_options: further backbone arguments, e.g. ``{"groups": 8}`` for ShuffleNetV1.
        head_options: arguments of the head's model class.
    """
    model_class = _lookup(SEGMENTATION_MODELS, head, "head")
    network = build_backbone(
        backbone,
        output_stride=output_stride,
        reduced_tail=reduced_tail,
        width_mult=width_mult,
        **(backbone_options or {}),
    )
    return model_class(network, num_classes=num_classes, aux=aux, **head_options)


# Presets: the papers' configurations. Keyword arguments override any setting of build_model
# (backbone_options are merged key by key).

PresetVariant = Literal["authors", "torchvision"]

# The MobileNetV3 authors' LR-ASPP head (TF DeepLab model zoo flags): reduced tail, output stride 16,
# 128 filters, a 49x49 gate pool with stride (4, 5) in feature pixels (pooled whole along a side
# shorter than 49, i.e. inputs under 784 px at OS16), a hard-sigmoid gate with bias, the skip from
# the stride-8 stage's output (any backbone).
AUTHORS_LRASPP: dict[str, Any] = {
    "output_stride": 16,
    "reduced_tail": True,
    "inner_channels": 128,
    "pool_kernel": (49, 49),
    "pool_stride": (4, 5),
    "pool_fallback": "clamp",
    "gate_activation": "hardsigmoid",
    "gate_bias": True,
    "low_feature": "layer2",
}
# The MobileNetV3 authors' Cityscapes models: TF DeepLab's mobilenet_v3_large_seg /
# mobilenet_v3_small_seg with the model zoo's flags (research/deeplab/g3doc/model_zoo.md): every
# width of the halved tail halved (112 -> 336 -> 80), DeepLab's dilation rule, the skip from the
# depthwise output of the last stride-8 block.
AUTHORS_MOBILENET_V3_LRASPP: dict[str, Any] = {
    **AUTHORS_LRASPP,
    "backbone_options": {"tail_reduction": "all", "dilation_rule": "deeplab"},
    "low_feature": "layer2_depthwise",
}
# torchvision.models.segmentation.lraspp_mobilenet_v3_large (and _lraspp_mobilenetv3 on any
# mobilenet_v3_* built with dilated=True): full tail unless reduced_tail=True is passed.
TORCHVISION_MOBILENET_V3_LRASPP: dict[str, Any] = {
    "output_stride": 16,
    "reduced_tail": False,
    "backbone_options": {"tail_reduction": "outputs", "dilation_rule": "torchvision"},
    "inner_channels": 128,
    "pool_kernel": None,
    "gate_activation": "sigmoid",
    "gate_bias": False,
    "low_feature": "layer2_first",
}
# torchvision.models.segmentation.deeplabv3_mobilenet_v3_large: DeepLabHead (dense 256-channel ASPP
# at rates 12/24/36, dropout 0.5, then a 3x3 conv-BN-ReLU) and, with aux=True, an FCNHead on the
# first stride-8 block.
TORCHVISION_MOBILENET_V3_DEEPLABV3: dict[str, Any] = {
    "output_stride": 16,
    "reduced_tail": False,
    "backbone_options": {"tail_reduction": "outputs", "dilation_rule": "torchvision"},
    "channels": 256,
    "atrous_rates": (12, 24, 36),
    "separable": False,
    "dropout": 0.5,
    "conv_after_aspp": True,
    "aux_feature": "layer2_first",
}


def _preset(backbone: str, head: str, num_classes: int, settings: dict[str, Any], options: dict[str, Any]) -> SegmentationModel:
    """``build_model`` with a preset's ``settings`` overridden by the caller's ``options``."""
    merged = {**settings, **options}
    merged["backbone_options"] = {**settings.get("backbone_options", {}), **(options.get("backbone_options") or {})}
    return build_model(backbone, head, num_classes, **merged)  # type: ignore[arg-type]


def _variant_settings(variant: str, preset: str, settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    check_choice("variant", variant, tuple(settings), preset)
    return settings[variant]


def lraspp_mobilenet_v3_large(
    num_classes: int = 19, variant: PresetVariant = "authors", **options: Any
) -> SegmentationModel:
    """LR-ASPP on MobileNetV3-Large (MobileNetV3 paper section 6.4, Table 7).

    ``variant="authors"``: the authors' released Cityscapes model (TF DeepLab
    ``mobilenet_v3_large_seg``, model zoo flags): reduced tail with every width of the last stage
    halved (112 -> 336 -> 80, 1.506M parameters with 19 classes: the paper's 1.51M), output
    stride 16, 128 filters, the stride-8 skip from the depthwise output of the last stride-8
    block (120 channels), a 49x49 gate pool with stride (4, 5) and a hard-sigmoid gate with bias.
    ``variant="torchvision"``: ``torchvision.models.segmentation.lraspp_mobilenet_v3_large``
    (full tail unless ``reduced_tail=True``, torchvision's dilation rule, skip from the first
    stride-8 block, global pooling, sigmoid gate without bias); its weights load with
    ``load_torchvision_weights`` and give torchvision's outputs.
    """
    settings = _variant_settings(
        variant,
        "lraspp_mobilenet_v3_large",
        {"authors": AUTHORS_MOBILENET_V3_LRASPP, "torchvision": TORCHVISION_MOBILENET_V3_LRASPP},
    )
    return _preset("mobilenet_v3_large", "lraspp", num_classes, settings, options)


def lraspp_mobilenet_v3_small(
    num_classes: int = 19, variant: PresetVariant = "authors", **options: Any
) -> SegmentationModel:
    """LR-ASPP on MobileNetV3-Small (MobileNetV3 paper Table 7), variants as ``lraspp_mobilenet_v3_large``.

    ``"authors"``: TF DeepLab ``mobilenet_v3_small_seg`` (48 -> 144 -> 48 tail, 88-channel
    depthwise skip; 0.467M parameters, the paper's 0.47M). ``"torchvision"``: what torchvision's
    ``_lraspp_mobilenetv3`` builds on ``mobilenet_v3_small(dilated=True)`` (no public builder).
    """
    settings = _variant_settings(
        variant,
        "lraspp_mobilenet_v3_small",
        {"authors": AUTHORS_MOBILENET_V3_LRASPP, "torchvision": TORCHVISION_MOBILENET_V3_LRASPP},
    )
    return _preset("mobilenet_v3_small", "lraspp", num_classes, settings, options)


def raspp_mobilenet_v3_large(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """R-ASPP on MobileNetV3-Large, the MobileNetV3 paper's Table 7 baseline: full tail, OS16, 256 filters.

    With ``reduced_tail=True`` it is Table 7's RF2 R-ASPP row (the authors' tail: 1.76M parameters).
    """
    settings = {"output_stride": 16, "reduced_tail": False, "channels": 256, "backbone_options": {"tail_reduction": "all"}}
    return _preset("mobilenet_v3_large", "raspp", num_classes, settings, options)


def deeplabv3_mobilenet_v3_large(
    num_classes: int = 19, variant: Literal["seglite", "torchvision"] = "seglite", **options: Any
) -> SegmentationModel:
    """DeepLabV3 on MobileNetV3-Large at output stride 16.

    ``variant="seglite"``: separable ASPP of 128 filters (0.1x the parameters of a dense one).
    ``variant="torchvision"``: ``torchvision.models.segmentation.deeplabv3_mobilenet_v3_large``
    (dense 256-filter ASPP at rates 12/24/36 and a 3x3 conv after it; with ``aux=True`` its
    ``FCNHead`` on the first stride-8 block); its weights load with ``load_torchvision_weights``.
    """
    settings = _variant_settings(
        variant,
        "deeplabv3_mobilenet_v3_large",
        {"seglite": {"output_stride": 16}, "torchvision": TORCHVISION_MOBILENET_V3_DEEPLABV3},
    )
    return _preset("mobilenet_v3_large", "deeplabv3", num_classes, settings, options)


# The authors' LR-ASPP head on MobileNetV2 (Table 7). The paper's 0.98M parameters fit the
# 32-channel stride-8 stage output and torchvision-style tail halving (0.984M), not the 192-channel
# depthwise tap TF DeepLab uses for MobileNetV2 (0.987M) or the fully halved tail (0.93M).
AUTHORS_MOBILENET_V2_LRASPP: dict[str, Any] = {**AUTHORS_LRASPP, "backbone_options": {"tail_reduction": "outputs"}}


def lraspp_mobilenet_v2(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """LR-ASPP on MobileNetV2 as in the MobileNetV3 paper's Table 7: reduced tail, OS16, 128 filters,
    the authors' head options (see ``AUTHORS_MOBILENET_V2_LRASPP``)."""
    return _preset("mobilenet_v2", "lraspp", num_classes, AUTHORS_MOBILENET_V2_LRASPP, options)


def lraspp_mobilenet_v1(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """LR-ASPP on MobileNetV1 with the authors' head (``AUTHORS_LRASPP``): reduced tail, OS16, 128 filters."""
    return _preset("mobilenet_v1", "lraspp", num_classes, AUTHORS_LRASPP, options)


def lraspp_shufflenet_v1(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """LR-ASPP on ShuffleNetV1 1x (g=3) with the authors' head (``AUTHORS_LRASPP``): reduced tail, OS16, 128 filters."""
    return _preset("shufflenet_v1", "lraspp", num_classes, AUTHORS_LRASPP, options)


def lraspp_shufflenet_v2(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """LR-ASPP on ShuffleNetV2 1x with the authors' head (``AUTHORS_LRASPP``): reduced tail, OS16, 128 filters."""
    return _preset("shufflenet_v2", "lraspp", num_classes, AUTHORS_LRASPP, options)


def raspp_mobilenet_v2(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """R-ASPP on MobileNetV2 (MobileNetV2 paper section 6.3; MobileNetV3 paper Table 7): OS16, 256 filters."""
    return _preset("mobilenet_v2", "raspp", num_classes, {"output_stride": 16, "reduced_tail": False, "channels": 256}, options)


def deeplabv3_mobilenet_v2(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """DeepLabV3 on MobileNetV2: OS16, separable ASPP of 128 filters."""
    return _preset("mobilenet_v2", "deeplabv3", num_classes, {"output_stride": 16}, options)


def deeplabv3plus_mobilenet_v2(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """DeepLabV3+ on MobileNetV2: OS16, separable ASPP and decoder of 128 filters, 48-channel low level."""
    return _preset("mobilenet_v2", "deeplabv3plus", num_classes, {"output_stride": 16}, options)


def deeplabv3_shufflenet_v2(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """DeepLabV3 on ShuffleNetV2 1x: OS16, separable ASPP of 128 filters."""
    return _preset("shufflenet_v2", "deeplabv3", num_classes, {"output_stride": 16}, options)


def deeplabv3plus_shufflenet_v2(num_classes: int = 19, **options: Any) -> SegmentationModel:
    """DeepLabV3+ on ShuffleNetV2 1x: OS16, separable ASPP and decoder of 128 filters, 48-channel low level."""
    return _preset("shufflenet_v2", "deeplabv3plus", num_classes, {"output_stride": 16}, options)


PRESETS: dict[str, Callable[..., SegmentationModel]] = {
    preset.__name__: preset
    for preset in (
        lraspp_mobilenet_v3_large,
        lraspp_mobilenet_v3_small,
        raspp_mobilenet_v3_large,
        deeplabv3_mobilenet_v3_large,
        lraspp_mobilenet_v2,
        raspp_mobilenet_v2,
        deeplabv3_mobilenet_v2,
        deeplabv3plus_mobilenet_v2,
        deeplabv3_shufflenet_v2,
        deeplabv3plus_shufflenet_v2,
        lraspp_mobilenet_v1,
        lraspp_shufflenet_v1,
        lraspp_shufflenet_v2,
    )
}

PresetName = Literal[
    "lraspp_mobilenet_v3_large",
    "lraspp_mobilenet_v3_small",
    "raspp_mobilenet_v3_large",
    "deeplabv3_mobilenet_v3_large",
    "lraspp_mobilenet_v2",
    "raspp_mobilenet_v2",
    "deeplabv3_mobilenet_v2",
    "deeplabv3plus_mobilenet_v2",
    "deeplabv3_shufflenet_v2",
    "deeplabv3plus_shufflenet_v2",
    "lraspp_mobilenet_v1",
    "lraspp_shufflenet_v1",
    "lraspp_shufflenet_v2",
]
"""The names of ``PRESETS`` (a test keeps the two equal), the choices of ``Preset``'s ``name``."""


def build_preset(name: str, **options: Any) -> SegmentationModel:
    """A named preset of ``PRESETS``, e.g. ``build_preset("lraspp_mobilenet_v3_large", num_classes=21)``.

    ``options`` are the preset's (``num_classes``, ``variant`` where it has one) and any
    ``build_model`` argument, e.g. ``build_preset("lraspp_mobilenet_v3_large", variant="torchvision",
    num_classes=21, reduced_tail=True)``.
    """
    return _lookup(PRESETS, name, "preset")(**options)


class Preset(SegmentationModel):
    """A named preset of ``PRESETS`` as a model class: what the configs' ``model.model`` names.

    ``class_path: seglite.models.Preset`` with ``init_args: {name: lraspp_mobilenet_v3_large}`` is the
    preset function's model (same modules, same weights' names); the few settings below override
    the preset's, and every other one is the preset's. For any other setting, name the model
    class itself (``seglite.models.LRASPP`` with its backbone), as ``seglite.models.factory``'s
    presets spell out. A class rather than the preset function as ``class_path``: the CLI links
    ``num_classes`` from the data module, which jsonargparse 4.53 cannot do into a function.

    A checkpoint records the preset by name and is rebuilt from its definition here, so presets
    are frozen: a new architecture gets a new name (``tests/test_preset_architectures.py`` fails
    when a preset's modules change).

    Args:
        name: the preset (a function of ``seglite.models.factory``: its docstring says what it builds).
        num_classes: classes to predict (linked from the data module by the CLI).
        variant: the preset's variant, for presets that have one (e.g. ``"torchvision"``); ``None``: its default.
        width_mult: the backbone's width multiplier.
        output_stride: the backbone's output stride, 8, 16 or 32 (every preset's own is 16).
        reduced_tail: halve the backbone's last stage; ``None``: the preset's (true for LR-ASPP).
        aux: add an ``FCNHead`` auxiliary head on ``layer3`` for training.
        weights: a file of torchvision ImageNet classifier weights the backbone starts from
            (MobileNetV2, MobileNetV3, ShuffleNetV2; see the backbone's ``weights``).
    """

    def __init__(
        self,
        name: PresetName = "lraspp_mobilenet_v3_large",
        num_classes: int = 19,
        variant: Literal["authors", "torchvision", "seglite"] | None = None,
        width_mult: float = 1.0,
        output_stride: int = 16,
        reduced_tail: bool | None = None,
        aux: bool = False,
        weights: str | None = None,
    ) -> None:
        preset = _lookup(PRESETS, name, "preset")
        options: dict[str, Any] = {"num_classes": num_classes, "width_mult": width_mult, "output_stride": output_stride, "aux": aux}
        if variant is not None:
            if "variant" not in inspect.signature(preset).parameters:
                raise ValueError(f"Preset: preset {name!r} has no variants; set variant to null")
            options["variant"] = variant
        if reduced_tail is not None:
            options["reduced_tail"] = reduced_tail
        if weights is not None:
            options["backbone_options"] = {"weights": weights}
        model = preset(**options)
        super().__init__(model.backbone, model.head, model.aux_head)


def architecture_description(model: nn.Module) -> str:
    """One line per module: its name, type and the settings that shape its computation.

    Two models with the same description compute the same function of the same weights (whatever
    config built them: a ``Preset`` or the classes it names, which share ``SegmentationModel.forward``,
    so the top module is described by its parts). Norm layers are described by their channels and
    epsilon rather than torch's ``repr``, which changes across torch versions.
    """
    norms = (nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm)
    lines = []
    for name, module in model.named_modules():
        if not name:
            continue
        if isinstance(module, norms):
            settings = f"{getattr(module, 'num_features', getattr(module, 'num_channels', ''))} eps={module.eps}"
        else:
            settings = module.extra_repr()
        lines.append(f"{name} {type(module).__name__} {settings}")
    return "\n".join(lines)
