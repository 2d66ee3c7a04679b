"""Width multiplier alpha and resolution multiplier rho (MobileNetV1 paper, section 3.3) on every family.

Section 3.3 gives the cost of a depthwise separable layer as
``Dk*Dk*(alpha*M)*(rho*Df)^2 + (alpha*M)*(alpha*N)*(rho*Df)^2``: the depthwise term scales with
alpha, the pointwise one with alpha^2, both with rho^2; hence "roughly alpha^2" and exactly rho^2.
The tests check the exact forms where they must hold and the rough one with stated tolerances.
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from seglite.models import build_backbone
from seglite.models.complexity import count_params_and_macs
from seglite.models.layers import SqueezeExcite

FAMILIES = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v1", "shufflenet_v2")
SIZE = (224, 224)


def _backbone(family: str, width_mult: float = 1.0) -> nn.Module:
    with torch.device("meta"):  # shapes only
        return build_backbone(family, width_mult=width_mult).eval()


def _conv_macs(model: nn.Module, size: tuple[int, int]) -> dict[nn.Conv2d, int]:
    macs: dict[nn.Conv2d, int] = {}

    def count(module: nn.Conv2d, args: tuple, output: torch.Tensor) -> None:
        macs[module] = output.numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad(), torch.device("meta"):
        model(torch.zeros(1, 3, *size))
    for handle in handles:
        handle.remove()
    return macs


@functools.cache
def width_one_terms(family: str) -> tuple[int, int, int, int]:
    return linear_and_quadratic(_backbone(family))


def linear_and_quadratic(model: nn.Module, size: tuple[int, int] = SIZE) -> tuple[int, int, int, int]:
    """(parameters, parameters, MACs, MACs) that section 3.3 scales by alpha and by alpha^2.

    Linear in alpha: depthwise convolutions (one kernel per channel), the first convolution (its 3
    input channels do not scale), BN affines and biases. Quadratic: every other convolution.
    """
    macs = _conv_macs(model, size)
    linear_params = quadratic_params = linear_macs = quadratic_macs = 0
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            if module.groups == module.in_channels or module.in_channels == 3:
                linear_params, linear_macs = linear_params + module.weight.numel(), linear_macs + macs[module]
            else:
                quadratic_params, quadratic_macs = quadratic_params + module.weight.numel(), quadratic_macs + macs[module]
            linear_params += 0 if module.bias is None else module.bias.numel()
        elif isinstance(module, nn.BatchNorm2d):
            linear_params += module.weight.numel() + module.bias.numel()
    return linear_params, quadratic_params, linear_macs, quadratic_macs


@pytest.mark.parametrize("width_mult", [0.25, 0.5, 0.75])
def test_width_multiplier_is_section_3_3_exactly_where_nothing_rounds(width_mult: float) -> None:
    """MobileNetV1 at these widths has every channel count a multiple of 8: no rounding at all."""
    linear_params, quadratic_params, linear_macs, quadratic_macs = width_one_terms("mobilenet_v1")
    params, macs = count_params_and_macs(_backbone("mobilenet_v1", width_mult), SIZE)
    assert params == pytest.approx(width_mult * linear_params + width_mult**2 * quadratic_params, rel=1e-12)
    assert macs == pytest.approx(width_mult * linear_macs + width_mult**2 * quadratic_macs, rel=1e-12)
    # and "roughly alpha^2": the linear terms are 2% of the parameters and 5% of the MACs at width 1
    assert params / (linear_params + quadratic_params) == pytest.approx(width_mult**2, rel=0.07)
    assert macs / (linear_macs + quadratic_macs) == pytest.approx(width_mult**2, rel=0.15)


WIDTHS = [(family, alpha) for family in FAMILIES[:4] for alpha in (0.5, 0.75)] + [
    (family, alpha) for family in FAMILIES[4:] for alpha in (0.5, 1.5, 2.0)  # the papers' ShuffleNet widths
]


@pytest.mark.parametrize(("family", "width_mult"), WIDTHS)
def test_width_multiplier_scales_roughly_quadratically(family: str, width_mult: float) -> None:
    """Parameters within 13% of alpha^2; MACs within 20% of section 3.3's alpha*linear + alpha^2*quadratic.

    Not exact because make_divisible rounds every width to a multiple of 8 (at 0.75, MobileNetV2's
    16- and 24-channel early layers both become 16: +33% and -11%, at the highest resolutions),
    the ShuffleNet widths are their papers' table columns rather than alpha times the 1x widths
    (ShuffleNetV2 0.5x: 48 channels, not 58; 2x: a 2048-wide conv5) and the ShuffleNets keep a
    24-channel stem at every width. Depthwise convolutions, linear in alpha, are 5-24% of the MACs,
    so plain alpha^2 would be off by up to 33% in MACs.
    """
    linear_params, quadratic_params, linear_macs, quadratic_macs = width_one_terms(family)
    params, macs = count_params_and_macs(_backbone(family, width_mult), SIZE)
    assert params / (linear_params + quadratic_params) == pytest.approx(width_mult**2, rel=0.13)
    assert macs == pytest.approx(width_mult * linear_macs + width_mult**2 * quadratic_macs, rel=0.20)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("side", [160, 128])  # the paper's resolutions 224, 160, 128 (Table 7)
def test_resolution_multiplier_is_exactly_rho_squared(family: str, side: int) -> None:
    """MACs scale by rho^2 exactly, except squeeze-and-excite's 1x1 convs on pooled maps; parameters not at all."""
    model = _backbone(family)
    params, macs = count_params_and_macs(model, SIZE)
    scaled_params, scaled_macs = count_params_and_macs(model, (side, side))
    squeeze_excite = {module for se in model.modules() if isinstance(se, SqueezeExcite) for module in (se.fc1, se.fc2)}
    fixed = sum(count for module, count in _conv_macs(model, SIZE).items() if module in squeeze_excite)
    assert (fixed > 0) == family.startswith("mobilenet_v3")
    assert scaled_params == params
    assert scaled_macs - fixed == pytest.approx((side / SIZE[0]) ** 2 * (macs - fixed), rel=1e-12)
