"""The tools' reading of LightningCLI config files: one file's sections, and several composed as LightningCLI does.

Cheap to import (PyYAML only): the tools read configs before any heavy import.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml


def read_config(path: str | Path) -> dict[str, Any]:
    """The sections of a YAML config file, composed as LightningCLI reads it; ``ConfigurationError`` naming the file if it is not one.

    A ``config: base.yaml`` key (relative to the file) reads that file in its place, and a dotted key
    (``trainer.max_steps: 5``, ``model.model: {...}``) after it replaces that one value of it:
    what jsonargparse does with the configs/ model configs.
    """
    sections = _read_sections(path)
    if "config" not in sections:
        return _nested(sections)
    composed: dict[str, Any] = {}
    keys = list(sections)
    at = keys.index("config")
    for key in keys[:at]:  # before `config:`: the included file's values win
        composed = merge_sections(composed, _nested({key: sections[key]}))
    included = sections["config"]
    if not isinstance(included, str):
        from seglite.errors import ConfigurationError

        raise ConfigurationError(f"config {path}: config: must name a YAML file, got {included!r}")
    composed = merge_sections(composed, read_config(Path(path).parent / included))
    for key in keys[at + 1 :]:
        *parents, name = key.split(".")
        node = composed
        for parent in parents:
            if not isinstance(node.get(parent), dict):
                node[parent] = {}
            node[parent] = dict(node[parent])
            node = node[parent]
        node[name] = sections[key]
    return composed


def _nested(sections: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys (``trainer.max_steps: 5``) as nested sections, merged into the others."""
    nested: dict[str, Any] = {}
    for key, value in sections.items():
        for part in reversed(key.split(".")[1:]):
            value = {part: value}
        nested = merge_sections(nested, {key.split(".")[0]: value})
    return nested


def _read_sections(path: str | Path) -> dict[str, Any]:
    """The top-level keys of a YAML config file as written."""
    from seglite.errors import ConfigurationError

    expected = "expected a YAML config such as configs/lraspp_mnv3.yaml"
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"config {path} is not a YAML file (binary data, not text); {expected}") from None
    except OSError as error:
        raise ConfigurationError(f"config {path} cannot be read: {error.strerror or error}") from None
    try:
        sections = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise ConfigurationError(f"config {path} is not valid YAML{where}: {problem}; {expected}") from None
    if sections is None:
        return {}
    if not isinstance(sections, dict):
        raise ConfigurationError(
            f"config {path} holds a YAML {type(sections).__name__}, not sections (trainer:, model:, data:); expected a YAML config"
        )
    return sections


def merge_sections(base: Any, update: Any) -> Any:
    """``update`` over ``base`` as LightningCLI composes configs: mappings merged, a new ``class_path`` starting afresh."""
    from seglite.checkpoints import class_name

    if not (isinstance(base, dict) and isinstance(update, dict)):
        return update
    if "class_path" in update and class_name(update) != class_name(base):
        return dict(update)
    merged = dict(base)
    for key, value in update.items():
        merged[key] = merge_sections(base.get(key), value)
    return merged


def command_line_values(cli_args: Sequence[str], section: str = "model") -> dict[str, Any]:
    """The nested values of the ``--model.a.b VALUE`` / ``--model.a.b=VALUE`` arguments meant for LightningCLI."""
    values: dict[str, Any] = {}
    arguments = list(cli_args)
    while arguments:
        argument = arguments.pop(0)
        if not argument.startswith(f"--{section}."):
            continue
        key, equals, text = argument[2:].partition("=")
        if not equals:
            if not arguments:
                break
            text = arguments.pop(0)
        if key.endswith("+"):  # appending to a list: not a value
            continue
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        *parents, name = key.split(".")
        node = values
        for parent in parents:
            if not isinstance(node.get(parent), dict):
                node[parent] = {}
            node = node[parent]
        node[name] = value
    return values


def compose_configs(paths: Sequence[str | Path]) -> dict[str, Any]:
    """The sections of several config files, later files over earlier ones (``--config A --config B``)."""
    merged: dict[str, Any] = {}
    for path in paths:
        merged = merge_sections(merged, read_config(path))
    return merged


def _deepest(error: BaseException) -> BaseException:
    """The innermost cause under jsonargparse's wrappers: the constructor's or parser's own message."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return error


def data_section(paths: Sequence[Path], cli_args: Sequence[str] = ()) -> dict[str, Any]:
    """The ``data:`` section of the configs ``paths`` composed, then ``--data.KEY VALUE`` arguments over it."""
    from seglite.errors import ConfigurationError
    from seglite.files import require_file

    section = compose_configs([require_file(path, "config") for path in paths]).get("data")
    overrides = command_line_values(cli_args, "data").get("data", {})
    # `--data.root X` is LightningCLI's short form of `--data.init_args.root X`
    init_args = {key: value for key, value in overrides.items() if key not in ("class_path", "init_args")}
    if init_args:
        overrides = {key: overrides[key] for key in ("class_path", "init_args") if key in overrides}
        overrides["init_args"] = merge_sections(overrides.get("init_args"), init_args)
    section = merge_sections(section, overrides) if overrides else section
    if not isinstance(section, dict) or "class_path" not in section:
        raise ConfigurationError(
            f"{', '.join(str(path) for path in paths)}: no data: section with a class_path (e.g. seglite.data.FolderDataModule); "
            "expected training configs such as configs/lraspp_mnv3_folder.yaml"
        )
    return section


def build_data_module(paths: Sequence[Path], cli_args: Sequence[str] = ()) -> Any:
    """The ``SegmentationDataModule`` the configs and ``--data.KEY VALUE`` arguments describe, built as LightningCLI builds it."""
    import warnings

    from jsonargparse import ArgumentParser

    from seglite.data.datamodule import SegmentationDataModule
    from seglite.errors import ConfigurationError

    section = data_section(paths, cli_args)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(SegmentationDataModule, "data", required=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # jsonargparse's notes on its own API
            data = parser.instantiate(parser.parse_object({"data": section})).data
    except Exception as error:  # jsonargparse wraps the constructor's ValueError in its own errors
        cause = _deepest(error)
        if isinstance(cause, ConfigurationError):
            raise cause from error
        sources = ", ".join([str(path) for path in paths] + (["the --data arguments"] if cli_args else []))
        raise ConfigurationError(f"the data: section of {sources}: {cause}") from error
    return data
