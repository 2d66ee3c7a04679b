"""Export a seglite checkpoint to ONNX or TorchScript, checked against PyTorch; optionally int8 for ONNX Runtime.

    python tools/export.py last.ckpt --output model.onnx
    python tools/export.py last.ckpt --output model.onnx --dynamic --height 256 --width 512
    python tools/export.py last.ckpt --format torchscript --output model.pt
    python tools/export.py last.ckpt --output model.onnx --height 256 --width 512 \\
        --int8 --calibration-root data/demo        # also writes model.int8.onnx, compares on val

After writing, the export runs next to PyTorch on the same random images: the largest logit
difference must stay within 1e-3 and the argmax agree on 99.9% of the pixels, or nothing is
written. A TorchScript export accepts any input size; ONNX is fixed to --height x --width
(and batch --batch-size) unless --dynamic.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seglite.errors import SegliteError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="Lightning checkpoint of `seglite fit` / tools/train.py")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="default: onnx")
    parser.add_argument("--output", type=Path, required=True, help="the exported file")
    parser.add_argument("--dynamic", action="store_true", help="ONNX: any batch, height and width")
    parser.add_argument("--height", type=int, default=512, help="input height (default 512)")
    parser.add_argument("--width", type=int, default=1024, help="input width (default 1024)")
    parser.add_argument("--batch-size", type=int, default=1, help="ONNX without --dynamic: the fixed batch (default 1)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset, at least 17 (default 17)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    int8 = parser.add_argument_group("int8 quantisation (ONNX Runtime)")
    int8.add_argument("--int8", action="store_true", help="also write a statically quantised int8 model and compare it")
    int8.add_argument("--int8-output", type=Path, help="the int8 file (default: OUTPUT with .int8.onnx)")
    int8.add_argument("--calibration-root", type=Path, help="Cityscapes-layout data set for calibration and evaluation")
    int8.add_argument("--calibration-split", default="train", choices=("train", "val"), help="default: train")
    int8.add_argument("--calibration-count", type=int, default=32, help="calibration images (default 32)")
    int8.add_argument("--eval-split", default="val", choices=("train", "val"), help="split the mIoU change is measured on (default: val)")
    int8.add_argument("--eval-limit", type=int, help="evaluate on at most this many images")
    args = parser.parse_args(argv)
    for name in ("height", "width", "batch_size", "calibration_count"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.opset < 17:
        parser.error(f"--opset must be at least 17, got {args.opset}")
    if args.int8:
        if args.format != "onnx":
            parser.error("--int8 needs --format onnx")
        if args.calibration_root is None:
            parser.error("--int8 needs --calibration-root DIR (a Cityscapes-layout data set)")
        args.int8_output = args.int8_output or args.output.with_suffix(".int8.onnx")
    return args


def run(args: argparse.Namespace) -> None:
    from seglite.inference.export import check_output, export_checkpoint

    if args.int8:
        check_output(args.int8_output, args.overwrite)  # before the slow part
    size = (args.height, args.width)
    reports = export_checkpoint(
        args.checkpoint, args.output, args.format, size, args.dynamic, args.opset, args.batch_size, args.overwrite
    )
    shape = "any size" if args.format == "torchscript" or args.dynamic else f"input {args.batch_size}x3x{args.height}x{args.width}"
    print(f"exported {args.output} ({args.format}, {shape})")
    for report in reports:
        print(f"  check vs PyTorch, {report}")
    if args.int8:
        quantize(args)


def quantize(args: argparse.Namespace) -> None:
    from seglite.inference.predictor import Predictor
    from seglite.inference.quantize import comparison_table, dataset_images, evaluate_predictors, quantize_onnx

    images = dataset_images(args.calibration_root, args.calibration_split, args.calibration_count)
    quantize_onnx(args.output, args.int8_output, images, overwrite=args.overwrite)
    print(f"int8 model {args.int8_output} (QDQ, per-channel; calibrated on {len(images)} {args.calibration_split} images)")
    predictors = {"fp32": Predictor.from_onnx(args.output), "int8": Predictor.from_onnx(args.int8_output)}
    evaluations = evaluate_predictors(predictors, args.calibration_root, args.eval_split, args.eval_limit)
    count = args.eval_limit or "all"
    print(f"\n{args.calibration_root} {args.eval_split} ({count} images), ONNX Runtime CPU:\n{comparison_table(evaluations)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (SegliteError, FileNotFoundError) as error:  # the data sets raise FileNotFoundError naming the folder
        print(f"export: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
