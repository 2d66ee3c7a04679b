"""seglite: semantic segmentation on lightweight backbones."""

from importlib.util import find_spec

__version__ = "0.1.0"

# Register seglite backbones as segmentation-models-pytorch encoders ("seglite_<backbone>").
# Without smp installed seglite still imports; importing seglite.models.smp then says what is missing.
if find_spec("segmentation_models_pytorch") is not None:
    from .models import smp as _smp_encoders  # noqa: F401
