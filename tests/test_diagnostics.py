"""Dead depthwise kernels and never-activated ReLU channels: the diagnostic, tools/inspect_model.py and the callback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from test_predictor import save_checkpoint, tiny_task
from torch import nn

from seglite.apps import inspect_model as inspect_tool
from seglite.files import write_image
from seglite.lit.diagnostics import ModelDiagnostics
from seglite.models import build_backbone, build_preset
from seglite.models.diagnostics import (
    ActivationRecorder,
    dead_depthwise_kernels,
    is_depthwise,
    never_activated_channels,
    total_share,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pytorch_lightning.cli")


def kill_kernels(model: nn.Module, layer: str, channels: list[int], scale: float = 0.0) -> None:
    """Scale the depthwise kernels of ``channels`` in ``layer`` by ``scale`` (0: all-zero kernels)."""
    with torch.no_grad():
        model.get_submodule(layer).weight[channels] *= scale


def depthwise_layers(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if is_depthwise(module)]


def test_dead_kernels_are_counted_exactly() -> None:
    backbone = build_backbone("mobilenet_v2", width_mult=0.5)
    layers = depthwise_layers(backbone)
    assert len(layers) == 17  # one per inverted residual block (MobileNetV2 Table 2: 1 + 2 + 3 + 4 + 3 + 3 + 1)
    kill_kernels(backbone, layers[3], [0, 5, 7])
    kill_kernels(backbone, layers[10], [2], scale=1e-6)  # tiny, below the threshold
    kill_kernels(backbone, layers[10], [3], scale=1e-1)  # small but alive
    counts = {item.layer: item for item in dead_depthwise_kernels(backbone)}
    assert list(counts) == layers
    assert {name: item.count for name, item in counts.items() if item.count} == {layers[3]: 3, layers[10]: 1}
    assert counts[layers[3]].total == backbone.get_submodule(layers[3]).out_channels
    total = sum(item.total for item in counts.values())
    assert total_share(list(counts.values())) == pytest.approx(4 / total)
    # a larger threshold catches the small kernel too
    assert dead_depthwise_kernels(backbone, threshold=10.0)[10].count == backbone.get_submodule(layers[10]).out_channels


def test_group_convolutions_are_not_depthwise() -> None:
    backbone = build_backbone("shufflenet_v1", width_mult=0.5, groups=3)
    grouped = [m for m in backbone.modules() if isinstance(m, nn.Conv2d) and 1 < m.groups < m.in_channels]
    assert grouped and not any(is_depthwise(module) for module in grouped)
    assert len(depthwise_layers(backbone)) == 16  # one 3x3 depthwise conv per ShuffleNet unit (4 + 8 + 4)


def test_never_activated_channels_on_a_hand_built_model() -> None:
    conv = nn.Conv2d(3, 4, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.copy_(torch.tensor([1.0, -1.0, 0.0, 2.0]))  # channel 1 negative, channel 2 exactly 0
    model = nn.Sequential(conv, nn.ReLU6(), nn.Conv2d(4, 2, 1), nn.ReLU())
    counts = never_activated_channels(model, [torch.randn(2, 3, 5, 5), torch.randn(1, 3, 4, 4)])
    assert (counts[0].layer, counts[0].total, counts[0].count) == ("1", 4, 2)
    assert counts[1].layer == "3" and counts[1].total == 2
    assert not model._forward_hooks and not model[1]._forward_hooks  # hooks removed
    with pytest.raises(ValueError, match="batches is empty"):
        never_activated_channels(model, [])


def test_never_activated_channels_on_a_real_backbone() -> None:
    backbone = build_backbone("mobilenet_v2", width_mult=0.5).eval()
    block = backbone.layer2[0].block[0]  # expansion conv-BN-ReLU6
    with torch.no_grad():
        block[1].bias[[1, 4]] = -1e4  # these channels can never be positive
    images = [torch.randn(1, 3, 64, 64) for _ in range(2)]
    with ActivationRecorder(backbone) as recorder, torch.no_grad():
        for image in images:
            backbone(image)
        reference = (block(backbone.layer1(backbone.stem(images[0]))) > 0).any(dim=(0, 2, 3))
    assert recorder.seen == 2
    counts = {item.layer: item for item in recorder.counts()}
    layer = "layer2.0.block.0.2"
    assert counts[layer].total == block[0].out_channels
    assert counts[layer].count >= 2 and counts[layer].count <= int((~reference).sum())


def test_inspect_tool_reports_a_checkpoint(tmp_path: Path, capsys) -> None:
    task = tiny_task()
    layers = depthwise_layers(task.model)
    kill_kernels(task.model, layers[1], [0, 1])
    checkpoint = save_checkpoint(task, tmp_path / "zeroed.ckpt")
    images = tmp_path / "images"
    generator = np.random.default_rng(0)
    for name in ("b.png", "sub/a.jpg", "c.png"):
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        write_image(images / name, generator.integers(0, 256, size=(48, 80, 3), dtype=np.uint8))
    assert inspect_tool.main([str(checkpoint), "--data", str(images), "--images", "2"]) == 0
    output = capsys.readouterr().out
    assert "Depthwise kernels with an L2 norm below 0.001 (dead)" in output
    dead = dead_depthwise_kernels(task.model)
    assert f"| {layers[1]} | {dead[1].total} | 2 | {100 * 2 / dead[1].total:.1f}% |" in output
    assert "ReLU/ReLU6 channels never positive on 2 image(s)" in output
    assert output.strip().splitlines()[-1].startswith("| all | ")


def test_inspect_tool_errors_name_the_culprit(tmp_path: Path, capsys) -> None:
    checkpoint = save_checkpoint(tiny_task(), tmp_path / "tiny.ckpt")
    assert inspect_tool.main([str(checkpoint), "--data", str(tmp_path / "missing")]) == 2
    error = capsys.readouterr().err
    assert "--data" in error and "does not exist" in error
    empty = tmp_path / "empty"
    empty.mkdir()
    assert inspect_tool.main([str(checkpoint), "--data", str(empty)]) == 2
    assert "no image files found" in capsys.readouterr().err
    assert inspect_tool.main([str(tmp_path / "nope.ckpt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        inspect_tool.main([str(checkpoint), "--images", "0"])


class _Validated(pl.LightningModule):
    """The smallest LightningModule whose validation runs ``self.model``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def validation_step(self, batch: torch.Tensor, batch_index: int) -> None:
        self.model(batch)


def test_callback_logs_both_shares_on_validation(tmp_path: Path) -> None:
    model = build_preset("lraspp_mobilenet_v3_small", num_classes=3, width_mult=0.5)
    layers = depthwise_layers(model)
    kill_kernels(model, layers[2], [0, 1, 2])
    batches = [torch.randn(2, 3, 64, 64) for _ in range(3)]
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[ModelDiagnostics(per_layer=True)], default_root_dir=tmp_path,
    )
    metrics = trainer.validate(_Validated(model), dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))[0]
    dead = dead_depthwise_kernels(model)
    assert metrics["diagnostics/dead_depthwise_kernels"] == pytest.approx(total_share(dead))
    assert metrics[f"diagnostics/dead/{layers[2]}"] == pytest.approx(3 / dead[2].total)
    expected = never_activated_channels(model, batches)
    assert metrics["diagnostics/never_active_channels"] == pytest.approx(total_share(expected))
    for item in expected:
        assert metrics[f"diagnostics/never_active/{item.layer}"] == pytest.approx(item.share)
    assert all(not module._forward_hooks for module in model.modules())  # hooks gone after validation


def test_callback_rejects_a_bad_threshold() -> None:
    with pytest.raises(ValueError, match=r"ModelDiagnostics: threshold must be a positive number, got 0"):
        ModelDiagnostics(threshold=0)
