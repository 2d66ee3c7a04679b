"""seglite: semantic segmentation on lightweight backbones."""

__version__ = "0.1.0"

# Register seglite backbones as segmentation-models-pytorch encoders ("seglite_<backbone>").
# Without a working smp seglite still imports; importing seglite.models.smp then says what is missing.
try:
    from .models import smp as _smp_encoders  # noqa: F401
except ImportError as error:
    if error.name != "segmentation_models_pytorch":
        raise


def __getattr__(name: str):
    # ``seglite.Predictor`` without importing ONNX Runtime and Lightning with the package
    if name == "Predictor":
        from .inference.predictor import Predictor

        return Predictor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
