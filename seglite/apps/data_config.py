"""The data module of LightningCLI config files, for tools that read data without training.

The ``data:`` sections of the files are given to jsonargparse in order, as ``seglite fit
--config A --config B`` does, so composing configs means the same here as in training.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import yaml

from seglite.errors import ConfigurationError


def data_sections(paths: Sequence[str | Path]) -> list[dict]:
    """The ``data:`` section of each config file that has one; a file that is no YAML mapping is an error naming it."""
    sections = []
    for path in paths:
        path = Path(path)
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigurationError(f"cannot read config {path}: {error.strerror or error}") from None
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise ConfigurationError(f"config {path} is not a YAML file ({str(error).splitlines()[0]})") from None
        if not isinstance(config, dict):
            raise ConfigurationError(f"config {path} holds no YAML mapping of sections (model:, data:, trainer:)")
        if config.get("data") is not None:
            sections.append(config["data"])
    if not sections:
        raise ConfigurationError(f"none of the configs {', '.join(map(str, paths))} has a data: section")
    return sections


def datamodule_from_configs(paths: Sequence[str | Path], overrides: Sequence[str] = ()):
    """The ``SegmentationDataModule`` the configs describe; ``overrides`` are ``--data.init_args.key=value`` arguments."""
    from jsonargparse import ArgumentError, ArgumentParser

    from seglite.data.datamodule import SegmentationDataModule

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(SegmentationDataModule, "data", required=True)
    arguments = [f"--data={json.dumps(section)}" for section in data_sections(paths)] + list(overrides)
    where = f"the data section of {', '.join(map(str, paths))}"
    try:
        config = parser.parse_args(arguments)
    except (ArgumentError, ValueError, TypeError) as error:
        raise ConfigurationError(f"{where}: {_reason(error)}") from None
    try:
        return parser.instantiate_classes(config).data
    except (ArgumentError, ValueError, TypeError) as error:  # the data module's own check, under jsonargparse's wrappers
        cause, seen = error, error
        while seen is not None:
            if isinstance(seen, (ValueError, TypeError)):
                cause = seen
            seen = seen.__cause__ or seen.__context__
        raise ConfigurationError(f"{where}: {cause}") from None


def _reason(error: BaseException) -> str:
    """The line of jsonargparse's union-type report that says what is wrong with the data module's arguments."""
    lines = [line.strip(" -") for line in str(error).strip().splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.startswith("Problem with given class_path") and index + 1 < len(lines):
            return f"{line.removeprefix('Problem with given ').rstrip(':')}: {lines[index + 1]}"
    return lines[-1] if lines else type(error).__name__
