"""Write the synthetic Cityscapes-layout demo set (and a short street video).

    python tools/make_demo_data.py data/demo
    python tools/make_demo_data.py data/demo --train 200 --val 30 --test 10 --size 256 512 --seed 0

The folder must be missing or empty, or one this tool wrote before (it then rewrites it); a
folder holding anything else is refused, so no data of yours is mixed with or replaced by the demo.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from seglite.apps import arguments


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make_demo_data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("root", nargs="?", default="data/demo", help="output folder (default: data/demo)")
    parser.add_argument("--train", type=arguments.non_negative_int, default=200, help="training images (default: 200)")
    parser.add_argument("--val", type=arguments.non_negative_int, default=30, help="validation images (default: 30)")
    parser.add_argument("--test", type=arguments.non_negative_int, default=10, help="unlabelled test images (default: 10)")
    parser.add_argument("--size", type=arguments.positive_int, nargs=2, default=(256, 512), metavar=("HEIGHT", "WIDTH"),
                        help="image size (default: 256 512, a quarter of Cityscapes)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same set")
    parser.add_argument("--no-video", action="store_true", help="skip the demo video")
    args = parser.parse_args(argv)

    from seglite.data.synthetic import make_demo_dataset
    from seglite.errors import SegliteError

    start = time.perf_counter()
    try:
        root = make_demo_dataset(args.root, num_train=args.train, num_val=args.val, num_test=args.test,
                                 size=tuple(args.size), seed=args.seed, video=not args.no_video)
    except (SegliteError, ValueError) as error:
        print(f"make_demo_data: error: {error}", file=sys.stderr)
        return 2
    total = args.train + args.val + args.test
    print(f"wrote {total} images to {root} in {time.perf_counter() - start:.1f} s")
    return 0
