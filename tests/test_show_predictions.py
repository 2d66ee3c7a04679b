"""tools/show_predictions.py: image | truth | prediction | errors rows for a checkpoint on a split of a config's data."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from seglite.apps import show_predictions
from seglite.data import CITYSCAPES_PALETTE, CityscapesDataset
from seglite.visualization import colorize


@pytest.fixture()
def data_config(tiny_cityscapes, tmp_path) -> Path:
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump({"data": {"class_path": "seglite.data.CityscapesDataModule",
                                             "init_args": {"root": str(tiny_cityscapes), "num_workers": 0}}}))
    return path


def test_rows_show_the_truth_the_prediction_and_the_errors(data_config, tiny_checkpoint, tiny_cityscapes, tmp_path, capsys):
    output = tmp_path / "figure.png"
    argv = [str(data_config), "--checkpoint", str(tiny_checkpoint), "--backend", "torch", "--split", "val",
            "--count", "2", "--output", str(output)]
    assert show_predictions.main(argv) == 0
    figure = cv2.imread(str(output))[..., ::-1]
    val = CityscapesDataset(str(tiny_cityscapes), "val")
    first = val[0]
    height, width = first["mask"].shape
    assert figure.shape[1] == 4 * width + 3 * 6  # four tiles and three gaps
    # the first row's truth tile is the mask in the data set's colours (header 26 px, caption 22 px)
    truth_tile = figure[26 + 22 : 26 + 22 + height, width + 6 : 2 * width + 6]
    assert np.array_equal(truth_tile, colorize(val.read_mask(0), CITYSCAPES_PALETTE))
    printed = capsys.readouterr().out
    assert printed.count("pixel accuracy") == 2 and "torch fp32" in printed
    # never over an existing file without --overwrite; a name not in the split is named
    assert show_predictions.main(argv) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert show_predictions.main([*argv, "--overwrite", "--names", "nothing_here"]) == 2
    assert "--names: no image nothing_here in the split" in capsys.readouterr().err


def test_a_model_of_other_classes_than_the_data_is_refused(tiny_checkpoint, tmp_path, capsys):
    root = tmp_path / "two"
    for split in ("train", "val"):
        for folder in ("images", "masks"):
            (root / split / folder).mkdir(parents=True)
        cv2.imwrite(str(root / split / "images" / "a.png"), np.zeros((32, 64, 3), np.uint8))
        cv2.imwrite(str(root / split / "masks" / "a.png"), np.zeros((32, 64), np.uint8))
    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump({"data": {"class_path": "seglite.data.FolderDataModule",
                                               "init_args": {"root": str(root), "num_classes": 2, "num_workers": 0}}}))
    code = show_predictions.main([str(config), "--checkpoint", str(tiny_checkpoint), "--backend", "torch",
                                  "--output", str(tmp_path / "f.png")])
    assert code == 2
    assert "the model predicts 19 classes but the data of" in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists()
