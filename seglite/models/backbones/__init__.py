"""Backbone families, one file each."""

from .base import Backbone, FeatureInfo
from .mobilenet_v1 import MobileNetV1, MobileNetV1Classifier
from .mobilenet_v2 import MobileNetV2, MobileNetV2Classifier
from .mobilenet_v3 import MobileNetV3, MobileNetV3Classifier
from .shufflenet_v1 import ShuffleNetV1, ShuffleNetV1Classifier
from .shufflenet_v2 import ShuffleNetV2, ShuffleNetV2Classifier

__all__ = [
    "Backbone",
    "FeatureInfo",
    "MobileNetV1",
    "MobileNetV1Classifier",
    "MobileNetV2",
    "MobileNetV2Classifier",
    "MobileNetV3",
    "MobileNetV3Classifier",
    "ShuffleNetV1",
    "ShuffleNetV1Classifier",
    "ShuffleNetV2",
    "ShuffleNetV2Classifier",
]
