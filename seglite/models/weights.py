"""Loading torchvision state dicts (from local files) into seglite models.

seglite registers its layers in the same order as torchvision, so tensors are paired by
position: ``load_torchvision_weights`` copies any torchvision MobileNetV2/V3, ShuffleNetV2,
LR-ASPP or DeepLabV3 state dict into the seglite model built with the same configuration, and
``load_imagenet_weights`` is the backbones' ``weights`` option (a torchvision ImageNet classifier
file, whose classifier the backbone leaves out). seglite never downloads weights.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from seglite.errors import ConfigurationError
from seglite.files import InputNotFoundError, require_file

FULL_TAIL_HINT = (
    "set reduced_tail: false (ImageNet weights have the full tail, as torchvision's lraspp_mobilenet_v3_large does)"
)
SHOWN_SKIPPED = 8  # skipped keys named in a report; MobileNetV2's last conv and classifier are 8


@dataclass(frozen=True)
class LoadedWeights:
    """What a torchvision state dict put into a seglite model; ``str()`` is the one-line report.

    Attributes:
        source: the file the state dict was read from, or ``"a state dict"``.
        model: class name of the model that received it.
        tensors: state dict entries copied (parameters and buffers: BN statistics and counters).
        parameters: learnable values copied (elements of the copied parameters; buffers excluded).
        skipped: keys of the source's entries left out, in order (a classifier the model lacks).
    """

    source: str
    model: str
    tensors: int
    parameters: int
    skipped: tuple[str, ...]

    def __str__(self) -> str:
        text = f"loaded {self.tensors} tensors ({self.parameters:,} parameters) from {self.source} into {self.model}"
        if self.skipped:
            shown = ", ".join(self.skipped[:SHOWN_SKIPPED]) + (", ..." if len(self.skipped) > SHOWN_SKIPPED else "")
            text += f"; skipped {len(self.skipped)} tensors it has no place for ({shown})"
        return text


def _read_state_dict(source: Mapping[str, torch.Tensor] | str | os.PathLike, owner: str) -> dict[str, torch.Tensor]:
    """The state dict ``source`` is or holds, a Lightning-style ``{"state_dict": ...}`` unwrapped.

    ``InputNotFoundError`` (a ``FileNotFoundError``) for a missing file, ``ValueError`` naming the
    file for one ``torch.load(weights_only=True)`` refuses, ``TypeError`` for anything but a mapping.
    """
    where = "the state dict"
    if isinstance(source, (str, os.PathLike)):
        path = require_file(source, f"{owner}: weights file")
        where = f"weights file {path}"
        try:
            source = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            # weights-only loading names a refused object "Unsupported global: GLOBAL x.y" (as in seglite.checkpoints)
            refused = re.search(r"unsupported (?:global: )?GLOBAL (\S+)", str(error), re.IGNORECASE)
            if refused is None:
                raise ValueError(f"{owner}: {where} is not a PyTorch file (random or damaged bytes)") from error
            raise ValueError(
                f"{owner}: {where} holds a pickled {refused.group(1)}, not only tensors (a whole model saved with "
                "torch.save(model)?); save model.state_dict() instead (seglite loads weights only, never pickled code)"
            ) from error
        except Exception as error:  # the unpickler raises IndexError, KeyError, ... for truncated or foreign files
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"{owner}: {where} is not a readable PyTorch state dict ({reason:.200})") from error
    if isinstance(source, Mapping) and "state_dict" in source and isinstance(source["state_dict"], Mapping):
        source = source["state_dict"]
    if not isinstance(source, Mapping) or not all(isinstance(value, torch.Tensor) for value in source.values()):
        got = type(source).__name__ if not isinstance(source, Mapping) else "a mapping holding other values than tensors"
        raise TypeError(f"{owner}: expected {where} to be a state dict (a mapping of tensors), got {got}")
    return dict(source)


def _fitting_pairs(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> int:
    """How many leading (source, target) entries, paired by position, agree in kind (weight, bias, ...) and shape."""
    count = 0
    for (source_key, source_value), (target_key, target_value) in zip(source.items(), target.items()):
        if source_key.rsplit(".", 1)[-1] != target_key.rsplit(".", 1)[-1] or source_value.shape != target_value.shape:
            break
        count += 1
    return count


def _describe(key: str, value: torch.Tensor) -> str:
    return f"{key!r} {tuple(value.shape)}"


def _copy(
    model: nn.Module, source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], where: str, read: list[str]
) -> LoadedWeights:
    """Copy the first ``len(target)`` source entries into ``model`` (they fit: checked by the caller).

    ``read`` is every key of the file, those left out before pairing included: all that are not
    copied are reported as skipped.
    """
    pairs = list(zip(source.items(), target))
    model.load_state_dict({target_key: value for (_, value), target_key in pairs})
    parameter_names = {name for name, _ in model.named_parameters()}
    copied = {source_key for (source_key, _), _ in pairs}
    return LoadedWeights(
        source=where,
        model=type(model).__name__,
        tensors=len(pairs),
        parameters=sum(value.numel() for (_, value), target_key in pairs if target_key in parameter_names),
        skipped=tuple(key for key in read if key not in copied),
    )


def copy_torchvision_weights(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor] | str | os.PathLike,
) -> LoadedWeights:
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
        What was copied and what was skipped.
    """
    owner = "load_torchvision_weights"
    source = _read_state_dict(state_dict, owner)
    where = os.fspath(state_dict) if isinstance(state_dict, (str, os.PathLike)) else "a state dict"
    read = list(source)
    if getattr(model, "aux_head", None) is None:
        # torchvision's optional auxiliary classifier comes last; a model without aux head skips it
        source = {key: value for key, value in source.items() if not key.startswith("aux_classifier.")}
    target = model.state_dict()
    if len(source) < len(target):
        raise ValueError(
            f"{owner}: the state dict has {len(source)} tensors but "
            f"{type(model).__name__} needs {len(target)}; it comes from a smaller or different model"
        )
    fitting = _fitting_pairs(source, target)
    if fitting < len(target):
        source_key, target_key = list(source)[fitting], list(target)[fitting]
        raise ValueError(
            f"{owner}: torchvision tensor {_describe(source_key, source[source_key])} "
            f"does not fit seglite tensor {_describe(target_key, target[target_key])} of "
            f"{type(model).__name__}; build the seglite model with the torchvision model's "
            "configuration (width_mult, reduced_tail with tail_reduction='outputs', num_classes, head channels; "
            'for segmentation models build_preset(..., variant="torchvision"))'
        )
    return _copy(model, source, target, where, read)


def load_torchvision_weights(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor] | str | os.PathLike,
) -> nn.Module:
    """``copy_torchvision_weights(model, state_dict)``, returning ``model`` (its weights replaced)."""
    copy_torchvision_weights(model, state_dict)
    return model


def load_imagenet_weights(
    backbone: nn.Module, path: str | os.PathLike, reduced_tail: bool, fitting_files: str
) -> LoadedWeights:
    """Initialise ``backbone`` from a local file of a torchvision ImageNet classifier's ``state_dict``.

    The ``weights`` option of the backbones torchvision has a classifier of (MobileNetV2,
    MobileNetV3, ShuffleNetV2), called at the end of their ``__init__``: the output stride only
    changes strides and dilations, never a tensor's shape, so every output stride loads the same
    file. The classifier's trailing tensors (and MobileNetV2's last 1x1 conv, which the backbone
    leaves out) are skipped and listed in the report. Errors name the file, the first tensor that
    does not fit and the likely cause, e.g. ``reduced_tail`` (ImageNet classifiers have the full tail).

    Args:
        backbone: the backbone just built.
        path: the file, e.g. ``mobilenet_v3_large-8738ca79.pth`` as torchvision names it.
        reduced_tail: whether ``backbone`` was built with a halved last stage.
        fitting_files: which torchvision files fit which settings of the backbone's class, for the
            error message.

    Raises:
        InputNotFoundError: no file at ``path`` (a ``FileNotFoundError``).
        ConfigurationError: the file's tensors do not fit the backbone (a ``ValueError``).
        ValueError, TypeError: the file is not a PyTorch state dict.
    """
    owner = type(backbone).__name__
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{owner}: weights must be the path of a torchvision state dict file, got {path!r}")
    if not os.path.exists(path):
        raise InputNotFoundError(
            f"{owner}: weights file not found: {os.fspath(path)} does not exist (a model trained from it loads from "
            "its checkpoint without it: --ckpt_path, seglite.checkpoints.load_checkpoint, Predictor.from_checkpoint)"
        )
    source = _read_state_dict(path, owner)
    target = backbone.state_dict()
    where = f"weights file {os.fspath(path)}"
    if len(source) < len(target):
        raise ConfigurationError(
            f"{owner}: {where} holds {len(source)} tensors but the backbone needs {len(target)}: it holds another "
            f"model; {fitting_files}"
        )
    fitting = _fitting_pairs(source, target)
    if fitting < len(target):
        source_key, target_key = list(source)[fitting], list(target)[fitting]
        source_shape, target_shape = source[source_key].shape, target[target_key].shape
        # reduced_tail halves the channels of the last stage: the first misfit is then half the file's
        halved = len(source_shape) == len(target_shape) and any(
            ours * 2 == theirs for ours, theirs in zip(target_shape, source_shape)
        )
        cause = FULL_TAIL_HINT if reduced_tail and halved else f"it holds another model or width; {fitting_files}"
        raise ConfigurationError(
            f"{owner}: {where} does not fit: its tensor {_describe(source_key, source[source_key])} does not fit "
            f"{_describe(target_key, target[target_key])} of the backbone; {cause}"
        )
    return _copy(backbone, source, target, os.fspath(path), list(source))
