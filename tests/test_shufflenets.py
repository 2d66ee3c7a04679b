"""ShuffleNetV1/V2 backbones: sizes against torchvision and the papers, weight transfer, output stride."""

from __future__ import annotations

import copy
import io
import warnings

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from seglite.models.backbones.shufflenet_v1 import ShuffleNetV1, ShuffleNetV1Classifier
from seglite.models.backbones.shufflenet_v2 import ShuffleNetV2, ShuffleNetV2Classifier
from seglite.models.weights import load_torchvision_weights

# width_mult: (torchvision builder, exact torchvision params, paper MAdds at 224 (Table 5))
V2_REFERENCE = {
    0.5: (torchvision.models.shufflenet_v2_x0_5, 1_366_792, 41e6),
    1.0: (torchvision.models.shufflenet_v2_x1_0, 2_278_604, 146e6),
    1.5: (torchvision.models.shufflenet_v2_x1_5, 3_503_624, 299e6),
    2.0: (torchvision.models.shufflenet_v2_x2_0, 7_393_996, 591e6),
}
# groups at 1x: (params and MAdds of the authors' repo, megvii-model/ShuffleNet-Series)
V1_REFERENCE = {3: (1.9e6, 138e6), 8: (2.4e6, 138e6)}
FEATURE_NAMES = ["stem", "layer1", "layer2", "layer3", "layer4"]
SMALL = (64, 96)


def count_params(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def count_macs(model: nn.Module, size: int = 224) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 2  # the counter reports 2 FLOPs per multiply-add


def randomise_batchnorm(model: nn.Module) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            shape = module.running_mean.shape
            module.running_mean.copy_(torch.randn(shape, generator=generator))
            module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(shape, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(shape, generator=generator))
    return model.eval()


def torchvision_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.conv5(model.stage4(model.stage3(model.stage2(model.maxpool(model.conv1(x))))))


@pytest.mark.parametrize("width_mult", list(V2_REFERENCE))
def test_shufflenet_v2_params_and_macs_match_torchvision(width_mult: float) -> None:
    build, params, paper_macs = V2_REFERENCE[width_mult]
    ours = ShuffleNetV2Classifier(width_mult=width_mult)
    assert count_params(ours) == count_params(build()) == params
    assert count_macs(ours) == pytest.approx(paper_macs, rel=0.03)


@pytest.mark.parametrize("groups", list(V1_REFERENCE))
def test_shufflenet_v1_params_and_macs_match_authors(groups: int) -> None:
    params, macs = V1_REFERENCE[groups]
    model = ShuffleNetV1Classifier(groups=groups)
    assert count_params(model) == pytest.approx(params, rel=0.03)
    measured = count_macs(model)
    assert measured == pytest.approx(macs, rel=0.03)
    assert measured == pytest.approx(140e6, rel=0.03)  # the paper's Table 2 budget


@pytest.mark.parametrize("width_mult", list(V2_REFERENCE))
def test_shufflenet_v2_loads_torchvision_weights(width_mult: float) -> None:
    reference = randomise_batchnorm(V2_REFERENCE[width_mult][0]())
    x = torch.randn(2, 3, *SMALL)
    classifier = load_torchvision_weights(ShuffleNetV2Classifier(width_mult=width_mult), reference.state_dict())
    backbone = load_torchvision_weights(ShuffleNetV2(width_mult=width_mult), reference.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(classifier.eval()(x), reference(x), rtol=0, atol=1e-5)
        torch.testing.assert_close(backbone.eval()(x)["layer4"], torchvision_features(reference, x), rtol=0, atol=1e-5)


def test_shufflenet_v2_weight_mismatch_raises() -> None:
    reference = torchvision.models.shufflenet_v2_x1_0().state_dict()
    with pytest.raises(ValueError, match="does not fit"):
        load_torchvision_weights(ShuffleNetV2(width_mult=0.5), reference)
    with pytest.raises(ValueError, match="does not fit"):
        load_torchvision_weights(ShuffleNetV2(reduced_tail=True), reference)


def atrous_by_surgery(model: nn.Module, output_stride: int) -> nn.Module:
    """torchvision's ShuffleNetV2 made atrous by editing its depthwise convs: an independent reference.

    Each stage that gives up its stride keeps the previous dilation in its first unit and
    doubles it from its second unit on (DeepLab).
    """
    model = copy.deepcopy(model)
    stages = {16: [model.stage4], 8: [model.stage3, model.stage4]}[output_stride]
    dilation = 1
    for stage in stages:
        for index, unit in enumerate(stage):
            if index == 1:
                dilation *= 2
            for conv in unit.modules():
                if isinstance(conv, nn.Conv2d) and conv.groups > 1:
                    conv.stride, conv.dilation, conv.padding = (1, 1), (dilation, dilation), (dilation, dilation)
    return model


@pytest.mark.parametrize("output_stride", [8, 16])
def test_shufflenet_v2_atrous_matches_torchvision_surgery(output_stride: int) -> None:
    reference = randomise_batchnorm(torchvision.models.shufflenet_v2_x0_5())
    ours = load_torchvision_weights(ShuffleNetV2(width_mult=0.5, output_stride=output_stride), reference.state_dict())
    x = torch.randn(1, 3, *SMALL)
    with torch.no_grad():
        expected = torchvision_features(atrous_by_surgery(reference, output_stride).eval(), x)
        torch.testing.assert_close(ours.eval()(x)["layer4"], expected, rtol=0, atol=1e-5)


BACKBONES = {
    "v1_g1": lambda **kw: ShuffleNetV1(groups=1, **kw),
    "v1_g2": lambda **kw: ShuffleNetV1(groups=2, **kw),
    "v1_g3": lambda **kw: ShuffleNetV1(groups=3, **kw),
    "v1_g4": lambda **kw: ShuffleNetV1(groups=4, **kw),
    "v1_g8": lambda **kw: ShuffleNetV1(groups=8, **kw),
    "v1_g3_0.5x": lambda **kw: ShuffleNetV1(groups=3, width_mult=0.5, **kw),
    "v1_g4_0.5x": lambda **kw: ShuffleNetV1(groups=4, width_mult=0.5, **kw),
    "v1_g2_1.5x": lambda **kw: ShuffleNetV1(groups=2, width_mult=1.5, **kw),
    "v2_0.5x": lambda **kw: ShuffleNetV2(width_mult=0.5, **kw),
    "v2_1x": lambda **kw: ShuffleNetV2(width_mult=1.0, **kw),
}


@pytest.mark.parametrize("output_stride", [8, 16, 32])
@pytest.mark.parametrize("name", list(BACKBONES))
def test_feature_shapes_match_reported_strides(name: str, output_stride: int) -> None:
    model = BACKBONES[name](output_stride=output_stride).eval()
    expected_strides = [2, 4, 8] + [min(16, output_stride), output_stride]
    assert [info.name for info in model.feature_info] == FEATURE_NAMES
    assert [info.stride for info in model.feature_info] == expected_strides
    assert model.feature_info[0].channels == model.feature_info[1].channels == 24
    assert model.output_stride == output_stride
    with torch.no_grad():
        features = model(torch.randn(1, 3, *SMALL))
    assert list(features) == FEATURE_NAMES
    for info in model.feature_info:
        assert features[info.name].shape == (1, info.channels, SMALL[0] // info.stride, SMALL[1] // info.stride)


@pytest.mark.parametrize("name", ["v1_g3", "v1_g8", "v2_0.5x", "v2_1x"])
def test_reduced_tail_halves_layer4(name: str) -> None:
    full = BACKBONES[name](output_stride=16)
    reduced = BACKBONES[name](output_stride=16, reduced_tail=True)
    assert reduced.out_channels * 2 == full.out_channels
    assert [info.channels for info in reduced.feature_info[:-1]] == [info.channels for info in full.feature_info[:-1]]
    with torch.no_grad():
        assert reduced(torch.randn(1, 3, *SMALL))["layer4"].shape[1] == reduced.out_channels


def test_v2_reduced_tail_also_halves_conv5() -> None:
    model = ShuffleNetV2(width_mult=2.0, reduced_tail=True)
    assert model.conv5[0].in_channels == 976 // 2
    assert model.out_channels == 2048 // 2


def test_v1_first_pointwise_conv_of_stage2_is_not_grouped() -> None:
    model = ShuffleNetV1(groups=8)
    assert model.stage2[0].compress[0].groups == 1
    assert all(unit.compress[0].groups == 8 for unit in [*model.stage2[1:], *model.stage3, *model.stage4])


def test_v1_atrous_downsampling_unit_pools_with_stride_one() -> None:
    model = ShuffleNetV1(output_stride=8)
    for stage in (model.stage3, model.stage4):
        assert stage[0].shortcut.stride == 1 and stage[0].depthwise[0].stride == (1, 1)
    assert model.stage3[1].depthwise[0].dilation == (2, 2)
    assert model.stage4[0].depthwise[0].dilation == (2, 2)
    assert model.stage4[1].depthwise[0].dilation == (4, 4)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ShuffleNetV1(groups=5), r"ShuffleNetV1: groups must be one of \(1, 2, 3, 4, 8\), got 5"),
        (lambda: ShuffleNetV1(width_mult=0.75), r"ShuffleNetV1: width_mult must be one of"),
        (lambda: ShuffleNetV1(output_stride=4), r"ShuffleNetV1: output_stride must be one of \(8, 16, 32\)"),
        (lambda: ShuffleNetV1(in_channels=0), r"ShuffleNetV1: in_channels must be a positive integer, got 0"),
        (lambda: ShuffleNetV2(width_mult=0.25), r"ShuffleNetV2: width_mult must be one of"),
        (lambda: ShuffleNetV2(width_mult=True), r"ShuffleNetV2: width_mult must be one of .*, got True"),
        (lambda: ShuffleNetV2(output_stride=64), r"ShuffleNetV2: output_stride must be one of"),
        (lambda: ShuffleNetV2Classifier(num_classes=0), r"ShuffleNetV2Classifier: num_classes must be a positive"),
        (lambda: ShuffleNetV1Classifier(groups=6), r"ShuffleNetV1: groups must be one of"),
    ],
)
def test_bad_arguments_raise(build, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        build()


@pytest.mark.parametrize("name", ["v1_g3", "v2_0.5x"])
def test_onnx_export_matches_eager(name: str) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    model = BACKBONES[name](output_stride=16).eval()
    x = torch.randn(1, 3, *SMALL)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buffer, dynamo=False, input_names=["image"], output_names=FEATURE_NAMES)
    outputs = onnxruntime.InferenceSession(buffer.getvalue()).run(None, {"image": x.numpy()})
    with torch.no_grad():
        for output, expected in zip(outputs, model(x).values()):
            torch.testing.assert_close(torch.from_numpy(output), expected, rtol=1e-4, atol=1e-4)
