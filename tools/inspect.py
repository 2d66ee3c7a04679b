"""Report a checkpoint's dead depthwise kernels and never-activated ReLU channels: see ``python tools/inspect.py --help``."""

import os
import sys

# This file is named like the standard library's inspect module, which torch imports: take its folder off the path.
sys.path[:] = [entry for entry in sys.path if os.path.realpath(entry or ".") != os.path.dirname(os.path.realpath(__file__))]

from seglite.apps.inspect import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
