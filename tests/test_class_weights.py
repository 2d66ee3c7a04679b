"""Class weights from the training labels (ENet, SegNet median frequency): the counting, the formulas, the
loss using them, and the task computing them once and keeping them in the checkpoint."""

from __future__ import annotations

import logging
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from lightning_utilities.core import rank_zero
from torch import nn
from torch.utils.data import DataLoader, Dataset

from seglite.data.statistics import ClassCounts, class_table, class_weights, count_class_pixels
from seglite.errors import ConfigurationError, DataFormatError
from seglite.lit.losses import SegmentationLoss
from seglite.lit.task import CLASS_WEIGHTS_KEY, SegmentationTask

# two labelled images and an unlabelled one; class 3 never occurs
MASKS = [
    [[0, 0, 1], [1, 255, 0]],
    [[0, 2], [2, 2]],
    None,
]


class FakeMasks:
    """The counting's interface of a data set: ``__len__`` and ``read_mask``."""

    def __init__(self, masks: list) -> None:
        self.masks = masks

    def __len__(self) -> int:
        return len(self.masks)

    def read_mask(self, index: int) -> np.ndarray | None:
        mask = self.masks[index]
        return None if mask is None else np.asarray(mask, np.uint8)


def reference_counts(masks: list, num_classes: int) -> dict:
    """The counts by plain Python loops over the pixels."""
    pixels, image_pixels, images = [0] * num_classes, [0] * num_classes, [0] * num_classes
    ignored = total = 0
    for mask in masks:
        if mask is None:
            continue
        values = [int(value) for row in mask for value in row]
        labelled = sum(1 for value in values if value != 255)
        ignored += len(values) - labelled
        total += len(values)
        for cls in range(num_classes):
            count = sum(1 for value in values if value == cls)
            pixels[cls] += count
            if count:
                image_pixels[cls] += labelled
                images[cls] += 1
    return {"pixels": pixels, "image_pixels": image_pixels, "images": images, "ignored": ignored, "total": total}


def reference_weights(reference: dict, method: str) -> list[float]:
    labelled = sum(reference["pixels"])
    present = [cls for cls, count in enumerate(reference["pixels"]) if count]
    if method == "enet":
        return [1 / math.log(1.02 + count / labelled) if count else 0.0 for count in reference["pixels"]]
    frequency = {cls: reference["pixels"][cls] / reference["image_pixels"][cls] for cls in present}
    median = statistics.median(frequency.values())
    return [median / frequency[cls] if cls in frequency else 0.0 for cls in range(len(reference["pixels"]))]


# ----------------------------------------------------------------------------- counting and formulas
def test_counts_and_weights_of_known_masks():
    counts = count_class_pixels(FakeMasks(MASKS), num_classes=4)
    assert counts.pixels.tolist() == [4, 2, 3, 0]
    assert counts.image_pixels.tolist() == [9, 5, 4, 0]  # labelled pixels of the images holding the class
    assert counts.images.tolist() == [2, 1, 1, 0]
    assert (counts.ignored, counts.total, counts.num_images, counts.unlabelled_images) == (1, 10, 3, 1)
    assert counts.labelled == 9 and counts.absent == [3]

    # ENet: 1 / ln(1.02 + p), p over the 9 labelled pixels
    enet = [1 / math.log(1.02 + 4 / 9), 1 / math.log(1.02 + 2 / 9), 1 / math.log(1.02 + 3 / 9), 0.0]
    np.testing.assert_allclose(class_weights(counts, "enet"), enet, rtol=1e-12)
    # SegNet: freq = 4/9, 2/5, 3/4; median 4/9
    np.testing.assert_allclose(class_weights(counts, "median_frequency"), [1.0, 10 / 9, 16 / 27, 0.0], rtol=1e-12)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_counts_and_weights_equal_plain_loops_on_random_masks(num_workers):
    generator = np.random.default_rng(0)
    masks = []
    for index in range(7):
        height, width = generator.integers(3, 9, size=2)
        mask = generator.choice([0, 1, 2, 4, 255], size=(height, width), p=[0.5, 0.2, 0.1, 0.1, 0.1])
        if index == 3:
            mask[:] = 255  # labelled, but entirely ignored
        masks.append(None if index == 5 else mask.tolist())
    reference = reference_counts(masks, num_classes=5)
    counts = count_class_pixels(FakeMasks(masks), num_classes=5, num_workers=num_workers)
    for name in ("pixels", "image_pixels", "images"):
        assert getattr(counts, name).tolist() == reference[name], name
    assert (counts.ignored, counts.total, counts.num_images, counts.unlabelled_images) == (
        reference["ignored"], reference["total"], 7, 1
    )
    assert counts.absent == [3]
    for method in ("enet", "median_frequency"):
        np.testing.assert_allclose(class_weights(counts, method), reference_weights(reference, method), rtol=1e-12)


def test_mask_values_beyond_the_classes_and_no_labels_are_errors():
    with pytest.raises(DataFormatError, match=r"mask 0 .* class id 7, but num_classes is 4"):
        count_class_pixels(FakeMasks([[[0, 7]]]), num_classes=4)
    counts = count_class_pixels(FakeMasks([[[255, 255]], None]), num_classes=4)
    with pytest.raises(DataFormatError, match="no labelled pixel"):
        class_weights(counts, "enet")
    with pytest.raises(ValueError, match="median_frequency"):
        class_weights(counts, "inverse")


def test_class_table_lists_every_class():
    counts = count_class_pixels(FakeMasks(MASKS), num_classes=4)
    table = class_table(counts, ["road", "car", "sky", "bus"], {"enet": class_weights(counts, "enet")})
    lines = table.splitlines()
    assert lines[0] == "| class | pixels | share (%) | images | weight (enet) |"
    assert lines[2] == "| road | 4 | 44.44 | 2 | 2.6214 |"
    assert lines[5] == "| bus | 0 | 0.00 | 0 | 0.0000 |"


# ----------------------------------------------------------------------------- the loss
def test_loss_uses_the_class_weights_set_after_construction():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 6, 6, generator=generator)
    target = torch.randint(0, 4, (2, 6, 6), generator=generator)
    target[0, :2] = 255
    weights = torch.tensor([0.5, 2.0, 1.0, 3.0])

    loss = SegmentationLoss({"ce": 1.0, "ohem": 1.0}, ohem_threshold=1.0, ohem_min_kept=1_000)
    unweighted = loss(logits, target)
    assert torch.allclose(unweighted, F.cross_entropy(logits, target, ignore_index=255) * 2, atol=1e-6)
    loss.set_class_weights(weights)
    # OHEM keeping every pixel: the mean of the weighted pixel losses
    pixel = F.cross_entropy(logits, target, weight=weights, ignore_index=255, reduction="none")[target != 255]
    expected = F.cross_entropy(logits, target, weight=weights, ignore_index=255) + pixel.mean()
    assert torch.allclose(loss(logits, target), expected, atol=1e-6)
    assert torch.allclose(SegmentationLoss({"ce": 1.0}, class_weights=weights.tolist())(logits, target),
                          F.cross_entropy(logits, target, weight=weights, ignore_index=255), atol=1e-6)
    assert not any("weight" in key for key in loss.state_dict())  # the task keeps them in the checkpoint itself
    loss.set_class_weights(None)
    assert torch.allclose(loss(logits, target), unweighted)


def test_class_weights_need_a_cross_entropy_loss_and_warn_about_the_others():
    with pytest.raises(ValueError, match="class_weights .* losses has none of them"):
        SegmentationLoss({"dice": 1.0}, class_weights=[1.0, 2.0])
    with pytest.warns(UserWarning, match="class_weights apply to ce only: lovasz stay unweighted"):
        SegmentationLoss({"ce": 1.0, "lovasz": 0.5}, class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="class_weights .* losses has none of them"):
        SegmentationTask(TinyModel(), losses={"focal": 1.0}, class_weights="enet")


# ----------------------------------------------------------------------------- the task
class TinyModel(nn.Module):
    """A 1x1 convolution: what the task needs of a segmentation model."""

    num_classes = 3

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, self.num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(images)

    def forward_with_aux(self, images: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.conv(images), None


class _Batches(Dataset):
    def __init__(self, masks: list) -> None:
        self.masks = masks

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, index: int) -> dict:
        mask = torch.tensor(self.masks[index], dtype=torch.long)
        return {"image": torch.rand(3, *mask.shape), "mask": mask}


class CountingData(pl.LightningDataModule):
    """A data module with the seglite data modules' ``class_counts``, counting its calls."""

    def __init__(self, masks: list) -> None:
        super().__init__()
        self.masks = masks
        self.calls = 0

    def class_counts(self, role: str) -> ClassCounts:
        assert role == "train"
        self.calls += 1
        return count_class_pixels(FakeMasks(self.masks), TinyModel.num_classes)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Batches(self.masks), batch_size=2)


# 4x4 masks of classes 0 and 1; class 2 ("sky") never occurs
TRAIN_MASKS = [[[0, 0, 1, 1]] * 4, [[0, 0, 0, 255]] * 4, [[0, 1, 0, 0]] * 4, [[1, 1, 0, 0]] * 4]
NAMES = ["road", "car", "sky"]


def trainer(tmp_path: Path, max_steps: int) -> pl.Trainer:
    return pl.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)


def test_task_computes_the_weights_once_and_the_checkpoint_keeps_them(tmp_path, caplog):
    data = CountingData(TRAIN_MASKS)
    task = SegmentationTask(TinyModel(), class_weights="median_frequency", class_names=NAMES, log_images=0)
    with pytest.warns(UserWarning, match="no training pixel of sky; weight 0"), \
            caplog.at_level(logging.INFO, logger=rank_zero.log.name):  # the logger of rank_zero_info
        trainer(tmp_path, 1).fit(task, data)
    assert data.calls == 1
    reference = reference_weights(reference_counts(TRAIN_MASKS, 3), "median_frequency")
    expected = torch.tensor(reference, dtype=torch.float32)
    assert torch.equal(task.loss.class_weights, expected)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "class weights (median_frequency) from 4 training images, 60 labelled pixels:" in logged
    assert f"| car | 20 | 33.33 | 3 | {reference[1]:.4f} |" in logged
    path = tmp_path / "step1.ckpt"
    task.trainer.save_checkpoint(path)
    stored = torch.load(path, map_location="cpu", weights_only=True)[CLASS_WEIGHTS_KEY]
    assert stored == {"method": "median_frequency", "weights": expected.tolist()}

    # resumed on other labels: the stored weights, not new ones, and no counting
    other = CountingData([[[2, 2, 1, 1]] * 4] * 4)
    resumed = SegmentationTask(TinyModel(), class_weights="median_frequency", class_names=NAMES, log_images=0)
    trainer(tmp_path, 2).fit(resumed, other, ckpt_path=path)
    assert other.calls == 0 and resumed.global_step == 2
    assert torch.equal(resumed.loss.class_weights, expected)

    # loaded for evaluation or export: the stored weights, nothing counted
    loaded = SegmentationTask.load_from_checkpoint(path, model=TinyModel())
    assert loaded.hparams.class_weights == "median_frequency"
    assert torch.equal(loaded.loss.class_weights, expected)


def test_enet_weights_from_the_training_labels_weigh_the_loss(tmp_path):
    task = SegmentationTask(TinyModel(), class_weights="enet", class_names=NAMES, log_images=0)
    with pytest.warns(UserWarning, match="sky"):
        trainer(tmp_path, 1).fit(task, CountingData(TRAIN_MASKS))
    reference = torch.tensor(reference_weights(reference_counts(TRAIN_MASKS, 3), "enet"), dtype=torch.float32)
    assert torch.equal(task.loss.class_weights, reference)
    logits, target = torch.randn(1, 3, 4, 4), torch.tensor([TRAIN_MASKS[1]])
    assert torch.allclose(task.loss(logits, target), F.cross_entropy(logits, target, weight=reference, ignore_index=255))


def test_computed_weights_need_a_seglite_data_module(tmp_path):
    task = SegmentationTask(TinyModel(), class_weights="enet", log_images=0)
    with pytest.raises(ConfigurationError, match="class_weights: enet .* needs a seglite data module"):
        trainer(tmp_path, 1).fit(task, DataLoader(_Batches(TRAIN_MASKS), batch_size=2))


def test_a_list_from_the_config_is_used_as_is_and_checked():
    task = SegmentationTask(TinyModel(), class_weights=[1.0, 0.0, 2.5])
    assert task.loss.class_weights.tolist() == [1.0, 0.0, 2.5]
    for bad, match in [
        ([1.0, 2.0], "class_weights has 2 numbers but the model predicts 3 classes"),
        ([1.0, float("nan"), 1.0], "class_weights must be finite numbers >= 0"),
        ([1.0, float("inf"), 1.0], "class_weights must be finite numbers >= 0"),
        ([1.0, -1.0, 1.0], "class_weights must be finite numbers >= 0"),
        ([0.0, 0.0, 0.0], "not all 0"),
        ("inverse_frequency", "class_weights must be one of \\('enet', 'median_frequency'\\)"),
        (["a", "b", "c"], "class_weights must be one of"),
    ]:
        with pytest.raises(ValueError, match=match):
            SegmentationTask(TinyModel(), class_weights=bad)


def test_seglite_fit_with_computed_weights_stores_them_for_the_predictor(tiny_cityscapes, tmp_path, monkeypatch):
    """The CLI parses ``class_weights: enet``; the checkpoint it writes holds the weights and deploys as before."""
    from helpers import fit_args, run_config

    from seglite.checkpoints import load_checkpoint
    from seglite.data.datamodule import SegmentationDataModule
    from seglite.lit.cli import run_cli

    pixels = np.arange(1, 20, dtype=np.int64) * 100
    counts = ClassCounts(pixels, pixels * 3, np.full(19, 2), ignored=50, total=int(pixels.sum()) + 50, num_images=8)
    calls = []

    def class_counts(self, role: str) -> ClassCounts:  # the data module's own arrives with read_mask
        calls.append(role)
        return counts

    monkeypatch.setattr(SegmentationDataModule, "class_counts", class_counts, raising=False)
    cli = run_cli(fit_args(run_config(tmp_path, "run"), tiny_cityscapes, "--trainer.max_steps=1",
                           "--trainer.val_check_interval=1", "--model.class_weights=enet"))
    assert calls == ["train"]
    path = cli.trainer.checkpoint_callback.last_model_path
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["class_weights"] == "enet"
    expected = torch.tensor(class_weights(counts, "enet"), dtype=torch.float32).tolist()
    assert checkpoint[CLASS_WEIGHTS_KEY] == {"method": "enet", "weights": expected}
    assert load_checkpoint(path).num_classes == 19


def test_an_earlier_checkpoint_with_the_weights_in_its_state_dict_still_loads():
    """Checkpoints written before held a class_weights list as the ce term's buffer in the state dict (now: hyperparameters only)."""
    task = SegmentationTask(TinyModel(), class_weights=[1.0, 2.0, 3.0])
    checkpoint = {"state_dict": {**task.state_dict(), "loss.terms.ce.weight": torch.tensor([1.0, 2.0, 3.0])}}
    loaded = SegmentationTask(TinyModel(), class_weights=[1.0, 2.0, 3.0])
    loaded.on_load_checkpoint(checkpoint)
    loaded.load_state_dict(checkpoint["state_dict"])  # strict: no unexpected key left
    assert loaded.loss.class_weights.tolist() == [1.0, 2.0, 3.0]


def test_a_data_modules_own_counts_feed_training_and_match_the_masks_counted_another_way(tiny_cityscapes, tmp_path):
    """No stand-in: ``seglite fit`` counts the tiny set's training masks through the data module, once."""
    from helpers import fit_args, run_config

    from seglite.data import CityscapesDataset
    from seglite.lit.cli import run_cli

    cli = run_cli(fit_args(run_config(tmp_path, "real"), tiny_cityscapes, "--trainer.max_steps=1",
                           "--trainer.val_check_interval=1", "--model.class_weights=median_frequency"))
    # the reference: every training sample's mask as the loader gives it, counted pixel by pixel in Python
    pixels, image_pixels = [0] * 19, [0] * 19
    for sample in CityscapesDataset(str(tiny_cityscapes), "train"):
        values = [int(value) for value in sample["mask"].ravel() if value != 255]
        for class_id in set(values):
            pixels[class_id] += values.count(class_id)
            image_pixels[class_id] += len(values)
    frequency = {index: pixels[index] / image_pixels[index] for index in range(19) if pixels[index]}
    median = float(np.median(list(frequency.values())))
    expected = [median / frequency[index] if index in frequency else 0.0 for index in range(19)]
    torch.testing.assert_close(cli.model.loss.class_weights.double(), torch.tensor(expected, dtype=torch.float64),
                               rtol=1e-6, atol=0)


def test_folder_class_counts_read_the_masks_as_encoded(tmp_path):
    import cv2

    from seglite.data import FolderDataModule

    masks = {"a": np.array([[0, 0, 1, 11]], np.uint8), "b": np.array([[2, 2, 2, 7]], np.uint8)}
    for split in ("train", "val"):
        for folder in ("images", "masks"):
            (tmp_path / split / folder).mkdir(parents=True)
        for stem, mask in masks.items():
            cv2.imwrite(str(tmp_path / split / "images" / f"{stem}.png"), np.zeros((1, 4, 3), np.uint8))
            cv2.imwrite(str(tmp_path / split / "masks" / f"{stem}.png"), mask)
    data = FolderDataModule(str(tmp_path), num_classes=3, ignore_index=11, label_map={7: 1}, num_workers=0)
    counts = data.class_counts("train")
    assert counts.pixels.tolist() == [2, 2, 3] and counts.images.tolist() == [1, 2, 1]
    assert counts.image_pixels.tolist() == [3, 7, 4] and (counts.ignored, counts.total, counts.num_images) == (1, 8, 2)
