"""The private members of torch and segmentation-models-pytorch seglite uses, each where no public API does the same.

Everything else in seglite uses public APIs only (``tests/test_private_api.py`` finds any other
import of an underscore module of these libraries, and checks that each member below still exists
and behaves as used, so an upgrade that moves one fails there, loudly, not somewhere deep inside).
Lightning's are in ``seglite.lit.lightning_private``.
"""

from __future__ import annotations

# The base class of dispatch modes: torch documents ``__torch_dispatch__`` modes (the extension
# point FlopCounterMode is built on) but exports the class only from this private module.
# Used by seglite.models.complexity to see every operator with its tensors (bytes moved).
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["TorchDispatchMode", "onnx_exporter_max_opset", "smp_encoder_mixin"]


def onnx_exporter_max_opset() -> int | None:
    """The highest opset torch's TorchScript-based ONNX exporter writes, or ``None`` when torch no longer says.

    torch has no public query for it; ``torch.onnx._constants`` holds it (torch 2.1 to 2.14).
    """
    try:
        from torch.onnx import _constants
    except ImportError:
        return None
    value = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", None) or getattr(_constants, "ONNX_MAX_OPSET", None)
    return value if isinstance(value, int) else None


def smp_encoder_mixin() -> type:
    """smp's ``EncoderMixin``, the base of custom encoders: smp's guide to adding an encoder imports it
    from ``segmentation_models_pytorch.encoders._base``, and the package exports it nowhere else."""
    from segmentation_models_pytorch.encoders._base import EncoderMixin

    return EncoderMixin
