"""backend="auto" only picks paths whose accuracy is measured: val mIoU of a trained demo model on each against PyTorch fp32.

The model is trained here by the real training code (LightningCLI, a small LR-ASPP
MobileNetV3-Small on the synthetic demo set), so its logits have the margins of a trained
network rather than of random weights, where any rounding flips classes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from seglite.inference import openvino
from seglite.inference.accuracy import dataset_images, evaluate_predictors
from seglite.inference.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]
MAX_MIOU_CHANGE = 0.5  # points, the promise of backend="auto"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.fixture(scope="session")
def trained_demo(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, data root): 240 steps of LR-ASPP MobileNetV3-Small x0.75 at 96x96 crops (~1 min on 2 cores)."""
    from seglite.data.synthetic import make_demo_dataset
    from seglite.lit.cli import run_cli

    folder = tmp_path_factory.mktemp("trained_demo")
    root = make_demo_dataset(folder / "demo", num_train=24, num_val=8, num_test=0, size=(96, 192), seed=5, video=False)
    overrides = folder / "overrides.yaml"
    overrides.write_text(yaml.safe_dump({
        "trainer": {
            "accelerator": "cpu", "devices": 1, "precision": "32-true", "max_steps": 240,
            "val_check_interval": None, "check_val_every_n_epoch": 1000, "default_root_dir": str(folder),
            "logger": False, "callbacks": [], "enable_checkpointing": False, "enable_progress_bar": False,
            "enable_model_summary": False, "num_sanity_val_steps": 0,
        },
        "model": {"lr": 0.2, "warmup_steps": 10, "log_images": 0, "channels_last": True},
    }))
    cli = run_cli([
        "fit", f"--config={REPO / 'configs/lraspp_mnv3_small.yaml'}", f"--config={overrides}",
        "--model.model.init_args.width_mult=0.75",
        "--data.init_args.root", str(root), "--data.init_args.batch_size=8", "--data.init_args.num_workers=0",
        "--data.init_args.crop_size=[96, 96]", "--data.init_args.scale_range=[0.75, 1.25]",
        "--data.init_args.base_size=null", "--data.init_args.eval_size=null",
    ])
    checkpoint = folder / "trained.ckpt"
    cli.trainer.save_checkpoint(checkpoint)
    return checkpoint, root


def _miou_changes(checkpoint: Path, root: Path, candidates: dict[str, Predictor]) -> tuple[float, dict[str, float]]:
    """(torch fp32 val mIoU, change in points of each candidate)."""
    reference = Predictor.from_checkpoint(checkpoint, backend="torch")
    evaluations = evaluate_predictors({"torch fp32": reference, **candidates}, root, "val")
    base = evaluations[0].scores.miou
    return 100 * base, {e.name: 100 * (e.scores.miou - base) for e in evaluations[1:]}


def _eligible(checkpoint: Path, cache: Path) -> dict[str, Predictor]:
    """Every path backend="auto" can choose on this machine, by description."""
    paths = [Predictor.from_checkpoint(checkpoint, backend="onnxruntime", cache_dir=cache)]
    if openvino.available():
        paths.append(Predictor.from_checkpoint(checkpoint, backend="openvino", precision="fp32", cache_dir=cache))
        if openvino.cpu_has_bf16():
            paths.append(Predictor.from_checkpoint(checkpoint, backend="openvino", precision="bf16", cache_dir=cache))
    return {predictor.description: predictor for predictor in paths}


def test_auto_eligible_paths_keep_miou_within_half_a_point(trained_demo, tmp_path):
    checkpoint, root = trained_demo
    candidates = _eligible(checkpoint, tmp_path)
    base, changes = _miou_changes(checkpoint, root, candidates)
    assert base > 25, f"the demo model did not train (val mIoU {base:.1f}): the comparison would say nothing"
    for name, change in changes.items():
        print(f"{name}: val mIoU {base:.2f} {change:+.4f}")
        assert abs(change) <= MAX_MIOU_CHANGE, f"{name}: val mIoU {change:+.2f} points against torch fp32"
    # what auto picks is one of the paths measured here
    chosen = Predictor.from_checkpoint(checkpoint, cache_dir=tmp_path).description
    assert chosen.partition(" (auto")[0] in candidates


@pytest.mark.skipif(not (openvino.available() and openvino.cpu_has_bf16()),
                    reason="OpenVINO runs no bf16 here: the CPU has no AMX or AVX512-BF16, or SEGLITE_OPENVINO_PRECISION=f32")
def test_bf16_runs_in_bf16_and_keeps_miou(trained_demo, tmp_path):
    checkpoint, root = trained_demo
    bf16 = Predictor.from_checkpoint(checkpoint, backend="openvino", precision="bf16", cache_dir=tmp_path)
    assert bf16.description.startswith("openvino bf16")
    assert Predictor.from_checkpoint(checkpoint, cache_dir=tmp_path).description.startswith("openvino bf16")
    _, changes = _miou_changes(checkpoint, root, {"bf16": bf16})
    assert abs(changes["bf16"]) <= MAX_MIOU_CHANGE


@pytest.mark.skipif(not openvino.available(), reason="OpenVINO is not installed")
def test_int8_is_opt_in_and_its_miou_change_is_small(trained_demo, tmp_path):
    checkpoint, root = trained_demo
    assert "int8" not in Predictor.from_checkpoint(checkpoint, cache_dir=tmp_path).description
    images = dataset_images(root, "train", 16)
    int8 = Predictor.from_checkpoint(checkpoint, backend="openvino", precision="int8", calibration_images=images, cache_dir=tmp_path)
    assert int8.description.startswith("openvino int8")
    base, changes = _miou_changes(checkpoint, root, {"int8": int8})
    print(f"int8: val mIoU {base:.2f} {changes['int8']:+.4f}")
    assert abs(changes["int8"]) <= 2.0, f"int8 val mIoU {changes['int8']:+.2f} points against fp32"
