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
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("test:")]
    assert len(errors) == 1 and errors[0].startswith(f"test: error: cannot write {output / 'cityscapes'}/")
    assert errors[0].endswith(": disk full")
    assert list((output / "cityscapes").iterdir()) == []
    assert not (output / "results.json").exists()


def test_the_old_callback_path_still_resolves_and_pulls_no_lightning_on_import():
    import subprocess
    import sys

    from seglite.inference.evaluation import EvaluationWriter as old

    assert old is EvaluationWriter
    code = "import sys, seglite.inference.evaluation; print('pytorch_lightning' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "False", result.stderr


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
