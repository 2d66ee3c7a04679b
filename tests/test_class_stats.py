"""tools/class_stats.py: a folder data set's class counts per split, read through the data: section of training configs."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from seglite.apps import class_stats

# 2x3 masks of the 3 classes a, b, c; c never occurs in train
TRAIN = {"x": [[0, 0, 1], [1, 255, 0]], "y": [[0, 1, 1], [1, 1, 1]]}
VAL = {"z": [[2, 2, 0], [255, 255, 255]]}


def write_split(root: Path, split: str, masks: dict | None, names: list[str] | None = None) -> None:
    (root / split / "images").mkdir(parents=True)
    for name in masks or names:
        assert cv2.imwrite(str(root / split / "images" / f"{name}.png"), np.zeros((2, 3, 3), np.uint8))
    if masks is not None:
        (root / split / "masks").mkdir()
        for name, mask in masks.items():
            assert cv2.imwrite(str(root / split / "masks" / f"{name}.png"), np.asarray(mask, np.uint8))


@pytest.fixture()
def folder_data(tmp_path) -> Path:
    """root/{train,val,test}; test has no masks. Two configs: the second sets the root the first lacks."""
    root = tmp_path / "data"
    write_split(root, "train", TRAIN)
    write_split(root, "val", VAL)
    write_split(root, "test", None, ["t1", "t2"])
    data = {"class_path": "seglite.data.FolderDataModule",
            "init_args": {"root": str(tmp_path / "elsewhere"), "num_classes": 3, "class_names": ["a", "b", "c"], "num_workers": 0}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"trainer": {"max_steps": 1}, "model": {"lr": 0.1}, "data": data}))
    (tmp_path / "here.yaml").write_text(yaml.safe_dump({"data": {"init_args": {"root": str(root), "test_split": "test"}}}))
    return tmp_path


def configs(folder: Path) -> list[str]:
    return [str(folder / "base.yaml"), str(folder / "here.yaml")]


def test_counts_per_split_and_the_weights(folder_data, capsys):
    assert class_stats.main([*configs(folder_data), "--weights", "enet", "median_frequency"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"FolderDataModule at {folder_data / 'data'}: 3 classes")
    # train: a 3 + 0, b 2 + 5, c 0; 11 labelled pixels of 12, 1 ignored
    assert "## train: 2 images; 11 labelled pixels, 1 ignored (8.33% of 12)" in out
    enet = [1 / math.log(1.02 + 4 / 11), 1 / math.log(1.02 + 7 / 11)]
    median = (4 / 11 + 7 / 11) / 2  # a and b are in both images: freq = pixels / 11
    assert f"| a | 4 | 36.36 | 2 | {enet[0]:.4f} | {median / (4 / 11):.4f} |" in out
    assert f"| b | 7 | 63.64 | 2 | {enet[1]:.4f} | {median / (7 / 11):.4f} |" in out
    assert "| c | 0 | 0.00 | 0 | 0.0000 | 0.0000 |" in out
    assert "absent from train: c (weight 0)" in out
    assert "## val: 1 images; 3 labelled pixels, 3 ignored (50.00% of 6)" in out
    assert "## test: 2 images, 2 without labels; no labelled pixel" in out


def test_splits_and_data_arguments_choose_what_is_counted(folder_data, capsys):
    code = class_stats.main([str(folder_data / "base.yaml"), f"--data.root={folder_data / 'data'}", "--splits", "val"])
    assert code == 0
    out = capsys.readouterr().out
    assert "## val" in out and "## train" not in out and "weight" not in out
    assert "| c | 2 | 66.67 | 1 |" in out


@pytest.mark.parametrize("problem", ["missing config", "no data section", "bad value", "missing data", "missing split"])
def test_errors_are_one_line_naming_the_file_or_argument(folder_data, capsys, problem):
    other = folder_data / "other.yaml"
    other.write_text(yaml.safe_dump({"trainer": {"max_steps": 1}}))
    argv, named = {
        "missing config": ([str(folder_data / "nope.yaml")], str(folder_data / "nope.yaml")),
        "no data section": ([str(other)], f"{other}: no data: section with a class_path"),
        "bad value": ([*configs(folder_data), "--data.init_args.num_classes=0"], "num_classes must be an integer from 1 to 255"),
        "missing data": ([str(folder_data / "base.yaml")], str(folder_data / "elsewhere")),
        "missing split": ([*configs(folder_data), "--splits", "extra"], str(folder_data / "data" / "extra")),
    }[problem]
    assert class_stats.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("class_stats.py: error: ") and named in err
    assert "Traceback" not in err


def test_unknown_options_are_refused(folder_data, capsys):
    with pytest.raises(SystemExit) as stop:
        class_stats.main([*configs(folder_data), "--trainer.max_steps=3"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --trainer.max_steps=3" in capsys.readouterr().err
