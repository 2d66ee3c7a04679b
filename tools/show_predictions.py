"""Draw predictions beside the ground truth: see ``python tools/show_predictions.py --help``."""

import sys

from seglite.apps.show_predictions import main

if __name__ == "__main__":
    sys.exit(main())
