"""Shared building blocks (layers.py) and the output-stride plan (backbones/base.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models._utils import _make_divisible
from torchvision.ops.misc import Conv2dNormActivation, SqueezeExcitation

from seglite.models.backbones.base import check_output_stride, check_width_mult, plan_output_stride
from seglite.models.layers import ConvBNAct, SqueezeExcite, channel_shuffle, make_divisible


def test_channel_shuffle_interleaves_groups() -> None:
    x = torch.arange(9.0).view(1, 9, 1, 1)
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 3, 6, 1, 4, 7, 2, 5, 8]
    with pytest.raises(ValueError, match="groups"):
        channel_shuffle(x, 2)


def test_make_divisible_equals_torchvision() -> None:
    for value in [3.0, 8.0, 12.0, 15.9, 16.0, 17.0, 24 * 0.35, 32 * 0.75, 320 * 1.4, 1280 * 0.5, 99.0]:
        assert make_divisible(value) == _make_divisible(value, 8), value


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_conv_bn_act_is_torchvisions_brick(kernel_size: int, dilation: int) -> None:
    """Same layers, keys and outputs as torchvision's Conv2dNormActivation with the same weights."""
    ours = ConvBNAct(4, 8, kernel_size, stride=2, dilation=dilation, groups=2, activation=nn.Hardswish)
    assert isinstance(ours, Conv2dNormActivation)
    assert ours(torch.zeros(1, 4, 9, 11)).shape == (1, 8, 5, 6)
    reference = Conv2dNormActivation(
        4, 8, kernel_size, stride=2, dilation=dilation, groups=2, activation_layer=nn.Hardswish
    )
    assert ours[0].padding == reference[0].padding == ((kernel_size - 1) // 2 * dilation,) * 2
    assert list(ours.state_dict()) == list(reference.state_dict())
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.normal_()
        reference[1].running_mean.normal_()
        reference[1].running_var.uniform_(0.5, 2.0)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 4, 9, 11)
    for mode in (True, False):
        torch.testing.assert_close(ours.train(mode)(x), reference.train(mode)(x), rtol=0, atol=0)
    assert ConvBNAct(4, 8, norm_layer=None)[0].bias is not None
    assert ours.out_channels == reference.out_channels == 8


def test_conv_bn_act_builds_its_activation_without_inplace() -> None:
    """The one difference from torchvision's default: activation() rather than activation(inplace=True)."""
    assert ConvBNAct(4, 8, activation=nn.ReLU)[2].inplace is False
    assert Conv2dNormActivation(4, 8, activation_layer=nn.ReLU)[2].inplace is True
    assert isinstance(ConvBNAct(4, 8, activation=nn.GELU)[2], nn.GELU)  # an activation without inplace
    with pytest.raises(TypeError, match="inplace"):
        Conv2dNormActivation(4, 8, activation_layer=nn.GELU)


def test_squeeze_excite_is_torchvisions() -> None:
    reference = SqueezeExcitation(16, 8, scale_activation=nn.Hardsigmoid)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.normal_()
    ours = SqueezeExcite(16, 8)
    assert isinstance(ours, SqueezeExcitation) and isinstance(ours.scale_activation, nn.Hardsigmoid)
    assert list(ours.state_dict()) == list(reference.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_bricks_script() -> None:
    x = torch.randn(1, 16, 5, 5)
    for brick in (ConvBNAct(16, 8, activation=nn.Hardswish).eval(), SqueezeExcite(16, 8)):
        torch.testing.assert_close(torch.jit.script(brick)(x), brick(x), rtol=0, atol=0)


# nominal strides of seven blocks: four downsamplings, a stride-1 block, a fifth downsampling, a stride-1 block
STRIDES = [2, 2, 2, 2, 1, 2, 1]


@pytest.mark.parametrize(
    ("output_stride", "strides", "dilations", "total_strides"),
    [
        (32, [2, 2, 2, 2, 1, 2, 1], [1, 1, 1, 1, 1, 1, 1], [2, 4, 8, 16, 16, 32, 32]),
        # the block that gives up its stride keeps the previous dilation; the blocks after it double theirs
        (16, [2, 2, 2, 2, 1, 1, 1], [1, 1, 1, 1, 1, 1, 2], [2, 4, 8, 16, 16, 16, 16]),
        (8, [2, 2, 2, 1, 1, 1, 1], [1, 1, 1, 1, 2, 2, 4], [2, 4, 8, 8, 8, 8, 8]),
    ],
)
def test_plan_output_stride(output_stride: int, strides: list, dilations: list, total_strides: list) -> None:
    plan = plan_output_stride(STRIDES, output_stride)
    assert [block.stride for block in plan] == strides
    assert [block.dilation for block in plan] == dilations
    assert [block.total_stride for block in plan] == total_strides


@pytest.mark.parametrize(
    ("output_stride", "dilations"),
    [
        (32, [1, 1, 1, 1, 1, 1, 1]),
        # torchvision: the block that gives up its stride is dilated itself
        (16, [1, 1, 1, 1, 1, 2, 2]),
        (8, [1, 1, 1, 2, 2, 4, 4]),
    ],
)
def test_plan_output_stride_torchvision_rule(output_stride: int, dilations: list) -> None:
    deeplab = plan_output_stride(STRIDES, output_stride)
    plan = plan_output_stride(STRIDES, output_stride, dilation_rule="torchvision")
    assert [block.dilation for block in plan] == dilations
    # the rule changes the dilations only
    assert [(block.stride, block.total_stride) for block in plan] == [(b.stride, b.total_stride) for b in deeplab]
    with pytest.raises(ValueError, match=r"plan_output_stride: dilation_rule must be one of \('deeplab', 'torchvision'\)"):
        plan_output_stride(STRIDES, output_stride, dilation_rule="timm")  # type: ignore[arg-type]


def test_argument_checks_name_the_argument() -> None:
    for output_stride in (4, 24, 64):
        with pytest.raises(ValueError, match="output_stride.*8, 16, 32"):
            check_output_stride(output_stride)
    with pytest.raises(ValueError, match="output_stride"):
        plan_output_stride(STRIDES, 12)
    for width_mult in (0, -0.5, "1", True, None):
        with pytest.raises(ValueError, match="width_mult must be a positive number"):
            check_width_mult(width_mult)  # type: ignore[arg-type]
    assert check_width_mult(1) == 1.0 and isinstance(check_width_mult(1), float)
    with pytest.raises(ValueError, match=r"^MobileNetV2: output_stride must be one of \(8, 16, 32\), got True"):
        check_output_stride(True, "MobileNetV2")
