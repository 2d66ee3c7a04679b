"""Segmentation models on the real backbones: every head x backbone x output stride, presets, torchvision."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torchvision.models.segmentation import lraspp_mobilenet_v3_large as torchvision_lraspp

from seglite.models import PRESETS, build_model, build_preset, load_torchvision_weights
from seglite.models.factory import BACKBONES, HEADS

# Narrow backbones keep the suite fast; channel arithmetic is exercised at full width by the presets.
SMALL_WIDTH = {"shufflenet_v2": 0.5, "shufflenet_v1": 0.5}
SIZES = ((64, 64), (97, 131))


@pytest.mark.parametrize("output_stride", (8, 16, 32))
@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_head_on_every_backbone(backbone: str, head: str, output_stride: int) -> None:
    width = SMALL_WIDTH.get(backbone, 0.25)
    model = build_model(backbone, head, num_classes=3, output_stride=output_stride, width_mult=width).eval()
    with torch.no_grad():
        for size in SIZES:
            logits = model(torch.randn(1, 3, *size))
            assert logits.shape == (1, 3, *size)
            assert torch.isfinite(logits).all()


def test_training_mode_gives_aux_logits_on_a_real_backbone() -> None:
    model = build_model("mobilenet_v3_small", "deeplabv3plus", num_classes=4, width_mult=0.5, aux=True).train()
    logits, aux_logits = model.forward_with_aux(torch.randn(2, 3, 97, 131))
    assert logits.shape == aux_logits.shape == (2, 4, 97, 131)
    assert model.aux_head.feature == "layer3"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets(name: str) -> None:
    model = build_preset(name, num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 96)).shape == (1, 5, 64, 96)


def test_lraspp_presets_follow_the_paper() -> None:
    model = build_preset("lraspp_mobilenet_v3_large")
    assert model.backbone.output_stride == 16
    assert model.head.in_features == {"layer4": 480, "layer2": 40}  # reduced tail: 960 / 2
    assert model.head.cbr[0].out_channels == 128
    assert build_preset("lraspp_mobilenet_v3_large", output_stride=32).backbone.output_stride == 32


@pytest.mark.parametrize("size", ((512, 1024), (1024, 2048)))
def test_lraspp_paper_pooling_on_cityscapes_sizes(size: tuple[int, int]) -> None:
    model = build_preset("lraspp_mobilenet_v3_small", pooling="paper").eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, *size))
    assert logits.shape == (1, 19, *size)
    assert torch.isfinite(logits).all()


def test_wrong_names_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown head name 'pspnet'; choose one of \['deeplabv3'"):
        build_model("mobilenet_v2", "pspnet")
    with pytest.raises(ValueError, match=r"unknown backbone name 'resnet50'"):
        build_model("resnet50", "lraspp")
    with pytest.raises(ValueError, match=r"unknown preset name 'fcn_resnet50'"):
        build_preset("fcn_resnet50")
    with pytest.raises(ValueError, match=r"output_stride must be one of \(8, 16, 32\), got 4"):
        build_model("mobilenet_v2", "lraspp", output_stride=4)


def test_wrong_combinations_are_refused() -> None:
    message = r"DeepLabV3PlusHead needs feature 'layer2' at stride 4 but MobileNetV2 gives it at stride 8"
    with pytest.raises(ValueError, match=message):
        build_model("mobilenet_v2", "deeplabv3plus", width_mult=0.25, low_feature="layer2")
    with pytest.raises(ValueError, match=r"LRASPPHead reads feature 'layer5', which MobileNetV3 does not have"):
        build_model("mobilenet_v3_small", "lraspp", width_mult=0.25, high_feature="layer5")


def _torchvision_lraspp_with_random_statistics() -> torch.nn.Module:
    torch.manual_seed(0)
    reference = torchvision_lraspp(weights=None, weights_backbone=None, num_classes=21)
    for module in reference.modules():  # random BN statistics and affines, so a wrong pairing shows
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    return reference.eval()


def _seglite_lraspp_with_weights_of(reference: torch.nn.Module) -> torch.nn.Module:
    # torchvision's configuration: full tail, dilated last stage (output stride 16), global pooling
    model = build_preset("lraspp_mobilenet_v3_large", num_classes=21, reduced_tail=False, output_stride=16)
    return load_torchvision_weights(model, reference.state_dict()).eval()


def test_torchvision_lraspp_weights_give_the_same_head_outputs() -> None:
    reference = _torchvision_lraspp_with_random_statistics()
    model = _seglite_lraspp_with_weights_of(reference)
    x = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        reference_features = reference.backbone(x)
        features = {"layer4": reference_features["high"], "layer2": reference_features["low"]}
        torch.testing.assert_close(model.head(features), reference.classifier(reference_features), atol=1e-5, rtol=1e-4)


def test_torchvision_lraspp_weights_give_the_same_backbone_outputs() -> None:
    """The backbone half of the weight transfer; the head half is the test above.

    Whole-model outputs differ by design: torchvision taps its low-level feature after the
    first stride-8 block (features[4]) and, with dilated=True, also dilates the block that
    gives up its stride; seglite's layer2 is the end of the stride-8 stage and its one
    output-stride plan keeps that block at dilation 1 (TF DeepLab, timm). At output stride 32
    neither applies, so the deepest features must agree exactly.
    """
    reference = _torchvision_lraspp_with_random_statistics()
    model = build_preset("lraspp_mobilenet_v3_large", num_classes=21, reduced_tail=False, output_stride=32)
    load_torchvision_weights(model, reference.state_dict()).eval()
    undilated = torchvision.models.mobilenet_v3_large(weights=None).features
    undilated.load_state_dict(reference.backbone.state_dict())
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        torch.testing.assert_close(model.backbone(x)["layer4"], undilated.eval()(x), atol=1e-5, rtol=1e-4)
