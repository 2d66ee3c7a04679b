"""Heads and SegmentationModel on a tiny fake backbone (independent of the real backbone families)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from seglite.models import (
    LRASPP,
    RASPP,
    DeepLabV3,
    DeepLabV3Plus,
    DeepLabV3PlusHead,
    FCNHead,
    LRASPPHead,
    SegmentationModel,
)
from seglite.models.backbones.base import FEATURE_NAMES, Backbone, FeatureInfo, plan_output_stride
from seglite.models.heads import WindowAvgPool2d, scaled_atrous_rates
from seglite.models.layers import ConvBNAct

MODEL_CLASSES = (LRASPP, RASPP, DeepLabV3, DeepLabV3Plus)
SIZES = ((64, 64), (97, 131))


class TinyBackbone(Backbone):
    """Five 3x3 conv stages of nominal stride 2 following seglite's output-stride plan."""

    def __init__(self, channels: tuple[int, ...] = (8, 12, 16, 20, 24), output_stride: int = 32) -> None:
        super().__init__()
        plan = plan_output_stride([2] * len(channels), output_stride)
        stages, previous = [], 3
        self.feature_info = []
        for name, width, geometry in zip(FEATURE_NAMES, channels, plan):
            stages.append(ConvBNAct(previous, width, 3, stride=geometry.stride, dilation=geometry.dilation))
            self.feature_info.append(FeatureInfo(name, width, geometry.total_stride))
            previous = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = {}
        for info, stage in zip(self.feature_info, self.stages):
            x = stage(x)
            features[info.name] = x
        return features


@pytest.mark.parametrize("output_stride", (8, 16, 32))
@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_logits_at_input_size(model_class: type[SegmentationModel], output_stride: int) -> None:
    model = model_class(TinyBackbone(output_stride=output_stride), num_classes=5, aux=True).eval()
    assert model.num_classes == 5
    with torch.no_grad():
        for size in SIZES:
            logits = model(torch.randn(1, 3, *size))
            assert logits.shape == (1, 5, *size)
            assert torch.isfinite(logits).all()


def test_training_mode_gives_aux_logits() -> None:
    model = LRASPP(TinyBackbone(), num_classes=4, aux=True).train()
    logits, aux_logits = model.forward_with_aux(torch.randn(2, 3, 97, 131))
    assert logits.shape == aux_logits.shape == (2, 4, 97, 131)
    (logits.mean() + aux_logits.mean()).backward()
    assert model.aux_head.classifier.weight.grad is not None
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 4, 64, 64)  # forward: always logits only
    assert LRASPP(TinyBackbone(), num_classes=4).forward_with_aux(torch.randn(2, 3, 32, 32))[1] is None


@pytest.mark.parametrize(("size", "padded"), (((64, 96), (64, 96)), ((97, 131), (112, 144))))
def test_pads_to_the_output_stride_only_where_needed(size: tuple[int, int], padded: tuple[int, int]) -> None:
    model = RASPP(TinyBackbone(output_stride=16), num_classes=3).eval()
    seen = []
    model.backbone.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    with torch.no_grad():
        model(torch.randn(1, 3, *size))
    assert seen == [padded]


def test_lraspp_head_resolution_and_window_pooling_on_large_maps() -> None:
    features = {"layer2": torch.randn(1, 16, 128, 256), "layer4": torch.randn(1, 24, 64, 128)}
    for pool_kernel in (None, (49, 49)):
        head = LRASPPHead(24, 16, num_classes=3, pool_kernel=pool_kernel).eval()
        with torch.no_grad():
            assert head(features).shape == (1, 3, 128, 256)
    # 64x128 pooled by 49x49 with the authors' stride (4, 5): a 4x16 gate map, stretched over the feature
    assert head.scale(features["layer4"]).shape == (1, 128, 4, 16)
    window = features["layer4"][..., 4:53, 5:54].mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(head.scale[0](features["layer4"])[..., 1:2, 1:2], window)


def test_window_pool_fallbacks_on_small_maps() -> None:
    x = torch.randn(2, 3, 32, 64)  # a 512x1024 input at output stride 16
    # clamp: height 32 < 49 is pooled whole; width 64 keeps its windows ((64 - 49) // 5 + 1 = 4)
    pooled = WindowAvgPool2d((49, 49), (4, 5), "clamp")(x)
    assert pooled.shape == (2, 3, 1, 4)
    torch.testing.assert_close(pooled[..., 0:1, 3:4], x[..., 15:64].mean(dim=(2, 3), keepdim=True))
    torch.testing.assert_close(WindowAvgPool2d((49, 49), (4, 5), "global")(x), x.mean(dim=(2, 3), keepdim=True))
    big = torch.randn(1, 3, 57, 66)  # large enough: both fallbacks slide the same windows
    for fallback in ("clamp", "global"):
        torch.testing.assert_close(WindowAvgPool2d((49, 49), (4, 5), fallback)(big), F.avg_pool2d(big, 49, (4, 5)))


@pytest.mark.parametrize("size", [(5, 7), (32, 64), (49, 49), (64, 128), (65, 129), (70, 30)])
def test_window_pool_equals_average_pooling_with_a_clamped_kernel(size: tuple[int, int]) -> None:
    """The cumulative-sum form against torch's own average pooling, on both sides of the window size."""
    x = torch.randn(2, 4, *size, dtype=torch.float64)
    kernel = (min(49, size[0]), min(49, size[1]))
    expected = F.avg_pool2d(x, kernel, (4, 5))
    torch.testing.assert_close(WindowAvgPool2d((49, 49), (4, 5))(x), expected)


@pytest.mark.parametrize("size", [(5, 7), (32, 64), (48, 50), (64, 128), (128, 256)])
def test_native_window_pool_equals_the_integral_image_of_seglite_0_2(size: tuple[int, int]) -> None:
    """The clamp window as one padded average pool gives seglite 0.2's integral-image outputs within 1e-5,
    in float32 at the maps of 80x112 to 2048x4096 inputs (output stride 16)."""
    from seglite.models.heads.lraspp import _window_means

    x = torch.randn(1, 480, *size) * 3
    window = (torch.tensor(min(49, size[0])), torch.tensor(min(49, size[1])))
    integral = _window_means(_window_means(x, -1, window[1], 5), -2, window[0], 4)
    torch.testing.assert_close(WindowAvgPool2d((49, 49), (4, 5))(x), integral, rtol=0, atol=1e-5)


def test_traced_window_pool_is_a_native_pool_right_at_every_size() -> None:
    """The ONNX export (traced once, dynamic axes) holds an ``AveragePool`` and no ``CumSum``, and its
    padding follows the input's size on both sides of the window."""
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    import io
    import warnings

    pool = WindowAvgPool2d((49, 49), (4, 5)).eval()
    buffer = io.BytesIO()
    axes = {2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(pool, (torch.randn(1, 4, 32, 64),), buffer, dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": axes, "y": axes})  # fmt: skip
    ops = {node.op_type for node in onnx.load_from_string(buffer.getvalue()).graph.node}
    assert "AveragePool" in ops and "CumSum" not in ops
    session = onnxruntime.InferenceSession(buffer.getvalue())
    for size in ((32, 64), (5, 7), (70, 30), (64, 128)):
        x = torch.randn(1, 4, *size)
        found = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
        torch.testing.assert_close(found, pool(x), rtol=0, atol=1e-5)


def test_lraspp_with_a_window_pool_runs_on_small_inputs() -> None:
    for fallback in ("clamp", "global"):
        model = LRASPP(TinyBackbone(output_stride=16), num_classes=3, pool_fallback=fallback).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 96, 160)).shape == (1, 3, 96, 160)


def test_lraspp_gate_options() -> None:
    authors = LRASPPHead(24, 16, num_classes=3)
    torchvision_like = LRASPPHead(24, 16, num_classes=3, pool_kernel=None, gate_activation="sigmoid", gate_bias=False)
    assert isinstance(authors.scale[2], nn.Hardsigmoid) and authors.scale[1].bias is not None
    assert isinstance(authors.scale[0], WindowAvgPool2d)
    assert isinstance(torchvision_like.scale[2], nn.Sigmoid) and torchvision_like.scale[1].bias is None
    assert isinstance(torchvision_like.scale[0], nn.AdaptiveAvgPool2d)
    # the bias is the only parameter the authors' gate adds
    count = lambda module: sum(parameter.numel() for parameter in module.parameters())  # noqa: E731
    assert count(authors) - count(torchvision_like) == 128


def test_deeplabv3_head_conv_after_aspp() -> None:
    plain = DeepLabV3(TinyBackbone(output_stride=16), num_classes=3, channels=16)
    refined = DeepLabV3(TinyBackbone(output_stride=16), num_classes=3, channels=16, conv_after_aspp=True)
    assert isinstance(plain.head.refine, nn.Identity)
    assert refined.head.refine[0].kernel_size == (3, 3) and refined.head.refine[0].out_channels == 16
    names = [name for name, _ in refined.head.named_children()]
    assert names == ["aspp", "refine", "classifier"]  # torchvision's DeepLabHead order
    with torch.no_grad():
        assert refined.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_atrous_rates_follow_the_backbone_stride() -> None:
    assert scaled_atrous_rates(8) == (12, 24, 36)
    assert scaled_atrous_rates(16) == (6, 12, 18)
    assert scaled_atrous_rates(32) == (3, 6, 9)
    for output_stride, rates in ((8, (12, 24, 36)), (16, (6, 12, 18)), (32, (3, 6, 9))):
        for model_class in (DeepLabV3, DeepLabV3Plus):
            model = model_class(TinyBackbone(output_stride=output_stride), num_classes=2, separable=False)
            dilations = tuple(branch[0].dilation[0] for branch in model.head.aspp.branches[1:-1])
            assert dilations == rates


def test_head_with_wrong_channels_is_refused_with_the_numbers() -> None:
    backbone = TinyBackbone()
    message = r"LRASPPHead expects 99 channels in feature 'layer4' but TinyBackbone gives 24"
    with pytest.raises(ValueError, match=message):
        SegmentationModel(backbone, LRASPPHead(99, 16, num_classes=3))
    with pytest.raises(ValueError, match=r"aux_head FCNHead expects 7 channels in feature 'layer3'.* gives 20"):
        SegmentationModel(backbone, LRASPPHead(24, 16, num_classes=3), FCNHead(7, 3))


def test_missing_feature_is_refused() -> None:
    with pytest.raises(ValueError, match=r"LRASPPHead reads feature 'layer9'.*available: \['stem'"):
        LRASPP(TinyBackbone(), low_feature="layer9")
    with pytest.raises(ValueError, match=r"FCNHead reads feature 'layer7'"):
        DeepLabV3(TinyBackbone(), aux=True, aux_feature="layer7")


def test_deeplabv3plus_needs_a_stride_4_low_level_feature() -> None:
    with pytest.raises(ValueError, match=r"DeepLabV3PlusHead needs feature 'layer2' at stride 4 .* stride 8"):
        DeepLabV3Plus(TinyBackbone(), low_feature="layer2")
    head = DeepLabV3PlusHead(24, 8, num_classes=3, low_feature="stem")
    with pytest.raises(ValueError, match=r"needs feature 'stem' at stride 4 .* stride 2"):
        SegmentationModel(TinyBackbone(), head)


def test_invalid_head_options_are_refused() -> None:
    with pytest.raises(ValueError, match=r"LRASPPHead: gate_activation must be one of \('hardsigmoid', 'sigmoid'\), got 'relu'"):
        LRASPP(TinyBackbone(), gate_activation="relu")
    with pytest.raises(ValueError, match=r"WindowAvgPool2d: fallback must be one of \('clamp', 'global'\), got 'crop'"):
        LRASPP(TinyBackbone(), pool_fallback="crop")
    with pytest.raises(ValueError, match=r"WindowAvgPool2d: kernel_size\[1\] must be a positive integer, got 0"):
        LRASPP(TinyBackbone(), pool_kernel=(49, 0))
    with pytest.raises(ValueError, match=r"WindowAvgPool2d: stride must be \(height, width\)"):
        LRASPP(TinyBackbone(), pool_stride=4)
    with pytest.raises(TypeError, match=r"LRASPPHead: gate_bias must be True or False, got 1"):
        LRASPP(TinyBackbone(), gate_bias=1)
    with pytest.raises(ValueError, match=r"RASPPHead: num_classes must be a positive integer, got 0"):
        RASPP(TinyBackbone(), num_classes=0)
    with pytest.raises(ValueError, match=r"ASPP: dropout must be a number in \[0, 1\), got 1.5"):
        DeepLabV3(TinyBackbone(), dropout=1.5)
    with pytest.raises(ValueError, match=r"FCNHead: in_channels must be a positive integer, got True"):
        FCNHead(True, 3)
    with pytest.raises(ValueError, match=r"aux_head predicts 3 classes but head predicts 5"):
        SegmentationModel(TinyBackbone(), LRASPPHead(24, 16, num_classes=5), FCNHead(20, 3))
