"""Data-loading throughput of one loader worker: PNG decode + train transforms, images/s.

    python benchmarks/data.py                      # synthetic 1024x2048 PNGs in a temp folder
    python benchmarks/data.py --root data/cityscapes --images 20
    python benchmarks/data.py --compare            # also the plain albumentations chain

Runs in this process on one OpenCV and one torch thread, as one DataLoader worker does, and
reports the median over ``--repeats`` timed passes after ``--warmup`` untimed ones, the passes
of every measurement alternating (``benchmarks.harness.interleaved``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python benchmarks/data.py: this checkout's packages

from seglite.apps import arguments


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/data.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--root", help="a Cityscapes root; default: synthetic full-resolution images in a temp folder")
    parser.add_argument("--split", default="train")
    parser.add_argument("--images", type=arguments.positive_int, default=8, help="images per pass (default: 8)")
    parser.add_argument("--size", type=arguments.positive_int, nargs=2, default=(1024, 2048), metavar=("HEIGHT", "WIDTH"),
                        help="synthetic image size (default: 1024 2048)")
    parser.add_argument("--crop", type=arguments.positive_int, nargs=2, default=(768, 768), metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--scale", type=arguments.positive_float, nargs=2, default=(0.5, 2.0), metavar=("LOW", "HIGH"))
    parser.add_argument("--repeats", type=arguments.positive_int, default=5)
    parser.add_argument("--warmup", type=arguments.non_negative_int, default=1)
    parser.add_argument("--compare", action="store_true", help="also time the plain albumentations chain")
    args = parser.parse_args(argv)

    import cv2
    import numpy as np
    import torch

    from benchmarks.harness import interleaved, timed
    from seglite.data import CityscapesDataset, train_transform
    from seglite.data.synthetic import make_demo_dataset

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as temporary:
        root = args.root
        if root is None:
            root = make_demo_dataset(
                temporary, num_train=args.images, num_val=0, num_test=0, size=tuple(args.size), video=False
            )
        dataset = CityscapesDataset(str(root), args.split)
        count = min(args.images, len(dataset))
        image_sizes = [dataset.samples[i][0].stat().st_size for i in range(count)]
        print(f"{count} images from {root} ({args.split}), mean PNG size {np.mean(image_sizes) / 1e6:.2f} MB, "
              f"crop {args.crop[0]}x{args.crop[1]}, scale {args.scale[0]}-{args.scale[1]}, 1 thread")

        def decode(transform=None) -> None:
            dataset.transform = transform
            for i in range(count):
                dataset[i]
            dataset.transform = None

        preloaded = [dataset[i] for i in range(count)]
        calls = {"decode": decode}
        for name, crop_before_resize in (("RandomScaleCrop", True), ("albumentations chain", False)):
            if not crop_before_resize and not args.compare:
                continue
            transform = train_transform(tuple(args.crop), tuple(args.scale), crop_before_resize=crop_before_resize)
            transform.set_random_seed(0)

            def augment(transform=transform) -> None:
                for sample in preloaded:
                    transform(image=sample["image"], mask=sample["mask"])

            calls[f"{name} transforms"] = augment
            calls[f"{name} decode"] = lambda transform=transform: decode(transform)
        timings = interleaved([timed(call) for call in calls.values()], args.warmup, args.repeats)
        rates = {name: count / statistics.median(timing.times) for name, timing in zip(calls, timings)}
        print(f"  decode only (image + label PNG): {rates['decode']:6.1f} images/s")
        for name in ("RandomScaleCrop", "albumentations chain"):
            if f"{name} transforms" in rates:
                augment_rate, total_rate = rates[f"{name} transforms"], rates[f"{name} decode"]
                print(f"  {name}: transforms only {augment_rate:6.1f} images/s ({1000 / augment_rate:.1f} ms/image), "
                      f"decode + transforms {total_rate:6.1f} images/s per worker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
