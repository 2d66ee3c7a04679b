"""Print a data set's class pixel counts and frequencies per split: see ``python tools/class_stats.py --help``."""

import sys

from seglite.apps.class_stats import main

if __name__ == "__main__":
    sys.exit(main())
