"""Segment images into mask PNGs and colour overlays: see ``python tools/predict.py --help``."""

import sys

from seglite.apps.predict import main

if __name__ == "__main__":
    sys.exit(main())
