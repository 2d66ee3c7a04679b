"""Measured speed of every model on every backend of this machine (``--help``; logic in ``seglite.apps.benchmark``)."""

import sys

from seglite.apps.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
