"""The one place seglite uses private members of Lightning (STYLE rule 21).

Each use below has no public equivalent in pytorch_lightning 2.6; everything else in seglite uses
public API only. ``tests/test_lightning_private.py`` checks that every member named here still
exists with the signature and behaviour relied on, so a Lightning upgrade that changes one fails
there, loudly, instead of silently changing training, resuming or checkpoint contents.

- ``LightningCLI._parse_ckpt_path``: called by ``LightningCLI.__init__`` between parsing and
  instantiation to apply a checkpoint's hyperparameters; the only way to read ``--ckpt_path``
  with seglite's checkpoint reader before Lightning reads it with bare ``torch.load``.
- ``ModelCheckpoint._save_last_checkpoint``, ``_monitor_candidates``,
  ``_should_save_on_train_epoch_end`` and ``_last_global_step_saved``: how Lightning writes
  ``last.ckpt`` and decides when; seglite's ``ModelCheckpoint`` rewrites ``last.ckpt`` after
  every validation and must skip one of Lightning's own writes (``seglite.lit.checkpoint``).
- ``pytorch_lightning.core.mixins.hparams_mixin._given_hyperparameters``: the only sign that
  LightningCLI is instantiating the module, with the config as its hyperparameters.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint as LightningModelCheckpoint
from pytorch_lightning.cli import LightningCLI


def cli_is_instantiating() -> bool:
    """True while LightningCLI instantiates a module with the config as hyperparameters
    (``save_hyperparameters`` then records the config, the model's ``class_path`` included)."""
    from pytorch_lightning.core.mixins.hparams_mixin import _given_hyperparameters

    return _given_hyperparameters.get() is not None


class CheckpointHyperparametersCLI(LightningCLI):
    """``LightningCLI`` whose step "apply ``--ckpt_path``'s hyperparameters" is the public-named
    :meth:`parse_checkpoint_hyperparameters`, to override (Lightning's own by default)."""

    def _parse_ckpt_path(self) -> None:
        self.parse_checkpoint_hyperparameters()

    def parse_checkpoint_hyperparameters(self) -> None:
        """Update ``self.config`` with the hyperparameters of ``--ckpt_path``, after parsing, before instantiation."""
        super()._parse_ckpt_path()


class LastCheckpointHooks(LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` with its private steps around ``last.ckpt`` under public names.

    Lightning calls :meth:`save_last_checkpoint` (its ``_save_last_checkpoint``) wherever it writes
    ``last.ckpt``; a subclass overrides it to change when, and calls it to write now.
    """

    def _save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        self.save_last_checkpoint(trainer, monitor_candidates)

    def save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        """Write ``last.ckpt`` as Lightning does (a no-op without ``save_last``)."""
        super()._save_last_checkpoint(trainer, monitor_candidates)

    def monitor_candidates(self, trainer: pl.Trainer) -> dict[str, torch.Tensor]:
        """The logged metrics plus ``epoch`` and ``step``, what checkpoint names and scores are taken from."""
        return self._monitor_candidates(trainer)

    def saves_on_train_epoch_end(self, trainer: pl.Trainer) -> bool:
        """True when Lightning saves at the end of the training epoch rather than after validation."""
        return self._should_save_on_train_epoch_end(trainer)

    @property
    def last_global_step_saved(self) -> int:
        """The step Lightning last wrote a checkpoint at (it skips a second save at the same step)."""
        return self._last_global_step_saved

    @last_global_step_saved.setter
    def last_global_step_saved(self, step: int) -> None:
        self._last_global_step_saved = step


PRIVATE_MEMBERS: dict[str, Any] = {
    "LightningCLI._parse_ckpt_path": LightningCLI._parse_ckpt_path,
    "ModelCheckpoint._save_last_checkpoint": LightningModelCheckpoint._save_last_checkpoint,
    "ModelCheckpoint._monitor_candidates": LightningModelCheckpoint._monitor_candidates,
    "ModelCheckpoint._should_save_on_train_epoch_end": LightningModelCheckpoint._should_save_on_train_epoch_end,
}
"""The private methods used here (an import of this module fails at once when one is gone)."""
