"""seglite models: backbones, heads and segmentation models (plain ``nn.Module``s)."""

from .backbones import Backbone, FeatureInfo
from .factory import build_backbone, build_classifier
from .weights import load_torchvision_weights

__all__ = ["Backbone", "FeatureInfo", "build_backbone", "build_classifier", "load_torchvision_weights"]
