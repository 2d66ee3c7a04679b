"""Segmentation heads: plain modules reading backbone features by name, returning logits.

Every head exposes ``in_features`` (feature name -> expected channels), ``num_classes`` and,
where it needs one, ``feature_strides`` (feature name -> required stride);
``forward(features)`` returns logits at the head's own resolution.
"""

from .aspp import ASPP, DeepLabV3Head, RASPPHead, scaled_atrous_rates
from .deeplabv3plus import DeepLabV3PlusHead
from .fcn import FCNHead
from .lraspp import LRASPPHead, WindowAvgPool2d

__all__ = [
    "ASPP",
    "DeepLabV3Head",
    "DeepLabV3PlusHead",
    "FCNHead",
    "LRASPPHead",
    "RASPPHead",
    "WindowAvgPool2d",
    "scaled_atrous_rates",
]
