"""Export a seglite checkpoint to ONNX, TorchScript or OpenVINO: see seglite/apps/export.py (``--help``)."""

import sys

from seglite.apps.export import main

if __name__ == "__main__":
    sys.exit(main())
