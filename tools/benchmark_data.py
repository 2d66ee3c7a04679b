"""Data-loading throughput of one loader worker: ``python tools/benchmark_data.py [--compare] [--root PATH]``.

See ``seglite/apps/benchmark_data.py`` (or ``--help``).
"""

import sys

from seglite.apps.benchmark_data import main

if __name__ == "__main__":
    sys.exit(main())
