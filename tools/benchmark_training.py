"""Training throughput, Lightning against a bare PyTorch loop (``--help``; ``seglite.apps.benchmark_training``)."""

import sys

from seglite.apps.benchmark_training import main

if __name__ == "__main__":
    sys.exit(main())
