"""MobileNetV1/V2/V3 backbones: sizes against torchvision and the papers, weight transfer, output stride."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from seglite.models.backbones.mobilenet_v1 import MobileNetV1, MobileNetV1Classifier
from seglite.models.backbones.mobilenet_v2 import InvertedResidual, MobileNetV2, MobileNetV2Classifier
from seglite.models.backbones.mobilenet_v3 import MobileNetV3, MobileNetV3Classifier
from seglite.models.weights import load_torchvision_weights

FEATURE_NAMES = ["stem", "layer1", "layer2", "layer3", "layer4"]
TAP_NAMES = [f"{stage}_{tap}" for stage in ("layer1", "layer2", "layer3") for tap in ("first", "depthwise")]
NOMINAL_STRIDES = [2, 4, 8, 16, 32]
SMALL = (64, 96)


def large(**options):
    return MobileNetV3("large", **options)


def small(**options):
    return MobileNetV3("small", **options)


# family: (backbone builder, channels of stem .. layer4 at width 1, read off the papers' tables)
FAMILIES = {
    "mobilenet_v1": (MobileNetV1, [64, 128, 256, 512, 1024]),
    "mobilenet_v2": (MobileNetV2, [16, 24, 32, 96, 320]),
    "mobilenet_v3_large": (large, [16, 24, 40, 112, 960]),
    "mobilenet_v3_small": (small, [16, 16, 24, 48, 576]),
}
# family: channels of (first-block output, last depthwise output) of layer1, layer2, layer3, read off
# the tables: V1's depthwise sees the stage's input width; V2/V3's the expanded width of the last block
TAPS = {
    "mobilenet_v1": [(128, 128), (256, 256), (512, 512)],
    "mobilenet_v2": [(24, 144), (32, 192), (64, 576)],
    "mobilenet_v3_large": [(24, 72), (40, 120), (80, 672)],
    "mobilenet_v3_small": [(16, 16), (24, 88), (40, 144)],
}

# family: (our classifier, torchvision's builder, torchvision's exact parameter count at width 1)
TORCHVISION = {
    "mobilenet_v2": (MobileNetV2Classifier, torchvision.models.mobilenet_v2, 3_504_872),
    "mobilenet_v3_large": (
        lambda **options: MobileNetV3Classifier("large", **options),
        torchvision.models.mobilenet_v3_large,
        5_483_032,
    ),
    "mobilenet_v3_small": (
        lambda **options: MobileNetV3Classifier("small", **options),
        torchvision.models.mobilenet_v3_small,
        2_542_856,
    ),
}

# family: (our classifier, MAdds at 224x224 in the papers: V1 Table 8, V2 Table 4, V3 Table 3)
PAPER_MADDS = {
    "mobilenet_v1": (MobileNetV1Classifier, 569e6),
    "mobilenet_v2": (MobileNetV2Classifier, 300e6),
    "mobilenet_v3_large": (TORCHVISION["mobilenet_v3_large"][0], 219e6),
    "mobilenet_v3_small": (TORCHVISION["mobilenet_v3_small"][0], 56e6),
}


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def randomise(model: nn.Module) -> nn.Module:
    """Random affine BN parameters and biases, BN statistics measured on random images.

    torchvision initialises biases and BN parameters to constants; with random values and
    statistics that keep activations at unit scale (no ReLU6 or hard-sigmoid saturation), every
    BN layer measurably moves the output, so a transfer that drops or swaps a tensor fails.
    """
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0, 0.2, generator=generator)
                module.reset_running_stats()
                module.momentum = None  # a plain average over the calibration batch
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0, module.in_features**-0.5, generator=generator)
            if isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
                module.bias.normal_(0, 0.2, generator=generator)
        model.train()(torch.randn(2, 3, 64, 64, generator=generator))
    return model.eval()


def image(height: int = 64, width: int = 64, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("family", sorted(TORCHVISION))
@pytest.mark.parametrize("width_mult", [1.0, 0.5])
def test_parameter_count_equals_torchvision(family: str, width_mult: float) -> None:
    build, build_torchvision, torchvision_params = TORCHVISION[family]
    ours = count_parameters(build(width_mult=width_mult))
    assert ours == count_parameters(build_torchvision(width_mult=width_mult))
    if width_mult == 1.0:
        assert ours == torchvision_params


def test_mobilenet_v1_parameter_count_matches_paper() -> None:
    assert count_parameters(MobileNetV1Classifier()) == pytest.approx(4.2e6, rel=0.03)  # paper Table 8


@pytest.mark.parametrize("family", sorted(PAPER_MADDS))
def test_multiply_adds_at_224_match_paper(family: str) -> None:
    build, paper_madds = PAPER_MADDS[family]
    # the meta device computes shapes only: FlopCounterMode counts the same ops, in no time
    with torch.device("meta"), FlopCounterMode(display=False) as counter, torch.no_grad():
        build().eval()(torch.zeros(1, 3, 224, 224))
    assert counter.get_total_flops() / 2 == pytest.approx(paper_madds, rel=0.03)


@pytest.mark.parametrize("family", sorted(TORCHVISION))
def test_torchvision_weights_give_torchvision_outputs(family: str) -> None:
    build, build_torchvision, _ = TORCHVISION[family]
    reference = randomise(build_torchvision(weights=None))
    ours = load_torchvision_weights(build(), reference.state_dict()).eval()
    backbone = load_torchvision_weights(FAMILIES[family][0](), reference.state_dict()).eval()
    # MobileNetV2's backbone stops before torchvision's last 1x1 conv; MobileNetV3's includes it
    reference_features = reference.features[:-1] if family == "mobilenet_v2" else reference.features
    x = image()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(backbone(x)["layer4"], reference_features(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["mobilenet_v3_large", "mobilenet_v3_small"])
def test_torchvision_reduced_tail_weights_load(family: str) -> None:
    build, build_torchvision, _ = TORCHVISION[family]
    reference = randomise(build_torchvision(weights=None, reduced_tail=True))
    ours = load_torchvision_weights(build(reduced_tail=True, tail_reduction="outputs"), reference.state_dict()).eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(image()), reference(image()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("model", "torchvision_model"),
    [
        (lambda: large(reduced_tail=True), torchvision.models.mobilenet_v3_large),
        (lambda: MobileNetV2(width_mult=0.5), torchvision.models.mobilenet_v2),
        (lambda: MobileNetV2Classifier(num_classes=10), torchvision.models.mobilenet_v2),
        (lambda: MobileNetV3Classifier("large"), torchvision.models.mobilenet_v3_small),
    ],
)
def test_mismatched_torchvision_weights_raise(model, torchvision_model) -> None:
    with pytest.raises(ValueError, match="does not fit|tensors but"):
        load_torchvision_weights(model(), torchvision_model(weights=None).state_dict())


@pytest.mark.parametrize("output_stride", [8, 16, 32])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_features_match_reported_strides_and_channels(family: str, output_stride: int) -> None:
    build, channels = FAMILIES[family]
    backbone = build(output_stride=output_stride).eval()
    strides = [min(stride, output_stride) for stride in NOMINAL_STRIDES]
    taps = [
        (f"{stage}_{tap}", tap_channels, min(stride, output_stride))
        for stage, stride, pair in zip(("layer1", "layer2", "layer3"), NOMINAL_STRIDES[1:4], TAPS[family])
        for tap, tap_channels in zip(("first", "depthwise"), pair)
    ]
    assert [(info.name, info.channels, info.stride) for info in backbone.feature_info] == [
        *zip(FEATURE_NAMES, channels, strides),
        *taps,
    ]
    assert backbone.output_stride == output_stride and backbone.out_channels == channels[-1]
    height, width = SMALL
    with torch.no_grad():
        features = backbone(image(height, width, batch=1))
    assert sorted(features) == sorted(FEATURE_NAMES + TAP_NAMES)
    for info in backbone.feature_info:
        assert features[info.name].shape == (1, info.channels, height // info.stride, width // info.stride)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_taps_are_the_outputs_they_name(family: str) -> None:
    """The first-block tap is the first block's output, the depthwise tap the depthwise conv-BN-act output."""
    backbone = FAMILIES[family][0](width_mult=0.5, output_stride=16).eval()
    x = image(64, 64, batch=1)
    with torch.no_grad():
        features = backbone(x)
        layer2_input = backbone.layer1(backbone.stem(x))
        torch.testing.assert_close(features["layer2_first"], backbone.layer2[0](layer2_input))
        last = backbone.layer2[-1]
        depthwise = last[0] if isinstance(last, nn.Sequential) else last.block[last.depthwise_index]
        seen = []
        handle = depthwise.register_forward_hook(lambda module, args, output: seen.append(output))
        backbone.layer2(layer2_input)
        handle.remove()
    torch.testing.assert_close(features["layer2_depthwise"], seen[0])
    assert isinstance(depthwise[0], nn.Conv2d) and depthwise[0].groups == depthwise[0].in_channels


@pytest.mark.parametrize(
    ("variant", "tail_reduction", "expansions", "outputs", "last_conv"),
    [
        # the authors' mobilenet_v3_large_seg: [(13, 336), (14, 480), (15, 480), (16, None)]
        ("large", "all", [336, 480, 480], [80, 80, 80], 480),
        # torchvision's reduced_tail keeps the downsampling block's expansion
        ("large", "outputs", [672, 480, 480], [80, 80, 80], 480),
        # mobilenet_v3_small_seg: [(9, 144), (10, 288), (11, 288), (12, None)]
        ("small", "all", [144, 288, 288], [48, 48, 48], 288),
        ("small", "outputs", [288, 288, 288], [48, 48, 48], 288),
    ],
)
def test_reduced_tail_styles(variant: str, tail_reduction: str, expansions: list, outputs: list, last_conv: int) -> None:
    backbone = MobileNetV3(variant, output_stride=16, reduced_tail=True, tail_reduction=tail_reduction)
    blocks = [block for block in backbone.layer4 if isinstance(block, InvertedResidual)]
    assert [block.depthwise_channels for block in blocks] == expansions
    assert [block.out_channels for block in blocks] == outputs
    assert backbone.layer4[-1].out_channels == backbone.out_channels == last_conv
    # everything before the last stage is untouched
    full = MobileNetV3(variant, output_stride=16)
    assert [v.shape for k, v in backbone.state_dict().items() if not k.startswith("layer4")] == [
        v.shape for k, v in full.state_dict().items() if not k.startswith("layer4")
    ]


@pytest.mark.parametrize("dilation_rule", ["deeplab", "torchvision"])
def test_mobilenet_v3_dilation_rules(dilation_rule: str) -> None:
    backbone = large(output_stride=16, dilation_rule=dilation_rule)
    depthwise_dilations = [block.block[block.depthwise_index][0].dilation[0] for block in backbone.layer4[:3]]
    # the block that gives up its stride: dilation 1 (TF DeepLab) or 2 (torchvision); the others 2
    assert depthwise_dilations == ([1, 2, 2] if dilation_rule == "deeplab" else [2, 2, 2])
    reference = torchvision.models.mobilenet_v3_large(weights=None, dilated=True).features
    if dilation_rule == "torchvision":
        assert depthwise_dilations == [reference[i].block[1][0].dilation[0] for i in (13, 14, 15)]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_output_stride_changes_geometry_not_weights(family: str) -> None:
    build, _ = FAMILIES[family]
    dense, dilated = build(output_stride=32), build(output_stride=8)
    assert [(key, value.shape) for key, value in dense.state_dict().items()] == [
        (key, value.shape) for key, value in dilated.state_dict().items()
    ]

    def residuals(model: nn.Module) -> list[bool]:
        return [module.residual for module in model.modules() if isinstance(module, InvertedResidual)]

    assert residuals(dense) == residuals(dilated)
    dilations = [module.dilation[0] for module in dilated.modules() if isinstance(module, nn.Conv2d)]
    assert max(dilations) == 4  # two strides turned into dilation


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_reduced_tail_halves_last_stage(family: str) -> None:
    build, channels = FAMILIES[family]
    backbone = build(reduced_tail=True, output_stride=16).eval()
    assert [backbone.feature(name).channels for name in FEATURE_NAMES] == channels[:-1] + [channels[-1] // 2]
    with torch.no_grad():
        assert backbone(image(32, 32, batch=1))["layer4"].shape[1] == channels[-1] // 2


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_width_mult_scales_channels(family: str) -> None:
    build, channels = FAMILIES[family]
    backbone = build(width_mult=0.5).eval()
    narrow = [backbone.feature(name).channels for name in FEATURE_NAMES]
    assert all(value % 8 == 0 for value in narrow)
    assert all(value < full for value, full in zip(narrow, channels) if full > 16)
    with torch.no_grad():
        features = backbone(image(32, 32, batch=1))
    assert {name: feature.shape[1] for name, feature in features.items()} == {
        info.name: info.channels for info in backbone.feature_info
    }


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"output_stride": 4}, "output_stride"),
        ({"output_stride": 64}, "output_stride"),
        ({"width_mult": 0}, "width_mult"),
        ({"width_mult": -1.0}, "width_mult"),
        ({"width_mult": True}, "width_mult"),
    ],
)
def test_bad_arguments_raise(family: str, options: dict, argument: str) -> None:
    owner = "MobileNetV3" if family.startswith("mobilenet_v3") else FAMILIES[family][0].__name__
    with pytest.raises(ValueError, match=f"^{owner}: {argument} must be"):
        FAMILIES[family][0](**options)


def test_unknown_mobilenet_v3_options_raise() -> None:
    with pytest.raises(ValueError, match=r"MobileNetV3: variant must be one of \('large', 'small'\), got 'medium'"):
        MobileNetV3("medium")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"MobileNetV3Classifier: variant must be one of"):
        MobileNetV3Classifier("tiny")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"MobileNetV3: tail_reduction must be one of \('outputs', 'all'\)"):
        MobileNetV3(reduced_tail=True, tail_reduction="half")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"MobileNetV3: dilation_rule must be one of \('deeplab', 'torchvision'\)"):
        MobileNetV3(dilation_rule="timm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"MobileNetV2: tail_reduction must be one of"):
        MobileNetV2(tail_reduction=None)  # type: ignore[arg-type]
