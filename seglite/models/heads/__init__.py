"""Segmentation heads: plain modules reading backbone features by name, returning logits.

Every head exposes ``in_features`` (feature name -> expected channels), ``num_classes`` and,
where it needs one, ``feature_strides`` (feature name -> required stride);
``forward(features)`` returns logits at the head's own resolution.
"""

from .aspp import ASPP, DeepLabV3Head, RASPPHead, scaled_atrous_rates
from .deeplabv3plus import DeepLabV3PlusHead
from .fcn import FCNHead
from .lraspp import ClampedAvgPool2d, LRASPPHead

__all__ = [
    "ASPP",
    "ClampedAvgPool2d",
    "DeepLabV3Head",
    "DeepLabV3PlusHead",
    "FCNHead",
    "LRASPPHead",
    "RASPPHead",
    "scaled_atrous_rates",
]
