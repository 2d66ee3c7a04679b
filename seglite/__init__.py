"""seglite: semantic segmentation on lightweight backbones."""

__version__ = "0.1.0"
