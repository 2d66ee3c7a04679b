"""CPU latency of one model in PyTorch (eager, channels-last) and ONNX Runtime (fp32, int8), side by side.

    python tools/benchmark_inference.py
    python tools/benchmark_inference.py --preset lraspp_mobilenet_v3_small --height 1024 --width 2048
    python tools/benchmark_inference.py --checkpoint last.ckpt --calibration-root data/demo

Times the model alone (normalised input in, logits at input size out) at batch 1. The backends
take turns within every round, so load that comes and goes affects them alike; each reports
the median over the rounds after warm-up. Without --calibration-root the int8 model is
calibrated on a few synthetic demo images written to a temporary folder (speed does not depend
on calibration quality; mIoU does, see tools/export.py --int8).
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="lraspp_mobilenet_v3_large", help="model preset (default: lraspp_mobilenet_v3_large; random weights)")
    parser.add_argument("--checkpoint", type=Path, help="benchmark this checkpoint's model instead of a preset")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of both runtimes (default 2)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds (default 3)")
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds (default 20)")
    parser.add_argument("--calibration-root", type=Path, help="Cityscapes-layout data set for int8 calibration")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 model")
    return parser.parse_args(argv)


def build(args: argparse.Namespace) -> torch.nn.Module:
    if args.checkpoint is not None:
        from seglite.inference.predictor import load_task

        return load_task(args.checkpoint).model
    from seglite.models import build_preset

    return build_preset(args.preset)


def calibration_images(args: argparse.Namespace, folder: Path) -> list:
    from seglite.inference.quantize import dataset_images

    root = args.calibration_root
    if root is None:
        from seglite.data.synthetic import make_demo_dataset

        root = make_demo_dataset(folder / "demo", num_train=8, num_val=0, num_test=0, size=(args.height, args.width), video=False)
    return dataset_images(root, "train", 8)


def runners(args: argparse.Namespace, model: torch.nn.Module, folder: Path) -> dict:
    from seglite.inference.export import export_onnx
    from seglite.inference.predictor import OnnxRunner, TorchRunner

    size = (args.height, args.width)
    fp32 = folder / "model.onnx"
    export_onnx(model, fp32, size)
    found = {
        "torch eager": TorchRunner(model),
        # a copy: TorchRunner converts the weights of the module it is given
        "torch channels_last": TorchRunner(copy.deepcopy(model), channels_last=True),
        "onnxruntime fp32": OnnxRunner(fp32),
    }
    if not args.no_int8:
        from seglite.inference.quantize import quantize_onnx

        int8 = quantize_onnx(fp32, folder / "model.int8.onnx", calibration_images(args, folder))
        found["onnxruntime int8"] = OnnxRunner(int8)
    return found


def measure(runners: dict, images: torch.Tensor, warmup: int, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in runners}
    for round_index in range(warmup + rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            run(images)
            elapsed = time.perf_counter() - start
            if round_index >= warmup:
                times[name].append(elapsed)
    return times


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)  # OnnxRunner follows torch's setting
    model = build(args).eval()
    images = torch.randn(1, 3, args.height, args.width)
    with tempfile.TemporaryDirectory() as folder:
        found = runners(args, model, Path(folder))
        times = measure(found, images, args.warmup, args.rounds)
    import onnxruntime

    name = args.checkpoint or args.preset
    print(f"{name}, 1x3x{args.height}x{args.width}, {args.threads} threads, median of {args.rounds} rounds after {args.warmup} warm-up")
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {platform.processor() or platform.machine()}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    base = statistics.median(times["torch eager"])
    width = max(len(key) for key in times)
    print(f"{'backend':<{width}}  median ms    min ms  vs eager")
    for key, values in times.items():
        median = statistics.median(values)
        print(f"{key:<{width}}  {1000 * median:9.1f}  {1000 * min(values):8.1f}  {base / median:7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
