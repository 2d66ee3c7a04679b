"""Checkpoints that can be trusted: last.ckpt current, atomic writes, interrupts, clear errors for bad files."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import pickle
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from helpers import MODEL_CONFIG, assert_same_weights, fit_args, run_config, saved_step, weights, with_a_bad_crc

from seglite.apps import test as test_app
from seglite.checkpoints import read_checkpoint
from seglite.errors import CheckpointError, OutputExistsError
from seglite.files import OutputWriteError
from seglite.lit.checkpoint import AtomicCheckpointIO
from seglite.lit.cli import run, run_cli


class LastCheckpointProbe(pl.Callback):
    """Records the step last.ckpt holds at the start of every training batch (after the previous saves)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []  # (global step, step in last.ckpt)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        path = trainer.checkpoint_callback.last_model_path
        if path and Path(path).is_file():
            self.seen.append((trainer.global_step, saved_step(Path(path))))


def test_last_checkpoint_follows_every_validation_and_the_end_and_the_summary_is_read_back(
    tiny_cityscapes, tmp_path, capsys
):
    # monitor "step" in mode "min" improves only once: Lightning's own ModelCheckpoint would keep
    # last.ckpt at step 3 for the rest of the run
    config = run_config(tmp_path, "run", monitor="step", mode="min")
    cli = run_cli(fit_args(config, tiny_cityscapes, "--trainer.max_steps=7", "--trainer.val_check_interval=3",
                           f"--trainer.callbacks+={__name__}.LastCheckpointProbe"))
    probe = next(callback for callback in cli.trainer.callbacks if isinstance(callback, LastCheckpointProbe))
    assert (3, 3) in probe.seen and (6, 6) in probe.seen  # rewritten after each validation
    callback = cli.trainer.checkpoint_callback
    last, best = Path(callback.last_model_path), Path(callback.best_model_path)
    assert saved_step(last) == 7  # and at the end of training
    assert saved_step(best) == 3
    out = capsys.readouterr().out
    assert f"last checkpoint: {last} (step 7)" in out
    assert f"best checkpoint: {best} (step 3, step 3)" in out


class SignalAtStep(pl.Callback):
    """Sends ``signum`` to this process once training reaches ``step``, as Ctrl-C or a scheduler would."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.fixture()
def foreground_ctrl_c():
    """Python's Ctrl-C handling, as in a terminal's foreground, also when the suite runs in the
    background (where SIGINT starts out ignored); the disposition found is restored after."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_finishes_the_step_saves_last_and_the_run_resumes_exactly(signum, tiny_cityscapes, tmp_path, capsys,
                                                                               foreground_ctrl_c):
    schedule = ["--trainer.max_steps=7", "--trainer.val_check_interval=4"]
    straight = run_cli(fit_args(run_config(tmp_path, "straight"), tiny_cityscapes, *schedule))
    handler = signal.getsignal(signal.SIGINT)
    config = run_config(tmp_path, "stopped")
    interrupt = {"class_path": f"{__name__}.SignalAtStep", "init_args": {"step": 5, "signum": int(signum)}}
    code = run(fit_args(config, tiny_cityscapes, *schedule, f"--trainer.callbacks+={json.dumps(interrupt)}"), prog="train")
    assert code == 128 + signum
    last = tmp_path / "stopped" / "checkpoints" / "last.ckpt"
    cause = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    error = capsys.readouterr().err
    assert f"training stopped by {cause} at step 5; {last} (step 5); resume by adding --ckpt_path {last}" in error
    assert "Traceback" not in error
    assert saved_step(last) == 5  # between validations (4 and 8): the interrupt itself saved it
    assert signal.getsignal(signal.SIGINT) == handler  # Ctrl-C handling is given back

    resumed = run_cli(fit_args(config, tiny_cityscapes, *schedule, f"--ckpt_path={last}",
                               f"--trainer.default_root_dir={tmp_path / 'resumed'}"))
    assert resumed.trainer.global_step == 7
    assert_same_weights(weights(resumed.model), weights(straight.model))


def test_an_ignored_ctrl_c_stays_ignored(tiny_cityscapes, tmp_path, capsys):
    """A process started ignoring SIGINT (a shell's background job) is not stopped by one, and training
    leaves it ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        interrupt = {"class_path": f"{__name__}.SignalAtStep", "init_args": {"step": 1, "signum": int(signal.SIGINT)}}
        code = run(fit_args(run_config(tmp_path, "run"), tiny_cityscapes, "--trainer.max_steps=2",
                            "--trainer.val_check_interval=2", f"--trainer.callbacks+={json.dumps(interrupt)}"), prog="train")
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 0, capsys.readouterr().err
    assert saved_step(tmp_path / "run" / "checkpoints" / "last.ckpt") == 2


def test_ctrl_c_before_training_starts_is_one_line_and_exit_130(tiny_cityscapes, tmp_path, monkeypatch, capsys):
    from seglite.data import CityscapesDataModule
    from seglite.lit.cli import SegliteCLI

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # Ctrl-C while the CLI checks the trainer's settings (before Lightning's own handling), then
    # while the data module checks and opens the data (inside it)
    for owner, method, expected in ((SegliteCLI, "before_fit", "train: interrupted by Ctrl-C; nothing was saved"),
                                    (CityscapesDataModule, "setup", "train: training stopped by Ctrl-C at step 0; "
                                                                    "no checkpoint was saved")):
        with monkeypatch.context() as patch:
            patch.setattr(owner, method, interrupted)
            code = run(fit_args(run_config(tmp_path, "early"), tiny_cityscapes), prog="train")
        assert code == 128 + signal.SIGINT
        error = capsys.readouterr().err.strip()
        assert error.splitlines()[-1] == expected and "Traceback" not in error
        assert not (tmp_path / "early" / "checkpoints").exists()


def test_full_disk_while_checkpointing_leaves_the_previous_files(tiny_cityscapes, tmp_path, monkeypatch, capsys):
    real_write_bytes = pathlib.Path.write_bytes
    writes = []

    def write_bytes(self, data):  # the disk fills up during the third checkpoint: half of it lands
        if ".ckpt." in self.name:
            writes.append(self.name)
            if len(writes) >= 3:
                real_write_bytes(self, bytes(memoryview(data)[: len(data) // 2]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write_bytes(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
    # "step" in mode "max" improves at every validation: best-step2, then best-step4 replacing it
    config = run_config(tmp_path, "full", monitor="step", mode="max")
    code = run(fit_args(config, tiny_cityscapes, "--trainer.max_steps=6", "--trainer.val_check_interval=2"), prog="train")
    assert code == 2
    folder = tmp_path / "full" / "checkpoints"
    error = capsys.readouterr().err
    assert f"train: error: cannot write {folder / 'best-step4.ckpt'}: disk full" in error
    assert "Traceback" not in error
    assert sorted(path.name for path in folder.iterdir()) == ["best-step2.ckpt", "last.ckpt"]
    assert saved_step(folder / "best-step2.ckpt") == saved_step(folder / "last.ckpt") == 2


def _checkpoint(size_bytes: int) -> dict:
    return {"state_dict": {"weight": torch.ones(size_bytes // 4)}, "global_step": size_bytes}


def test_a_real_full_disk_leaves_the_previous_checkpoint(mount_tmpfs):
    folder = mount_tmpfs(512)
    path = folder / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(_checkpoint(64 * 1024), path)
    with pytest.raises(OutputWriteError, match=f"cannot write {path}: disk full"):
        AtomicCheckpointIO().save_checkpoint(_checkpoint(2 * 1024 * 1024), path)
    assert [entry.name for entry in folder.iterdir()] == ["last.ckpt"]  # no partial file left behind
    assert read_checkpoint(path)["global_step"] == 64 * 1024


def test_checkpoint_io_writes_and_deletes_no_link(tmp_path):
    elsewhere = tmp_path / "elsewhere.ckpt"
    elsewhere.write_bytes(b"precious")
    link = tmp_path / "last.ckpt"
    link.symlink_to(elsewhere)
    with pytest.raises(OutputExistsError, match="symbolic link"):
        AtomicCheckpointIO().save_checkpoint(_checkpoint(16), link)
    AtomicCheckpointIO().remove_checkpoint(link)
    assert elsewhere.read_bytes() == b"precious" and link.is_symlink()
    written = tmp_path / "written.ckpt"
    AtomicCheckpointIO().save_checkpoint(_checkpoint(16), written)
    backup = tmp_path / "backup.ckpt"
    os.link(written, backup)  # a hard link kept as a backup: replacing the checkpoint leaves it as it was
    AtomicCheckpointIO().save_checkpoint(_checkpoint(32), written)
    assert read_checkpoint(backup)["global_step"] == 16 and read_checkpoint(written)["global_step"] == 32
    assert written.stat().st_mode & 0o777 == 0o666 & ~_umask()  # the usual permissions, not mkstemp's 0600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_checkpoints_record_the_seglite_version(tiny_checkpoint):
    import seglite

    assert read_checkpoint(tiny_checkpoint)["seglite_version"] == seglite.__version__


TEST_CONFIG = """\
data:
  class_path: seglite.data.CityscapesDataModule
  init_args: {{root: {root}, val_batch_size: 2, num_workers: 0, pin_memory: false, persistent_workers: false}}
trainer: {{accelerator: cpu, devices: 1, enable_progress_bar: false, enable_model_summary: false}}
"""


class Payload:
    """A pickle that would create a file if it were ever unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


@pytest.mark.parametrize("kind", ["random", "truncated", "empty", "malicious", "bad_crc"])
def test_unreadable_or_refused_checkpoints_are_one_line_errors(kind, tiny_cityscapes, tiny_checkpoint, tmp_path, capsys):
    path = tmp_path / f"{kind}.ckpt"
    marker = tmp_path / "payload_ran"
    if kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "truncated":
        data = tiny_checkpoint.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "bad_crc":
        with_a_bad_crc(tiny_checkpoint, path)
    else:
        torch.save({"state_dict": {}, "hyper_parameters": Payload(marker)}, path)
    config = tmp_path / "test.yaml"
    config.write_text(TEST_CONFIG.format(root=tiny_cityscapes))
    assert test_app.main([str(MODEL_CONFIG), str(config), str(path), "--output", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"test: error: checkpoint {path} ") and "\n" not in error, error
    expected = {"malicious": "was refused", "random": "not a PyTorch checkpoint", "bad_crc": "is damaged"}.get(kind, "truncated")
    assert expected in error
    assert not marker.exists()
    # the same check guards `fit --ckpt_path`
    assert run(fit_args(run_config(tmp_path, "fit"), tiny_cityscapes, f"--ckpt_path={path}"), prog="train") == 2
    assert f"train: error: checkpoint {path} " in capsys.readouterr().err


def test_read_checkpoint_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"checkpoint not found: {tmp_path / 'none.ckpt'} does not exist"):
        read_checkpoint(tmp_path / "none.ckpt")
    (tmp_path / "plain.pt").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    torch.save({"weights": torch.zeros(2)}, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="no model weights"):
        read_checkpoint(tmp_path / "weights.pt")


def _folder_data(root: Path, num_classes: int) -> Path:
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 2)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for index in range(count):
            cv2.imwrite(str(root / split / "images" / f"{index}.png"), rng.integers(0, 256, (32, 64, 3), dtype=np.uint8))
            cv2.imwrite(str(root / split / "masks" / f"{index}.png"), rng.integers(0, num_classes, (32, 64), dtype=np.uint8))
    return root


def test_a_checkpoint_of_another_number_of_classes_is_named(tiny_checkpoint, tmp_path, capsys):
    data = _folder_data(tmp_path / "folder", num_classes=3)
    expected = (
        f"checkpoint {tiny_checkpoint} holds the preset lraspp_mobilenet_v3_small for 19 classes (road, sidewalk, building, wall, ...), "
        "step 2, but this configuration builds a model for 3 classes (the data module's)"
    )
    folder_config = Path(__file__).resolve().parents[1] / "configs" / "lraspp_mnv3_folder.yaml"
    overrides = [f"--data.init_args.root={data}", "--data.init_args.num_classes=3", "--data.init_args.num_workers=0",
                 "--trainer.accelerator=cpu", "--trainer.logger=false", "--trainer.enable_progress_bar=false"]
    code = test_app.main([str(folder_config), str(tiny_checkpoint), "--output", str(tmp_path / "out"), *overrides])
    assert code == 2
    error = capsys.readouterr().err
    assert expected in error and "Traceback" not in error
    fit = ["fit", f"--config={folder_config}", *overrides, f"--ckpt_path={tiny_checkpoint}",
           f"--trainer.default_root_dir={tmp_path / 'fit'}", "--data.init_args.batch_size=2", "--trainer.max_steps=1"]
    assert run(fit, prog="train") == 2
    error = capsys.readouterr().err
    assert expected in error and "Traceback" not in error


def test_sigterm_to_the_whole_process_group_with_loader_workers_stops_in_order(tiny_cityscapes, tmp_path):
    # a cluster scheduler (or a terminal's Ctrl-C) signals every process of the job, loader workers
    # included: the workers must leave quietly and the main process finish its step and save
    import subprocess
    import sys
    import time

    from helpers import REPO, TINY

    config = run_config(tmp_path, "run")
    tiny = [arg for arg in TINY if "num_workers" not in arg and "persistent_workers" not in arg]
    command = [sys.executable, "tools/train.py", str(MODEL_CONFIG), str(config), *tiny, "--data.init_args.num_workers=2",
               f"--data.init_args.root={tiny_cityscapes}", "--trainer.max_steps=100000", "--trainer.val_check_interval=5"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    try:
        deadline = time.monotonic() + 300
        while not (last.is_file() and saved_step(last) >= 5):
            assert process.poll() is None and time.monotonic() < deadline, "training did not get going"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGTERM)
        _, error = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM, error[-3000:]
    assert "Traceback" not in error
    step = saved_step(last)
    assert f"train: training stopped by SIGTERM at step {step}; {last} (step {step}); resume by adding" in error


# options seglite 0.2 added to the configs a 0.1 checkpoint stores (seglite.models.compat)
ADDED_IN_0_2 = ("tail_reduction", "dilation_rule", "pool_kernel", "pool_stride", "pool_fallback",
                "gate_activation", "gate_bias", "low_feature")


def _as_v01_checkpoint(source: Path, path: Path) -> None:
    """``source`` rewritten as seglite 0.1 wrote it: no version, a 0.1 model config and 0.1 weights."""
    from seglite.checkpoints import build_model_from_config
    from seglite.models.compat import upgrade_model_config

    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    del checkpoint["seglite_version"]
    # the tiny model (configs name it as seglite.models.Preset) spelled out as 0.1 stored every model
    config = {"class_path": "seglite.models.LRASPP", "init_args": {
        "backbone": {"class_path": "seglite.models.backbones.MobileNetV3", "init_args": {
            "variant": "small", "width_mult": 0.25, "output_stride": 16, "reduced_tail": True,
            "tail_reduction": "all", "dilation_rule": "deeplab"}},
        "num_classes": checkpoint["hyper_parameters"]["model"]["init_args"]["num_classes"], "inner_channels": 128,
        "pool_kernel": [49, 49], "pool_stride": [4, 5], "pool_fallback": "clamp", "gate_activation": "hardsigmoid",
        "gate_bias": True, "low_feature": "layer2_depthwise", "aux": False}}
    checkpoint["hyper_parameters"]["model"] = config
    for section in (config["init_args"], config["init_args"]["backbone"]["init_args"]):
        for key in ADDED_IN_0_2:
            section.pop(key, None)
    config["init_args"]["pooling"] = "global"
    old_model = build_model_from_config(upgrade_model_config(config))
    state = {key: value for key, value in checkpoint["state_dict"].items() if not key.startswith("model.")}
    state.update({f"model.{key}": value for key, value in old_model.state_dict().items()})
    checkpoint["state_dict"] = state
    torch.save(checkpoint, path)


def test_a_checkpoint_of_seglite_0_1_is_evaluated_with_its_own_architecture(tiny_cityscapes, tiny_checkpoint, tmp_path, capsys):
    old = tmp_path / "v01.ckpt"
    _as_v01_checkpoint(tiny_checkpoint, old)
    config = tmp_path / "test.yaml"
    config.write_text(TEST_CONFIG.format(root=tiny_cityscapes))
    # the current config builds the authors' model; the checkpoint's own (upgraded) config wins
    assert test_app.main([str(MODEL_CONFIG), str(config), str(old), "--output", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert "val mIoU" in capsys.readouterr().out
    # and the same weights claimed by this version do not fit: the upgrade is what made it work
    current = torch.load(old, map_location="cpu", weights_only=True)
    current["seglite_version"] = "0.2.0"
    torch.save(current, tmp_path / "claimed.ckpt")
    assert test_app.main([str(MODEL_CONFIG), str(config), str(tmp_path / "claimed.ckpt"), "--output", str(tmp_path / "out2")]) == 2
    assert "does not fit" in capsys.readouterr().err
