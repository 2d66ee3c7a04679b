"""The model options of the tools that run a model on images (``tools/predict.py``, ``tools/infer_video.py``):
one definition of the flags, one check of their combinations, one way from them to a ``Predictor``.

Importing this module is cheap (no torch): the tools parse their arguments before heavy imports.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from seglite.apps import arguments
from seglite.errors import SegliteError
from seglite.inference.options import BACKENDS, PRECISIONS


def add_model_arguments(parser: argparse.ArgumentParser, item: str) -> argparse._ArgumentGroup:
    """The ``model`` argument group; ``item`` names what the tool segments ("image", "frame")."""
    model = parser.add_argument_group("model")
    model.add_argument("--checkpoint", type=Path, help="Lightning checkpoint of a seglite model")
    model.add_argument("--onnx", type=Path,
                       help="ONNX model of tools/export.py; with --checkpoint and --backend onnxruntime, where to export it")
    model.add_argument("--openvino", type=Path, help="OpenVINO model (.xml) of tools/export.py --format openvino")
    model.add_argument("--model", type=Path,
                       help="phone model of tools/export.py: ExecuTorch NAME.pte or LiteRT NAME.tflite (XNNPACK, fixed input size)")
    model.add_argument("--backend", choices=BACKENDS, default="auto",
                       help="for --checkpoint: auto (default: the fastest checked backend here), torch (exact fp32), "
                            "onnxruntime or openvino")  # fmt: skip
    model.add_argument("--precision", choices=PRECISIONS[:-1], default="auto",
                       help="auto (default: bf16 where the CPU computes it, else fp32), fp32 or bf16 (OpenVINO)")
    model.add_argument("--device", type=arguments.device, default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    model.add_argument("--size", type=arguments.positive_int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                       help=f"inference size; masks are resized back to each {item} (default: the {item}'s size)")
    model.add_argument("--batch", type=arguments.positive_int, default=1, help=f"{item}s per model call (default: 1)")
    return model


def check_model_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``parser.error`` (exit code 2) on a combination of model options that cannot work."""
    sources = [name for name in ("checkpoint", "openvino", "model") if getattr(args, name) is not None]
    if not sources and args.onnx is None:
        parser.error("give the model: --checkpoint CKPT, --onnx MODEL, --openvino MODEL.xml or --model MODEL.pte/.tflite")
    if len(sources) > 1 or (args.onnx is not None and sources and sources != ["checkpoint"]):
        parser.error("give one model: --checkpoint (optionally with --onnx), --onnx, --openvino or --model")
    if args.model is not None and args.model.suffix not in (".pte", ".tflite"):
        parser.error(f"--model takes an ExecuTorch NAME.pte or a LiteRT NAME.tflite, got {args.model}")
    if args.model is not None and args.precision != "auto":
        parser.error("--precision is for --checkpoint and --openvino; a phone model runs the precision it was exported in")
    if args.onnx is not None and args.backend not in ("auto", "onnxruntime"):
        parser.error(f"--onnx runs in onnxruntime: drop --backend {args.backend}, or --onnx")
    if args.precision == "bf16" and (args.onnx is not None or args.backend == "onnxruntime"):
        parser.error("--precision bf16 runs in OpenVINO or torch; an ONNX model runs in onnxruntime in fp32: drop one")
    if args.checkpoint is None and args.backend != "auto":
        parser.error("--backend chooses how a --checkpoint runs; an exported model runs in its own runtime")


def check_device(device: str) -> str:
    """``device`` (spelled as ``arguments.device`` checked: cpu, cuda or cuda:N) if this machine has it;
    a one-line ``SegliteError`` naming --device otherwise."""
    import torch

    parsed = torch.device(device)
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise SegliteError(f"--device {device}: CUDA is not available on this machine (no GPU or driver); use --device cpu")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise SegliteError(f"--device {device}: this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1})")
    return device


def load_predictor(args: argparse.Namespace, item: str, num_threads: int | None = None, channels_last: bool = False):
    """The ``Predictor`` the checked model options describe; options the model cannot take (``--size``
    for a fixed-size ONNX model, say) are a ``SegliteError`` naming them."""
    from seglite.inference.predictor import FixedInputSizeError, Predictor

    size = tuple(args.size) if args.size else None
    check_device(args.device)
    try:
        if args.openvino is not None:
            if size is not None:
                raise SegliteError(f"--size does not apply to an OpenVINO segmenter, which takes each {item} at its size")
            return Predictor.from_openvino(args.openvino, batch_size=args.batch, num_threads=num_threads, precision=args.precision)
        if args.model is not None:
            if size is not None:
                raise SegliteError(f"--size does not apply to {args.model}: it runs at the fixed size it was exported at")
            return Predictor.from_phone_file(args.model, batch_size=args.batch, num_threads=num_threads)
        if args.checkpoint is None:
            return Predictor.from_onnx(args.onnx, device=args.device, size=size, batch_size=args.batch, num_threads=num_threads)
        return Predictor.from_checkpoint(
            args.checkpoint, device=args.device, backend=args.backend, size=size, onnx_path=args.onnx,
            channels_last=channels_last, batch_size=args.batch, precision=args.precision, num_threads=num_threads,
        )  # fmt: skip
    except FixedInputSizeError as error:
        (height, width), (fixed_height, fixed_width) = error.size, error.input_size
        raise SegliteError(
            f"--size {height} {width}: {args.onnx} was exported for a fixed input of {fixed_height}x{fixed_width}; "
            f"drop --size (or give --size {fixed_height} {fixed_width}), or export with --dynamic"
        ) from None
    except ValueError as error:
        if isinstance(error, SegliteError):
            raise
        raise SegliteError(str(error)) from error
