"""Print a data set's class pixel counts and frequencies per split, read from the data section of training configs.

    python tools/class_stats.py configs/lraspp_mnv3_folder.yaml
    python tools/class_stats.py configs/lraspp_mnv3.yaml configs/demo.yaml --splits train val --weights enet median_frequency
    python tools/class_stats.py configs/lraspp_mnv3_folder.yaml --data.root data/mine --data.num_classes 5

The configs are those tools/train.py takes (later files override earlier ones, --data.KEY VALUE
arguments override the files); only their data: section is read, and the data module it
describes finds the data (a demo: true config writes the demo set first, as training does).
Per split: images, labelled pixels and the share ignored (255); then per class its pixels, its
share of the labelled pixels, the images holding it and, with --weights, the weights
`model.class_weights: METHOD` would give if that split were the training split. Only the masks
are read, by --workers processes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from seglite.apps.arguments import non_negative_int
from seglite.data.constants import CLASS_WEIGHT_METHODS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="class_stats.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("configs", nargs="+", type=Path, metavar="CONFIG", help="training config(s) holding a data: section")
    parser.add_argument("--splits", nargs="+", metavar="SPLIT",
                        help="split names to count (default: the data module's training, validation and test splits)")
    parser.add_argument("--weights", nargs="+", choices=CLASS_WEIGHT_METHODS, default=[], metavar="METHOD",
                        help=f"also show the class weights of these methods ({', '.join(CLASS_WEIGHT_METHODS)})")
    parser.add_argument("--workers", type=non_negative_int, metavar="N",
                        help="processes reading the masks (default: the config's num_workers)")
    return parser


def _deepest(error: BaseException) -> BaseException:
    """The innermost cause under jsonargparse's wrappers: the constructor's or parser's own message."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return error


def data_section(paths: Sequence[Path], cli_args: Sequence[str] = ()) -> dict[str, Any]:
    """The ``data:`` section of the configs ``paths`` composed, then ``--data.KEY VALUE`` arguments over it."""
    from seglite.apps.configs import command_line_values, compose_configs, merge_sections
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


def split_report(split: str, counts, class_names: Sequence[str], methods: Sequence[str]) -> str:
    """The heading line and class table of one split's ``ClassCounts``."""
    from seglite.data.statistics import class_table, class_weights

    unlabelled = f", {counts.unlabelled_images} without labels" if counts.unlabelled_images else ""
    heading = f"## {split}: {counts.num_images} images{unlabelled}"
    if counts.labelled == 0:
        return f"{heading}; no labelled pixel" + (f" ({counts.ignored:,} pixels, all ignored)" if counts.ignored else "")
    ignored = 100 * counts.ignored / counts.total
    heading += f"; {counts.labelled:,} labelled pixels, {counts.ignored:,} ignored ({ignored:.2f}% of {counts.total:,})"
    weights = {method: class_weights(counts, method) for method in methods}
    lines = [heading, "", class_table(counts, class_names, weights)]
    absent = [class_names[index] for index in counts.absent]
    if absent:
        lines += ["", f"absent from {split}: {', '.join(absent)}" + (" (weight 0)" if methods else "")]
    return "\n".join(lines)


def reports(data, splits: Sequence[str] | None, methods: Sequence[str], workers: int | None) -> Iterator[str]:
    """A heading, then the counts of every split of ``data`` (a ``SegmentationDataModule``), one section each, as counted."""
    from seglite.data.statistics import count_class_pixels

    data._check_data()  # missing data: where it is expected and how to get it
    if splits is None:
        splits = list(dict.fromkeys(data.splits[role] for role in ("train", "val", "test")))
    workers = data.num_workers if workers is None else workers
    root = getattr(data, "root", None)
    heading = f"{type(data).__name__}{f' at {root}' if root else ''}: {data.num_classes} classes"
    if methods:
        heading += f"; weights from each split's own labels (training uses those of {data.splits['train']!r})"
    yield heading
    for split in splits:
        counts = count_class_pixels(data._dataset(split, None), data.num_classes, workers)
        yield split_report(split, counts, data.class_names, methods)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, cli_args = parser.parse_known_args(argv)
    unknown = [argument for argument in cli_args if argument.startswith("-") and not argument.startswith("--data.")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} (besides its own options the tool takes only --data.KEY VALUE)")
    # heavy imports only now, so that --help is instant
    from seglite.errors import SegliteError

    try:
        data = build_data_module(args.configs, cli_args)
        for index, section in enumerate(reports(data, args.splits, args.weights, args.workers)):
            print(("\n" if index else "") + section, flush=True)
    except SegliteError as error:
        print(f"class_stats.py: error: {error}", file=sys.stderr)
        return 2
    return 0
