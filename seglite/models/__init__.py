"""seglite models: backbones, heads and segmentation models (plain ``nn.Module``s)."""

from .backbones import Backbone, FeatureInfo
from .factory import PRESETS, Preset, build_backbone, build_classifier, build_model, build_preset
from .heads import ASPP, DeepLabV3Head, DeepLabV3PlusHead, FCNHead, LRASPPHead, RASPPHead
from .segmentor import LRASPP, RASPP, DeepLabV3, DeepLabV3Plus, SegmentationModel
from .weights import load_torchvision_weights

__all__ = [
    "ASPP",
    "LRASPP",
    "PRESETS",
    "RASPP",
    "Backbone",
    "DeepLabV3",
    "DeepLabV3Head",
    "DeepLabV3Plus",
    "DeepLabV3PlusHead",
    "FCNHead",
    "FeatureInfo",
    "LRASPPHead",
    "Preset",
    "RASPPHead",
    "SegmentationModel",
    "build_backbone",
    "build_classifier",
    "build_model",
    "build_preset",
    "load_torchvision_weights",
]
