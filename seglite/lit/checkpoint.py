"""Checkpoints that can be trusted: written atomically, ``last.ckpt`` always current, interrupts stop at a step.

Lightning's ``ModelCheckpoint(monitor=..., save_last=True)`` rewrites ``last.ckpt`` only when it
also writes a top-k checkpoint, i.e. when the metric improved, so after a crash ``last.ckpt`` can
be far behind the run. Its default writer stages checkpoints in the system's temporary folder and
copies them over, which a full disk can cut short. This module fixes both:

- :class:`AtomicCheckpointIO` writes every checkpoint through a temporary file beside the target,
  flushed to disk and renamed over it (``seglite.files.atomic_write``): a crash or a full disk
  leaves the previous file and never a truncated one; a failed write is an ``OutputWriteError``
  naming the file.
- :class:`ModelCheckpoint` (Lightning's, same arguments) also rewrites ``last.ckpt`` after every
  validation, at the end of training and when the run is interrupted, so it always holds the
  state after the last completed step; it installs :class:`AtomicCheckpointIO`; and it turns the
  first Ctrl-C into the orderly stop Lightning performs on SIGTERM (finish the running step, save,
  exit) - a second Ctrl-C stops at once.
"""

from __future__ import annotations

import io
import os
import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.exceptions import SIGTERMException

from seglite.files import OutputWriteError, describe_os_error, make_dir, write_bytes
from seglite.lit.lightning_private import LastCheckpointHooks


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary file beside the checkpoint, fsync, rename; loading as Lightning's."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        make_dir(Path(path).parent, "checkpoint folder")
        write_bytes(path, buffer.getbuffer())

    def remove_checkpoint(self, path) -> None:
        path = Path(path)
        if path.is_symlink() or not path.is_file():  # never delete through a link
            return
        try:
            path.unlink()
        except OSError as error:
            raise OutputWriteError(f"cannot delete old checkpoint {path}: {describe_os_error(error)}") from error


def use_atomic_checkpoint_io(trainer: pl.Trainer) -> None:
    """Make the trainer write checkpoints with :class:`AtomicCheckpointIO`, unless a custom writer is configured."""
    strategy = trainer.strategy
    if type(strategy.checkpoint_io) is TorchCheckpointIO:  # Lightning's default, not a user's plugin
        strategy.checkpoint_io = AtomicCheckpointIO()


def _epoch_cut_short(trainer: pl.Trainer) -> bool:
    """True when the running epoch ends before its last batch (max_steps reached, early stopping)."""
    return trainer.fit_loop.epoch_loop.batch_progress.current.processed < trainer.num_training_batches


def at_step_boundary(trainer: pl.Trainer) -> bool:
    """True when no training batch is half done: model, optimiser and schedule are those after a full step."""
    progress = trainer.fit_loop.epoch_loop.batch_progress.current
    return progress.ready == progress.started == progress.processed == progress.completed


def _is_local(path: Any) -> bool:
    """True for a path on this machine's file system (not ``s3://...`` or another fsspec URL)."""
    return "://" not in str(path)


def absolute_state(state: dict[str, Any], checkpoint_path: Any) -> dict[str, Any]:
    """A ``ModelCheckpoint`` state whose relative paths (as earlier seglite versions recorded them,
    relative to that run's working directory) are made absolute, resolved against the loaded
    checkpoint's folder.

    Every file the state names was written into its ``dirpath``, as was the checkpoint being
    loaded, so ``dirpath/NAME`` is ``<checkpoint's folder>/NAME`` wherever the run was started
    from. Without the checkpoint's path, the current working directory stands in (Lightning's reading).
    """
    dirpath = state.get("dirpath")
    if not dirpath or not _is_local(dirpath) or os.path.isabs(dirpath):
        return state
    folder = None
    if checkpoint_path and _is_local(checkpoint_path):
        folder = os.path.dirname(os.path.realpath(checkpoint_path))

    def absolute(path: str | None) -> str | None:
        if not path or not _is_local(path) or os.path.isabs(path):
            return path
        relative = os.path.relpath(os.path.normpath(path), os.path.normpath(dirpath))
        if folder is None or relative.startswith(os.pardir):
            return os.path.realpath(path)
        return os.path.join(folder, relative)

    state = dict(state)
    state["dirpath"] = folder or os.path.realpath(dirpath)
    for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
        if key in state:
            state[key] = absolute(state[key])
    if isinstance(state.get("best_k_models"), dict):
        state["best_k_models"] = {absolute(path): score for path, score in state["best_k_models"].items()}
    return state


class ModelCheckpoint(LastCheckpointHooks):
    """Lightning's ``ModelCheckpoint`` with a ``last.ckpt`` that is never stale, and atomic writes.

    Same arguments as Lightning's. With ``save_last``, ``last.ckpt`` is rewritten after every
    validation, at the end of training and on an interrupt (Ctrl-C or SIGTERM, e.g. from a
    cluster scheduler), whenever the step moved on, so resuming from it
    (``--ckpt_path .../last.ckpt``) never redoes or loses finished steps. ``save_last="link"`` is
    refused: the link points at the latest top-k file, which is stale between improvements.
    """

    def __init__(
        self,
        dirpath: str | None = None,
        filename: str | None = None,
        monitor: str | None = None,
        verbose: bool = False,
        save_last: bool | None = None,
        save_top_k: int = 1,
        save_on_exception: bool = False,
        save_weights_only: bool = False,
        mode: Literal["min", "max"] = "min",
        auto_insert_metric_name: bool = True,
        every_n_train_steps: int | None = None,
        train_time_interval: timedelta | None = None,
        every_n_epochs: int | None = None,
        save_on_train_epoch_end: bool | None = None,
        enable_version_counter: bool = True,
    ) -> None:
        if save_last == "link":
            raise ValueError(
                "ModelCheckpoint: save_last='link' makes last.ckpt a link to the latest top-k checkpoint, which is "
                "stale between improvements; use save_last=true"
            )
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            monitor=monitor,
            verbose=verbose,
            save_last=save_last,
            save_top_k=save_top_k,
            save_on_exception=save_on_exception,
            save_weights_only=save_weights_only,
            mode=mode,
            auto_insert_metric_name=auto_insert_metric_name,
            every_n_train_steps=every_n_train_steps,
            train_time_interval=train_time_interval,
            every_n_epochs=every_n_epochs,
            save_on_train_epoch_end=save_on_train_epoch_end,
            enable_version_counter=enable_version_counter,
        )
        self.last_step = -1  # the step last.ckpt holds
        self._last_before_validation = False  # last.ckpt was written at this step's batch end, before validating
        self._closing_epoch = False
        self.interrupted_by: str | None = None  # "Ctrl-C" or "SIGTERM" once an interrupt stopped the run
        self._previous_sigint: Any = None

    # ------------------------------------------------------------------ atomic writes, absolute paths
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        # Lightning derives the folder from a relative default_root_dir as a relative path; the paths
        # checkpoints record would then name files relative to this run's working directory
        if self.dirpath and _is_local(self.dirpath):
            self.dirpath = os.path.realpath(self.dirpath)
        use_atomic_checkpoint_io(trainer)

    # ------------------------------------------------------------------ resuming from anywhere
    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(trainer, pl_module, checkpoint)
        self._loaded_from = trainer.ckpt_path  # load_state_dict, which follows, is not told the file

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Lightning's restore, with the recorded paths made absolute (:func:`absolute_state`) first.

        Lightning restores the best path alone when the checkpoint folder changed (a run resumed
        elsewhere): its score comes with it here, so the summary reads the score of that file, and
        both are dropped when that file is gone.
        """
        state = absolute_state(state_dict, getattr(self, "_loaded_from", None))
        super().load_state_dict(state)
        if self.dirpath != state.get("dirpath", self.dirpath):
            self.best_model_score = state.get("best_model_score")
        if self.best_model_path and _is_local(self.best_model_path) and not os.path.isfile(self.best_model_path):
            self.best_model_path, self.best_model_score = "", None

    # ------------------------------------------------------------------ last.ckpt after every validation
    def save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        if self._closing_epoch and self.last_step == trainer.global_step and _epoch_cut_short(trainer):
            # last.ckpt already holds this step from before Lightning closed the epoch early (max_steps,
            # early stopping); saved after the closing, it would resume into the next epoch and skip
            # the rest of this one
            return
        super().save_last_checkpoint(trainer, monitor_candidates)
        if self.save_last:
            self.last_step = trainer.global_step
            self._last_before_validation = False

    def _refresh_last(self, trainer: pl.Trainer, again: bool = False) -> None:
        """Write last.ckpt if the run moved on since it was written (or ``again``) and a step was taken at all."""
        if (
            not self.save_last
            or bool(trainer.fast_dev_run)
            or trainer.state.fn != TrainerFn.FITTING
            or trainer.sanity_checking
            or trainer.global_step == 0
            or (self.last_step == trainer.global_step and not again)
        ):
            return
        # a last.ckpt of ours must not count as "saved at this step" for the top-k decision that may follow
        saved_step = self.last_global_step_saved
        self.save_last_checkpoint(trainer, self.monitor_candidates(trainer))
        self.last_global_step_saved = saved_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if 0 < trainer.max_steps <= trainer.global_step:
            # the last step: saved now, while the epoch is still open; validation may follow and save again
            self._refresh_last(trainer)
            self._last_before_validation = self.last_step == trainer.global_step

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self.saves_on_train_epoch_end(trainer):
            self._refresh_last(trainer, again=self._last_before_validation)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._closing_epoch = True
        try:
            super().on_train_epoch_end(trainer, pl_module)
            if self.saves_on_train_epoch_end(trainer):  # saving waits for the epoch end, after validation
                self._refresh_last(trainer, again=self._last_before_validation)
        finally:
            self._closing_epoch = False

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._refresh_last(trainer)
        self._restore_sigint()

    # ------------------------------------------------------------------ interrupts
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.interrupted_by = None
        # Ctrl-C is ours to handle in the main thread, unless the process was started ignoring it
        # (a shell's background job): a Ctrl-C meant for the foreground must not stop this run
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.interrupted_by is not None:  # the second Ctrl-C: stop now
            self._restore_sigint()
            raise KeyboardInterrupt
        self.interrupted_by = "Ctrl-C"
        print(
            "\nCtrl-C: finishing the current step, then saving last.ckpt and stopping (Ctrl-C again stops at once)",
            flush=True,
        )
        if not callable(signal.getsignal(signal.SIGTERM)):  # no Lightning handler (Windows): stop now
            raise KeyboardInterrupt
        # Lightning's SIGTERM handler asks the loops to stop at the next step boundary
        os.kill(os.getpid(), signal.SIGTERM)

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        self._restore_sigint()
        if (isinstance(exception, SIGTERMException) or trainer.received_sigterm) and self.interrupted_by is None:
            self.interrupted_by = "SIGTERM"  # also when the signal reached a loader worker first and killed it
        interrupted = self.interrupted_by is not None or isinstance(exception, KeyboardInterrupt)
        # only an interrupt at a step boundary leaves a state worth keeping; an error's state is not
        if interrupted and trainer.state.fn == TrainerFn.FITTING and at_step_boundary(trainer):
            self._refresh_last(trainer)
            if self.last_step == trainer.global_step and self.last_model_path:
                rank_zero_info(f"interrupted at step {trainer.global_step}; saved {self.last_model_path}")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore_sigint()
        super().teardown(trainer, pl_module, stage)
