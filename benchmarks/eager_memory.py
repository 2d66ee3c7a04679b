"""Peak memory of one eager PyTorch forward pass at a large size, seglite's preset beside torchvision's LR-ASPP.

    python benchmarks/eager_memory.py                       # LR-ASPP MobileNetV3-Large at 1024x2048
    python benchmarks/eager_memory.py --preset lraspp_mobilenet_v2 --size 512 1024 --repeats 5

Each measurement runs in a fresh process: the model is built (random weights) and run once at a
small size, the resident memory is read and its high-water mark reset (Linux: ``/proc/self``),
then one ``torch.inference_mode`` forward of a batch of one at ``--size`` runs, and the new
high-water mark's growth over the resident memory before it is what that forward held at its peak:
activations and workspace. Tensors this large are mapped from and returned to the system whole,
so the resident memory follows them. (``ru_maxrss`` would not do: Linux carries it across
``exec`` from the parent that started the process.) The median of ``--repeats`` processes is
printed per model.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python benchmarks/eager_memory.py: this checkout's packages


def measure(model_name: str, height: int, width: int) -> float:
    """The forward pass's peak in MiB, in this process."""
    import torch

    from benchmarks.workers import peak_bytes, reset_peak, resident_bytes

    torch.manual_seed(0)
    if model_name == "torchvision":
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large

        model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=19)
        forward = lambda batch: model(batch)["out"]  # noqa: E731
    else:
        from seglite.models import build_preset

        model = build_preset(model_name)
        forward = model
    model.eval()
    with torch.inference_mode():
        forward(torch.rand(1, 3, 64, 128))  # kernels chosen, one-time buffers made
        batch = torch.rand(1, 3, height, width)
        before = resident_bytes()
        if before is None or not reset_peak():  # the high-water mark starts again from the resident memory now
            raise RuntimeError("this benchmark reads Linux's /proc/self/status and resets /proc/self/clear_refs")
        forward(batch)
        after = peak_bytes()
    return (after - before) / 2**20


def main(argv: list[str] | None = None) -> int:
    from seglite.apps import arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="lraspp_mobilenet_v3_large", help="a seglite preset (seglite.models.build_preset)")
    parser.add_argument("--size", nargs=2, type=arguments.positive_int, default=[1024, 2048], metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--repeats", type=arguments.positive_int, default=3, help="fresh processes per model (median printed)")
    parser.add_argument("--one", metavar="MODEL", help=argparse.SUPPRESS)  # a worker
    args = parser.parse_args(argv)
    height, width = args.size
    if args.one:
        print(f"{measure(args.one, height, width):.1f}")
        return 0
    print(f"peak memory of one eager forward at {height}x{width}, batch 1 (median of {args.repeats} fresh processes)")
    for model_name in (args.preset, "torchvision"):
        command = [sys.executable, __file__, "--one", model_name, "--size", str(height), str(width)]
        values = [float(subprocess.run(command, check=True, capture_output=True, text=True).stdout) for _ in range(args.repeats)]
        label = f"seglite {args.preset}" if model_name != "torchvision" else "torchvision lraspp_mobilenet_v3_large"
        print(f"  {label}: {statistics.median(values):.1f} MiB (runs: {', '.join(f'{v:.1f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
