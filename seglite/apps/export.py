"""Export a seglite checkpoint to ONNX, TorchScript, OpenVINO or a phone format, checked against PyTorch; int8 with its mIoU change.

    python tools/export.py last.ckpt --output model.onnx
    python tools/export.py last.ckpt --output model.onnx --dynamic --height 256 --width 512
    python tools/export.py last.ckpt --format torchscript --output model.pt
    python tools/export.py last.ckpt --format openvino --output model.xml            # + model.bin
    python tools/export.py last.ckpt --format openvino --precision int8 --output model.int8.xml \\
        --calibration-root data/demo          # NNCF int8; prints val mIoU against PyTorch fp32
    python tools/export.py last.ckpt --output model.onnx --height 256 --width 512 \\
        --int8 --calibration-root data/demo   # also writes model.int8.onnx (ONNX Runtime QDQ), compares on val

After writing, the export runs next to PyTorch on the same random images: ONNX and TorchScript
logits must stay within 1e-3 and their argmax agree on 99.9% of the pixels; an fp32 OpenVINO
model's masks must agree on 99.9%. Otherwise nothing is written. A TorchScript or OpenVINO
export accepts any input size; ONNX is fixed to --height x --width (and batch --batch-size)
unless --dynamic. An OpenVINO model is the whole segmenter: uint8 RGB image in, the head's
coarse logits out (Predictor.from_openvino finishes the masks). bf16 and int8 report their val
mIoU change against PyTorch fp32 when --calibration-root is given (required for int8).
A phone model (ExecuTorch .pte, LiteRT .tflite) is fixed to --height x --width: uint8 RGB image
in, the head's coarse logits out (the app finishes the mask: README, "On a phone"); it is checked
in its runtime on XNNPACK, and the export prints what runs outside XNNPACK.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seglite.apps import arguments
from seglite.errors import SegliteError
from seglite.inference.options import EXPORT_FORMATS, INT8_SCOPES, PRECISIONS, TORCHSCRIPT_METHODS

DEFAULTS = {"torchscript_method": "script", "batch_size": 1, "opset": 17, "int8_scope": "all",
            "calibration_split": "train", "calibration_count": 32, "eval_split": "val"}
"""Defaults of the options that apply to some exports only: ``None`` until parsed, so a given one is told apart."""


def check_combinations(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``parser.error`` on an option the chosen export would ignore (given options are not ``None``/``False``)."""
    def given(*names: str) -> list[str]:
        return ["--" + name.replace("_", "-") for name in names if getattr(args, name) not in (None, False)]

    phone = args.format in ("executorch", "litert")
    if args.format != "onnx" and given("dynamic", "batch_size"):
        takes = "is fixed to --height x --width, batch 1" if phone else "takes any size and batch"
        parser.error(f"{given('dynamic', 'batch_size')[0]} is for --format onnx; --format {args.format} {takes}")
    if args.format != "onnx" and given("opset"):
        parser.error(f"--opset is for --format onnx, not --format {args.format}")
    if args.dynamic and given("batch_size"):
        parser.error("--batch-size fixes the batch of a static ONNX model: drop it or --dynamic")
    if args.format != "torchscript" and given("torchscript_method"):
        parser.error("--torchscript-method is for --format torchscript")
    if (args.precision != "int8" or args.format != "openvino") and given("int8_scope"):
        parser.error("--int8-scope is for --format openvino --precision int8")
    if not args.int8 and given("int8_output"):
        parser.error("--int8-output is for --int8 (ONNX Runtime int8)")
    if args.calibration_root is not None and not args.int8 and args.precision == "fp32":
        parser.error("--calibration-root is for --int8 or --format openvino --precision bf16/int8 (or --format executorch "
                     "--precision int8); an fp32 export has no mIoU change")
    loose = given("calibration_split", "calibration_count", "eval_split", "eval_limit")
    if args.calibration_root is None and loose:
        parser.error(f"{loose[0]} needs --calibration-root DIR")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="training checkpoint of `seglite fit` / tools/train.py")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="onnx", help="default: onnx")
    parser.add_argument("--output", type=Path, required=True,
                        help="the exported file (OpenVINO: NAME.xml, with NAME.bin beside it; ExecuTorch NAME.pte; LiteRT NAME.tflite)")
    parser.add_argument("--dynamic", action="store_true", help="ONNX: any batch, height and width")
    parser.add_argument("--torchscript-method", choices=TORCHSCRIPT_METHODS,
                        help="TorchScript: script (default: compile the code, every branch kept) or trace")
    parser.add_argument("--height", type=arguments.positive_int, default=512, help="input height (default 512)")
    parser.add_argument("--width", type=arguments.positive_int, default=1024, help="input width (default 1024)")
    parser.add_argument("--batch-size", type=arguments.positive_int, help="ONNX without --dynamic: the fixed batch (default 1)")
    parser.add_argument("--opset", type=arguments.at_least(17), help="ONNX opset, 17 to what the installed torch exports (default 17)")
    parser.add_argument("--precision", choices=PRECISIONS[1:], default="fp32",
                        help="OpenVINO: fp32 (default), bf16 (used where the CPU computes bf16) or int8 (NNCF); "
                             "ExecuTorch: fp32 or int8 (PT2E, XNNPACKQuantizer)")
    parser.add_argument("--int8-scope", choices=INT8_SCOPES,
                        help="OpenVINO int8: what is quantised (default all; see seglite.inference.openvino)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    int8 = parser.add_argument_group("int8 calibration and accuracy")
    int8.add_argument("--int8", action="store_true", help="ONNX: also write an ONNX Runtime int8 (QDQ) model and compare it")
    int8.add_argument("--int8-output", type=Path, help="the ONNX int8 file (default: OUTPUT with .int8.onnx)")
    int8.add_argument("--calibration-root", type=Path, help="Cityscapes-layout data set for calibration and evaluation")
    int8.add_argument("--calibration-split", choices=("train", "val"), help="default: train")
    int8.add_argument("--calibration-count", type=arguments.positive_int, help="calibration images (default 32)")
    int8.add_argument("--eval-split", choices=("train", "val"), help="split the mIoU change is measured on (default: val)")
    int8.add_argument("--eval-limit", type=arguments.positive_int, help="evaluate on at most this many images")
    args = parser.parse_args(argv)
    check_combinations(parser, args)
    for name, value in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.precision != "fp32" and args.format != "openvino" and not (args.format == "executorch" and args.precision == "int8"):
        needs = "--format openvino or executorch" if args.precision == "int8" else "--format openvino"
        parser.error(f"--precision {args.precision} needs {needs} (ONNX Runtime int8: --int8)")
    suffix = {"executorch": ".pte", "litert": ".tflite"}.get(args.format)
    if suffix and args.output.suffix != suffix:
        parser.error(f"--format {args.format} writes NAME{suffix}: give --output NAME{suffix}, got {args.output}")
    if args.format == "openvino" and args.output.suffix != ".xml":
        parser.error(f"--format openvino writes NAME.xml and NAME.bin: give --output NAME.xml, got {args.output}")
    if args.precision == "int8" and args.calibration_root is None:
        parser.error("--precision int8 needs --calibration-root DIR (a Cityscapes-layout data set)")
    if args.int8:
        if args.format != "onnx":
            parser.error("--int8 needs --format onnx")
        if args.calibration_root is None:
            parser.error("--int8 needs --calibration-root DIR (a Cityscapes-layout data set)")
        args.int8_output = args.int8_output or args.output.with_suffix(".int8.onnx")
    return args


def run(args: argparse.Namespace) -> None:
    from seglite.inference.export import check_opset, check_output, export_checkpoint

    if args.format == "onnx":
        try:
            check_opset(args.opset, "--opset")
        except ValueError as error:
            raise SegliteError(str(error)) from None
        from seglite.inference.onnxruntime import onnxruntime_max_opset

        loads = onnxruntime_max_opset(args.opset)
        if loads < args.opset:  # the export is checked in ONNX Runtime, which would refuse it
            import onnxruntime

            raise SegliteError(
                f"--opset {args.opset}: onnxruntime {onnxruntime.__version__} loads opsets up to {loads}, and the "
                f"export is checked in it; pass --opset {loads} or lower, or upgrade onnxruntime"
            )

    if args.int8:
        check_output(args.int8_output, args.overwrite, [args.checkpoint])  # before the slow part
    size = (args.height, args.width)
    calibration = None
    if args.precision == "int8":
        from seglite.inference.accuracy import dataset_images

        calibration = dataset_images(args.calibration_root, args.calibration_split, args.calibration_count)
    reports = export_checkpoint(
        args.checkpoint, args.output, args.format, size, args.dynamic, args.opset, args.batch_size, args.overwrite,
        precision=args.precision, calibration_images=calibration, int8_scope=args.int8_scope,
        torchscript_method=args.torchscript_method,
    )
    if args.format in ("executorch", "litert"):
        report_phone(args, reports, calibration)
        return
    if args.format in ("torchscript", "openvino") or args.dynamic:
        shape = "any size"
    else:
        shape = f"input {args.batch_size}x3x{args.height}x{args.width}"
    detail = f"{args.format}, {shape}" + (f", {args.torchscript_method}" if args.format == "torchscript" else "")
    if args.format == "openvino":
        detail += f", {args.precision}"
        if calibration:
            detail += f", {len(calibration)} {args.calibration_split} images calibrate, scope {args.int8_scope}"
    print(f"exported {args.output} ({detail})")
    for report in reports:
        print(f"  check vs PyTorch, {report}")
    if args.format == "openvino" and args.precision != "fp32" and args.calibration_root is not None:
        compare_openvino(args)
    if args.int8:
        quantize(args)


def report_phone(args: argparse.Namespace, export, calibration) -> None:
    """What a phone export wrote and how it checked; int8 with calibration data: its val mIoU change."""
    detail = f"{args.format} {args.precision}, input 1x{args.height}x{args.width}x3 uint8, {export.file_bytes / 1e6:.2f} MB"
    if calibration:
        detail += f", {len(calibration)} {args.calibration_split} images calibrate"
    print(f"exported {args.output} ({detail})")
    for report in export.reports:
        print(f"  check vs PyTorch, {report}")
    print(f"  {export.delegation}")
    if args.precision == "int8":
        compare_phone(args)


def compare_phone(args: argparse.Namespace) -> None:
    """Val mIoU of an int8 phone model against the checkpoint in PyTorch fp32 at the same (fixed) size."""
    from seglite.inference.accuracy import comparison_table, evaluate_predictors
    from seglite.inference.predictor import Predictor

    exported = Predictor.from_phone_file(args.output)
    reference = Predictor.from_checkpoint(args.checkpoint, backend="torch", size=(args.height, args.width))
    predictors = {f"torch fp32 at {args.height}x{args.width}": reference, exported.description: exported}
    evaluations = evaluate_predictors(predictors, args.calibration_root, args.eval_split, args.eval_limit)
    count = args.eval_limit or "all"
    print(f"\n{args.calibration_root} {args.eval_split} ({count} images), CPU:\n{comparison_table(evaluations)}")


def compare_openvino(args: argparse.Namespace) -> None:
    """Val mIoU of the low-precision OpenVINO export against the checkpoint in PyTorch fp32."""
    from seglite.inference.accuracy import comparison_table, evaluate_predictors
    from seglite.inference.predictor import Predictor

    exported = Predictor.from_openvino(args.output)
    predictors = {"torch fp32": Predictor.from_checkpoint(args.checkpoint, backend="torch"), exported.description: exported}
    evaluations = evaluate_predictors(predictors, args.calibration_root, args.eval_split, args.eval_limit)
    count = args.eval_limit or "all"
    print(f"\n{args.calibration_root} {args.eval_split} ({count} images), CPU:\n{comparison_table(evaluations)}")


def quantize(args: argparse.Namespace) -> None:
    from seglite.inference.accuracy import comparison_table, dataset_images, evaluate_predictors
    from seglite.inference.predictor import Predictor
    from seglite.inference.quantize import quantize_onnx

    images = dataset_images(args.calibration_root, args.calibration_split, args.calibration_count)
    quantize_onnx(args.output, args.int8_output, images, overwrite=args.overwrite)
    print(f"int8 model {args.int8_output} (QDQ, per-channel; calibrated on {len(images)} {args.calibration_split} images)")
    predictors = {"fp32": Predictor.from_onnx(args.output), "int8": Predictor.from_onnx(args.int8_output)}
    evaluations = evaluate_predictors(predictors, args.calibration_root, args.eval_split, args.eval_limit)
    count = args.eval_limit or "all"
    print(f"\n{args.calibration_root} {args.eval_split} ({count} images), ONNX Runtime CPU:\n{comparison_table(evaluations)}")


def _outputs(args: argparse.Namespace) -> list[Path]:
    """The files this export may write."""
    paths = [args.output]
    if args.format == "openvino":
        paths.append(args.output.with_suffix(".bin"))
    if args.int8:
        paths.append(args.int8_output)
    return paths


def _file_state(path: Path) -> tuple[int, int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns, status.st_size


def _interrupted(args: argparse.Namespace, before: dict[Path, tuple[int, int, int] | None]) -> str:
    """What an interrupted export leaves: every file is written atomically, but an OpenVINO model is two
    (weights first), so weights written without their .xml are removed."""
    written = [path for path, state in before.items() if _file_state(path) not in (None, state)]
    removed = []
    if args.format == "openvino" and args.output not in written and args.output.with_suffix(".bin") in written:
        weights = args.output.with_suffix(".bin")
        weights.unlink(missing_ok=True)
        written.remove(weights)
        removed.append(f"removed the unpaired {weights}")
    done = ", ".join(map(str, written))
    return "; ".join(([f"wrote {done}"] if written else ["nothing was written"]) + removed)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    before = {path: _file_state(path) for path in _outputs(args)}
    try:
        run(args)
    except SegliteError as error:
        print(f"export: error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # argument values the model or exporter rejects
        print(f"export: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"export: interrupted ({_interrupted(args, before)})", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
