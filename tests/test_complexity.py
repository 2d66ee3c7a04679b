"""Parameter, MAC and memory-access counts: the counters against hand-computed values, the tool's
tables, and the operator categories (the presets against the MobileNetV3 paper: tests/test_models.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seglite.apps import complexity as complexity_tool
from seglite.models import build_preset
from seglite.models.complexity import (
    CATEGORIES,
    conv_category,
    count_costs,
    count_params_and_macs,
    operator_category,
)
from seglite.models.layers import SqueezeExcite, channel_shuffle

FLOAT = 4  # bytes of a float32



def test_counts_a_conv_by_hand() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Conv2d(8, 4, 1, groups=2))
    params, macs = count_params_and_macs(model.train(), (10, 12))
    assert params == (3 * 8 * 9 + 8) + 2 * 8 + 8 * 4 // 2 + 4
    assert macs == 10 * 12 * (3 * 9 * 8 + 4 * 4)
    assert model.training  # the mode is restored


def test_meta_and_cpu_counts_agree() -> None:
    model = build_preset("lraspp_mobilenet_v3_small", num_classes=3)
    with torch.device("meta"):
        meta_model = build_preset("lraspp_mobilenet_v3_small", num_classes=3)
    assert count_params_and_macs(model, (64, 96)) == count_params_and_macs(meta_model, (64, 96))


def test_the_tool_prints_a_row_per_backbone_and_preset() -> None:
    presets = complexity_tool.preset_table([(64, 128)], num_classes=19)
    assert len(presets) == 2 + len(complexity_tool.preset_rows())
    assert presets[2].startswith("| lraspp_mobilenet_v3_large | 16 | 1.507 | 1.51 |")
    assert len(complexity_tool.backbone_table(32)) == 2 + len(complexity_tool.BACKBONES)


@pytest.mark.parametrize(
    "option, value, expected",
    [("--num-classes", "0", "a positive integer"), ("--num-classes", "x", "a positive integer"),
     ("--backbone-size", "-3", "a positive integer"), ("--backbone-size", "0", "a positive integer"),
     ("--sizes", "0x64", "HEIGHTxWIDTH")],
)  # fmt: skip
def test_bad_tool_arguments_are_argument_errors(capsys, option, value, expected) -> None:
    with pytest.raises(SystemExit) as exit_info:
        complexity_tool.main([option, value])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"tools/complexity.py: error: argument {option}: expected {expected}" + (
        f" such as 512x1024, got {value!r}" if option == "--sizes" else f", got {value!r}"
    )


# ----------------------------------------------------------------------------------------------
# count_costs: MACs and memory access cost per executed operator, against hand-computed values


class Residual(nn.Module):
    """conv -> in-place ReLU -> add the input: one operator of each kind the counter treats differently."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x)) + x


class Head(nn.Module):
    """flatten (a view) -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class Shuffle(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, 2)


def costs_by_operator(model: nn.Module, size: tuple[int, int], in_channels: int, batch: int = 1) -> dict:
    cost = count_costs(model, size, batch_size=batch, in_channels=in_channels)
    found: dict = {}
    for op in cost.operators:
        found.setdefault(op.operator.split(".")[1], []).append(op)
    return found


def test_a_pointwise_conv_costs_shufflenet_v2s_formula() -> None:
    # ShuffleNetV2 section 2, G1: MAC = hw(c1 + c2) + c1 c2 for a 1x1 conv (elements; fp32 bytes x4)
    h, w, c1, c2 = 10, 12, 3, 8
    cost = count_costs(nn.Conv2d(c1, c2, 1, bias=False), (h, w))
    (op,) = cost.operators
    assert op.macs == h * w * c1 * c2
    assert op.bytes_read == (h * w * c1 + c1 * c2) * FLOAT
    assert op.bytes_written == h * w * c2 * FLOAT
    assert op.weight_bytes == c1 * c2 * FLOAT
    assert cost.memory_bytes == (h * w * (c1 + c2) + c1 * c2) * FLOAT
    assert op.category == "1x1 conv"


def test_dense_and_depthwise_convs_by_hand() -> None:
    h, w = 10, 12
    dense = count_costs(nn.Conv2d(3, 8, 3, padding=1), (h, w), batch_size=2)
    assert dense.macs == 2 * h * w * 3 * 9 * 8
    assert dense.memory_bytes == (2 * 3 * h * w + 8 * 3 * 9 + 8 + 2 * 8 * h * w) * FLOAT  # input, weight, bias, output
    assert dense.operators[0].category == "kxk conv"
    depthwise = count_costs(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), (h, w), in_channels=8)
    assert depthwise.macs == h * w * 8 * 9
    assert depthwise.memory_bytes == (8 * h * w + 8 * 9 + 8 * h * w) * FLOAT
    assert depthwise.operators[0].category == "depthwise conv"


def test_linear_view_inplace_and_add_by_hand() -> None:
    head = costs_by_operator(Head(), (2, 4), in_channels=2)
    assert [op.memory_bytes for op in head["view"]] == [0]  # flatten moves nothing
    (addmm,) = head["addmm"]
    assert addmm.macs == 16 * 4
    assert addmm.memory_bytes == (16 + 16 * 4 + 4 + 4) * FLOAT  # input, weight, bias, output
    assert addmm.category == "1x1 conv"

    residual = costs_by_operator(Residual(), (5, 6), in_channels=8)
    feature = 8 * 5 * 6 * FLOAT
    (relu,) = residual["relu_"]
    assert (relu.bytes_read, relu.bytes_written, relu.macs) == (feature, feature, 0)  # in place: read and write back
    assert relu.category == "activation"
    (add,) = residual["add"]
    assert (add.bytes_read, add.bytes_written, add.macs) == (2 * feature, feature, 0)
    assert add.category == "other"


def test_a_channel_shuffle_costs_one_copy() -> None:
    shuffle = count_costs(Shuffle(), (4, 4), in_channels=6)
    feature = 6 * 4 * 4 * FLOAT
    copies = [op for op in shuffle.operators if op.memory_bytes]
    assert [(op.bytes_read, op.bytes_written) for op in copies] == [(feature, feature)]  # the views move nothing
    assert copies[0].category == "copy / layout"


def test_squeeze_excite_operators_are_grouped() -> None:
    model = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16), SqueezeExcite(16, 8))
    cost = count_costs(model, (8, 8), in_channels=16)
    categories = {op.category for op in cost.operators if op.module.startswith("1")}
    assert categories == {"squeeze-excite"}
    # pooling reads 16x8x8, fc1 16x8 + 8 MACs, fc2 8x16 + 16 ... only the convolutions have MACs
    assert cost.by_category()["squeeze-excite"].macs == 16 * 8 + 8 * 16
    assert cost.by_category()["depthwise conv"].macs == 8 * 8 * 16 * 9


@pytest.mark.parametrize("preset", ["lraspp_mobilenet_v3_large", "deeplabv3plus_shufflenet_v2"])
def test_costs_agree_with_flop_counter_and_add_up(preset: str) -> None:
    with torch.device("meta"):
        model = build_preset(preset)
    cost = count_costs(model, (128, 256))
    params, macs = count_params_and_macs(model, (128, 256))
    assert (cost.params, cost.macs) == (params, macs)
    by_category = cost.by_category()
    assert list(by_category) == list(CATEGORIES)
    assert sum(entry.macs for entry in by_category.values()) == cost.macs
    assert sum(entry.memory_bytes for entry in by_category.values()) == cost.memory_bytes
    assert by_category["depthwise conv"].macs > 0 and by_category["1x1 conv"].macs > 0
    # every weight is read once per pass: the weight bytes are the parameters' and used buffers' bytes
    assert params * FLOAT <= cost.weight_bytes <= (params + 4 * 2 * params) * FLOAT


def test_memory_access_cost_grows_with_batch_except_weights() -> None:
    model = nn.Conv2d(3, 8, 3, padding=1)
    one, four = count_costs(model, (16, 16)), count_costs(model, (16, 16), batch_size=4)
    assert four.macs == 4 * one.macs
    assert four.weight_bytes == one.weight_bytes
    assert four.memory_bytes - four.weight_bytes == 4 * (one.memory_bytes - one.weight_bytes)


def test_scaling_laws_of_the_mobilenet_paper() -> None:
    # MobileNet section 3.3, eq. 7: Dk^2 aM (rho DF)^2 + aM aN (rho DF)^2: depthwise scales with alpha,
    # pointwise with alpha^2, both with rho^2
    def net(alpha: float) -> nn.Module:
        c1, c2 = int(32 * alpha), int(64 * alpha)
        return nn.Sequential(nn.Conv2d(c1, c1, 3, padding=1, groups=c1), nn.Conv2d(c1, c2, 1))

    depthwise, pointwise = 32 * 64 * 9 * 32, 32 * 64 * 32 * 64
    assert count_costs(net(1.0), (32, 64), in_channels=32).macs == depthwise + pointwise
    assert count_costs(net(0.5), (32, 64), in_channels=16).macs == depthwise // 2 + pointwise // 4
    assert count_costs(net(1.0), (16, 32), in_channels=32).macs == (depthwise + pointwise) // 4


def test_operator_categories() -> None:
    assert conv_category(32, (32, 1, 3, 3)) == "depthwise conv"
    assert conv_category(32, (64, 32, 1, 1)) == "1x1 conv"
    assert conv_category(24, (48, 8, 1, 1)) == "1x1 conv"  # ShuffleNetV1's grouped pointwise conv
    assert conv_category(3, (16, 3, 3, 3)) == "kxk conv"
    assert operator_category("aten::hardswish_") == "activation"
    assert operator_category("aten.upsample_bilinear2d.vec") == "resize"
    assert operator_category("aten::batch_norm") == "batch norm"
    assert operator_category("aten::conv2d", in_squeeze_excite=True, input_shape=(1, 8, 1, 1),
                             weight_shape=(4, 8, 1, 1)) == "squeeze-excite"  # fmt: skip
    assert operator_category("aten::mul") == "other"
