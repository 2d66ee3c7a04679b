"""Parameters, MACs and memory access cost of every backbone and preset (``--help``; ``seglite.apps.complexity``)."""

import sys

from seglite.apps.complexity import main

if __name__ == "__main__":
    sys.exit(main())
