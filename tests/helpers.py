"""Shared helpers of the training tests: a tiny model on tiny crops, a config that keeps runs in a temporary folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
MODEL_CONFIG = REPO / "configs" / "lraspp_mnv3.yaml"
CHECKPOINT_CLASS = "seglite.lit.checkpoint.ModelCheckpoint"

# 8 training images in batches of 2: 4 steps an epoch; MobileNetV3-Small x0.25 on 32x32 crops
TINY = [
    "--data.init_args.num_workers=0",
    "--data.init_args.batch_size=2",
    "--data.init_args.val_batch_size=2",
    "--data.init_args.crop_size=[32, 32]",
    "--data.init_args.base_size=null",
    "--data.init_args.eval_size=null",
    "--data.init_args.persistent_workers=false",
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.precision=32-true",
    "--trainer.check_val_every_n_epoch=null",
    "--model.model.init_args.name=lraspp_mobilenet_v3_small",
    "--model.model.init_args.width_mult=0.25",
    "--model.log_images=0",
]


def run_config(tmp_path: Path, name: str, monitor: str = "val/mIoU", mode: str = "max", save_top_k: int = 1) -> Path:
    """A config file sending the run's checkpoints to ``tmp_path/name/checkpoints`` (no logger, no progress bar)."""
    checkpoint = {"monitor": monitor, "mode": mode, "save_last": True, "save_top_k": save_top_k,
                  "dirpath": str(tmp_path / name / "checkpoints"), "filename": "best-step{step}",
                  "auto_insert_metric_name": False}
    config = {"trainer": {
        "default_root_dir": str(tmp_path / name), "logger": False, "enable_progress_bar": False,
        "enable_model_summary": False, "callbacks": [{"class_path": CHECKPOINT_CLASS, "init_args": checkpoint}],
    }}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fit_args(config: Path, data_root: Path, *extra: str) -> list[str]:
    """``seglite fit`` arguments: the paper config, ``config``, the tiny settings, then ``extra``."""
    return ["fit", f"--config={MODEL_CONFIG}", f"--config={config}", *TINY, f"--data.init_args.root={data_root}", *extra]


def weights(task) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in task.model.state_dict().items()}


def assert_same_weights(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], atol=1e-6, rtol=1e-5, msg=key)


def saved_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


def run_tool(*args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the repository, one thread, unbuffered."""
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **env},
    )


class KeepLastCheckpoints(pl.Callback):
    """Copies last.ckpt into ``folder`` as ``step<N>.ckpt`` each time it changes (checked before every batch)."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_batch_start(self, trainer, *args) -> None:
        path = trainer.checkpoint_callback.last_model_path
        if path and Path(path).is_file():
            step = saved_step(Path(path))
            copy = self.folder / f"step{step}.ckpt"
            if not copy.exists():
                self.folder.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, copy)


def with_a_bad_crc(source: Path, path: Path) -> str:
    """Copy checkpoint ``source`` to ``path`` with one byte of its largest tensor changed, the zip
    structure intact (a bit flipped by a bad copy or disk); returns that tensor's member name."""
    import zipfile

    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)
    assert member.compress_type == zipfile.ZIP_STORED  # torch.save stores tensors uncompressed
    # the local header: 30 bytes, then the name and the extra field, whose lengths it records
    name_length = int.from_bytes(data[member.header_offset + 26 : member.header_offset + 28], "little")
    extra_length = int.from_bytes(data[member.header_offset + 28 : member.header_offset + 30], "little")
    start = member.header_offset + 30 + name_length + extra_length
    data[start + member.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))
    return member.filename
