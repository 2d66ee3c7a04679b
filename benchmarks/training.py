"""Training throughput of the Lightning system against a bare PyTorch loop on the same model and batch.

Both run the same ``SegmentationTask`` pieces (model, loss, optimiser groups, poly schedule) on the
same in-memory batches, alternately in one process, so Lightning's own overhead is what differs.
The median step time after warm-up is reported, with images/s and the wall time a whole schedule
(--schedule-steps, default 160k) would take at that speed (compute only: data loading excluded).

    python benchmarks/training.py --batch-size 8 --crop 256 256 --steps 12 --repeats 3
    python benchmarks/training.py --channels-last --compile
    python benchmarks/training.py --paper-recipe --device cuda       # batch 16, 768x768, bf16

--paper-recipe is the MobileNetV3 paper's segmentation setting as TF DeepLab trains it: batch 16
of 769x769 crops (768 here: a multiple of the output stride), bf16 mixed precision, channels-last.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python benchmarks/training.py: this checkout's packages

from seglite.apps import arguments

PAPER_BATCH, PAPER_CROP = 16, (768, 768)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    head, _, tail = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(prog="benchmarks/training.py", description=head, epilog=tail,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--preset", default="lraspp_mobilenet_v3_large")
    parser.add_argument("--batch-size", type=arguments.positive_int, help="default: 8 (--paper-recipe: 16)")
    parser.add_argument("--crop", type=arguments.at_least(32), nargs=2, metavar=("H", "W"),
                        help="default: 256 256 (--paper-recipe: 768 768)")
    parser.add_argument("--steps", type=arguments.at_least(3, " (2 warm-up steps and one timed)"), default=12,
                        help="steps per run; the first 2 are warm-up (default: 12)")
    parser.add_argument("--repeats", type=arguments.positive_int, default=3, help="runs of each loop, alternating (default: 3)")
    parser.add_argument("--threads", type=arguments.positive_int, help="intra-op threads (default: PyTorch's)")
    parser.add_argument("--device", type=arguments.device, default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--precision", choices=("fp32", "bf16-mixed"),
                        help="default: fp32 (--paper-recipe: bf16-mixed)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory format in both loops")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model's training forward in both loops")
    parser.add_argument("--loops", nargs="+", choices=("bare", "lightning"), default=["bare", "lightning"])
    parser.add_argument("--paper-recipe", action="store_true",
                        help="batch 16, 768x768 crops, bf16-mixed, channels-last (explicit flags still win)")
    parser.add_argument("--schedule-steps", type=arguments.positive_int, default=160_000,
                        help="steps of the schedule whose wall time is estimated (default: 160000)")
    args = parser.parse_args(argv)
    recipe = args.paper_recipe
    args.batch_size = args.batch_size or (PAPER_BATCH if recipe else 8)
    args.crop = tuple(args.crop or (PAPER_CROP if recipe else (256, 256)))
    args.precision = args.precision or ("bf16-mixed" if recipe else "fp32")
    args.channels_last = args.channels_last or recipe
    return args


def check_device(device: str, precision: str) -> str | None:
    """Why ``device`` cannot train at ``precision`` here (``None``: it can)."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        return "--device cuda: no CUDA device visible to PyTorch"
    if precision == "bf16-mixed":
        from benchmarks.engines import bf16_unavailable

        reason = bf16_unavailable(device)
        if reason:
            return f"--precision bf16-mixed: {reason}; pass --precision fp32"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = check_device(args.device, args.precision)
    if problem:
        print(f"benchmarks/training.py: error: {problem}", file=sys.stderr)
        return 2
    from benchmarks.training_loops import run

    results = run(args)
    print(report(args, results))
    return 0


def report(args: argparse.Namespace, results: dict[str, list[float]]) -> str:
    """The step times as a small table, with images/s and the estimated schedule wall time."""
    from benchmarks.report import markdown_table

    options = [args.precision] + ["channels-last"] * args.channels_last + ["compiled"] * args.compile
    counts = {len(times) for times in results.values()}
    lines = [
        f"\n{args.preset}, {args.device}, batch {args.batch_size}, crop {args.crop[0]}x{args.crop[1]}, "
        f"{', '.join(options)}, {args.threads or 'default'} threads; median of {'/'.join(map(str, counts))} "
        "steps after warm-up",
    ]
    medians, rows = {}, []
    for loop, times in results.items():
        median = medians[loop] = statistics.median(times)
        rows.append([loop, f"{1000 * median:.1f}", f"{args.batch_size / median:.2f}", f"{median * args.schedule_steps / 3600:.1f}"])
    lines.append(markdown_table(["loop", "ms/step", "images/s", f"{args.schedule_steps} steps (h)"], rows))
    if len(medians) == 2:
        overhead = 100 * (medians["lightning"] / medians["bare"] - 1)
        lines.append(f"Lightning overhead: {overhead:+.1f}%")
    lines.append("Hours: the whole schedule at the median step time, compute only (data loading excluded).")
    return "\n".join(lines)



if __name__ == "__main__":
    sys.exit(main())
