"""Evaluation results against an independent numpy computation; tools/test.py end to end."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from seglite.data import CITYSCAPES_CLASSES, CityscapesDataModule
from seglite.errors import SegliteError
from seglite.files import OutputManifest
from seglite.lit.evaluation import EvaluationWriter
from seglite.lit.task import SegmentationTask
from seglite.results import (
    check_results_writable,
    confusion_image,
    write_cityscapes_prediction,
)

ROOT = Path(__file__).resolve().parents[1]

# The official table (cityscapesscripts/helpers/labels.py): label id -> train id of the 19 classes.
OFFICIAL_TRAIN_IDS = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip


def to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    train_ids = np.full(label_ids.shape, 255, dtype=np.int64)
    for label_id, train_id in OFFICIAL_TRAIN_IDS.items():
        train_ids[label_ids == label_id] = train_id
    return train_ids


def numpy_scores(pairs: list[tuple[np.ndarray, np.ndarray]], num_classes: int = 19) -> tuple[list[float], float]:
    """Per-class IoU over all pixels of all images (ignore 255 excluded) and pixel accuracy."""
    intersection, union = np.zeros(num_classes), np.zeros(num_classes)
    correct = labelled = 0
    for truth, prediction in pairs:
        valid = truth != 255
        truth, prediction = truth[valid], prediction[valid]
        for index in range(num_classes):
            intersection[index] += np.sum((truth == index) & (prediction == index))
            union[index] += np.sum((truth == index) | (prediction == index))
        correct += np.sum(truth == prediction)
        labelled += truth.size
    iou = [i / u if u > 0 else float("nan") for i, u in zip(intersection, union)]
    return iou, correct / labelled


def data_module(root: Path) -> CityscapesDataModule:
    return CityscapesDataModule(str(root), val_batch_size=2, num_workers=0, pin_memory=False, persistent_workers=False)


class PixelColourModel(nn.Module):
    """A fixed random 1x1 convolution: each pixel's class from its colour, so predictions span several classes."""

    num_classes = 19

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.conv = nn.Conv2d(3, self.num_classes, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator))
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=generator))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(images)


def quiet_trainer(callbacks: list[pl.Callback]) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
    )  # fmt: skip


def test_results_match_numpy_and_the_official_label_table(tiny_cityscapes, tmp_path):
    output = tmp_path / "results"
    task = SegmentationTask(PixelColourModel(), class_names=list(CITYSCAPES_CLASSES), log_images=0)
    quiet_trainer([EvaluationWriter(str(output), export_cityscapes=True, settings={"split": "val"})]).test(
        task, datamodule=data_module(tiny_cityscapes)
    )

    # every val image has a prediction named as the benchmark expects, holding label ids at full size
    truths = sorted((tiny_cityscapes / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    names = [path.name.replace("_gtFine_labelIds.png", "_leftImg8bit.png") for path in truths]
    assert sorted(path.name for path in (output / "cityscapes").iterdir()) == names
    pairs = []
    for truth_path, name in zip(truths, names):
        truth = cv2.imread(str(truth_path), cv2.IMREAD_UNCHANGED)
        prediction = cv2.imread(str(output / "cityscapes" / name), cv2.IMREAD_UNCHANGED)
        assert prediction.dtype == np.uint8 and prediction.shape == truth.shape
        assert set(np.unique(prediction)) <= set(OFFICIAL_TRAIN_IDS)
        pairs.append((to_train_ids(truth), to_train_ids(prediction)))
    assert len(np.unique(np.concatenate([p.ravel() for _, p in pairs]))) >= 3, "too few classes to be a test"

    iou, pixel_accuracy = numpy_scores(pairs)
    results = json.loads((output / "results.json").read_text())
    assert results["split"] == "val"
    assert [entry["name"] for entry in results["classes"]] == list(CITYSCAPES_CLASSES)
    written = [np.nan if entry["iou"] is None else entry["iou"] for entry in results["classes"]]
    np.testing.assert_allclose(written, iou, rtol=1e-6, equal_nan=True)
    assert results["miou"] == pytest.approx(np.nanmean(iou), rel=1e-6)
    assert results["pixel_accuracy"] == pytest.approx(pixel_accuracy, rel=1e-6)

    with (output / "per_class_iou.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["name"] for row in rows] == [*CITYSCAPES_CLASSES, "mean"]
    csv_iou = [float(row["iou"]) if row["iou"] else np.nan for row in rows[:-1]]
    np.testing.assert_allclose(csv_iou, iou, rtol=1e-6, equal_nan=True)
    assert float(rows[-1]["iou"]) == pytest.approx(np.nanmean(iou), rel=1e-6)

    image = cv2.imread(str(output / "confusion_matrix.png"))
    assert image is not None and image.shape[0] > 19 * 20 and image.shape[1] > 19 * 20


def test_cityscapes_prediction_is_enlarged_to_the_image_and_mapped_to_label_ids(tmp_path):
    image_path = tmp_path / "aachen_000001_000019_leftImg8bit.png"
    cv2.imwrite(str(image_path), np.zeros((8, 12, 3), np.uint8))
    train_ids = np.array([[0, 18, 255], [13, 13, 10]], dtype=np.uint8)  # a prediction at a reduced size
    folder = tmp_path / "predictions"
    folder.mkdir()
    assert write_cityscapes_prediction(train_ids, image_path, folder) == folder / image_path.name
    path = folder / image_path.name
    written = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert written.shape == (8, 12)
    expected = np.array([[7, 33, 0], [26, 26, 23]], dtype=np.uint8).repeat(4, axis=0).repeat(4, axis=1)
    np.testing.assert_array_equal(written, expected)


def test_confusion_image_has_room_for_the_names():
    names = ["road", "a much longer class name", "sky"]
    image = confusion_image(np.array([[5, 1, 0], [0, 0, 0], [2, 2, 9]]), names)
    assert image.dtype == np.uint8 and image.ndim == 3
    width = cv2.getTextSize(names[1], cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0]
    assert image.shape[0] > 3 * 34 + width and image.shape[1] > 3 * 34 + width
    with pytest.raises(ValueError, match="class_names"):
        confusion_image(np.eye(3), names[:2])


def test_existing_results_are_kept_without_overwrite_and_foreign_files_even_with_it(tmp_path):
    check_results_writable(tmp_path, cityscapes=True)
    table = tmp_path / "per_class_iou.csv"
    table.write_text("old")
    with pytest.raises(SegliteError, match="pass --overwrite"):
        check_results_writable(tmp_path)
    with pytest.raises(SegliteError, match="per_class_iou.csv exist but were not written by seglite"):
        check_results_writable(tmp_path, overwrite=True)  # not in the manifest: the user's file
    OutputManifest(tmp_path).claim([table])
    check_results_writable(tmp_path, overwrite=True)


CONFIG = """\
seed_everything: 0
trainer:
  accelerator: cpu
  devices: 1
  logger: false
  enable_checkpointing: false
  enable_progress_bar: false
  enable_model_summary: false
  max_steps: 1
  limit_val_batches: 0
  num_sanity_val_steps: 0
model:
  model:
    class_path: seglite.models.LRASPP
    init_args:
      backbone:
        class_path: seglite.models.backbones.MobileNetV3
        init_args: {{variant: small, width_mult: 0.5, output_stride: 16, reduced_tail: true}}
  log_images: 0
data:
  class_path: seglite.data.CityscapesDataModule
  init_args:
    root: {root}
    batch_size: 2
    val_batch_size: 2
    num_workers: 0
    crop_size: [64, 64]
    pin_memory: false
    persistent_workers: false
"""


def test_tool_writes_results_once_and_cityscapes_files(tiny_cityscapes, tmp_path, monkeypatch, capsys):
    from seglite.lit.cli import run_cli

    monkeypatch.chdir(tmp_path)  # Lightning's saved config.yaml of the training run lands here
    config = tmp_path / "tiny.yaml"
    config.write_text(CONFIG.format(root=tiny_cityscapes))
    checkpoint = tmp_path / "tiny.ckpt"
    run_cli(["fit", "--config", str(config)]).trainer.save_checkpoint(checkpoint)

    from seglite.apps import test as tool
    output = tmp_path / "eval"
    argv = [str(config), str(checkpoint), "--output", str(output), "--format", "cityscapes"]
    argv += ["--mode", "slide", "--crop-size", "48", "48", "--stride", "32", "32", "--flip", "--scales", "0.5", "1.0"]
    assert tool.main(argv) == 0
    results = json.loads((output / "results.json").read_text())
    assert results["checkpoint"] == str(checkpoint) and results["split"] == "val"
    assert results["inference"] == {"mode": "slide", "crop_size": [48, 48], "stride": [32, 32], "flip": True, "scales": [0.5, 1.0]}
    assert len(list((output / "cityscapes").glob("*_leftImg8bit.png"))) == 4
    assert (output / "config.yaml").is_file()
    assert "val mIoU" in capsys.readouterr().out

    before = (output / "results.json").read_text()
    assert tool.main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (output / "results.json").read_text() == before
    assert tool.main([*argv, "--overwrite"]) == 0


# ----------------------------------------------------------------------------- the output folder

DATA_CONFIG = """\
data:
  class_path: seglite.data.CityscapesDataModule
  init_args: {{root: {root}, val_batch_size: 2, num_workers: 0, pin_memory: false, persistent_workers: false}}
trainer: {{accelerator: cpu, devices: 1, enable_progress_bar: false, enable_model_summary: false}}
"""


@pytest.fixture()
def evaluate(tiny_cityscapes, tiny_checkpoint, tmp_path):
    """``evaluate(output, *options)``: tools/test.py on the tiny checkpoint; returns its exit code."""
    from helpers import MODEL_CONFIG

    from seglite.apps import test as tool

    config = tmp_path / "data.yaml"
    config.write_text(DATA_CONFIG.format(root=tiny_cityscapes))
    return lambda output, *options: tool.main([str(MODEL_CONFIG), str(config), str(tiny_checkpoint), "--output", str(output), *options])


def test_overwrite_deletes_only_what_seglite_wrote(evaluate, tmp_path, capsys):
    output = tmp_path / "eval"
    assert evaluate(output, "--format", "cityscapes") == 0
    predictions = output / "cityscapes"
    stale = predictions / "gone_000000_000019_leftImg8bit.png"  # a prediction of ours for an image no longer there
    OutputManifest(output).claim([stale])
    stale.write_bytes(b"old prediction")
    assert evaluate(output, "--format", "cityscapes", "--overwrite") == 0
    assert not stale.exists() and len(list(predictions.glob("*.png"))) == 4

    foreign = predictions / "mine_leftImg8bit.png"  # the user's: kept, and the run refuses to mix with it
    foreign.write_bytes(b"user's file")
    before = (output / "results.json").read_text()
    assert evaluate(output, "--format", "cityscapes", "--overwrite") == 2
    error = capsys.readouterr().err
    assert f"{foreign} exist but were not written by seglite" in error
    assert foreign.read_bytes() == b"user's file" and (output / "results.json").read_text() == before


def test_overwrite_never_deletes_through_a_symlinked_cityscapes_folder(evaluate, tmp_path, capsys):
    output, elsewhere = tmp_path / "eval", tmp_path / "elsewhere"
    elsewhere.mkdir()
    precious = elsewhere / "aachen_000000_000019_leftImg8bit.png"
    precious.write_bytes(b"someone's prediction")
    output.mkdir()
    (output / "cityscapes").symlink_to(elsewhere, target_is_directory=True)
    assert evaluate(output, "--format", "cityscapes", "--overwrite") == 2
    assert f"Cityscapes folder {output / 'cityscapes'} is a symbolic link" in capsys.readouterr().err
    assert precious.read_bytes() == b"someone's prediction"


def test_a_read_only_results_folder_is_one_line(evaluate, mount_tmpfs, capsys):
    output = mount_tmpfs(64, read_only=True) / "eval"
    assert evaluate(output) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("test:")]
    assert errors == [f"test: error: cannot create output folder {output}: read-only file system"]


def test_a_full_disk_while_writing_predictions_is_one_line(evaluate, tmp_path, monkeypatch, capsys):
    import errno
    import os
    import pathlib

    real = pathlib.Path.write_bytes

    def write_bytes(self, data):
        if "_leftImg8bit.png." in self.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
    output = tmp_path / "eval"
    assert evaluate(output, "--format", "cityscapes") == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("test: error")]
    # the file named is the one that could not be written, in the run's staging folder inside the output folder
    assert len(errors) == 1 and errors[0].startswith(f"test: error: cannot write {output}/") and "/cityscapes/" in errors[0]
    assert errors[0].endswith(": disk full")
    assert not output.exists()  # the folder the run made goes with the partial results


def test_a_result_file_hard_linked_to_an_input_is_never_written(evaluate, tmp_path, capsys):
    output = tmp_path / "eval"
    output.mkdir()
    config = tmp_path / "data.yaml"  # the evaluation's own input
    before = config.read_text()
    os.link(config, output / "results.json")
    for options in ((), ("--overwrite",)):
        assert evaluate(output, *options) == 2
        assert str(output / "results.json") in capsys.readouterr().err
    assert config.read_text() == before


# ----------------------------------------------------------------------------- what is evaluated, and how


def test_windows_that_would_skip_pixels_are_refused_before_the_model_loads(evaluate, tmp_path, monkeypatch, capsys):
    import seglite.lit.cli

    monkeypatch.setattr(seglite.lit.cli, "run", lambda *args, **kwargs: pytest.fail("the evaluation started"))
    output = tmp_path / "eval"
    # the task's default stride (768) with a small crop: pixels between windows got NaN, then class 0
    assert evaluate(output, "--mode", "slide", "--crop-size", "128", "128") == 2
    assert capsys.readouterr().err == (
        "test: error: sliding-window stride 768 768 (the default of model.eval_stride) is larger than the crop size "
        "128 128 (--crop-size): the pixels between windows would get no prediction; pass --stride H W no larger "
        "than the crop size on each axis\n"
    )
    assert evaluate(output, "--mode", "slide", "--crop-size", "64", "64", "--stride", "32", "65") == 2
    error = capsys.readouterr().err
    assert "stride 32 65 (--stride) is larger than the crop size 64 64 (--crop-size)" in error and error.count("\n") == 1
    assert evaluate(output, "--mode", "slide", "--model.eval_stride=[40, 40]", "--model.eval_crop_size", "[32, 64]") == 2
    assert "stride 40 40 (model.eval_stride) is larger than the crop size 32 64 (model.eval_crop_size)" in capsys.readouterr().err
    assert not output.exists()


def test_window_options_without_sliding_inference_are_an_error(evaluate, tmp_path, monkeypatch, capsys):
    import argparse

    import seglite.lit.cli
    from seglite.apps import test as tool

    monkeypatch.setattr(seglite.lit.cli, "run", lambda *args, **kwargs: pytest.fail("the evaluation started"))
    output = tmp_path / "eval"
    assert evaluate(output, "--crop-size", "48", "48") == 2
    assert capsys.readouterr().err == (
        "test: error: --crop-size sets the sliding windows and needs --mode slide "
        "(model.eval_mode is 'whole', which would ignore them)\n"
    )
    assert evaluate(output, "--crop-size", "48", "48", "--stride", "32", "32", "--mode", "whole") == 2
    assert "--crop-size and --stride set the sliding windows and need --mode slide (--mode is 'whole'" in capsys.readouterr().err
    assert not output.exists()
    # a config that slides already: the options are used, nothing to refuse
    args = argparse.Namespace(mode=None, crop_size=[48, 48], stride=[32, 32])
    tool.check_inference_options(args, {"eval_mode": "slide"})


class CapturedRun:
    """Stands in for ``seglite.lit.cli.run``: runs it, keeping the CLI object for the test to inspect."""

    def __init__(self) -> None:
        import seglite.lit.cli

        self.real = seglite.lit.cli.run
        self.cli = None

    def __call__(self, args, prog="seglite", on_success=None):
        def keep(cli) -> None:
            self.cli = cli
            if on_success is not None:
                on_success(cli)

        return self.real(args, prog=prog, on_success=keep)


def test_evaluation_is_fp32_whatever_the_training_precision_unless_asked(evaluate, tmp_path, monkeypatch):
    from helpers import MODEL_CONFIG

    import seglite.lit.cli
    from seglite.apps.configs import read_config

    assert read_config(MODEL_CONFIG)["trainer"]["precision"] == "bf16-mixed"  # what training used
    captured = CapturedRun()
    monkeypatch.setattr(seglite.lit.cli, "run", captured)
    assert evaluate(tmp_path / "fp32") == 0
    assert captured.cli.trainer.precision == "32-true"
    assert evaluate(tmp_path / "bf16", "--trainer.precision", "bf16-mixed") == 0  # an explicit choice wins
    assert captured.cli.trainer.precision == "bf16-mixed"


def test_the_scores_are_titled_with_the_split_and_the_checkpoint_step(evaluate, tiny_checkpoint, tmp_path, caplog):
    import logging

    import lightning_utilities.core.rank_zero as rank_zero
    from helpers import saved_step

    step = saved_step(tiny_checkpoint)
    assert step > 0
    with caplog.at_level(logging.INFO, logger=rank_zero.log.name):  # the logger of rank_zero_info
        assert evaluate(tmp_path / "eval") == 0
    headings = [record.getMessage().splitlines()[1] for record in caplog.records if " results (" in record.getMessage()]
    assert headings == [f"val results (checkpoint step {step}):"]
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["checkpoint_step"] == step and results["split"] == "val"


def test_a_config_of_another_model_is_named_and_the_checkpoints_model_recorded(
    tiny_cityscapes, tiny_checkpoint, tmp_path, capsys
):
    from seglite.apps import test as tool

    data = tmp_path / "data.yaml"
    data.write_text(DATA_CONFIG.format(root=tiny_cityscapes))
    output = tmp_path / "eval"
    mobilenet_v2 = ROOT / "configs" / "lraspp_mnv2.yaml"
    assert tool.main([str(mobilenet_v2), str(data), str(tiny_checkpoint), "--output", str(output)]) == 0
    notices = [line for line in capsys.readouterr().err.splitlines() if line.startswith("test:")]
    assert len(notices) == 1, notices
    notice = (f"test: evaluating the checkpoint's own model, not the configs': {tiny_checkpoint} holds "
              "the preset lraspp_mobilenet_v3_small")
    assert notices[0].startswith(notice)
    differs = "name: 'lraspp_mobilenet_v3_small' in the checkpoint, 'lraspp_mobilenet_v2' in the configs"
    assert differs in notices[0]

    held = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)["hyper_parameters"]["model"]
    assert held["init_args"]["name"] == "lraspp_mobilenet_v3_small"
    results = json.loads((output / "results.json").read_text())
    assert results["configs"] == [str(mobilenet_v2), str(data)]
    assert results["model"].startswith("the preset lraspp_mobilenet_v3_small for 19 classes")
    assert differs in results["model_differs_from_configs"]


def test_model_differences_compare_only_what_the_configs_state():
    from seglite.apps.test import model_differences

    held = {"class_path": "seglite.models.heads.LRASPP", "init_args": {"num_classes": 19, "pool_stride": [4, 5],
            "backbone": {"class_path": "seglite.models.backbones.MobileNetV3", "init_args": {"variant": "small", "width_mult": 0.25}}}}
    same = {"class_path": "seglite.models.LRASPP", "init_args": {"pool_stride": (4, 5), "backbone": {"init_args": {"variant": "small"}}}}
    assert model_differences(same, held) == []
    other = {"class_path": "seglite.models.LRASPP", "init_args": {"backbone": {"init_args": {"variant": "large", "width_mult": 1.0}}}}
    assert model_differences(other, held) == [
        "backbone.variant: 'small' in the checkpoint, 'large' in the configs",
        "backbone.width_mult: 0.25 in the checkpoint, 1.0 in the configs",
    ]
    another_head = {"class_path": "seglite.models.DeepLabV3"}
    assert model_differences(another_head, held) == ["model: LRASPP in the checkpoint, DeepLabV3 in the configs"]


def test_a_preset_and_the_classes_it_names_are_the_same_model():
    """Checkpoints of seglite 0.2 record the class tree; configs now name the preset: not a difference."""
    from seglite.apps.test import model_differences

    class_tree = {"class_path": "seglite.models.LRASPP", "init_args": {
        "num_classes": 19, "inner_channels": 128, "pool_kernel": [49, 49], "pool_stride": [4, 5], "pool_fallback": "clamp",
        "gate_activation": "hardsigmoid", "gate_bias": True, "low_feature": "layer2_depthwise", "aux": False,
        "backbone": {"class_path": "seglite.models.backbones.MobileNetV3", "init_args": {
            "variant": "large", "output_stride": 16, "reduced_tail": True, "tail_reduction": "all", "dilation_rule": "deeplab"}}}}
    preset = {"class_path": "seglite.models.Preset", "init_args": {"name": "lraspp_mobilenet_v3_large", "num_classes": 19}}
    assert model_differences(preset, class_tree) == []
    small = {"class_path": "seglite.models.Preset", "init_args": {"name": "lraspp_mobilenet_v3_small", "num_classes": 19}}
    assert model_differences(small, class_tree) == ["model: LRASPP in the checkpoint, Preset in the configs"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not a YAML file (binary data, not text); expected a YAML config"),
        (b"trainer:\n  devices: [1, 2\n", "is not valid YAML (line 3): expected ',' or ']'"),
        (b"- just\n- a list\n", "holds a YAML list, not sections (trainer:, model:, data:); expected a YAML config"),
    ],
)
def test_a_config_that_is_not_yaml_is_one_line(content, expected, tiny_checkpoint, tmp_path, capsys):
    from seglite.apps import test as tool

    config = tmp_path / "street.png"
    config.write_bytes(content)
    output = tmp_path / "eval"
    assert tool.main([str(config), str(tiny_checkpoint), "--output", str(output)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"test: error: config {config} {expected}") and error.count("\n") == 1, error
    assert not output.exists()


def test_a_real_image_as_config_exits_2_without_a_traceback(tiny_cityscapes, tiny_checkpoint, tmp_path):
    from helpers import run_tool

    image = sorted((tiny_cityscapes / "leftImg8bit" / "val").glob("*/*.png"))[0]
    result = run_tool("tools/test.py", str(image), str(tiny_checkpoint), "--output", str(tmp_path / "eval"), timeout=120)
    assert result.returncode == 2, result.stderr
    expected = "is not a YAML file (binary data, not text); expected a YAML config such as configs/lraspp_mnv3.yaml"
    assert result.stderr == f"test: error: config {image} {expected}\n"


class InterruptAfterFirstBatch(pl.Callback):
    """Ctrl-C as a terminal sends it, to the whole process group (loader workers too), once the first batch is written."""

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        import signal

        if batch_idx == 0:
            os.killpg(os.getpgid(0), signal.SIGINT)


def test_ctrl_c_stops_with_one_line_code_130_and_no_partial_results(tiny_cityscapes, tiny_checkpoint, tmp_path):
    import signal
    import subprocess
    import sys

    from helpers import MODEL_CONFIG

    data = tmp_path / "data.yaml"
    data.write_text(DATA_CONFIG.format(root=tiny_cityscapes))
    output = tmp_path / "eval"
    command = [sys.executable, "tools/test.py", str(MODEL_CONFIG), str(data), str(tiny_checkpoint), "--output", str(output),
               "--format", "cityscapes", "--data.init_args.num_workers=1", "--data.init_args.persistent_workers=false",
               f"--trainer.callbacks+={__name__}.InterruptAfterFirstBatch"]
    tests = str(Path(__file__).parent)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    # its own process group, for the callback's signal; Ctrl-C not ignored even if this run's is (a background job)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, start_new_session=True,
                            env=environment, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    assert "test: error" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("test: interrupted")]
    assert lines == ["test: interrupted; no results written (the partial ones were discarded)"], result.stderr
    assert not output.exists()  # the first batch's predictions are gone, with the folder the run made


@pytest.mark.parametrize("started_with", ["default_int_handler", "SIG_IGN"], ids=["foreground", "background"])
def test_ctrl_c_before_the_run_writes_nothing(started_with, evaluate, tmp_path, monkeypatch, capsys):
    """Whatever Ctrl-C handling the process started with (a background job's is SIG_IGN), the tool
    handles Ctrl-C during its run only where it is not ignored, and gives back what it found."""
    import signal

    from seglite.apps import test as tool

    found = getattr(signal, started_with)
    during = []

    def interrupted(*args):
        during.append(signal.getsignal(signal.SIGINT))
        raise KeyboardInterrupt

    monkeypatch.setattr(tool, "describe_evaluated_model", interrupted)
    previous = signal.signal(signal.SIGINT, found)
    try:
        output = tmp_path / "eval"
        assert evaluate(output) == 130
        assert capsys.readouterr().err == "test: interrupted; no results written\n"
        assert not output.exists()
        assert during == [found if found is signal.SIG_IGN else tool._on_sigint]  # an ignored Ctrl-C stays ignored
        assert signal.getsignal(signal.SIGINT) is found  # the tool's handler is gone
    finally:
        signal.signal(signal.SIGINT, previous)


# ----------------------------------------------------------------------------- replaced only on success
def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, hidden ones included, with its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


class RaiseSigint(pl.Callback):
    """Ctrl-C, as the terminal delivers it to this process, once the first batch is done."""

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        import signal

        if batch_idx == 0:
            signal.raise_signal(signal.SIGINT)


def test_a_failed_overwrite_keeps_the_previous_results(tiny_cityscapes, tiny_checkpoint, tmp_path, capsys):
    import shutil

    from helpers import MODEL_CONFIG

    from seglite.apps import test as tool

    data = shutil.copytree(tiny_cityscapes, tmp_path / "data")
    config = tmp_path / "data.yaml"
    config.write_text(DATA_CONFIG.format(root=data))
    output = tmp_path / "eval"
    evaluate = lambda *options: tool.main([str(MODEL_CONFIG), str(config), str(tiny_checkpoint), "--output", str(output),  # noqa: E731
                                           "--format", "cityscapes", *options])
    assert evaluate() == 0
    before = folder_bytes(output)
    assert {"results.json", "per_class_iou.csv", "confusion_matrix.png", "config.yaml"} <= set(before)
    capsys.readouterr()

    images = sorted((data / "leftImg8bit" / "val").glob("*/*.png"))
    images[-1].write_bytes(b"not a png")  # the run fails on its last batch, after predictions were written
    assert evaluate("--overwrite") == 2
    assert images[-1].name in capsys.readouterr().err
    assert folder_bytes(output) == before  # results, predictions, config and manifest untouched; nothing staged left

    assert evaluate("--overwrite", f"--trainer.callbacks+={__name__}.RaiseSigint") == 130
    message = [line for line in capsys.readouterr().err.splitlines() if line.startswith("test: interrupted")]
    assert message == [f"test: interrupted; no results written (the partial ones were discarded); the earlier results in "
                       f"{output} are kept as they were: results.json, per_class_iou.csv, confusion_matrix.png, config.yaml, "
                       "cityscapes"]
    assert folder_bytes(output) == before


def test_the_last_line_names_the_split_evaluated(evaluate, tmp_path, capsys):
    # the tiny data set's test split is unlabelled, as Cityscapes' is: its train split has labels
    assert evaluate(tmp_path / "eval", "--data.init_args.test_split", "train") == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("train mIoU: ")
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["split"] == "train"
    with pytest.raises(SystemExit) as stop:
        evaluate(tmp_path / "other", "--split", "val", "--data.init_args.test_split=test")
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "error: --split val and --data.init_args.test_split test disagree: give one of them")
