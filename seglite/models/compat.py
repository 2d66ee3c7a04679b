"""Model configs of older seglite versions, made explicit so that they rebuild their old architecture.

Checkpoints written by LightningCLI store the model as a config
(``{"class_path": "seglite.models.LRASPP", "init_args": {"backbone": {...}, ...}}``) holding the
options of the version that wrote it. seglite 0.2 added options whose defaults are the papers'
authors' models (MobileNetV3 ``tail_reduction="all"``, LR-ASPP's window-pooled hard-sigmoid gate
with bias) and replaced LR-ASPP's ``pooling``. ``upgrade_model_config`` fills in, for every option
added since 0.1, the value that gives the 0.1 architecture, so a checkpoint without a
``seglite_version`` rebuilds the model its weights were trained in.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

# LR-ASPP's 0.1 ``pooling`` option, as the options that replaced it (config values: lists, not tuples)
_POOLING: dict[str, dict[str, Any]] = {
    "global": {"pool_kernel": None},
    "paper": {"pool_kernel": [49, 49], "pool_stride": [16, 20], "pool_fallback": "clamp"},
}


def lraspp_pooling_options(pooling: str, caller: str) -> dict[str, Any]:
    """The LR-ASPP options that replace seglite 0.1's ``pooling`` value (a new dict each call).

    The one definition of what 0.1's ``"global"`` and ``"paper"`` meant, read by
    ``upgrade_model_config`` and by ``LRASPP``'s deprecated ``pooling`` argument.
    ``ValueError`` naming ``caller`` for any other value.
    """
    if pooling not in _POOLING:
        raise ValueError(f"{caller}: LR-ASPP pooling must be one of {tuple(_POOLING)}, got {pooling!r}")
    return copy.deepcopy(_POOLING[pooling])


def _mobilenet_v3(init_args: dict[str, Any]) -> None:
    init_args.setdefault("tail_reduction", "outputs")  # 0.1 halved like torchvision: 112 -> 672 -> 80
    init_args.setdefault("dilation_rule", "deeplab")


def _mobilenet_v2(init_args: dict[str, Any]) -> None:
    init_args.setdefault("tail_reduction", "outputs")


def _lraspp(init_args: dict[str, Any]) -> None:
    for name, value in lraspp_pooling_options(init_args.pop("pooling", "global"), "upgrade_model_config").items():
        init_args.setdefault(name, value)
    init_args.setdefault("gate_activation", "sigmoid")
    init_args.setdefault("gate_bias", False)
    init_args.setdefault("low_feature", "layer2")


def _deeplabv3(init_args: dict[str, Any]) -> None:
    init_args.setdefault("conv_after_aspp", False)


# class name -> what 0.1's behaviour needs; matched on the class name so that every import path
# LightningCLI may have stored (seglite.models.LRASPP, seglite.models.segmentor.LRASPP) is covered
_UPGRADES: dict[str, Callable[[dict[str, Any]], None]] = {
    "MobileNetV3": _mobilenet_v3,
    "MobileNetV3Classifier": _mobilenet_v3,
    "MobileNetV2": _mobilenet_v2,
    "LRASPP": _lraspp,
    "LRASPPHead": _lraspp,
    "DeepLabV3": _deeplabv3,
    "DeepLabV3Head": _deeplabv3,
}


def _upgrade(node: Any) -> None:
    if isinstance(node, dict):
        class_path = node.get("class_path")
        if isinstance(class_path, str) and class_path.startswith("seglite."):
            upgrade = _UPGRADES.get(class_path.rsplit(".", 1)[-1])
            if upgrade is not None:
                init_args = node.setdefault("init_args", {})
                if not isinstance(init_args, dict):
                    raise TypeError(f"upgrade_model_config: init_args of {class_path} must be a mapping, got {init_args!r}")
                upgrade(init_args)
        for value in node.values():
            _upgrade(value)
    elif isinstance(node, list):
        for value in node:
            _upgrade(value)


def upgrade_model_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` (a seglite 0.1 model config) with explicit values that restore the 0.1 architecture.

    For every option added since 0.1 that is absent, the 0.1 behaviour is written in: MobileNetV3
    ``tail_reduction="outputs"`` and ``dilation_rule="deeplab"``, MobileNetV2
    ``tail_reduction="outputs"``, LR-ASPP ``gate_activation="sigmoid"``, ``gate_bias=False``,
    ``low_feature="layer2"`` and its ``pooling`` turned into ``pool_kernel``/``pool_stride``
    (``"global"``: ``pool_kernel=None``; ``"paper"``: 49x49 with stride (16, 20), clamped),
    DeepLabV3 ``conv_after_aspp=False``. Options already present are kept, so upgrading twice
    changes nothing. Nested configs (a backbone inside a model) are upgraded too; the input is
    not modified.

    Apply it to configs of checkpoints that carry no ``seglite_version``.
    """
    if not isinstance(config, dict):
        raise TypeError(f"upgrade_model_config: config must be a mapping, got {type(config).__name__}")
    upgraded = copy.deepcopy(config)
    _upgrade(upgraded)
    return upgraded
