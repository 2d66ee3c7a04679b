"""The private Lightning members seglite.lit.lightning_private relies on are still there and behave as it expects.

A Lightning upgrade that renames, removes or changes one of them fails here, by name, rather than
silently changing how checkpoints are read and written.
"""

from __future__ import annotations

import contextvars
import inspect
from types import SimpleNamespace

import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.core.mixins import hparams_mixin

from seglite.lit import lightning_private
from seglite.lit.checkpoint import ModelCheckpoint as SegliteModelCheckpoint
from seglite.lit.cli import SegliteCLI


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_lightning_cli_applies_checkpoint_hyperparameters_through_parse_ckpt_path() -> None:
    assert _parameters(LightningCLI._parse_ckpt_path) == ["self"]
    source = inspect.getsource(LightningCLI.__init__)
    # called once, after parsing and before instantiating the classes
    order = [source.index(call) for call in ("self.parse_arguments(", "self._parse_ckpt_path()", "self.instantiate_classes()")]
    assert order == sorted(order) and source.count("self._parse_ckpt_path()") == 1
    assert SegliteCLI._parse_ckpt_path is lightning_private.CheckpointHyperparametersCLI._parse_ckpt_path


def test_model_checkpoint_writes_last_through_save_last_checkpoint() -> None:
    assert _parameters(ModelCheckpoint._save_last_checkpoint) == ["self", "trainer", "monitor_candidates"]
    assert _parameters(ModelCheckpoint._monitor_candidates) == ["self", "trainer"]
    assert _parameters(ModelCheckpoint._should_save_on_train_epoch_end) == ["self", "trainer"]
    source = inspect.getsource(ModelCheckpoint)
    assert "self._save_last_checkpoint(trainer, monitor_candidates)" in source  # Lightning's own writes go through it
    assert SegliteModelCheckpoint._save_last_checkpoint is lightning_private.LastCheckpointHooks._save_last_checkpoint


def test_model_checkpoint_private_state_and_candidates() -> None:
    callback = SegliteModelCheckpoint(monitor="val/mIoU", mode="max", save_last=True)
    assert callback.last_global_step_saved == 0  # Lightning's _last_global_step_saved, set in its constructor
    callback.last_global_step_saved = 7
    assert callback._last_global_step_saved == 7
    trainer = SimpleNamespace(callback_metrics={"val/mIoU": torch.tensor(0.5)}, current_epoch=2, global_step=11)
    candidates = callback.monitor_candidates(trainer)
    assert float(candidates["val/mIoU"]) == 0.5 and int(candidates["epoch"]) == 2 and int(candidates["step"]) == 11
    explicit = SegliteModelCheckpoint(save_on_train_epoch_end=True)
    assert explicit.saves_on_train_epoch_end(SimpleNamespace()) is True  # the argument wins, no trainer read


def test_given_hyperparameters_says_when_the_cli_instantiates() -> None:
    given = hparams_mixin._given_hyperparameters
    assert isinstance(given, contextvars.ContextVar) and given.get() is None
    assert not lightning_private.cli_is_instantiating()
    token = given.set({"model": {"class_path": "seglite.models.Preset"}})
    try:
        assert lightning_private.cli_is_instantiating()
    finally:
        given.reset(token)
