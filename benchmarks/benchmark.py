"""Measured speed of every model on every backend of this machine, beside its MACs and memory access cost.

    python benchmarks/benchmark.py --quick        # two LR-ASPP models, 512x1024, batch 1: minutes
    python benchmarks/benchmark.py                # every preset at 512x1024 and 1024x2048, batch 1 and 4: 36
                                                  # groups, most of an hour on 2 cores (--group-seconds caps each)
    python benchmarks/benchmark.py --presets lraspp_mobilenet_v3_large --sizes 512x1024 --batch-sizes 1 \\
        --backends eager channels-last compile onnxruntime --sections table profile
    python benchmarks/benchmark.py --device cuda --sizes 1024x2048 --backends eager channels-last bf16 compile
    python benchmarks/benchmark.py --list-backends

Sections (--sections):
  table    every preset x size x batch on every backend, with parameters, GMACs, memory access
           cost (bytes read and written per image, ShuffleNetV2's MAC, counted from the executed
           operators), latency (median, min, IQR after warm-up), images/s, peak memory, and the
           latency ratio to torchvision's LR-ASPP MobileNetV3-Large (paper settings, eager), which
           is timed in the same rounds as every preset.
  sweep    the width multiplier alpha and the input resolution rho (MobileNet paper, section 3.3):
           MACs fall as alpha^2 and rho^2; how far does latency follow?
  profile  one model's time per operator category (depthwise conv, 1x1 conv, squeeze-excite,
           activations, resize, ...) beside its share of MACs and of memory access cost.

Every backend runs the product's engine (seglite.inference: uint8 images in, logits at their size
out, as the Predictor runs them), each in its own worker process (its peak memory is its own); the
engines of a group (one preset at one size and batch on every backend, plus the reference) take
turns within every round, so drifting load hits them alike. Outputs: the tables on stdout and, in --output-dir,
benchmark.csv, sweep.csv, profile.csv, benchmark.json and latency_vs_gmacs.png.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python benchmarks/benchmark.py: this checkout's packages

from seglite.apps.arguments import checked, device, fraction, non_negative_int, positive_float, positive_int
from seglite.apps.arguments import size as size_argument
from seglite.errors import SegliteError

DEFAULT_SIZES = ((512, 1024), (1024, 2048))
DEFAULT_BATCH_SIZES = (1, 4)
DEFAULT_ALPHAS = (1.0, 0.75, 0.5, 0.35)
DEFAULT_RHOS = (1.0, 0.75, 0.5)
SECTIONS = ("table", "sweep", "profile")
QUICK_PRESETS = ("lraspp_mobilenet_v3_large", "lraspp_mobilenet_v3_small")
OUTPUT_FILES = {
    "csv": "benchmark.csv",
    "sweep": "sweep.csv",
    "profile": "profile.csv",
    "json": "benchmark.json",
    "plot": "latency_vs_gmacs.png",
}


@dataclass(frozen=True)
class Plan:
    """What a run measures, resolved against this machine (:func:`resolve`)."""

    presets: list[str]
    backends: list[str]
    profile_backends: list[str]
    unavailable: dict[str, str]


def non_negative_float(text: str) -> float:
    return checked(text, float, lambda value: math.isfinite(value) and value >= 0, "a number >= 0")


class BenchmarkError(SegliteError):
    """A benchmark setting cannot be carried out (unknown preset, unavailable backend, ...)."""


def build_parser() -> argparse.ArgumentParser:
    head, _, tail = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(
        prog="benchmarks/benchmark.py", description=head, epilog=tail, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    what = parser.add_argument_group("what to measure")
    what.add_argument("--presets", nargs="+", metavar="PRESET", help="seglite presets (default: all; --quick: two)")
    what.add_argument("--sizes", nargs="+", type=size_argument, metavar="HxW",
                      help="input sizes (default: 512x1024 1024x2048)")
    what.add_argument("--batch-sizes", nargs="+", type=positive_int, metavar="N", help="batch sizes (default: 1 4)")
    what.add_argument("--backends", nargs="+", metavar="NAME",
                      help="backends (default: every default backend available; see --list-backends)")
    what.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    what.add_argument("--threads", type=positive_int, help="intra-op threads of every runtime (default: physical cores)")
    what.add_argument("--num-classes", type=positive_int, default=19, help="classes of every model (default: 19)")
    what.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="default: all three")
    what.add_argument("--quick", action="store_true",
                      help="a few minutes: LR-ASPP MobileNetV3-Large/Small, 512x1024, batch 1, fewer rounds "
                           "and sweep points")
    timing = parser.add_argument_group("timing")
    timing.add_argument("--warmup", type=non_negative_int, help="untimed rounds (default: 2; --quick: 1)")
    timing.add_argument("--rounds", type=positive_int, help="timed rounds at most (default: 7; --quick: 5)")
    timing.add_argument("--min-rounds", type=positive_int, help="timed rounds at least (default: 3, or --rounds if fewer)")
    timing.add_argument("--group-seconds", type=non_negative_float, default=60.0,
                        help="stop a group's timed rounds after this many seconds, once --min-rounds are done "
                             "(default: 60; 0: no limit)")  # fmt: skip
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument("--sweep-preset", default="lraspp_mobilenet_v3_large", help="default: lraspp_mobilenet_v3_large")
    sweep.add_argument("--alphas", nargs="+", type=positive_float, help="width multipliers (default: 1.0 0.75 0.5 0.35)")
    sweep.add_argument("--rhos", nargs="+", type=fraction,
                       help="resolution multipliers of the first size (default: 1.0 0.75 0.5)")
    profile = parser.add_argument_group("profile")
    profile.add_argument("--profile-preset", default="lraspp_mobilenet_v3_large",
                         help="default: lraspp_mobilenet_v3_large")
    profile.add_argument("--profile-backends", nargs="+", metavar="NAME",
                         help="default: every chosen backend that has a profiler")
    profile.add_argument("--profile-runs", type=positive_int, default=5, help="profiled forward passes (default: 5)")
    profile.add_argument("--top", type=non_negative_int, default=10,
                         help="slowest operators listed per backend (default: 10)")
    output = parser.add_argument_group("output")
    output.add_argument("--output-dir", type=Path, default=Path("benchmark"), help="default: ./benchmark")
    output.add_argument("--overwrite", action="store_true", help="replace existing output files")
    output.add_argument("--list-backends", action="store_true",
                        help="list the backends and their availability, then exit")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    quick = args.quick
    args.sizes = args.sizes or ([DEFAULT_SIZES[0]] if quick else list(DEFAULT_SIZES))
    args.batch_sizes = args.batch_sizes or ([1] if quick else list(DEFAULT_BATCH_SIZES))
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 2)
    args.rounds = args.rounds or (5 if quick else 7)
    args.alphas = args.alphas or ([1.0, 0.5] if quick else list(DEFAULT_ALPHAS))
    args.rhos = args.rhos or ([1.0, 0.5] if quick else list(DEFAULT_RHOS))
    args.profile_runs = min(args.profile_runs, 3) if quick else args.profile_runs
    if args.min_rounds is not None and args.min_rounds > args.rounds:
        parser.error(f"--min-rounds {args.min_rounds} is more than --rounds {args.rounds}")
    args.min_rounds = min(3, args.rounds) if args.min_rounds is None else args.min_rounds
    return args


def resolve(args: argparse.Namespace) -> Plan:
    """Check the presets and backends (``BenchmarkError`` naming the bad one) and drop those this machine lacks."""
    from benchmarks.engines import BACKENDS
    from seglite.models import PRESETS

    presets = args.presets or (list(QUICK_PRESETS) if args.quick else list(PRESETS))
    for name in [*presets, args.sweep_preset, args.profile_preset]:
        if name not in PRESETS:
            raise BenchmarkError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    for name in [*(args.backends or []), *(args.profile_backends or [])]:
        if name not in BACKENDS:
            raise BenchmarkError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    unavailable = {name: reason for name, backend in BACKENDS.items() if (reason := backend.unavailable(args.device))}
    if args.device != "cpu" and "eager" in unavailable:
        raise BenchmarkError(f"--device {args.device}: {unavailable['eager']}")
    requested = args.backends or [name for name, backend in BACKENDS.items() if backend.default]
    explicit_missing = [name for name in (args.backends or []) if name in unavailable]
    if explicit_missing:
        reasons = "; ".join(f"{name}: {unavailable[name]}" for name in explicit_missing)
        raise BenchmarkError(f"backend not available on {args.device}: {reasons}")
    backends = [name for name in requested if name not in unavailable]
    profilable = [name for name in backends if BACKENDS[name].profile is not None]
    profile_backends = args.profile_backends or profilable
    for name in profile_backends:
        if BACKENDS[name].profile is None:
            raise BenchmarkError(f"backend {name!r} has no per-operator profile; choose from {', '.join(profilable)}")
        if name in unavailable:
            raise BenchmarkError(f"profile backend not available on {args.device}: {name}: {unavailable[name]}")
    return Plan(presets, backends, list(profile_backends), unavailable)


def list_backends(device: str) -> str:
    from benchmarks.engines import BACKENDS
    from benchmarks.report import markdown_table

    rows = []
    for name, backend in BACKENDS.items():
        reason = backend.unavailable(device)
        rows.append([name, backend.summary, "yes" if backend.default else "opt-in",
                     "yes" if backend.profile else "", reason or "available"])  # fmt: skip
    return markdown_table(["backend", "what", "default", "profile", f"on {device}"], rows)


def output_paths(args: argparse.Namespace) -> dict[str, Path]:
    """The files this run writes, checked (exists, link, folder) before anything slow starts."""
    import importlib.util

    from seglite.files import check_output_file

    wanted = {"json"}
    if "table" in args.sections:
        wanted.add("csv")
        if importlib.util.find_spec("matplotlib") is not None:
            wanted.add("plot")
        else:
            print("benchmarks/benchmark.py: no plot: matplotlib is not installed (pip install 'seglite[bench]')",
                  file=sys.stderr)
    if "sweep" in args.sections:
        wanted.add("sweep")
    if "profile" in args.sections:
        wanted.add("profile")
    return {
        key: check_output_file(args.output_dir / name, overwrite=args.overwrite, what=f"benchmark {key} file")
        for key, name in OUTPUT_FILES.items()
        if key in wanted
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.list_backends:
            print(list_backends(args.device))
            return 0
        from benchmarks.sections import run

        return run(args, resolve(args), output_paths(args))
    except SegliteError as error:
        print(f"benchmarks/benchmark.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
