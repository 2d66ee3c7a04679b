"""Parameter and MAC counts: the counter itself, and the LR-ASPP presets against the MobileNetV3 paper."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch
from torch import nn

from seglite.models import build_preset
from seglite.models.complexity import count_params_and_macs

FULL, HALF = (1024, 2048), (512, 1024)


def test_counts_a_conv_by_hand() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Conv2d(8, 4, 1, groups=2))
    params, macs = count_params_and_macs(model.train(), (10, 12))
    assert params == (3 * 8 * 9 + 8) + 2 * 8 + 8 * 4 // 2 + 4
    assert macs == 10 * 12 * (3 * 9 * 8 + 4 * 4)
    assert model.training  # the mode is restored


# MobileNetV3 paper Table 8: MAdds of LR-ASPP with reduced tail, 19 classes (REFERENCE.md)
@pytest.mark.parametrize(
    ("preset", "output_stride", "size", "paper_gmadds"),
    (
        ("lraspp_mobilenet_v3_large", 16, FULL, 9.74),
        ("lraspp_mobilenet_v3_large", 16, HALF, 2.48),
        ("lraspp_mobilenet_v3_large", 32, FULL, 7.74),
        ("lraspp_mobilenet_v3_large", 32, HALF, 1.98),
        ("lraspp_mobilenet_v3_small", 16, FULL, 2.90),
    ),
)
def test_lraspp_presets_match_the_paper(
    preset: str, output_stride: int, size: tuple[int, int], paper_gmadds: float
) -> None:
    with torch.device("meta"):  # shapes only: nothing is computed
        model = build_preset(preset, output_stride=output_stride)
    _, macs = count_params_and_macs(model, size)
    assert macs / 1e9 == pytest.approx(paper_gmadds, rel=0.03)


def test_meta_and_cpu_counts_agree() -> None:
    model = build_preset("lraspp_mobilenet_v3_small", num_classes=3)
    with torch.device("meta"):
        meta_model = build_preset("lraspp_mobilenet_v3_small", num_classes=3)
    assert count_params_and_macs(model, (64, 96)) == count_params_and_macs(meta_model, (64, 96))


def test_the_tool_prints_a_row_per_backbone_and_preset() -> None:
    tool = runpy.run_path(str(Path(__file__).parents[1] / "tools" / "complexity.py"))
    presets = tool["preset_table"]([(64, 128)], num_classes=19)
    assert len(presets) == 2 + len(tool["preset_rows"]())
    assert presets[2].startswith("| lraspp_mobilenet_v3_large | 16 | 1.747 | 1.51 |")
    assert len(tool["backbone_table"](32)) == 2 + len(tool["BACKBONES"])
