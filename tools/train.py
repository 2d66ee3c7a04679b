"""Train a seglite model: ``python tools/train.py CONFIG [MORE_CONFIGS...] [--section.key value ...]``.

See ``seglite/apps/train.py``. Example: ``python tools/train.py configs/lraspp_mnv3.yaml configs/demo.yaml``.
"""

import sys

from seglite.apps.train import main

if __name__ == "__main__":
    sys.exit(main())
