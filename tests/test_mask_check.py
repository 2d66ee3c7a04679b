"""check_masks: every mask of a labelled split is read before training, and every bad file reported at once."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import REPO, TINY, run_config

from seglite.data import CityscapesDataModule, FolderDataModule, mask_check
from seglite.errors import DataFormatError
from seglite.lit.cli import run

SIZE = (32, 48)


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def write_folder_split(root: Path, split: str, count: int) -> list[Path]:
    """``count`` random images with good masks of 3 classes (255 = ignore); returns the mask paths."""
    generator = np.random.default_rng(len(split))
    masks = []
    for index in range(count):
        write_png(root / split / "images" / f"{index}.png", generator.integers(0, 256, (*SIZE, 3), dtype=np.uint8))
        mask = generator.integers(0, 3, SIZE, dtype=np.uint8)
        mask[0, :4] = 255
        masks.append(root / split / "masks" / f"{index}.png")
        write_png(masks[-1], mask)
    return masks


def spoil(path: Path, value: int, pixels: int, dtype=np.uint8) -> None:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(dtype)
    mask.ravel()[:pixels] = value
    write_png(path, mask)


def folder_module(root: Path, check_masks="auto", **options) -> FolderDataModule:
    return FolderDataModule(root=str(root), num_classes=3, num_workers=0, batch_size=2, crop_size=(32, 32),
                            check_masks=check_masks, **options)


@pytest.fixture()
def private_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SEGLITE_CACHE_DIR", str(cache))
    return cache


def test_every_bad_mask_is_named_at_once_before_training(tmp_path, private_cache):
    masks = write_folder_split(tmp_path, "train", 6)
    write_folder_split(tmp_path, "val", 2)
    spoil(masks[1], 7, 5)
    spoil(masks[4], 300, 2, np.uint16)  # 16 bits: would wrap onto class 44 if narrowed blindly
    masks[5].write_bytes(b"not a png")
    with pytest.raises(DataFormatError) as caught:
        folder_module(tmp_path).setup("fit")
    message = str(caught.value)
    lines = message.splitlines()
    assert lines[0].startswith("check_masks: 3 of the 6 masks of split 'train' are not usable")
    assert f"label map {masks[1]} holds the value(s) 7 (5 pixels) but num_classes is 3" in message
    assert f"label map {masks[4]} holds the value(s) 300 (2 pixels)" in message
    assert f"cannot read label map {masks[5]}" in message
    assert message.count("expected class ids 0..2 or 255 (ignore)") == 2
    assert len(lines) == 4  # the summary, then one line per file


def test_the_fit_command_reports_a_bad_validation_mask_before_the_first_step(tmp_path, private_cache, capsys):
    write_folder_split(tmp_path / "data", "train", 4)
    masks = write_folder_split(tmp_path / "data", "val", 3)
    spoil(masks[0], 9, 1)
    spoil(masks[2], 5, 3)
    code = run(["fit", f"--config={REPO / 'configs/lraspp_mnv3_folder.yaml'}", f"--config={run_config(tmp_path, 'run')}",
                *TINY, f"--data.init_args.root={tmp_path / 'data'}", "--data.init_args.num_classes=3",
                "--trainer.max_steps=4"], prog="train")
    assert code == 2
    error = capsys.readouterr().err
    assert "check_masks: 2 of the 3 masks of split 'val' are not usable" in error
    assert str(masks[0]) in error and str(masks[2]) in error and "Traceback" not in error
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_cityscapes_label_ids_are_checked_too(tmp_path, private_cache):
    from seglite.data.synthetic import make_demo_dataset

    root = make_demo_dataset(tmp_path / "city", num_train=3, num_val=2, num_test=0, size=(32, 64), seed=0, video=False)
    labels = sorted((root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    for label in labels:
        spoil(label, 40, 4)  # label ids stop at 33
    module = CityscapesDataModule(root=str(root), num_workers=0, batch_size=2, crop_size=(32, 32))
    with pytest.raises(DataFormatError, match=r"check_masks: 2 of the 2 masks of split 'val'") as caught:
        module.setup("fit")
    assert all(f"label map {label} holds label ids 40 (4 pixels)" in str(caught.value) for label in labels)


def count_reads(monkeypatch) -> list[int]:
    from seglite.data.folder import FolderDataset

    reads: list[int] = []
    real = FolderDataset.read_mask
    monkeypatch.setattr(FolderDataset, "read_mask", lambda self, index: reads.append(index) or real(self, index))
    return reads


def test_auto_checks_a_large_split_once_and_again_when_a_mask_changes(tmp_path, private_cache, monkeypatch):
    masks = write_folder_split(tmp_path, "train", 4)
    monkeypatch.setattr(mask_check, "AUTO_LIMIT", 3)  # 4 masks: "large"
    reads = count_reads(monkeypatch)
    folder_module(tmp_path, val_split="train").setup("validate")
    assert sorted(reads) == [0, 1, 2, 3]  # never checked: read
    reads.clear()
    folder_module(tmp_path, val_split="train").setup("validate")
    assert reads == []  # checked before, unchanged: skipped
    spoil(masks[2], 8, 1)
    with pytest.raises(DataFormatError) as caught:
        folder_module(tmp_path, val_split="train").setup("validate")  # changed: read again, and refused
    assert str(caught.value) == (
        f"check_masks: 1 of the 4 masks of split 'train' is not usable: label map {masks[2]} holds the value(s) 8 "
        "(1 pixels) but num_classes is 3; expected class ids 0..2 or 255 (ignore)"
    )  # one bad file: one line


def test_a_different_encoding_is_a_new_check(tmp_path, private_cache, monkeypatch):
    write_folder_split(tmp_path, "train", 4)
    monkeypatch.setattr(mask_check, "AUTO_LIMIT", 3)
    folder_module(tmp_path, val_split="train").setup("validate")
    # num_classes 2: value 2 is no longer a class, so the record of the 3-class read does not apply
    with pytest.raises(DataFormatError, match="check_masks: 4 of the 4 masks"):
        FolderDataModule(root=str(tmp_path), num_classes=2, val_split="train", num_workers=0).setup("validate")


def test_small_splits_are_always_checked_and_false_checks_nothing(tmp_path, private_cache, monkeypatch):
    write_folder_split(tmp_path, "train", 3)
    reads = count_reads(monkeypatch)
    for _ in range(2):
        folder_module(tmp_path, val_split="train").setup("validate")
    assert sorted(reads) == [0, 0, 1, 1, 2, 2]
    reads.clear()
    folder_module(tmp_path, check_masks=False, val_split="train").setup("validate")
    assert reads == []
    monkeypatch.setattr(mask_check, "AUTO_LIMIT", 1)
    folder_module(tmp_path, check_masks=True, val_split="train").setup("validate")
    folder_module(tmp_path, check_masks=True, val_split="train").setup("validate")
    assert sorted(reads) == [0, 0, 1, 1, 2, 2]  # true: every time, recorded or not


def test_an_unwritable_cache_only_costs_the_record(tmp_path, monkeypatch):
    write_folder_split(tmp_path, "train", 4)
    cache = tmp_path / "cache"
    cache.write_text("a file where the cache folder should be")
    monkeypatch.setenv("SEGLITE_CACHE_DIR", str(cache))
    monkeypatch.setattr(mask_check, "AUTO_LIMIT", 3)
    reads = count_reads(monkeypatch)
    for _ in range(2):
        folder_module(tmp_path, val_split="train").setup("validate")
    assert len(reads) == 8  # checked both times, no error


def test_check_masks_takes_true_false_or_auto(tmp_path):
    with pytest.raises(ValueError, match="check_masks must be true, false or 'auto', got 'always'"):
        folder_module(tmp_path, check_masks="always")
    assert os.environ.get("SEGLITE_CACHE_DIR")  # the suite's private cache, never ~/.cache
