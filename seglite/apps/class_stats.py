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
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

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
    # the config's loader workers, at most one per usable CPU (counting is cheap per mask)
    workers = min(data.num_workers, len(os.sched_getaffinity(0))) if workers is None else workers
    root = getattr(data, "root", None)
    heading = f"{type(data).__name__}{f' at {root}' if root else ''}: {data.num_classes} classes"
    if methods:
        heading += f"; weights from each split's own labels (training uses those of {data.splits['train']!r})"
    yield heading
    for split in splits:
        # labelled=False: a split without masks is reported as such, not refused
        counts = count_class_pixels(data._dataset(split, None, labelled=False), data.num_classes, workers)
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
        from seglite.apps.configs import build_data_module

        data = build_data_module(args.configs, cli_args)
        for index, section in enumerate(reports(data, args.splits, args.weights, args.workers)):
            print(("\n" if index else "") + section, flush=True)
    except SegliteError as error:
        print(f"class_stats.py: error: {error}", file=sys.stderr)
        return 2
    return 0
