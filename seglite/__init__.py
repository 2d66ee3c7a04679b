"""seglite: semantic segmentation on lightweight backbones.

``import seglite`` imports nothing heavy; the names below load their modules on first use.
The segmentation-models-pytorch encoders (``seglite_<backbone>``) are registered by
``import seglite.models.smp``.
"""

from importlib import import_module

__version__ = "0.3.0"

_EXPORTS = {
    "Predictor": "seglite.inference.predictor",
    "build_backbone": "seglite.models",
    "build_model": "seglite.models",
    "build_preset": "seglite.models",
    "SegliteError": "seglite.errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
