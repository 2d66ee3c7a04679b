"""Write the synthetic Cityscapes-layout demo set: ``python tools/make_demo_data.py [ROOT] [options]``.

See ``seglite/apps/make_demo_data.py`` (or ``--help``).
"""

import sys

from seglite.apps.make_demo_data import main

if __name__ == "__main__":
    sys.exit(main())
