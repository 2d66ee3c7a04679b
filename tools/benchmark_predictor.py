"""Latency of Predictor.predict on every backend against torchvision's eager LR-ASPP: see seglite/apps/benchmark_predictor.py."""

import sys

from seglite.apps.benchmark_predictor import main

if __name__ == "__main__":
    sys.exit(main())
