"""Peak memory of ``Predictor.predict`` on one large photo, in tiles (the default) and in one whole pass.

    python benchmarks/large_image_memory.py --checkpoint outputs/demo/version_0/checkpoints/last.ckpt
    python benchmarks/large_image_memory.py --checkpoint CKPT --backends openvino --size 6000 8000

Each measurement runs in a fresh process and reports that process's peak resident memory in MiB
(Linux ``VmHWM``, read through ``benchmarks.workers``: the imported libraries included) and the
time of the one ``predict`` call. The image is smooth noise (a photo's content does not change the
memory).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python benchmarks/large_image_memory.py: this checkout's packages


def measure(checkpoint: str, backend: str, mode: str, size: tuple[int, int], cache: str | None) -> None:
    """One measurement, in this process: prints ``backend mode seconds peak_mib``."""
    import time

    import cv2
    import numpy as np

    from benchmarks.workers import peak_bytes
    from seglite.inference import tiling
    from seglite.inference.predictor import Predictor

    if mode == "whole":
        tiling.MAX_PIXELS = 10**12  # one pass, as seglite 0.2 ran every image
    predictor = Predictor.from_checkpoint(checkpoint, backend=backend, cache_dir=cache or "default")
    height, width = size
    coarse = np.random.default_rng(0).integers(0, 256, (max(height // 100, 2), max(width // 100, 2), 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    start = time.perf_counter()
    predictor.predict(image)
    seconds = time.perf_counter() - start
    print(f"{backend} {mode} {seconds:.1f} {peak_bytes() / 2**20:.0f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    from seglite.apps import arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--backends", nargs="+", default=["openvino", "onnxruntime", "torch"])
    parser.add_argument("--size", nargs=2, type=arguments.positive_int, default=[6000, 8000], metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--cache-dir", default=None, help="conversion cache (default: seglite's)")
    parser.add_argument("--one", nargs=2, metavar=("BACKEND", "MODE"), help=argparse.SUPPRESS)  # a worker
    args = parser.parse_args(argv)
    size = (args.size[0], args.size[1])
    if args.one:
        measure(args.checkpoint, args.one[0], args.one[1], size, args.cache_dir)
        return 0
    print(f"{size[0]}x{size[1]} image, {args.checkpoint}; peak resident memory of a fresh process")
    print(f"{'backend':<12} {'mode':<6} {'seconds':>8} {'peak MiB':>8}")
    for backend in args.backends:
        for mode in ("tiled", "whole"):
            command = [sys.executable, __file__, "--checkpoint", args.checkpoint, "--size", *map(str, size), "--one", backend, mode]
            if args.cache_dir:
                command += ["--cache-dir", args.cache_dir]
            result = subprocess.run(command, capture_output=True, text=True)
            lines = [line for line in result.stdout.splitlines() if line.startswith(f"{backend} {mode} ")]
            if result.returncode or not lines:
                print(f"{backend:<12} {mode:<6} failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
                continue
            _, _, seconds, peak = lines[-1].split()
            print(f"{backend:<12} {mode:<6} {float(seconds):8.1f} {float(peak):8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
