"""Loading torchvision state dicts (from local files) into seglite models."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn


def _read_state_dict(source: Mapping[str, torch.Tensor] | str | os.PathLike) -> dict[str, torch.Tensor]:
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"load_torchvision_weights: no weights file at {path!r}")
        try:
            source = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several types for a corrupt file
            raise ValueError(f"load_torchvision_weights: {path!r} is not a readable PyTorch state dict ({error})") from error
    if isinstance(source, Mapping) and "state_dict" in source and isinstance(source["state_dict"], Mapping):
        source = source["state_dict"]
    if not isinstance(source, Mapping):
        raise TypeError(f"load_torchvision_weights: expected a state dict (a mapping of tensors), got {type(source).__name__}")
    return dict(source)


def load_torchvision_weights(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor] | str | os.PathLike,
) -> nn.Module:
    """Copy a torchvision MobileNetV2/V3, ShuffleNetV2, LR-ASPP or DeepLabV3 state dict into ``model``.

    seglite registers its layers in the same order as torchvision, so tensors are paired by
    position and each pair must agree in kind (weight, bias, running statistics) and shape.
    A seglite backbone may be shorter than the torchvision classifier it comes from: the
    trailing torchvision tensors (its classifier, or MobileNetV2's last 1x1 conv) are then
    skipped, and so is a segmentation model's ``aux_classifier`` when ``model`` has no
    ``aux_head`` (with one, torchvision's ``FCNHead`` loads into it). Any other disagreement
    raises ``ValueError`` naming both tensors.

    Args:
        model: a seglite classifier, backbone or ``SegmentationModel`` built with the same
            configuration (width, ``reduced_tail``, number of classes) as the torchvision model.
        state_dict: the torchvision state dict, or the path of a local file holding one.

    Returns:
        ``model``, with its weights replaced.
    """
    source = _read_state_dict(state_dict)
    if getattr(model, "aux_head", None) is None:
        # torchvision's optional auxiliary classifier comes last; a model without aux head skips it
        source = {key: value for key, value in source.items() if not key.startswith("aux_classifier.")}
    target = model.state_dict()
    if len(source) < len(target):
        raise ValueError(
            f"load_torchvision_weights: the state dict has {len(source)} tensors but "
            f"{type(model).__name__} needs {len(target)}; it comes from a smaller or different model"
        )
    loaded = {}
    for (source_key, source_value), (target_key, target_value) in zip(source.items(), target.items()):
        same_kind = source_key.rsplit(".", 1)[-1] == target_key.rsplit(".", 1)[-1]
        if not same_kind or source_value.shape != target_value.shape:
            raise ValueError(
                f"load_torchvision_weights: torchvision tensor {source_key!r} {tuple(source_value.shape)} "
                f"does not fit seglite tensor {target_key!r} {tuple(target_value.shape)} of "
                f"{type(model).__name__}; build the seglite model with the torchvision model's "
                "configuration (width_mult, reduced_tail with tail_reduction='outputs', num_classes, head channels; "
                'for segmentation models build_preset(..., variant="torchvision"))'
            )
        loaded[target_key] = source_value
    model.load_state_dict(loaded)
    return model
