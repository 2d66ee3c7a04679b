"""Exact resume: a run stopped at any step and resumed from last.ckpt reaches the uninterrupted run's weights."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import (
    MODEL_CONFIG,
    REPO,
    TINY,
    assert_same_weights,
    fit_args,
    run_config,
    saved_step,
    weights,
)

from seglite.data.sampling import EpochShuffleSampler
from seglite.lit.cli import run_cli


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_from_last_reaches_the_same_weights_mid_epoch_and_at_an_epoch_boundary(workers, tiny_cityscapes, tmp_path):
    # 4 steps an epoch, validation every 2 steps: last.ckpt holds step 6 (epoch 1, half done) and
    # step 8 (the end of epoch 1) on the way to step 10
    schedule = ["--trainer.max_steps=10", "--trainer.val_check_interval=2", f"--data.init_args.num_workers={workers}",
                f"--data.init_args.persistent_workers={workers > 0}"]
    kept = tmp_path / "kept"
    keeper = {"class_path": "helpers.KeepLastCheckpoints", "init_args": {"folder": str(kept)}}
    straight = run_cli(fit_args(run_config(tmp_path, "straight"), tiny_cityscapes, *schedule,
                                f"--trainer.callbacks+={json.dumps(keeper)}"))
    assert straight.trainer.global_step == 10
    for step, epoch, position in ((6, 1, 4), (8, 1, 8)):
        checkpoint = torch.load(kept / f"step{step}.ckpt", map_location="cpu", weights_only=True)
        order = checkpoint["CityscapesDataModule"]["train_order"]
        assert (order["epoch"], order["position"]) == (epoch, position)  # samples of the epoch already trained on
        resumed = run_cli(fit_args(run_config(tmp_path, f"resumed{step}"), tiny_cityscapes, *schedule,
                                   f"--ckpt_path={kept / f'step{step}.ckpt'}"))
        assert resumed.trainer.global_step == 10
        assert_same_weights(weights(resumed.model), weights(straight.model))


def test_sampler_starts_a_resumed_epoch_where_it_stopped():
    sampler = EpochShuffleSampler(10, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.start_at(epoch=2, position=4)
    sampler.set_epoch(2)
    assert list(sampler) == full[4:]
    sampler.set_epoch(2)
    assert list(sampler) == full[4:]  # a second pass over the resumed epoch skips the same samples
    sampler.set_epoch(3)
    assert len(list(sampler)) == 10 and len(sampler) == 10  # later epochs are whole
    sampler.set_epoch(2)
    assert list(sampler) == full
    with pytest.raises(ValueError, match="position"):
        sampler.start_at(epoch=0, position=11)


def test_sampler_shares_an_epoch_among_processes_and_resumes_each_where_it_stopped():
    length, world = 11, 3
    ranks = [EpochShuffleSampler(length, seed=5, num_replicas=world, rank=rank) for rank in range(world)]
    for sampler in ranks:
        sampler.set_epoch(1)
    shares = [list(sampler) for sampler in ranks]
    whole = ranks[0].order(1)
    assert [len(share) for share in shares] == [len(sampler) for sampler in ranks] == [3, 3, 3]
    assert sorted(index for share in shares for index in share) == sorted(whole[:9])  # disjoint; the last 11 % 3 wait for another epoch
    assert shares == [whole[rank:9:world] for rank in range(world)]  # as DistributedSampler shares an order

    for sampler in ranks:  # resumed after one batch of 2 per process: 6 samples of the order are done
        sampler.start_at(epoch=1, position=6)
        sampler.set_epoch(1)
    assert [list(sampler) for sampler in ranks] == [share[2:] for share in shares]
    for sampler in ranks:  # a position left by another number of processes: still the same count each
        sampler.start_at(epoch=1, position=4)
        sampler.set_epoch(1)
    resumed = [list(sampler) for sampler in ranks]
    assert [len(share) for share in resumed] == [2, 2, 2] and sorted(index for share in resumed for index in share) == sorted(whole[4:10])
    with pytest.raises(ValueError, match="rank"):
        EpochShuffleSampler(length, num_replicas=2, rank=2)


def test_a_training_process_killed_with_sigkill_resumes_from_last_to_the_same_weights(tiny_cityscapes, tmp_path):
    # a constant learning rate, so that the killed run (max_steps far away) and the reference
    # (max_steps = where we stop) follow the same schedule
    constant = ["--model.poly_power=0", "--model.warmup_steps=0", "--trainer.val_check_interval=3"]
    config = run_config(tmp_path, "killed")
    command = [sys.executable, "tools/train.py", str(MODEL_CONFIG), str(config), *TINY, *constant,
               f"--data.init_args.root={tiny_cityscapes}", "--trainer.max_steps=100000"]
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 300
        while not (last.is_file() and saved_step(last) >= 6):  # the second validation at least (mid-epoch)
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "training made no progress"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    step = saved_step(last)  # atomic writes: whatever the kill interrupted, last.ckpt is whole
    assert step % 3 == 0 and step >= 6

    # resume to one step more: the run ends mid-epoch by max_steps, and its own last.ckpt (written
    # before Lightning closes the epoch) must resume exactly too, two steps further
    final = step + 1
    resumed = run_cli(fit_args(run_config(tmp_path, "resumed"), tiny_cityscapes, *constant,
                               f"--trainer.max_steps={final}", f"--ckpt_path={last}"))
    resumed_last = Path(resumed.trainer.checkpoint_callback.last_model_path)
    assert resumed.trainer.global_step == saved_step(resumed_last) == final
    extended = run_cli(fit_args(run_config(tmp_path, "extended"), tiny_cityscapes, *constant,
                                f"--trainer.max_steps={final + 2}", f"--ckpt_path={resumed_last}"))
    straight = run_cli(fit_args(run_config(tmp_path, "straight"), tiny_cityscapes, *constant,
                                f"--trainer.max_steps={final + 2}"))
    assert extended.trainer.global_step == straight.trainer.global_step == final + 2
    assert_same_weights(weights(extended.model), weights(straight.model))


def relative_run_config(folder: Path) -> Path:
    """A config whose run folder is relative (``run``) and whose checkpoint folder Lightning derives from it,
    as the shipped configs' ``outputs/...`` are; "step" in mode "min" improves only at the first validation."""
    import yaml

    checkpoint = {"monitor": "step", "mode": "min", "save_last": True, "save_top_k": 1, "filename": "best-step{step}",
                  "auto_insert_metric_name": False}
    config = {"trainer": {
        "default_root_dir": "run", "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
        "callbacks": [{"class_path": "seglite.lit.checkpoint.ModelCheckpoint", "init_args": checkpoint}],
    }}
    path = folder / "relative.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def reported(out: str, which: str) -> Path:
    """The path the closing summary gives for the ``which`` ("best", "last") checkpoint."""
    (line,) = [line for line in out.splitlines() if line.startswith(f"{which} checkpoint: ")]
    return Path(line.removeprefix(f"{which} checkpoint: ").rsplit(" (", 1)[0])


def as_recorded_before(folder: Path, run_folder: Path) -> None:
    """Rewrite the checkpoint folder's paths in every checkpoint under ``run_folder`` relative to ``folder``,
    as seglite recorded them before it stored absolute ones."""
    for path in (run_folder / "checkpoints").iterdir():
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        for state in checkpoint["callbacks"].values():
            if "dirpath" in state:
                relative = lambda value: str(Path(value).relative_to(folder)) if value else value  # noqa: E731
                for key in ("dirpath", "best_model_path", "kth_best_model_path", "last_model_path"):
                    state[key] = relative(state[key])
                state["best_k_models"] = {relative(key): value for key, value in state["best_k_models"].items()}
        torch.save(checkpoint, path)


@pytest.mark.parametrize("recorded", ["absolute", "relative"])
def test_resuming_from_another_working_directory_ends_cleanly_and_reports_files_that_exist(
    recorded, tiny_cityscapes, tmp_path, monkeypatch, capsys
):
    from seglite.lit.cli import run

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    config = relative_run_config(tmp_path)
    schedule = ["--trainer.val_check_interval=2"]
    monkeypatch.chdir(first)
    assert run(fit_args(config, tiny_cityscapes, *schedule, "--trainer.max_steps=2"), prog="train") == 0
    best = first / "run" / "checkpoints" / "best-step2.ckpt"
    assert reported(capsys.readouterr().out, "best") == best
    if recorded == "relative":
        as_recorded_before(first, first / "run")
    written = {path: path.read_bytes() for path in (first / "run" / "checkpoints").iterdir()}

    monkeypatch.chdir(second)  # the same command, run folder and all, from elsewhere
    assert run(fit_args(config, tiny_cityscapes, *schedule, "--trainer.max_steps=4", f"--ckpt_path={best}"),
               prog="train") == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for which in ("best", "last"):  # a new folder: Lightning starts its top-k afresh there
        path = reported(out, which)
        assert path.is_absolute() and path.is_file() and path.is_relative_to(second / "run" / "checkpoints"), out
        assert saved_step(path) == 4
    # the first run's files are neither deleted nor rewritten by the second
    assert {path: path.read_bytes() for path in (first / "run" / "checkpoints").iterdir()} == written

    monkeypatch.chdir(first)  # resumed in its own folder, the run's state is restored in full
    (first / "run" / "config.yaml").unlink()  # else refused: without a logger, the folder holds one run's config
    last = first / "run" / "checkpoints" / "last.ckpt"
    assert run(fit_args(config, tiny_cityscapes, *schedule, "--trainer.max_steps=4", f"--ckpt_path={last}"),
               prog="train") == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert reported(out, "best") == best  # step 4 does not beat step 2 in mode "min": the restored best stands
    assert reported(out, "last") == last and saved_step(last) == 4
