"""Report a checkpoint's dead depthwise kernels and never-activated ReLU channels: see ``python tools/inspect_model.py --help``."""

import sys

from seglite.apps.inspect_model import main

if __name__ == "__main__":
    sys.exit(main())
