"""Draw a model's predictions beside the ground truth: image | truth | prediction | errors, one row per image.

    python tools/show_predictions.py configs/lraspp_mnv3_camvid.yaml --checkpoint best.ckpt \\
        --split test --count 4 --output docs/camvid_test_lraspp_mnv3_large.png
    python tools/show_predictions.py configs/lraspp_mnv3_camvid.yaml --checkpoint best.ckpt \\
        --split test --names 0001TP_008550 Seq05VD_f02370 --output picked.png

The configs are those of training: their data section says where the images and masks are and
how the masks are read. Images are picked evenly through the split (--count), or by name
(--names, file stems). Each row's caption gives the image's pixel accuracy and the mean IoU of
the classes in it. The output PNG is never replaced without --overwrite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seglite.apps import arguments
from seglite.apps.model_options import add_model_arguments, check_model_arguments, load_predictor
from seglite.errors import SegliteError

PROG = "show_predictions.py"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("configs", nargs="+", type=Path, metavar="CONFIG", help="training config file(s) with a data: section")
    parser.add_argument("--split", choices=("train", "val", "test"), default="val", help="split to draw from (default: val)")
    parser.add_argument("--count", type=arguments.positive_int, default=4, help="images, evenly spaced through the split (default: 4)")
    parser.add_argument("--names", nargs="+", metavar="STEM", help="pick these images (file names without extension)")
    parser.add_argument("--output", type=Path, required=True, help="the figure's PNG file")
    parser.add_argument("--scale", type=arguments.fraction, default=1.0,
                        help="draw the tiles at this fraction of the images' size, e.g. 0.5 (default: 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_model_arguments(parser, "image")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_model_arguments(parser, args)
    if args.output.suffix.lower() != ".png":
        parser.error(f"--output must be a .png file, got {str(args.output)!r}")
    return args


def pick(paths: list[Path], count: int, names: list[str] | None) -> list[int]:
    """Indices of the named images (each must exist), or ``count`` evenly spaced ones."""
    if names:
        index = {path.stem: position for position, path in enumerate(paths)}
        missing = [name for name in names if name not in index]
        if missing:
            raise SegliteError(f"--names: no image {', '.join(missing)} in the split (e.g. {paths[0].stem})")
        return [index[name] for name in names]
    count = min(count, len(paths))
    return sorted({round(i * (len(paths) - 1) / max(count - 1, 1)) for i in range(count)})


def image_scores(truth, prediction, num_classes: int, ignore_index: int = 255) -> tuple[float, float]:
    """Pixel accuracy and the mean IoU of the classes present in the truth or the prediction of one image."""
    import torch

    from seglite.metrics import confusion_matrix, scores_from_confusion

    confusion = confusion_matrix(torch.from_numpy(prediction), torch.from_numpy(truth), num_classes, ignore_index)
    scores = scores_from_confusion(confusion)
    return scores.pixel_accuracy, scores.miou


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # heavy imports only now, so that --help is instant
    from seglite.apps.configs import build_data_module
    from seglite.data.constants import IGNORE_INDEX
    from seglite.files import check_output_file, write_image
    from seglite.visualization import comparison_figure, resize_panels

    try:
        check_output_file(args.output, overwrite=args.overwrite, what="--output")
        data = build_data_module(args.configs)
        dataset = data._dataset(data.splits[args.split], None)
        paths = [Path(image) for image, _ in dataset.samples]
        chosen = pick(paths, args.count, args.names)
        predictor = load_predictor(args, "image")
        if predictor.num_classes != data.num_classes:
            raise SegliteError(
                f"the model predicts {predictor.num_classes} classes but the data of {args.configs[-1]} has "
                f"{data.num_classes}: give the configs the model was trained with"
            )
        rows = []
        for index in chosen:
            sample = dataset[index]  # no transform: the RGB image and its class-id mask, checked to match
            image, truth = sample["image"], sample["mask"]
            prediction = predictor.predict(image)
            accuracy, miou = image_scores(truth, prediction, data.num_classes, IGNORE_INDEX)
            if args.scale != 1.0:  # scores first, at full resolution; then smaller tiles
                size = (max(1, round(image.shape[0] * args.scale)), max(1, round(image.shape[1] * args.scale)))
                image, truth, prediction = resize_panels(image, truth, prediction, size)
            rows.append((f"{paths[index].name}   pixel acc. {100 * accuracy:.1f}%   mIoU {100 * miou:.1f}", image, truth, prediction))
            print(f"{paths[index]}: pixel accuracy {100 * accuracy:.2f}, mIoU {100 * miou:.2f}")
        figure = comparison_figure(rows, data.palette, data.class_names, IGNORE_INDEX)
        write_image(args.output, figure[..., ::-1])
    except SegliteError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({len(rows)} images of the {args.split} split, model: {predictor.description})")
    return 0
