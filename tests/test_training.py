"""The training system end to end: every config, checkpoints, resume, DDP, bf16, NaN stop, errors."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import yaml
from helpers import MODEL_CONFIG, REPO, TINY, assert_same_weights, fit_args, run_config
from torch.utils.data import DataLoader

from seglite.apps.configs import read_config
from seglite.data import CityscapesDataModule
from seglite.data.synthetic import make_demo_dataset
from seglite.lit.cli import run, run_cli
from seglite.lit.task import SegmentationTask
from seglite.models import build_model

OVERLAYS = ("demo.yaml", "camvid_cpu.yaml")  # composed after a model config, not complete on their own
BASE = "base.yaml"  # what the model configs start from (config: base.yaml), no model of its own
CONFIGS = sorted(p for p in (REPO / "configs").glob("*.yaml") if p.name not in (*OVERLAYS, BASE))
TINY_DATA = [
    "--data.init_args.num_workers=0",
    "--data.init_args.batch_size=2",
    "--data.init_args.val_batch_size=2",
    "--data.init_args.crop_size=[64, 64]",
    "--data.init_args.base_size=null",
    "--data.init_args.eval_size=null",
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.precision=32-true",
]


def _logged_config(tmp_path: Path, name: str) -> Path:
    """A config file that sends loggers and checkpoints into ``tmp_path``."""
    callbacks = [
        {"class_path": "seglite.lit.checkpoint.ModelCheckpoint",
         "init_args": {"monitor": "val/mIoU", "mode": "max", "save_last": True}},
    ]
    config = {
        "trainer": {
            "default_root_dir": str(tmp_path),
            "logger": [
                {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path), "name": name}}
            ],
            "callbacks": callbacks,
            "enable_progress_bar": False,
        }
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}_logging.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_every_config_runs_one_tiny_batch(config, tiny_cityscapes, tmp_path):
    data = read_config(config)["data"]
    root_args = [f"--data.init_args.root={tiny_cityscapes}"]
    if data["class_path"].endswith("FolderDataModule"):
        root_args = [f"--data.init_args.root={_folder_dataset_from(tiny_cityscapes, tmp_path)}"]
    if data["class_path"].endswith("CamVidDataModule"):
        root_args = [f"--data.init_args.root={_camvid_from(tiny_cityscapes, tmp_path)}"]
    cli = run_cli(
        ["fit", f"--config={config}", *TINY_DATA, *root_args, "--trainer.fast_dev_run=1",
         f"--trainer.default_root_dir={tmp_path}"]
    )
    assert cli.trainer.global_step == 1
    assert "val" in cli.model.last_scores


def _folder_dataset_from(cityscapes_root: Path, tmp_path: Path) -> Path:
    """The tiny Cityscapes set rewritten as a folder data set (images/ and masks/ of train ids)."""
    import cv2

    from seglite.data import CityscapesDataset

    root = tmp_path / "folder"
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for index, sample in enumerate(CityscapesDataset(str(cityscapes_root), split)):
            cv2.imwrite(str(root / split / "images" / f"{index}.png"), sample["image"][:, :, ::-1])
            cv2.imwrite(str(root / split / "masks" / f"{index}.png"), sample["mask"])
    return root


def _camvid_from(cityscapes_root: Path, tmp_path: Path) -> Path:
    """The tiny Cityscapes set in SegNet's CamVid layout: 11 classes (train ids 0..10), everything else void (11)."""
    import cv2

    from seglite.data import CityscapesDataset

    root = tmp_path / "CamVid"
    for split, source in (("train", "train"), ("val", "val"), ("test", "val")):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for index, sample in enumerate(CityscapesDataset(str(cityscapes_root), source)):
            mask = np.where(sample["mask"] < 11, sample["mask"], 11).astype(np.uint8)
            cv2.imwrite(str(root / split / f"{index}.png"), sample["image"][:, :, ::-1])
            cv2.imwrite(str(root / f"{split}annot" / f"{index}.png"), mask)
    return root


@pytest.mark.parametrize("model_config", ["lraspp_mnv3_small.yaml", "deeplabv3plus_shufflenet_v2.yaml"])
def test_the_camvid_cpu_config_composes_after_a_cityscapes_model_config(model_config, tiny_cityscapes, tmp_path):
    # the README's CamVid commands: the overlay replaces the data section, Cityscapes paths and sizes included
    cli = run_cli(["fit", f"--config={REPO / 'configs' / model_config}", f"--config={REPO / 'configs/camvid_cpu.yaml'}",
                   *TINY_DATA, f"--data.init_args.root={_camvid_from(tiny_cityscapes, tmp_path)}",
                   "--trainer.fast_dev_run=1", f"--trainer.default_root_dir={tmp_path}"])
    data = cli.datamodule
    assert type(data).__name__ == "CamVidDataModule" and data.base_size is None and data.splits["test"] == "test"
    assert cli.model.num_classes == 11 and cli.trainer.global_step == 1


def test_a_model_ignore_index_other_than_the_data_modules_is_refused_in_one_line(tiny_cityscapes, tmp_path, capsys):
    code = run(["fit", f"--config={REPO / 'configs/lraspp_mnv3_camvid.yaml'}", *TINY_DATA,
                f"--data.init_args.root={_camvid_from(tiny_cityscapes, tmp_path)}", "--model.ignore_index=11",
                "--trainer.fast_dev_run=1", f"--trainer.default_root_dir={tmp_path}"])
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("seglite: error: --model.ignore_index is 11, but CamVidDataModule marks unlabelled pixels with 255")
    assert "--data.init_args.ignore_index 11" in error


def _fit(tmp_path: Path, tiny_cityscapes: Path, name: str, *extra: str):
    return run_cli(
        ["fit", f"--config={REPO / 'configs/lraspp_mnv3.yaml'}",
         f"--config={_logged_config(tmp_path, name)}",
         *TINY_DATA, f"--data.init_args.root={tiny_cityscapes}", "--model.model.init_args.width_mult=0.5",
         "--trainer.val_check_interval=null", "--trainer.check_val_every_n_epoch=1", "--trainer.log_every_n_steps=1",
         *extra]
    )


def test_checkpoint_saved_by_the_cli_loads_with_load_from_checkpoint(tiny_cityscapes, tmp_path):
    cli = _fit(tmp_path, tiny_cityscapes, "roundtrip", "--trainer.max_steps=4")  # one epoch, then validation
    last = Path(cli.trainer.checkpoint_callback.last_model_path)
    best = Path(cli.trainer.checkpoint_callback.best_model_path)
    assert last.is_file() and best.is_file()
    restored = SegmentationTask.load_from_checkpoint(last, map_location="cpu").eval()
    trained = cli.model.eval()
    assert restored.class_names == list(CityscapesDataModule().class_names)
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(restored(images), trained(images))


def test_bf16_mixed_precision_and_channels_last_train_on_cpu(tiny_cityscapes, tmp_path):
    cli = _fit(tmp_path, tiny_cityscapes, "bf16", "--trainer.max_steps=4", "--trainer.precision=bf16-mixed",
               "--model.channels_last=true")
    assert cli.trainer.global_step == 4
    assert torch.isfinite(torch.tensor(cli.model.last_scores["val"].miou))


class _NaNImages(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict:
        return {"image": torch.full((3, 32, 32), float("nan")), "mask": torch.zeros(32, 32, dtype=torch.long)}


def test_nan_loss_stops_training_naming_the_step(tmp_path):
    task = SegmentationTask(build_model("mobilenet_v3_small", "lraspp", width_mult=0.25))
    trainer = pl.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         default_root_dir=tmp_path, accelerator="cpu")
    with pytest.raises(FloatingPointError, match=r"training loss is nan at step 0"):
        trainer.fit(task, DataLoader(_NaNImages(), batch_size=2))


def _run_tool(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
    )


def test_train_without_cityscapes_says_where_and_how(tmp_path):
    result = _run_tool("tools/train.py", "configs/lraspp_mnv3.yaml", f"--data.init_args.root={tmp_path / 'nowhere'}",
                       "--trainer.accelerator=cpu", f"--trainer.default_root_dir={tmp_path}",
                       "--trainer.logger=false")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert str(tmp_path / "nowhere") in result.stderr
    assert "--data.root" in result.stderr and "configs/demo.yaml" in result.stderr
    assert "args parameter is intended" not in result.stderr  # LightningCLI's warning, silenced: the tool means it


def test_bad_config_value_names_the_argument_without_traceback(tiny_cityscapes, tmp_path, capsys):
    from seglite.apps import train

    code = train.main([str(REPO / "configs/lraspp_mnv3.yaml"), str(REPO / "configs/demo.yaml"), f"--data.init_args.root={tiny_cityscapes}",
                       f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false",
                       "--model.model.init_args.output_stride=4"])
    assert code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    assert "output_stride must be one of (8, 16, 32), got 4" in error


def test_a_second_run_writes_a_new_version_folder(tiny_cityscapes, tmp_path):
    first = _fit(tmp_path, tiny_cityscapes, "again", "--trainer.max_steps=1")
    first_checkpoint = Path(first.trainer.checkpoint_callback.last_model_path)
    stamp = first_checkpoint.stat().st_mtime_ns
    second = _fit(tmp_path, tiny_cityscapes, "again", "--trainer.max_steps=1")
    second_checkpoint = Path(second.trainer.checkpoint_callback.last_model_path)
    assert first_checkpoint.parent.parent.name == "version_0"
    assert second_checkpoint.parent.parent.name == "version_1"
    assert first_checkpoint.stat().st_mtime_ns == stamp


def test_validation_logs_image_truth_prediction_panels_to_tensorboard(tiny_cityscapes, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tmp_path / "tensorboard.yaml"
    config.write_text(yaml.safe_dump({"trainer": {"logger": [{
        "class_path": "pytorch_lightning.loggers.TensorBoardLogger",
        "init_args": {"save_dir": str(tmp_path), "name": "tb"}}], "enable_progress_bar": False}}))
    run_cli(["fit", f"--config={REPO / 'configs/lraspp_mnv3.yaml'}", f"--config={config}", *TINY_DATA,
             f"--data.init_args.root={tiny_cityscapes}", "--model.model.init_args.width_mult=0.5",
             "--model.log_images=2", "--trainer.max_steps=4", "--trainer.val_check_interval=null",
             "--trainer.check_val_every_n_epoch=1"])
    events = EventAccumulator(str(tmp_path / "tb" / "version_0"), size_guidance={"images": 0})
    events.Reload()
    assert sorted(events.Tags()["images"]) == ["val/overlay_0", "val/overlay_1"]
    panel = events.Images("val/overlay_0")[-1]
    assert (panel.height, panel.width) == (64, 3 * 128)  # image | truth | prediction at the val size
    assert "val/mIoU" in events.Tags()["scalars"]


def _metrics_rows(log_dir: Path) -> list[dict]:
    with open(log_dir / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    """6 steps of DDP on 2 CPU processes, validated and checkpointed at every step, each last.ckpt kept.

    8 train images, 2 a batch, 2 processes: 2 steps an epoch, so step 3 is in the middle of an
    epoch. 5 val images on 2 processes: a padding sampler would count one of them twice.
    """
    tmp_path = tmp_path_factory.mktemp("ddp")
    root = make_demo_dataset(tmp_path / "data", num_train=8, num_val=5, num_test=0, size=(64, 128), seed=2, video=False)
    config = run_config(tmp_path, "straight")
    settings = yaml.safe_load(config.read_text())
    settings["trainer"]["logger"] = [{"class_path": "pytorch_lightning.loggers.CSVLogger",
                                      "init_args": {"save_dir": str(tmp_path / "straight"), "name": "logs", "version": 0}}]
    settings["trainer"]["callbacks"].append(
        {"class_path": "helpers.KeepLastCheckpoints", "init_args": {"folder": str(tmp_path / "kept")}})
    config.write_text(yaml.safe_dump(settings))
    _ddp_train(tmp_path, root, config)
    return tmp_path


def _ddp_train(tmp_path: Path, root: Path, config: Path, *extra: str) -> None:
    result = _run_tool(
        "tools/train.py", str(MODEL_CONFIG), str(config), *TINY, f"--data.init_args.root={root}",
        "--model.poly_power=0", "--model.warmup_steps=0",  # a constant learning rate: one schedule for every max_steps
        "--trainer.devices=2", "--trainer.strategy=ddp", "--trainer.max_steps=6", "--trainer.val_check_interval=1",
        *extra, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "tests"),
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-4000:]


def test_ddp_on_two_cpu_processes_matches_single_process_evaluation(ddp_run):
    logged = [row for row in _metrics_rows(ddp_run / "straight" / "logs" / "version_0") if row.get("val/mIoU")]
    assert len(logged) == 6, "not one validation a step"
    ddp_miou = float(logged[-1]["val/mIoU"])

    task = SegmentationTask.load_from_checkpoint(ddp_run / "straight" / "checkpoints" / "last.ckpt", map_location="cpu")
    data = CityscapesDataModule(root=str(ddp_run / "data"), num_workers=0, val_batch_size=1)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         default_root_dir=ddp_run / "validate")
    trainer.validate(task, datamodule=data)
    assert task.last_scores["val"].miou == pytest.approx(ddp_miou, abs=1e-6)


def test_ddp_training_resumed_mid_epoch_reaches_the_same_weights(ddp_run):
    # Lightning keeps seglite's sampler (a DistributedSampler) rather than wrapping it in one that
    # cannot start mid-epoch; each process resumes its share of the epoch where it stopped
    middle = ddp_run / "kept" / "step3.ckpt"
    order = torch.load(middle, map_location="cpu", weights_only=True)["CityscapesDataModule"]["train_order"]
    assert (order["epoch"], order["position"]) == (1, 4)  # one batch of 2 on each of 2 processes done
    _ddp_train(ddp_run, ddp_run / "data", run_config(ddp_run, "resumed"), f"--ckpt_path={middle}")
    straight, resumed = (torch.load(ddp_run / name / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
                         for name in ("straight", "resumed"))
    assert straight["global_step"] == resumed["global_step"] == 6
    assert_same_weights(resumed["state_dict"], straight["state_dict"])


def _train_batches(root: Path, workers: int, epoch: int) -> list[torch.Tensor]:
    pl.seed_everything(3, verbose=False)
    data = CityscapesDataModule(root=str(root), num_workers=workers, batch_size=4, crop_size=(48, 48),
                                persistent_workers=False)
    data.setup("fit")
    loader = data.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return [batch["image"] for batch in loader]


def test_training_batches_depend_on_seed_and_epoch_not_on_workers(tiny_cityscapes):
    single, parallel = _train_batches(tiny_cityscapes, 0, epoch=1), _train_batches(tiny_cityscapes, 2, epoch=1)
    assert len(single) == len(parallel) == 2
    for expected, actual in zip(single, parallel):
        torch.testing.assert_close(actual, expected)
    assert not torch.equal(single[0], _train_batches(tiny_cityscapes, 0, epoch=2)[0])


# ----------------------------------------------------------------------------- one-line errors, exit code 2


def test_a_negative_batch_size_is_named_without_a_type_dump(tiny_cityscapes, tmp_path, capsys):
    code = run(fit_args(run_config(tmp_path, "run"), tiny_cityscapes, "--data.init_args.batch_size=-1"), prog="train")
    assert code == 2
    errors = capsys.readouterr().err.splitlines()
    assert "train: error: invalid configuration: CityscapesDataModule: batch_size must be a positive integer, got -1" in errors


def test_a_batch_larger_than_the_data_set_is_an_error_not_an_empty_run(tiny_cityscapes, tmp_path, capsys):
    code = run(fit_args(run_config(tmp_path, "run"), tiny_cityscapes, "--data.init_args.batch_size=9"), prog="train")
    assert code == 2
    assert "batch_size is 9 but the training split 'train' has 8 images" in capsys.readouterr().err


def test_abbreviated_options_are_rejected_in_a_short_message(tiny_cityscapes, tmp_path, capsys):
    code = run(fit_args(run_config(tmp_path, "run"), tiny_cityscapes, "--trainer.max_step=3"), prog="train")
    assert code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if "Warning" not in line and "deprecated" not in line]
    assert error[0] == "train fit: error: unrecognized arguments: --trainer.max_step=3"
    assert len(error) <= 2  # not the whole usage
    from seglite.apps.test import parse_args

    args, rest = parse_args(["config.yaml", "model.ckpt", "--over"])  # not --overwrite: left for LightningCLI to refuse
    assert not args.overwrite and rest == ["--over"]


def test_a_typo_under_data_init_args_is_one_line_like_one_under_trainer(tiny_cityscapes, tmp_path, capsys):
    code = run(fit_args(run_config(tmp_path, "run"), tiny_cityscapes, "--data.init_args.batchsize=3"), prog="train")
    assert code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if "Warning" not in line and "deprecated" not in line]
    assert error == [
        "train fit: error: Parser key \"data\": class_path 'seglite.data.CityscapesDataModule': Option 'batchsize' is not accepted",
        "(`train fit --help` lists the accepted options)",
    ]


def test_a_bad_value_under_data_init_args_keeps_what_was_expected(tiny_cityscapes, tmp_path, capsys):
    code = run(fit_args(run_config(tmp_path, "run"), tiny_cityscapes, "--data.init_args.batch_size=abc"), prog="train")
    assert code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if "Warning" not in line and "deprecated" not in line]
    assert error[0] == (
        "train fit: error: Parser key \"data\": class_path 'seglite.data.CityscapesDataModule': Parser key \"batch_size\": "
        "Expected a <class 'int'>. Got value: abc"
    )
    assert len(error) == 2
    code = run(fit_args(run_config(tmp_path, "run2"), tiny_cityscapes, "--data.init_args.check_masks=maybe"), prog="train")
    assert code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if "Warning" not in line and "deprecated" not in line]
    assert error[0] == (
        "train fit: error: Parser key \"data\": class_path 'seglite.data.CityscapesDataModule': Parser key \"check_masks\": "
        "Expected a <class 'bool'> Expected a typing.Literal['auto'] Given value: maybe"
    )


@pytest.mark.parametrize("where", ["mount point", "sub-folder"])
def test_a_read_only_output_folder_is_one_line(where, mount_tmpfs, tiny_cityscapes, tmp_path, capsys):
    read_only = mount_tmpfs(64, read_only=True)
    root = read_only if where == "mount point" else read_only / "runs"
    code = run(fit_args(run_config(tmp_path, "run"), tiny_cityscapes, f"--trainer.default_root_dir={root}",
                        "--trainer.max_steps=1"), prog="train")
    assert code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train: ")]
    assert len(error) == 1 and error[0].startswith("train: error: cannot ") and str(root) in error[0]
    assert "read-only file system" in error[0]


def test_a_read_only_output_folder_is_named_where_mounting_is_not_allowed(tiny_cityscapes, tmp_path, monkeypatch, capsys):
    import seglite.files

    real_access = seglite.files.os.access
    locked = tmp_path / "locked"
    monkeypatch.setattr(seglite.files.os, "access", lambda path, mode: False if Path(path) == locked else real_access(path, mode))
    code = run(fit_args(run_config(tmp_path, "run"), tiny_cityscapes, f"--trainer.default_root_dir={locked}",
                        "--trainer.max_steps=1"), prog="train")
    assert code == 2
    assert (
        f"train: error: cannot write into output folder {locked}: permission denied or read-only file system"
        in capsys.readouterr().err.splitlines()
    )


def test_a_full_output_disk_is_one_line_and_leaves_no_partial_checkpoint(mount_tmpfs, tiny_cityscapes, tmp_path, capsys):
    disk = mount_tmpfs(256)  # room for the saved config, not for a checkpoint (about 600 kB)
    config = run_config(disk, "run")
    code = run(fit_args(config, tiny_cityscapes, "--trainer.max_steps=4", "--trainer.val_check_interval=2"), prog="train")
    assert code == 2
    folder = disk / "run" / "checkpoints"  # the first checkpoint is the best one of the validation at step 2
    errors = capsys.readouterr().err.splitlines()
    assert f"train: error: cannot write {folder / 'best-step2.ckpt'}: disk full" in errors
    assert not any("Traceback" in line for line in errors)
    assert list(folder.iterdir()) == []


def test_a_data_error_in_a_loader_worker_is_the_workers_own_message(tmp_path, capsys):
    import cv2
    import numpy as np

    data = make_demo_dataset(tmp_path / "data", num_train=4, num_val=1, num_test=0, size=(32, 64), seed=3, video=False)
    bad = sorted((data / "gtFine" / "train").rglob("*_labelIds.png"))[0]
    labels = np.full((32, 64), 7, np.uint16)
    labels[0, 0] = 300
    cv2.imwrite(str(bad), labels)
    # check_masks false: the bad mask is first read in a worker, as it is with the check off
    code = run(fit_args(run_config(tmp_path, "run"), data, "--data.init_args.num_workers=1", "--data.init_args.check_masks=false",
                        "--trainer.max_steps=2", "--trainer.val_check_interval=2", "--trainer.num_sanity_val_steps=0"),
               prog="train")
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train:")]
    assert errors == [f"train: error: label map {bad} holds label ids 300 (1 pixels); label ids must be 0..33 (in loader worker 0)"]


# ----------------------------------------------------------------------------- batch size 1 and image pooling

POOLING_CONFIGS = ["deeplabv3_mnv2.yaml", "raspp_mnv3.yaml", "deeplabv3plus_shufflenet_v2.yaml"]


@pytest.mark.parametrize("config", POOLING_CONFIGS)
def test_batch_size_1_with_image_pooling_is_refused_in_one_line_before_training(config, tiny_cityscapes, tmp_path, capsys):
    # BatchNorm over the 1x1 pooled map of one image has one value per channel: torch refuses it mid-step
    code = run(["fit", f"--config={REPO / 'configs' / config}", f"--config={run_config(tmp_path, 'run')}", *TINY_DATA,
                f"--data.init_args.root={tiny_cityscapes}", "--data.init_args.batch_size=1", "--trainer.max_steps=1"],
               prog="train")
    assert code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error and "Expected more than 1 value per channel" not in error
    lines = [line for line in error.splitlines() if line.startswith("train: ")]
    assert len(lines) == 1, error
    head = {"deeplabv3_mnv2.yaml": "DeepLabV3Head", "raspp_mnv3.yaml": "RASPPHead",
            "deeplabv3plus_shufflenet_v2.yaml": "DeepLabV3PlusHead"}[config]
    assert lines[0].startswith("train: error: --data.init_args.batch_size is 1, but the image pooling of " + head)
    assert "batch_size 2 or more" in lines[0]
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before the first step


def test_batch_size_1_trains_a_head_without_image_pooling(tiny_cityscapes, tmp_path):
    cli = run_cli(fit_args(run_config(tmp_path, "run"), tiny_cityscapes, "--data.init_args.batch_size=1",
                           "--trainer.max_steps=2"))
    assert cli.trainer.global_step == 2


def test_a_last_training_batch_of_one_image_is_dropped_not_a_batchnorm_crash(tmp_path):
    root = make_demo_dataset(tmp_path / "odd", num_train=5, num_val=1, num_test=1, size=(64, 64), seed=2, video=False)
    cli = run_cli(["fit", f"--config={REPO / 'configs/deeplabv3_mnv2.yaml'}", f"--config={run_config(tmp_path, 'run')}",
                   *TINY_DATA, f"--data.init_args.root={root}", "--trainer.max_epochs=1", "--trainer.max_steps=-1",
                   "--trainer.val_check_interval=null", "--trainer.check_val_every_n_epoch=1"])
    assert cli.trainer.current_epoch == 1 and cli.trainer.global_step == 2  # 5 images: batches of 2 and 2, not 1


def test_batch_norms_synced_over_two_processes_take_one_image_each():
    from types import SimpleNamespace

    from seglite.errors import ConfigurationError
    from seglite.models import RASPP
    from seglite.models.backbones import MobileNetV3
    from seglite.models.heads.aspp import pooled_batch_norms

    model = RASPP(MobileNetV3(variant="small", width_mult=0.25), num_classes=3)
    task = SegmentationTask(model)
    assert list(pooled_batch_norms(model)) == ["head.aspp.branches.1.conv.1"]
    task._trainer = SimpleNamespace(datamodule=SimpleNamespace(batch_size=1), world_size=2)
    with pytest.raises(ConfigurationError, match="batch_size is 1, but the image pooling of RASPPHead"):
        task._check_batch_size_for_pooled_norms()  # plain BatchNorm: each process normalises its one image
    task.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    task._check_batch_size_for_pooled_norms()  # two images per batch across the processes: accepted
    task._trainer.world_size = 1
    with pytest.raises(ConfigurationError):
        task._check_batch_size_for_pooled_norms()
