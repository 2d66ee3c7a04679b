"""Segment a video, a camera or a folder of frames into an overlay video: see ``python tools/infer_video.py --help``."""

import sys

from seglite.apps.infer_video import main

if __name__ == "__main__":
    sys.exit(main())
