"""Print Markdown tables of parameters, MACs and memory access cost: every backbone and every preset.

Counts come from ``seglite.models.complexity`` (``FlopCounterMode``, MACs = FLOPs / 2; memory
access cost = bytes every executed operator reads and writes, ShuffleNetV2 section 2) on models
built on the meta device, so nothing is computed and even 1024x2048 inputs take a fraction of a
second. The papers' numbers stand beside ours. Measured speed: ``python benchmarks/benchmark.py``.

    python tools/complexity.py
    python tools/complexity.py --backbone-size 224 --sizes 1024x2048 512x1024 --num-classes 19
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from seglite.apps.arguments import positive_int
from seglite.apps.arguments import size as size_argument


@dataclass(frozen=True)
class PaperBackbone:
    """An ImageNet classifier and its paper's numbers at 224x224, 1000 classes.

    Sources: MobileNetV1 paper Table 8; MobileNetV2 paper Table 4; MobileNetV3 paper Table 3;
    ShuffleNetV1 paper Table 2 (MFLOPs, which are multiply-adds there) with the parameters of the
    authors' repository (megvii-model/ShuffleNet-Series, ShuffleNetV1/README.md); ShuffleNetV2
    paper Table 5 (FLOPs and "# of Weights").
    """

    label: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    params_m: float | None = None
    madds_m: float | None = None


@dataclass(frozen=True)
class PaperPreset:
    """A preset with overrides and the MobileNetV3 paper's numbers (Tables 7 and 8), keyed by input size."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    params_m: float | None = None
    madds_g: dict[tuple[int, int], float] = field(default_factory=dict)


BACKBONES = [
    PaperBackbone("MobileNetV1 1.0", "mobilenet_v1", params_m=4.2, madds_m=569),
    PaperBackbone("MobileNetV2 1.0", "mobilenet_v2", params_m=3.4, madds_m=300),
    PaperBackbone("MobileNetV3-Large 1.0", "mobilenet_v3_large", params_m=5.4, madds_m=219),
    PaperBackbone("MobileNetV3-Small 1.0", "mobilenet_v3_small", params_m=2.5, madds_m=56),
    PaperBackbone("ShuffleNetV1 1x g=3", "shufflenet_v1", {"groups": 3}, params_m=1.9, madds_m=140),
    PaperBackbone("ShuffleNetV1 1x g=8", "shufflenet_v1", {"groups": 8}, params_m=2.4, madds_m=140),
    PaperBackbone("ShuffleNetV2 0.5x", "shufflenet_v2", {"width_mult": 0.5}, params_m=1.4, madds_m=41),
    PaperBackbone("ShuffleNetV2 1x", "shufflenet_v2", params_m=2.3, madds_m=146),
    PaperBackbone("ShuffleNetV2 1.5x", "shufflenet_v2", {"width_mult": 1.5}, params_m=3.5, madds_m=299),
    PaperBackbone("ShuffleNetV2 2x", "shufflenet_v2", {"width_mult": 2.0}, params_m=7.4, madds_m=591),
]

FULL, HALF = (1024, 2048), (512, 1024)
OS32 = {"output_stride": 32}
# At each preset's own settings (output stride 16), then the other RF2 rows of Table 7 and the
# output-stride-32 rows of Table 8
PAPER_PRESETS = [
    PaperPreset("lraspp_mobilenet_v3_large", params_m=1.51, madds_g={FULL: 9.74, HALF: 2.48}),
    PaperPreset("lraspp_mobilenet_v3_small", params_m=0.47, madds_g={FULL: 2.90, HALF: 0.74}),
    PaperPreset("raspp_mobilenet_v3_large", params_m=3.60, madds_g={FULL: 18.43}),
    PaperPreset("lraspp_mobilenet_v2", params_m=0.98, madds_g={FULL: 12.57}),
    PaperPreset("raspp_mobilenet_v2", params_m=2.11, madds_g={FULL: 21.29}),
    # the other RF2 rows of Table 7
    PaperPreset("raspp_mobilenet_v3_large", {"reduced_tail": True}, params_m=1.76),
    PaperPreset("lraspp_mobilenet_v3_large", {"inner_channels": 256}, params_m=1.63),
    PaperPreset("lraspp_mobilenet_v3_large", OS32, madds_g={FULL: 7.74, HALF: 1.98}),
    PaperPreset("lraspp_mobilenet_v3_small", OS32, madds_g={FULL: 2.06, HALF: 0.53}),
]


def preset_rows() -> list[PaperPreset]:
    """Every preset at its own settings, then the extra settings the paper reports."""
    from seglite.models import PRESETS

    own = {row.name: row for row in PAPER_PRESETS if not row.options}
    return [own.get(name, PaperPreset(name)) for name in PRESETS] + [row for row in PAPER_PRESETS if row.options]


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def backbone_table(size: int) -> list[str]:
    import torch

    from seglite.models import build_classifier
    from seglite.models.complexity import count_params_and_macs

    lines = [
        f"| ImageNet classifier ({size}x{size}) | params (M) | paper params (M) | MMACs | paper MMAdds |",
        "|---|---|---|---|---|",
    ]
    for row in BACKBONES:
        with torch.device("meta"):
            model = build_classifier(row.name, **row.options)
        params, macs = count_params_and_macs(model, (size, size))
        cells = [row.label, f"{params / 1e6:.3f}", _number(row.params_m, 1)]
        cells += [f"{macs / 1e6:.0f}", _number(row.madds_m, 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def preset_table(sizes: list[tuple[int, int]], num_classes: int) -> list[str]:
    import torch

    from seglite.models import build_preset
    from seglite.models.complexity import count_costs

    size_columns = "".join(f" GMACs {height}x{width} | paper | MAC MB |" for height, width in sizes)
    lines = [
        f"| preset ({num_classes} classes) | output stride | params (M) | paper params (M) |{size_columns}",
        "|---|---|---|---|" + "---|---|---|" * len(sizes),
    ]
    for row in preset_rows():
        with torch.device("meta"):
            model = build_preset(row.name, num_classes=num_classes, **row.options)
        params = sum(parameter.numel() for parameter in model.parameters())
        # overrides other than the output stride (its own column) are shown with the name
        shown = [f"{key}={value}" for key, value in row.options.items() if key != "output_stride"]
        label = f"{row.name} ({', '.join(shown)})" if shown else row.name
        cells = [label, str(model.backbone.output_stride), f"{params / 1e6:.3f}", _number(row.params_m, 2)]
        for size in sizes:
            cost = count_costs(model, size)
            cells += [f"{cost.macs / 1e9:.2f}", _number(row.madds_g.get(size), 2), f"{cost.memory_bytes / 1e6:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/complexity.py", description=__doc__.split("\n")[0])
    parser.add_argument("--backbone-size", type=positive_int, default=224, help="input side for the ImageNet classifiers (default 224)")
    parser.add_argument("--sizes", type=size_argument, nargs="+", default=[FULL, HALF], help="HxW inputs for the presets")
    parser.add_argument("--num-classes", type=positive_int, default=19, help="classes of the presets (default 19)")
    args = parser.parse_args(argv)
    print("\n".join(backbone_table(args.backbone_size)))
    print()
    print("\n".join(preset_table(args.sizes, args.num_classes)))
    print("\nMAC MB: memory access cost, megabytes (1e6) of weights and activations read and written by the "
          "executed operators per image, fp32 (seglite.models.complexity.count_costs)")
    return 0
