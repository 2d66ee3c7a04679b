"""Evaluate a checkpoint: mIoU, per-class IoU and pixel accuracy, written as JSON, CSV and a confusion image.

A thin layer over ``seglite test`` (LightningCLI) with ``seglite.lit.evaluation.EvaluationWriter``:
the configs are those of training (or the ``config.yaml`` Lightning saved beside the
checkpoints), inference options left out keep the config's ``model.eval_*`` values, and
further ``--section.key value`` arguments, after the paths, go to LightningCLI.

Examples::

    python tools/test.py configs/lraspp_mnv3.yaml configs/demo.yaml last.ckpt --mode slide --flip
    python tools/test.py configs/lraspp_mnv3.yaml best.ckpt --output results/val --format cityscapes
    CITYSCAPES_DATASET=data/cityscapes CITYSCAPES_RESULTS=results/val/cityscapes \\
        CITYSCAPES_EXPORT_DIR=results/val csEvalPixelLevelSemanticLabeling

``--overwrite`` replaces only what an earlier evaluation wrote into the output folder (its
``.seglite-outputs.json`` lists it); any other file there makes it stop with an error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

CONFIG_FILE = "config.yaml"  # Lightning saves the evaluation's config there (seglite.results.CONFIG_FILE)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="test",
        usage="%(prog)s CONFIG [MORE_CONFIGS...] CHECKPOINT [options] [--section.key value ...]",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # `--over` must not mean --overwrite
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="training config(s), then the checkpoint")
    parser.add_argument("--split", choices=("val", "test"), default="val",
                        help="split to evaluate (default: val; Cityscapes test has no public labels)")
    parser.add_argument("--mode", choices=("whole", "slide"), help="whole-image or sliding-window inference (default: the config's)")
    parser.add_argument("--crop-size", type=_positive_int, nargs=2, metavar=("H", "W"), help="sliding-window size")
    parser.add_argument("--stride", type=_positive_int, nargs=2, metavar=("H", "W"), help="sliding-window stride")
    parser.add_argument("--flip", action="store_true", help="horizontal-flip test-time augmentation")
    parser.add_argument("--scales", type=_positive_float, nargs="+", metavar="S",
                        help="multi-scale test-time augmentation, e.g. 0.75 1.0 1.25")
    parser.add_argument("--output", type=Path, help="results folder (default: beside the checkpoint, named after it and the split)")
    parser.add_argument("--format", choices=("cityscapes",), help="also write label-id PNGs for the official Cityscapes evaluation")
    parser.add_argument("--overwrite", action="store_true", help="replace the results an earlier evaluation wrote into the output folder")
    return parser


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = build_parser()
    args, cli_args = parser.parse_known_args(list(argv))
    if len(args.paths) < 2:
        parser.error("give at least one config and the checkpoint: CONFIG [MORE_CONFIGS...] CHECKPOINT")
    return args, cli_args  # the rest goes to LightningCLI, which rejects what it does not know


def default_output(checkpoint: Path, split: str) -> Path:
    return checkpoint.parent / f"{checkpoint.stem}_{split}"


def output_folder(args: argparse.Namespace) -> Path:
    return args.output or default_output(Path(args.paths[-1]), args.split)


def to_cli_args(args: argparse.Namespace, cli_args: Sequence[str]) -> list[str]:
    """The ``seglite test`` command line that runs this evaluation."""
    *configs, checkpoint = args.paths
    output = output_folder(args)
    writer = {
        "class_path": "seglite.lit.evaluation.EvaluationWriter",
        "init_args": {
            "output_dir": str(output),
            "export_cityscapes": args.format == "cityscapes",
            "overwrite": args.overwrite,
            "settings": {"configs": configs, "checkpoint": checkpoint, "split": args.split},
        },
    }
    overrides = {
        "--model.eval_mode": args.mode,
        "--model.eval_crop_size": args.crop_size,
        "--model.eval_stride": args.stride,
        "--model.eval_flip": True if args.flip else None,
        "--model.eval_scales": args.scales,
    }
    command = ["test"] + [item for config in configs for item in ("--config", config)]
    command += ["--ckpt_path", checkpoint, "--data.init_args.test_split", args.split]
    for key, value in overrides.items():
        if value is not None:
            command += [key, value if isinstance(value, str) else json.dumps(value)]
    # no logger: the config Lightning saves (config.yaml) lands in the results folder instead
    command += ["--trainer.logger", "false", "--trainer.default_root_dir", str(output)]
    command += [f"--trainer.callbacks+={json.dumps(writer)}"]
    return command + list(cli_args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation; returns the exit code (0, or 2 for a user error)."""
    args, cli_args = parse_args(sys.argv[1:] if argv is None else argv)
    command = to_cli_args(args, cli_args)
    output = output_folder(args)
    cityscapes = args.format == "cityscapes"

    from seglite.errors import SegliteError
    from seglite.files import OutputManifest, make_dir, require_file
    from seglite.results import check_results_writable, clear_results

    try:
        for path in args.paths[:-1]:
            require_file(path, "config")
        require_file(args.paths[-1], "checkpoint")
        check_results_writable(output, cityscapes, args.overwrite, extra=[CONFIG_FILE])
        if args.overwrite:
            clear_results(output, cityscapes, extra=[CONFIG_FILE])  # Lightning refuses to replace config.yaml
        make_dir(output, "output folder")
        OutputManifest(output).claim([output / CONFIG_FILE])  # Lightning writes it
    except SegliteError as error:
        print(f"test: error: {error}", file=sys.stderr)
        return 2

    from seglite.lit.cli import run

    def report(cli) -> None:
        scores = cli.model.last_scores.get("test")
        if scores is not None and int(scores.confusion.sum()) > 0:
            print(f"{args.split} mIoU: {100 * scores.miou:.2f}  pixel accuracy: {100 * scores.pixel_accuracy:.2f}  results: {output}")

    return run(command, prog="test", on_success=report)
