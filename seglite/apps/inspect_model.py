"""Report a checkpoint's dead depthwise kernels and never-activated ReLU channels.

    python tools/inspect_model.py outputs/lraspp_mnv3/version_0/checkpoints/last.ckpt
    python tools/inspect_model.py last.ckpt --data data/demo/leftImg8bit/val --images 16

Prints two Markdown tables: per depthwise convolution, the kernels whose L2 norm is below
--threshold ("dead": they add nothing but a constant), and, with --data, per ReLU/ReLU6 the
channels that are never positive on the first --images images found under ROOT (searched
recursively, in name order), run at their own size (or --size) with the training normalisation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seglite.apps import arguments
from seglite.errors import SegliteError


class InspectToolError(SegliteError):
    """An input or option of tools/inspect_model.py is unusable."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inspect_model.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("checkpoint", type=Path, help="Lightning checkpoint of a seglite model")
    parser.add_argument("--data", type=Path, metavar="ROOT", help="folder of images for the activation table")
    parser.add_argument("--images", type=arguments.positive_int, default=8, metavar="N", help="images to run from --data (default: 8)")
    parser.add_argument("--size", type=arguments.positive_int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="resize images to this size first (default: each image's own size)")
    parser.add_argument("--threshold", type=arguments.positive_float, default=1e-3,
                        help="a depthwise kernel with an L2 norm below this is dead (default: 0.001)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    return parser.parse_args(argv)


def find_images(root: Path, limit: int) -> list[Path]:
    """The first ``limit`` image files under ``root`` (recursively, sorted by path)."""
    from seglite.files import is_image_file

    if not root.is_dir():
        raise InspectToolError(f"--data {root}: {'is a file, not a folder' if root.exists() else 'does not exist'}")
    images = sorted(path for path in root.rglob("*") if is_image_file(path))
    if not images:
        raise InspectToolError(f"--data {root}: no image files found in it or its sub-folders")
    return images[:limit]


def report(model, image_paths: list[Path], size: tuple[int, int] | None, threshold: float) -> str:
    """The two tables for ``model`` (a ``SegmentationModel`` or any module taking normalised images)."""
    import cv2
    import torch

    from seglite.data.io import read_rgb
    from seglite.data.transforms import normalize_image
    from seglite.models.diagnostics import dead_depthwise_kernels, format_table, never_activated_channels

    lines = [f"Depthwise kernels with an L2 norm below {threshold:g} (dead)", ""]
    dead = dead_depthwise_kernels(model, threshold)
    lines += format_table(dead, "kernels", "dead") if dead else ["(the model has no depthwise convolution)"]
    if image_paths:

        def batches():
            for path in image_paths:
                image = read_rgb(path)
                if size is not None:
                    image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
                yield torch.from_numpy(normalize_image(image))[None]

        silent = never_activated_channels(model, batches())
        lines += ["", f"ReLU/ReLU6 channels never positive on {len(image_paths)} image(s)", ""]
        lines += format_table(silent, "channels", "never active") if silent else ["(the model has no ReLU or ReLU6)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # heavy imports only now, so that --help is instant
    from seglite.inference.predictor import load_task

    try:
        image_paths = find_images(args.data, args.images) if args.data is not None else []
        model = load_task(args.checkpoint).model
        print(report(model, image_paths, None if args.size is None else tuple(args.size), args.threshold))
    except SegliteError as error:
        print(f"inspect_model.py: error: {error}", file=sys.stderr)
        return 2
    return 0
