"""seglite backbones as segmentation-models-pytorch encoders (``seglite_<backbone>``).

Importing this module (``import seglite.models.smp``; ``import seglite`` alone stays light and
does not) registers every backbone of ``BACKBONES`` with smp, e.g.
``smp.DeepLabV3Plus(encoder_name="seglite_mobilenet_v3_large", encoder_weights=None, classes=19)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

try:
    from segmentation_models_pytorch.encoders import encoders as _SMP_ENCODERS
except ImportError as error:  # pragma: no cover - smp is an install requirement
    raise ImportError(
        f"seglite.models.smp needs segmentation-models-pytorch ({error}): pip install segmentation-models-pytorch",
        name="segmentation_models_pytorch",
    ) from error

from .backbones.base import FEATURE_NAMES
from .factory import BACKBONES, build_backbone
from .private_api import smp_encoder_mixin

EncoderMixin = smp_encoder_mixin()

ENCODER_PREFIX = "seglite_"


class SegliteEncoder(nn.Module, EncoderMixin):
    """A seglite backbone behind smp's encoder interface: a list of features from stride 1 to 32.

    smp asks for dilation by constructing the encoder with ``output_stride`` and then calling
    ``make_dilated``; both build the backbone with seglite's own ``output_stride`` plan
    (rebuilding it if needed) instead of smp's stride-to-dilation surgery. A new number of input
    channels also rebuilds the backbone. No pretrained smp weights are offered: load seglite or
    torchvision weights into ``encoder.backbone`` instead.

    Args:
        backbone: a name of ``seglite.models.factory.BACKBONES``.
        depth: number of downsampling stages returned (1-5), as in every smp encoder.
        output_stride: 8, 16 or 32.
        backbone_options: further backbone arguments (``width_mult``, ``reduced_tail``, ...).
    """

    # like every smp encoder: torch.jit.script, torch.export and torch.compile all take it (tested)
    _is_torch_scriptable = True
    _is_torch_exportable = True
    _is_torch_compilable = True

    def __init__(
        self,
        backbone: str,
        depth: int = 5,
        output_stride: int = 32,
        backbone_options: dict[str, Any] | None = None,
    ) -> None:
        nn.Module.__init__(self)
        if depth not in range(1, 6):
            raise ValueError(f"{type(self).__name__}: depth must be in 1..5, got {depth!r}")
        self._backbone_name = backbone
        self._backbone_options = dict(backbone_options or {})
        self._depth = depth
        self._in_channels = self._backbone_options.pop("in_channels", 3)
        self._output_stride = output_stride
        self._build()

    def _build(self) -> None:
        self.backbone = build_backbone(
            self._backbone_name,
            output_stride=self._output_stride,
            in_channels=self._in_channels,
            **self._backbone_options,
        )
        self._out_channels = [self._in_channels] + [self.backbone.feature(name).channels for name in FEATURE_NAMES]
        self._feature_names: list[str] = list(FEATURE_NAMES[: self._depth])
        self.backbone.set_out_features(self._feature_names)  # no taps, no stage deeper than depth

    def set_in_channels(self, in_channels: int, pretrained: bool = True) -> None:
        if in_channels != self._in_channels:
            self._in_channels = in_channels
            self._build()

    def make_dilated(self, output_stride: int) -> None:
        if output_stride != self._output_stride:
            self._output_stride = output_stride
            self._build()

    def get_stages(self) -> dict[int, list[nn.Module]]:
        raise NotImplementedError(f"{type(self).__name__} sets its output stride by rebuilding, see make_dilated")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.backbone(x)
        outputs = [x]
        for name in self._feature_names:
            outputs.append(features[name])
        return outputs


def register_encoder(name: str, backbone: str, **backbone_options: Any) -> None:
    """Make ``smp.<Model>(encoder_name=name, encoder_weights=None)`` use seglite's ``backbone``.

    ``backbone_options`` fix the backbone's other arguments, e.g.
    ``register_encoder("seglite_mobilenet_v3_large_rt", "mobilenet_v3_large", reduced_tail=True)``.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone name {backbone!r}; choose one of {sorted(BACKBONES)}")
    _SMP_ENCODERS[name] = {
        "encoder": SegliteEncoder,
        "pretrained_settings": {},
        "params": {"backbone": backbone, "backbone_options": backbone_options},
    }


for _backbone in BACKBONES:
    register_encoder(ENCODER_PREFIX + _backbone, _backbone)
