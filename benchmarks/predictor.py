"""Latency of ``Predictor.predict`` (uint8 image in, mask out) on every backend, against torchvision's eager LR-ASPP.

    python benchmarks/predictor.py
    python benchmarks/predictor.py --checkpoint last.ckpt --calibration-root data/demo --eval-root data/demo

The goals of the deployment path, measured side by side in one process: the default
``Predictor.from_checkpoint(ckpt).predict(image)`` against the model call alone of the reference,
``torchvision.models.segmentation.lraspp._lraspp_mobilenetv3(mobilenet_v3_large(dilated=True,
reduced_tail=True), num_classes=19)`` in eager mode (at most 0.15x), the fastest low-precision
path against ONNX Runtime fp32 of the same model (at least 1.5x, with demo val mIoU within 0.5
point of fp32: give --eval-root), and OpenVINO int8 against OpenVINO bf16 where the CPU has bf16
(at least 1.3x, within 1.0 mIoU). The default predict's stages are timed one by one. Every path takes its turn in every round;
medians and minimums after warm-up, the order shuffled every round, with a warning when the
reference's own timings spread more than 20% (a busy machine). Without --checkpoint the LR-ASPP MobileNetV3-Large preset (random
weights) is saved as a training checkpoint in a temporary folder; int8 is calibrated on
--calibration-root, or on synthetic demo images (speed does not depend on calibration quality).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python benchmarks/predictor.py: this checkout's packages

from seglite.apps import arguments

REFERENCE = "torchvision eager, model call (reference)"
ONNX_MODEL_CALL = "onnxruntime fp32, model call"
PRESET = "lraspp_mobilenet_v3_large"
"""The model timed without --checkpoint: the authors' LR-ASPP MobileNetV3-Large (configs/lraspp_mnv3.yaml's)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path,
                        help="a training checkpoint (default: the LR-ASPP MobileNetV3-Large preset, random weights)")
    parser.add_argument("--height", type=arguments.positive_int, default=512)
    parser.add_argument("--width", type=arguments.positive_int, default=1024)
    parser.add_argument("--threads", type=arguments.positive_int, help="threads of every runtime (default: torch's, the physical cores)")
    parser.add_argument("--warmup", type=arguments.non_negative_int, default=3, help="untimed rounds (default 3)")
    parser.add_argument("--rounds", type=arguments.positive_int, default=30, help="timed rounds (default 30)")
    parser.add_argument("--calibration-root", type=Path, help="Cityscapes-layout data set whose train images calibrate int8")
    parser.add_argument("--calibration-count", type=arguments.positive_int, default=32,
                        help="int8 calibration images (default 32)")
    parser.add_argument("--int8-scope", nargs="+", default=["all"], choices=("all", "no_depthwise", "backbone"),
                        help="what int8 quantises; several: one int8 path each, timed in the same rounds (the per-layer choice)")
    parser.add_argument("--no-int8", action="store_true", help="skip OpenVINO int8")
    parser.add_argument("--no-torch", action="store_true", help="skip the (slow) exact torch predictor row")
    parser.add_argument("--eval-root", type=Path, help="Cityscapes-layout data set: val mIoU of every predictor against torch fp32")
    parser.add_argument("--eval-limit", type=arguments.positive_int, help="evaluate on at most this many val images")
    parser.add_argument("--phone-model", type=Path, action="append", default=[], metavar="MODEL",
                        help="also time (and with --eval-root evaluate) an exported ExecuTorch .pte or LiteRT .tflite "
                             "of the checkpoint; repeatable")
    parser.add_argument("--profile", type=arguments.non_negative_int, default=0, metavar="N",
                        help="print the N slowest layers of each OpenVINO path")
    return parser.parse_args(argv)


def preset_config(num_classes: int = 19) -> dict:
    """The ``class_path`` config of the :data:`PRESET` (what a training checkpoint of ``configs/lraspp_mnv3.yaml``
    records): the preset by name, ``seglite.models.Preset``."""
    return {"class_path": "seglite.models.Preset", "init_args": {"name": PRESET, "num_classes": num_classes}}


def preset_checkpoint(folder: Path) -> Path:
    """The :data:`PRESET` as a training checkpoint (what from_checkpoint reads), random weights."""
    import torch

    from seglite.data import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
    from seglite.models import build_preset

    torch.manual_seed(0)
    model = build_preset(PRESET, num_classes=len(CITYSCAPES_CLASSES))
    path = folder / f"{PRESET}.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{key}": value for key, value in model.state_dict().items()},
            "hyper_parameters": {"model": preset_config(len(CITYSCAPES_CLASSES)), "class_names": list(CITYSCAPES_CLASSES),
                                 "palette": CITYSCAPES_PALETTE.tolist()},
        },
        path,
    )  # fmt: skip
    return path


def benchmark_image(args: argparse.Namespace):
    """(the timed RGB image, where it comes from): the first val image of --eval-root (else
    --calibration-root) resized to the benchmark size, else uniform noise.

    The post-processing costs more where the mask has more class boundaries (it upsamples
    logits exactly only there, ``seglite.inference.postprocess``): a real scene times the
    deployed case, noise (a boundary at nearly every pixel) the worst one.
    """
    import cv2
    import numpy as np

    for root in (args.eval_root, args.calibration_root):
        if root is not None:
            from seglite.inference.accuracy import dataset_images

            images = dataset_images(root, "val", 1)
            if images:
                image = cv2.resize(images[0], (args.width, args.height), interpolation=cv2.INTER_AREA)
                return np.ascontiguousarray(image), f"the first val image of {root}, resized"
    noise = np.random.default_rng(0).integers(0, 256, size=(args.height, args.width, 3), dtype=np.uint8)
    return noise, "uniform noise: the post-processing's worst case"


def calibration_images(args: argparse.Namespace, folder: Path) -> list:
    from seglite.inference.accuracy import dataset_images

    root = args.calibration_root
    if root is None:
        from seglite.data.synthetic import make_demo_dataset

        root = make_demo_dataset(folder / "demo", num_train=8, num_val=0, num_test=0, size=(args.height, args.width), video=False)
    return dataset_images(root, "train", args.calibration_count)


def build(args: argparse.Namespace, checkpoint: Path, folder: Path) -> tuple[dict, dict]:
    """(predictors, model calls on a normalised float32 batch): name -> predictor or callable."""
    import torch

    from benchmarks.engines import logits_model_engine, onnx_model_bytes, torchvision_reference
    from seglite.inference import openvino
    from seglite.inference.predictor import Predictor, load_task

    predictors = {"default": Predictor.from_checkpoint(checkpoint, cache_dir=folder / "cache")}
    if not args.no_torch:
        predictors["torch"] = Predictor.from_checkpoint(checkpoint, backend="torch")
    predictors["onnxruntime"] = Predictor.from_checkpoint(checkpoint, backend="onnxruntime", cache_dir=folder / "cache")
    if openvino.available():
        for precision in ("fp32", "bf16") if openvino.cpu_has_bf16() else ("fp32",):
            predictors[f"openvino {precision}"] = Predictor.from_checkpoint(
                checkpoint, backend="openvino", precision=precision, cache_dir=folder / "cache"
            )
        if not args.no_int8:
            images = calibration_images(args, folder)
            for scope in dict.fromkeys(args.int8_scope):
                predictors[f"openvino int8 ({scope})"] = Predictor.from_checkpoint(
                    checkpoint, backend="openvino", precision="int8", calibration_images=images, int8_scope=scope,
                    cache_dir=folder / "cache",
                )
    for path in args.phone_model:  # fixed-size files: images of another size are resized to theirs
        predictors[path.name] = Predictor.from_phone_file(path, num_threads=args.threads)
    reference = torchvision_reference().eval()
    onnx = logits_model_engine(onnx_model_bytes(load_task(checkpoint).model, (args.height, args.width)))

    def reference_call(batch: torch.Tensor) -> None:
        with torch.inference_mode():
            reference(batch)

    return predictors, {REFERENCE: reference_call, ONNX_MODEL_CALL: lambda batch: onnx.graph_output(batch.numpy())}


def measure(calls: dict, warmup: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each of ``calls`` (name -> callable), all taking their turn in every round
    (``benchmarks.harness.interleaved``)."""
    from benchmarks.harness import interleaved, timed

    timings = interleaved([timed(call) for call in calls.values()], warmup, rounds)
    return {name: timing.times for name, timing in zip(calls, timings)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import os
    import platform
    import statistics
    import tempfile

    import numpy as np
    import torch

    from benchmarks.harness import noisy_reference_warning, timing_stats
    from benchmarks.report import markdown_table
    from seglite.errors import SegliteError
    from seglite.inference import openvino
    from seglite.inference.engine import default_num_threads

    if args.threads is not None:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    threads = default_num_threads()
    torch.set_num_threads(threads)
    image, image_source = benchmark_image(args)
    batch = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 3, args.height, args.width), dtype=np.float32))
    try:
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = args.checkpoint or preset_checkpoint(Path(folder))
            predictors, model_calls = build(args, checkpoint, Path(folder))
            calls = {name: (lambda call=call: call(batch)) for name, call in model_calls.items()}
            calls.update({f"Predictor {name}": (lambda p=p: p.predict(image)) for name, p in predictors.items()})
            times = measure(calls, args.warmup, args.rounds)
            evaluation = evaluate(args, predictors) if args.eval_root else None
            stages = stage_profile(predictors["default"], image, args.warmup, args.rounds)
            if args.profile:
                profile(predictors, image, args.profile)
    except SegliteError as error:
        print(f"benchmarks/predictor.py: error: {error}", file=sys.stderr)
        return 2
    import onnxruntime

    versions = f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}"
    if openvino.available():
        import openvino as ov

        versions += f", openvino {ov.__version__.split('-')[0]}"
    print(f"{args.checkpoint or f'{PRESET} preset (random weights)'}, {args.height}x{args.width} uint8 image "
          f"({image_source}), batch 1, "
          f"{threads} threads; median of {args.rounds} rounds after {args.warmup} warm-up, all paths alternating")
    forced = f" ({openvino.PRECISION_ENVIRONMENT}={openvino.forced_precision()})" if openvino.forced_precision() else ""
    print(f"{versions}; {platform.machine()}, torch CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"bf16 {'yes' if openvino.available() and openvino.cpu_has_bf16() else 'no'}{forced}")
    reference = statistics.median(times[REFERENCE])
    onnx = statistics.median(times[ONNX_MODEL_CALL])
    rows = []
    for name, values in times.items():
        median, fastest, spread = timing_stats(values)
        rows.append([name, f"{median:.1f}", f"{fastest:.1f}", f"{spread:.0f}", f"{median / 1000 / reference:.3f}x",
                     f"{onnx / median * 1000:.2f}x"])  # fmt: skip
    print("\n" + markdown_table(["path", "median ms", "min ms", "IQR %", "vs reference", "ORT fp32 / this"], rows))
    warning = noisy_reference_warning(REFERENCE, times[REFERENCE])
    if warning:
        print(warning)
    for name, predictor in predictors.items():
        print(f"  Predictor {name}: {predictor.description}")
    print_stages(stages, predictors["default"].description)
    default = statistics.median(times["Predictor default"])
    fastest_ratio = min(times["Predictor default"]) / min(times[REFERENCE])
    print(f"\ngoal 1: default predict / reference model call = {default / reference:.3f} "
          f"(minimums: {fastest_ratio:.3f}; goal <= 0.15): {'met' if default / reference <= 0.15 else 'MISSED'}")
    low = {name: statistics.median(values) for name, values in times.items() if "int8" in name or "bf16" in name}
    if low:
        name, fastest = min(low.items(), key=lambda item: item[1])
        speedup = onnx / fastest
        change = ""
        if evaluation is not None:
            change = f", val mIoU change {evaluation[name.removeprefix('Predictor ')]:+.2f}"
        print(f"goal 2: ONNX Runtime fp32 model call / {name} = {speedup:.3f}x (goal >= 1.5x){change}: "
              f"{'met' if speedup >= 1.5 else 'MISSED'} on speed")
    else:
        print("goal 2: no low-precision path on this machine")
    int8_paths = {name: statistics.median(values) for name, values in times.items() if "int8" in name}
    int8 = min(int8_paths, key=int8_paths.__getitem__) if int8_paths else None  # the fastest per-layer choice
    if int8 is not None and "Predictor openvino bf16" in times:
        speedup = statistics.median(times["Predictor openvino bf16"]) / statistics.median(times[int8])
        change = f", val mIoU change {evaluation[int8.removeprefix('Predictor ')]:+.2f} (goal within 1.0)" if evaluation else ""
        print(f"goal 3: {int8} against OpenVINO bf16 = {speedup:.2f}x faster (goal >= 1.3x){change}: "
              f"{'met' if speedup >= 1.3 else 'MISSED'} on speed")
    if evaluation is not None:
        print(f"\nval mIoU change against torch fp32 ({args.eval_root}):")
        for name, change in evaluation.items():
            print(f"  {name}: {change:+.2f}")
    return 0


def evaluate(args: argparse.Namespace, predictors: dict) -> dict[str, float]:
    """Val mIoU change (points) of each predictor against the exact torch fp32 one."""
    from seglite.inference.accuracy import evaluate_predictors
    from seglite.inference.predictor import Predictor

    candidates = {name: p for name, p in predictors.items() if name != "torch"}
    reference = predictors.get("torch") or Predictor.from_checkpoint(args.checkpoint, backend="torch")
    evaluations = evaluate_predictors({"torch": reference, **candidates}, args.eval_root, "val", args.eval_limit)
    base = evaluations[0].scores.miou
    for evaluation in evaluations:
        print(f"  {evaluation.name}: val mIoU {100 * evaluation.scores.miou:.2f}")
    return {evaluation.name: 100 * (evaluation.scores.miou - base) for evaluation in evaluations[1:]}


POST_PROCESSING = "post-processing: exact upsampled argmax (NumPy)"
NETWORK = "  of which the graph's layers (OpenVINO counters)"


def stage_profile(predictor, image, warmup: int, rounds: int) -> dict[str, float]:
    """Median seconds of every stage of ``predictor.predict(image)``, each timed alone, interleaved.

    Stages: the input check and batching; the runtime's graph (uint8 in, normalisation, the network,
    coarse logits or masks out), with the sum of its layers where the runtime counts them (the rest
    is the runtime's own overhead: input and output copies, scheduling); the post-processing that
    turns coarse logits into masks; and ``predict`` end to end, for the sum.
    """
    import statistics

    import numpy as np

    from seglite.checks import check_image

    engine = predictor.engine
    if not hasattr(engine, "graph_output"):
        return {}
    batch = np.ascontiguousarray(check_image(image))[None]
    output = np.array(engine.graph_output(batch))
    calls = {
        "input check and batch": lambda: np.ascontiguousarray(check_image(image))[None],
        "runtime graph: uint8 in, normalisation, network, coarse logits out": lambda: engine.graph_output(batch),
    }
    if engine.coarse is not None:
        calls[POST_PROCESSING] = lambda: engine.coarse(output, image.shape[:2])
    else:
        calls["output copy (masks come out of the graph)"] = lambda: output.copy()
    calls["predict, end to end"] = lambda: predictor.predict(image)
    stages = {name: statistics.median(values) for name, values in measure(calls, warmup, rounds).items()}
    if hasattr(engine, "profile"):
        layers = engine.profile(batch, rounds=max(3, rounds // 4))
        stages[NETWORK] = sum(row["milliseconds"] for row in layers) / 1000
    return stages


def print_stages(stages: dict[str, float], description: str) -> None:
    """The stage table of :func:`stage_profile`, with the post-processing's share of the network."""
    if not stages:
        return
    width = max(len(name) for name in stages)
    print(f"\nstages of the default predict ({description}), medians:")
    for name, seconds in stages.items():
        print(f"  {name:<{width}}  {1000 * seconds:7.2f} ms")
    network = stages.get(NETWORK)
    if network and POST_PROCESSING in stages:
        share = stages[POST_PROCESSING] / network
        print(f"  post-processing / network layers = {100 * share:.1f}% (goal <= 15%): {'met' if share <= 0.15 else 'MISSED'}")


def profile(predictors: dict, image, count: int) -> None:
    """The ``count`` slowest layers of every OpenVINO path, summed by operation and kernel too."""
    from collections import defaultdict

    for name, predictor in predictors.items():
        if not hasattr(predictor.engine, "profile"):
            continue
        rows = predictor.engine.profile(image[None])
        total = sum(row["milliseconds"] for row in rows)
        print(f"\nprofile of {name} ({predictor.description}): {total:.1f} ms in {len(rows)} layers")
        by_kind: dict[tuple[str, str], float] = defaultdict(float)
        for row in rows:
            by_kind[(row["type"], row["exec_type"])] += row["milliseconds"]
        for (kind, kernel), milliseconds in sorted(by_kind.items(), key=lambda item: -item[1])[:count]:
            print(f"  {kind:<22} {kernel:<28} {milliseconds:7.2f} ms  {100 * milliseconds / total:5.1f}%")
        for row in rows[:count]:
            print(f"    {row['milliseconds']:7.2f} ms  {row['type']:<18} {row['exec_type']:<24} {row['name'][:70]}")


if __name__ == "__main__":
    sys.exit(main())
