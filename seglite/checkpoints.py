"""Reading training checkpoints of ``seglite fit`` / ``tools/train.py``, without Lightning.

The one checkpoint reader of seglite: training (``seglite.lit``) and deployment
(``seglite.inference``) both use it. A LightningCLI checkpoint stores the model's configuration
in its hyperparameters as ``class_path`` / ``init_args`` (the config file's ``model.model``
section) and the weights in ``state_dict`` under ``model.``:

- :func:`read_checkpoint` loads a file with ``torch.load(..., weights_only=True)`` (no pickled
  code runs) and turns every way it can fail into one ``CheckpointError`` naming the file.
- :func:`model_config` is the model's configuration, made explicit for checkpoints of seglite
  0.1 (``seglite.models.compat``), so they rebuild the architecture their weights belong to, and
  with the backbones' ``weights`` option (the ImageNet file training started from) switched off:
  the checkpoint holds the trained weights, and that file may be gone.
- :func:`load_checkpoint` rebuilds the network and loads its weights. Instantiating class
  paths named by a file is code execution, so only ``nn.Module`` classes defined in
  ``seglite.models`` are built; a checkpoint naming anything else is refused.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seglite.errors import CheckpointError
from seglite.files import file_sha256, require_file
from seglite.models.compat import upgrade_model_config

ALLOWED_CLASS_PREFIX = "seglite.models."
"""Class paths a checkpoint may name: the models package, nothing else."""
STATE_PREFIX = "model."
"""Prefix of the network's weights in the task's ``state_dict``."""
INITIAL_WEIGHTS_OPTION = "weights"
"""The backbones' option naming the file they are initialised from; ``model_config`` sets it to ``None``."""
EXPECTED = "a checkpoint written by `seglite fit` or `python tools/train.py CONFIG` (it stores the model's config)"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The contents of a Lightning checkpoint, loaded weights-only (no code from the file runs).

    ``InputNotFoundError`` when there is no file; ``CheckpointError`` naming the file when it is
    truncated, not a PyTorch file, or holds Python objects that weights-only loading refuses.
    """
    path = require_file(path, "checkpoint")
    check_zip_integrity(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch names the refused object as "Unsupported global: GLOBAL x.y" or "unsupported GLOBAL x.y whose ..."
        refused = re.search(r"unsupported (?:global: )?GLOBAL (\S+)", str(error), re.IGNORECASE)
        if refused is not None:
            raise CheckpointError(
                f"checkpoint {path} was refused: it holds a pickled {refused.group(1)}, and only tensors and "
                "plain values are loaded (for safety: seglite never unpickles arbitrary code)"
            ) from error
        raise CheckpointError(f"checkpoint {path} is not a PyTorch checkpoint (random or damaged bytes)") from error
    except OSError as error:  # unreadable (permissions, I/O error): the reason is the system's
        raise CheckpointError(f"checkpoint {path} could not be read ({error.strerror or error})") from error
    except Exception as error:  # the unpickler raises IndexError, KeyError, ... on arbitrary bytes
        reason = str(error).strip().splitlines()[0].split(". ")[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"checkpoint {path} is truncated or not a PyTorch checkpoint ({reason})") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"checkpoint {path} holds no model weights (no 'state_dict'): expected {EXPECTED}")
    return checkpoint


def check_zip_integrity(path: Path) -> None:
    """``CheckpointError`` naming ``path`` when a member of its zip archive fails its CRC-32 check.

    ``torch.load`` does not check the CRCs the archive stores, so a bit flipped inside a tensor
    (a bad copy, a failing disk) loads as a silently different weight. ``ZipFile.testzip`` reads
    every member once: 11 ms for the 12 MB demo checkpoint, against torch.load's 34 ms (measured
    with the file in the page cache). A file that is not a zip archive (truncated, the legacy
    format, not a checkpoint) is left to ``torch.load`` to name.
    """
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return  # a broken archive structure: torch.load says what is wrong with it
    if damaged is not None:
        raise CheckpointError(f"checkpoint {path} is damaged: {damaged} fails its CRC-32 check (a bad copy or a failing disk)")


def class_name(config: Any) -> str | None:
    """``LRASPP`` for ``{"class_path": "seglite.models.LRASPP", ...}`` (any module path names the same class)."""
    if isinstance(config, dict) and isinstance(config.get("class_path"), str):
        return config["class_path"].rsplit(".", 1)[-1]
    return None


def describe_checkpoint_model(checkpoint: dict[str, Any]) -> str:
    """What a checkpoint holds, from its hyperparameters: e.g. ``LRASPP on MobileNetV3 for 19 classes (road, ...)``."""
    hparams = checkpoint.get("hyper_parameters", {}) or {}
    model = hparams.get("model")
    text = class_name(model) or "a model"
    preset = model.get("init_args", {}).get("name") if isinstance(model, dict) and text == "Preset" else None
    if isinstance(preset, str):  # seglite.models.Preset, as the configs name models
        text = f"the preset {preset}"
    backbone = model.get("init_args", {}).get("backbone") if isinstance(model, dict) else None
    if class_name(backbone):
        text += f" on {class_name(backbone)}"
    names = hparams.get("class_names")
    if names:
        shown = ", ".join(str(name) for name in names[:4]) + (", ..." if len(names) > 4 else "")
        text += f" for {len(names)} classes ({shown})"
    if checkpoint.get("seglite_version") is None:
        text += ", written by seglite 0.1"
    if "global_step" in checkpoint:
        text += f", step {checkpoint['global_step']}"
    return text


def without_initial_weights(config: Any) -> Any:
    """A copy of a model config with every seglite class's ``weights`` (an ImageNet file) set to ``None``."""
    config = copy.deepcopy(config)
    _skip_initial_weights(config)
    return config


def _skip_initial_weights(node: Any) -> None:
    """Set ``weights`` to ``None`` in the ``init_args`` of every seglite class in ``node`` (in place)."""
    if isinstance(node, dict):
        init_args = node.get("init_args")
        if (
            isinstance(node.get("class_path"), str)
            and node["class_path"].startswith("seglite.")
            and isinstance(init_args, dict)
            and init_args.get(INITIAL_WEIGHTS_OPTION) is not None
        ):
            init_args[INITIAL_WEIGHTS_OPTION] = None
        for value in node.values():
            _skip_initial_weights(value)
    elif isinstance(node, list):
        for value in node:
            _skip_initial_weights(value)


def model_config(checkpoint: dict[str, Any], path: str | Path = "checkpoint") -> dict[str, Any]:
    """The ``class_path``/``init_args`` config of the checkpoint's model, ready to rebuild it.

    A checkpoint without ``seglite_version`` was written by seglite 0.1, whose options had other
    defaults: ``upgrade_model_config`` spells out the values that rebuild its architecture. A
    backbone's ``weights`` (the ImageNet file it was initialised from before training) is set to
    ``None``, so rebuilding never reads that file: the checkpoint's state dict replaces those
    weights anyway, and the file may no longer exist. ``None`` rather than absent, so that the
    value also overrides a config file's when the CLI merges the two (``--ckpt_path``).
    """
    hyperparameters = checkpoint.get("hyper_parameters")
    config = hyperparameters.get("model") if isinstance(hyperparameters, dict) else None
    if not (isinstance(config, dict) and "class_path" in config):
        raise CheckpointError(f"checkpoint {path} holds no model config (hyper_parameters 'model' with class_path); expected {EXPECTED}")
    if checkpoint.get("seglite_version") is None:
        config = upgrade_model_config(config)
    return without_initial_weights(config)


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


def _resolve_class(class_path: Any, path: Path) -> type[nn.Module]:
    """The class named by ``class_path`` if it is an ``nn.Module`` of ``seglite.models``."""
    if not isinstance(class_path, str) or not class_path.startswith(ALLOWED_CLASS_PREFIX):
        raise CheckpointError(
            f"checkpoint {path} names class {class_path!r}; only seglite model classes "
            f"({ALLOWED_CLASS_PREFIX}...) are built from a checkpoint"
        )
    module_name, _, name = class_path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise CheckpointError(
            f"checkpoint {path} names class {class_path!r}, which this seglite does not have ({error}); "
            "was it written by another version?"
        ) from error
    if not (inspect.isclass(found) and issubclass(found, nn.Module) and found.__module__.startswith(ALLOWED_CLASS_PREFIX)):
        raise CheckpointError(f"checkpoint {path} names {class_path!r}, which is not a seglite model class")
    return found


def _instantiate(value: Any, path: Path) -> Any:
    """Build every ``{"class_path": ..., "init_args": {...}}`` in ``value``, innermost first."""
    if isinstance(value, dict) and "class_path" in value:
        cls = _resolve_class(value["class_path"], path)
        init_args = value.get("init_args") or {}
        if not isinstance(init_args, dict):
            raise CheckpointError(f"checkpoint {path}: init_args of {value['class_path']} must be a mapping, got {init_args!r}")
        arguments = {key: _instantiate(item, path) for key, item in init_args.items()}
        try:
            return cls(**arguments)
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"checkpoint {path}: cannot build {value['class_path']}: {error}") from error
    if isinstance(value, dict):
        return {key: _instantiate(item, path) for key, item in value.items()}
    if isinstance(value, list):
        return [_instantiate(item, path) for item in value]
    return value


def build_model_from_config(config: Any, source: str | Path = "config") -> nn.Module:
    """The ``nn.Module`` described by a ``class_path`` / ``init_args`` config of seglite model classes.

    ``CheckpointError`` (naming ``source``) for a class outside ``seglite.models`` or arguments
    the class rejects.
    """
    source = Path(source)
    if not (isinstance(config, dict) and isinstance(config.get("class_path"), str)):
        raise CheckpointError(f"{source}: a model config is a mapping with class_path and init_args, got {config!r:.200}")
    model = _instantiate(config, source)
    if not hasattr(model, "num_classes"):
        raise CheckpointError(f"{source}: {config['class_path']} is not a segmentation model (it has no num_classes)")
    return model


def load_checkpoint(path: str | Path) -> CheckpointModel:
    """Rebuild the network of a checkpoint of ``seglite fit`` / ``tools/train.py``, weights loaded.

    Raises:
        InputNotFoundError: ``path`` is not a file.
        CheckpointError: anything else (not a checkpoint, truncated, another program's, no model
            config, class outside ``seglite.models``, weights that do not fit), one line naming
            the file and what was expected.
    """
    path = require_file(path, "checkpoint")
    checkpoint = read_checkpoint(path)
    hyperparameters = checkpoint.get("hyper_parameters") or {}
    model = build_model_from_config(model_config(checkpoint, path), path)
    weights = {key[len(STATE_PREFIX):]: value for key, value in checkpoint["state_dict"].items() if key.startswith(STATE_PREFIX)}
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = "; ".join(lines[1:3]) or lines[0]
        raise CheckpointError(f"checkpoint {path}: the weights do not fit the model of its config ({detail:.300})") from error
    num_classes = int(model.num_classes)
    class_names = hyperparameters.get("class_names") or [str(index) for index in range(num_classes)]
    palette = hyperparameters.get("palette")
    if len(class_names) != num_classes or (palette is not None and len(palette) != num_classes):
        raise CheckpointError(
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
        seglite_version=checkpoint.get("seglite_version"),
    )
