"""Inference: the image ``Predictor`` (PyTorch, ONNX Runtime, OpenVINO), export, int8, video.

Submodules are imported on first use (``from seglite.inference import Predictor`` loads only the predictor).
"""

from importlib import import_module

_EXPORTS = {
    "Predictor": "predictor",
    "load_task": "predictor",
    "export_onnx": "export",
    "export_openvino": "export",
    "export_torchscript": "export",
    "export_checkpoint": "export",
    "quantize_onnx": "quantize",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
