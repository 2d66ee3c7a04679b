"""Evaluate a checkpoint: ``python tools/test.py CONFIG [MORE_CONFIGS...] CHECKPOINT [options]``.

See ``seglite/apps/test.py`` (or ``--help``) for the options and examples.
"""

import sys

from seglite.apps.test import main

if __name__ == "__main__":
    sys.exit(main())
