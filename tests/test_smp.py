"""seglite backbones as segmentation-models-pytorch encoders (registered by ``import seglite.models.smp``)."""

from __future__ import annotations

import pytest
import segmentation_models_pytorch as smp
import torch

import seglite.models.smp  # noqa: F401  registers the encoders
from seglite.models.factory import BACKBONES
from seglite.models.smp import SegliteEncoder, register_encoder

ENCODERS = [f"seglite_{name}" for name in sorted(BACKBONES)]


# narrow decoders keep the test fast; the encoders are the full-width registered ones
SMP_MODELS = (
    (smp.Unet, {"decoder_channels": (32, 16, 16, 8, 8)}),
    (smp.FPN, {"decoder_pyramid_channels": 32, "decoder_segmentation_channels": 32}),
    (smp.DeepLabV3Plus, {"decoder_channels": 32}),
)


@pytest.mark.parametrize("encoder_name", ENCODERS)
def test_smp_models_on_every_family(encoder_name: str) -> None:
    x = torch.randn(1, 3, 64, 64)
    for model_class, decoder_options in SMP_MODELS:
        model = model_class(encoder_name=encoder_name, encoder_weights=None, classes=3, **decoder_options).eval()
        assert isinstance(model.encoder, SegliteEncoder)
        with torch.no_grad():
            assert model(x).shape == (1, 3, 64, 64), model_class.__name__


def _strides(x: torch.Tensor, features: list[torch.Tensor]) -> list[int]:
    return [x.shape[-1] // feature.shape[-1] for feature in features]


@pytest.mark.parametrize("output_stride", (8, 16, 32))
def test_encoder_strides_channels_and_depth(output_stride: int) -> None:
    # smp's tests/encoders/base.py::test_dilated and test_depth, on one family
    x = torch.randn(1, 3, 64, 64)
    for depth in (3, 5):
        encoder = smp.encoders.get_encoder("seglite_mobilenet_v3_small", depth=depth, output_stride=output_stride)
        encoder.eval()
        with torch.no_grad():
            features = encoder(x)
        nominal = [1, 2, 4, 8, 16, 32][: depth + 1]
        assert _strides(x, features) == [min(stride, output_stride) for stride in nominal]
        assert [feature.shape[1] for feature in features] == list(encoder.out_channels)
        assert encoder.output_stride == min(output_stride, 2**depth)
    # smp asks for dilation through make_dilated: the backbone is rebuilt with seglite's plan
    assert encoder.backbone.output_stride == output_stride


def test_in_channels_and_registration_options() -> None:
    encoder = smp.encoders.get_encoder("seglite_shufflenet_v2", in_channels=1).eval()
    assert encoder.out_channels[0] == 1
    with torch.no_grad():
        assert encoder(torch.randn(1, 1, 32, 32))[-1].shape[1] == encoder.out_channels[-1]
    register_encoder("seglite_test_mobilenet_v3_large_reduced", "mobilenet_v3_large", reduced_tail=True)
    model = smp.DeepLabV3Plus(
        encoder_name="seglite_test_mobilenet_v3_large_reduced", encoder_weights=None, classes=2, decoder_channels=32
    )
    assert isinstance(model.encoder, SegliteEncoder)
    assert model.encoder.out_channels[-1] == 480
    assert model.encoder.backbone.output_stride == 16  # smp's DeepLabV3Plus default


def test_wrong_requests_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown backbone name 'resnet18'"):
        register_encoder("seglite_resnet18", "resnet18")
    with pytest.raises(ValueError, match=r"depth must be in 1\.\.5"):
        smp.encoders.get_encoder("seglite_mobilenet_v2", depth=6)
    with pytest.raises(KeyError, match=r"Wrong pretrained weights `imagenet`"):
        smp.encoders.get_encoder("seglite_mobilenet_v2", weights="imagenet")


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
@pytest.mark.parametrize("encoder_name", ["seglite_mobilenet_v3_small", "seglite_shufflenet_v2"])
def test_encoders_are_scriptable_like_smp_encoders(encoder_name: str) -> None:
    # smp's tests/encoders/base.py::test_torch_script scripts encoders that declare it, models likewise
    encoder = smp.encoders.get_encoder(encoder_name, depth=4, output_stride=16).eval()
    assert encoder._is_torch_scriptable and encoder._is_torch_exportable and encoder._is_torch_compilable
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for found, expected in zip(torch.jit.script(encoder)(x), encoder(x), strict=True):
            torch.testing.assert_close(found, expected, rtol=0, atol=0)
        model = smp.Unet(encoder_name=encoder_name, encoder_weights=None, classes=3, decoder_channels=(32, 16, 16, 8, 8))
        model.eval()
        torch.testing.assert_close(torch.jit.script(model)(x), model(x), rtol=0, atol=0)
