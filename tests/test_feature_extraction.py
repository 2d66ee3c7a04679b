"""Feature extraction on demand: a backbone computes and keeps only the features its heads read."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from seglite.models import build_model, build_preset
from seglite.models.backbones.base import FEATURE_NAMES
from seglite.models.factory import BACKBONES, build_backbone

SMALL_WIDTH = {"shufflenet_v2": 0.5, "shufflenet_v1": 0.5}


def flops(module: torch.nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops()


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_a_backbone_returns_what_it_is_asked_for_as_a_full_run_gives_it(name: str) -> None:
    backbone = build_backbone(name, width_mult=SMALL_WIDTH.get(name, 0.25), output_stride=16).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        everything = backbone(x)
    assert set(everything) == {info.name for info in backbone.feature_info}  # the default: every feature
    full_cost = flops(backbone, x)
    taps = [info.name for info in backbone.feature_info if "_" in info.name]
    for names in (["stem"], ["layer2"], ["layer4", "layer2"], ["layer3", *taps[:2]], ["layer4"]):
        backbone.set_out_features(names)
        with torch.no_grad():
            features = backbone(x)
        assert set(features) == set(names)
        for feature in names:
            assert torch.equal(features[feature], everything[feature]), feature
        if "layer4" not in names:  # the stages after the deepest feature asked for are not run
            assert flops(backbone, x) < full_cost
    backbone.set_out_features()
    assert set(backbone(x)) == set(everything)


def test_unknown_features_are_refused_with_the_available_ones() -> None:
    backbone = build_backbone("mobilenet_v3_small", width_mult=0.5)
    with pytest.raises(ValueError, match=r"unknown features \['layer5'\].*available: \['stem'"):
        backbone.set_out_features(["layer4", "layer5"])
    with pytest.raises(ValueError, match="none asked for"):
        backbone.set_out_features([])


def test_a_segmentation_model_asks_its_backbone_for_its_heads_features() -> None:
    model = build_preset("lraspp_mobilenet_v3_large", num_classes=19)
    assert set(model.backbone.out_features) == {"layer4", "layer2_depthwise"}
    with torch.no_grad():
        assert set(model.backbone(torch.randn(1, 3, 64, 96))) == {"layer4", "layer2_depthwise"}
    with_aux = build_model("mobilenet_v3_small", "deeplabv3plus", num_classes=4, width_mult=0.5, aux=True)
    assert set(with_aux.backbone.out_features) == {*with_aux.head.in_features, "layer3"}


def test_smp_encoder_asks_for_its_depth_only() -> None:
    pytest.importorskip("segmentation_models_pytorch")
    from seglite.models.smp import SegliteEncoder

    encoder = SegliteEncoder("mobilenet_v3_small", depth=3, backbone_options={"width_mult": 0.5})
    assert encoder.backbone.out_features == list(FEATURE_NAMES[:3])
    assert [feature.shape[1] for feature in encoder(torch.randn(1, 3, 64, 64))] == encoder.out_channels[:4]
