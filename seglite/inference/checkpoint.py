"""Read a training checkpoint of ``seglite fit`` / ``tools/train.py`` without Lightning.

A LightningCLI checkpoint stores the model's configuration in its hyperparameters as
``class_path`` / ``init_args`` (the config file's ``model.model`` section) and the weights in
``state_dict`` under ``model.``. :func:`load_checkpoint` reads it with ``torch.load(...,
weights_only=True)`` (no pickled code runs), rebuilds the network from the config, loads the
weights and returns it with the class names and palette of training.

Instantiating class paths named by a file is code execution, so only ``nn.Module`` classes
defined in ``seglite.models`` are built; a checkpoint naming anything else is refused.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seglite.errors import SegliteError
from seglite.files import InputNotFoundError, require_file
from seglite.inference.metadata import file_sha256

ALLOWED_CLASS_PREFIX = "seglite.models."
"""Class paths a checkpoint may name: the models package, nothing else."""
STATE_PREFIX = "model."
"""Prefix of the network's weights in the task's ``state_dict``."""

ModelFileNotFoundError = InputNotFoundError
"""A checkpoint or exported model file does not exist (the name of seglite 0.1)."""


class ModelLoadError(SegliteError, ValueError):
    """A checkpoint or exported model exists but cannot be turned into a model or predictor."""


try:  # the models package's migration of 0.1 configs, where it exists
    from seglite.models.compat import upgrade_model_config
except ImportError as error:  # pragma: no cover - until seglite.models.compat is merged
    if error.name != "seglite.models.compat":
        raise

    def upgrade_model_config(config: dict[str, Any]) -> dict[str, Any]:
        """Placeholder for ``seglite.models.compat.upgrade_model_config``: the config unchanged."""
        return config


@dataclass
class CheckpointModel:
    """The network of a training checkpoint, in eval mode on the CPU, and what prediction needs besides.

    Attributes:
        model: the rebuilt ``nn.Module`` with the checkpoint's weights.
        num_classes: classes it predicts.
        class_names: one name per class (the class index where training had none).
        palette: RGB colour per class, or ``None``.
        sha256: hex SHA-256 of the checkpoint file (keys caches and exported files).
        path: the checkpoint file.
        seglite_version: the version that wrote it; ``None`` for checkpoints of seglite 0.1.
    """

    model: nn.Module
    num_classes: int
    class_names: list[str]
    palette: list[list[int]] | None
    sha256: str
    path: Path
    seglite_version: str | None = None


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if unsafe:
            reason = f"it holds a pickled {unsafe.group(1)}, and only tensors and plain values are loaded (for safety)"
        else:
            reason = "it is not a PyTorch checkpoint"
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as error:
        first = str(error).strip().split(". ")[0] if str(error).strip() else type(error).__name__
        reason = f"it is not a complete PyTorch checkpoint ({first})"
    raise ModelLoadError(f"cannot read checkpoint {path}: {reason}")


def _resolve_class(class_path: Any, path: Path) -> type[nn.Module]:
    """The class named by ``class_path`` if it is an ``nn.Module`` of ``seglite.models``."""
    if not isinstance(class_path, str) or not class_path.startswith(ALLOWED_CLASS_PREFIX):
        raise ModelLoadError(
            f"checkpoint {path} names class {class_path!r}; only seglite model classes "
            f"({ALLOWED_CLASS_PREFIX}...) are built from a checkpoint"
        )
    module_name, _, name = class_path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise ModelLoadError(
            f"checkpoint {path} names class {class_path!r}, which this seglite does not have ({error}); "
            "was it written by another version?"
        ) from error
    if not (inspect.isclass(found) and issubclass(found, nn.Module) and found.__module__.startswith(ALLOWED_CLASS_PREFIX)):
        raise ModelLoadError(f"checkpoint {path} names {class_path!r}, which is not a seglite model class")
    return found


def _instantiate(value: Any, path: Path) -> Any:
    """Build every ``{"class_path": ..., "init_args": {...}}`` in ``value``, innermost first."""
    if isinstance(value, dict) and "class_path" in value:
        cls = _resolve_class(value["class_path"], path)
        init_args = value.get("init_args") or {}
        if not isinstance(init_args, dict):
            raise ModelLoadError(f"checkpoint {path}: init_args of {value['class_path']} must be a mapping, got {init_args!r}")
        arguments = {key: _instantiate(item, path) for key, item in init_args.items()}
        try:
            return cls(**arguments)
        except (TypeError, ValueError) as error:
            raise ModelLoadError(f"checkpoint {path}: cannot build {value['class_path']}: {error}") from error
    if isinstance(value, dict):
        return {key: _instantiate(item, path) for key, item in value.items()}
    if isinstance(value, list):
        return [_instantiate(item, path) for item in value]
    return value


def build_model_from_config(config: Any, source: str | Path = "config") -> nn.Module:
    """The ``nn.Module`` described by a ``class_path`` / ``init_args`` config of seglite model classes.

    ``ModelLoadError`` (naming ``source``) for a class outside ``seglite.models`` or arguments
    the class rejects.
    """
    source = Path(source)
    if not (isinstance(config, dict) and isinstance(config.get("class_path"), str)):
        raise ModelLoadError(f"{source}: a model config is a mapping with class_path and init_args, got {config!r:.200}")
    model = _instantiate(config, source)
    if not hasattr(model, "num_classes"):
        raise ModelLoadError(f"{source}: {config['class_path']} is not a segmentation model (it has no num_classes)")
    return model


def load_checkpoint(path: str | Path) -> CheckpointModel:
    """Rebuild the network of a checkpoint of ``seglite fit`` / ``tools/train.py``, weights loaded.

    Raises:
        InputNotFoundError: ``path`` is not a file.
        ModelLoadError: anything else (not a checkpoint, truncated, another program's, no model
            config, class outside ``seglite.models``, weights that do not fit), one line naming
            the file and what was expected.
    """
    path = require_file(path, "checkpoint")
    checkpoint = _read(path)
    expected = "a checkpoint written by `seglite fit` or `python tools/train.py CONFIG` (it stores the model's config)"
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        found = sorted(map(str, checkpoint))[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ModelLoadError(f"checkpoint {path} is not a Lightning training checkpoint (found {found}); expected {expected}")
    hyperparameters = checkpoint.get("hyper_parameters")
    config = hyperparameters.get("model") if isinstance(hyperparameters, dict) else None
    if not (isinstance(config, dict) and "class_path" in config):
        raise ModelLoadError(f"checkpoint {path} holds no model config (hyper_parameters 'model' with class_path); expected {expected}")
    version = checkpoint.get("seglite_version")
    if version is None:  # written by seglite 0.1
        config = upgrade_model_config(config)
    model = build_model_from_config(config, path)
    weights = {key[len(STATE_PREFIX):]: value for key, value in checkpoint["state_dict"].items() if key.startswith(STATE_PREFIX)}
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = "; ".join(lines[1:3]) or lines[0]
        raise ModelLoadError(f"checkpoint {path}: the weights do not fit the model of its config ({detail:.300})") from error
    num_classes = int(model.num_classes)
    class_names = hyperparameters.get("class_names") or [str(index) for index in range(num_classes)]
    palette = hyperparameters.get("palette")
    if len(class_names) != num_classes or (palette is not None and len(palette) != num_classes):
        raise ModelLoadError(
            f"checkpoint {path}: {len(class_names)} class names and {len(palette or [])} palette colours "
            f"for a model of {num_classes} classes"
        )
    return CheckpointModel(
        model=model.eval(),
        num_classes=num_classes,
        class_names=[str(name) for name in class_names],
        palette=[[int(v) for v in color] for color in palette] if palette is not None else None,
        sha256=file_sha256(path),
        path=path,
        seglite_version=version,
    )
