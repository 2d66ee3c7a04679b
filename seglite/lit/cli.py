"""The ``seglite`` command: LightningCLI over ``SegmentationTask`` and a data module."""

from __future__ import annotations

import sys
from typing import Sequence

import pytorch_lightning as pl
from pytorch_lightning.accelerators import CPUAccelerator
from pytorch_lightning.cli import LightningCLI

from seglite.errors import ConfigurationError, SegliteError
from seglite.lit.task import SegmentationTask

EVAL_OPTIONS = ("eval_mode", "eval_crop_size", "eval_stride", "eval_flip", "eval_scales")


def _as_lists(palette) -> list[list[int]]:
    return [[int(value) for value in color] for color in palette]


class SegliteCLI(LightningCLI):
    """LightningCLI with the data module's classes linked into the model and a closing summary."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.model.init_args.num_classes", apply_on="instantiate")
        # plain lists, so the checkpoint's hyperparameters hold no numpy objects
        parser.link_arguments("data.class_names", "model.class_names", compute_fn=list, apply_on="instantiate")
        parser.link_arguments("data.palette", "model.palette", compute_fn=_as_lists, apply_on="instantiate")

    def _parse_ckpt_path(self) -> None:
        """Let ``--ckpt_path`` rebuild the model, but keep the evaluation options of this command line.

        Lightning applies a checkpoint's hyperparameters over the whole ``model`` section
        (Lightning-AI/pytorch-lightning#21455), which would silently undo
        ``seglite test --ckpt_path P --model.eval_mode slide`` and the other ``eval_*`` options.
        """
        subcommand = self.config.get("subcommand")
        model = self.config[subcommand].get("model") if subcommand else None
        requested = {key: model[key] for key in EVAL_OPTIONS if key in model} if model is not None else {}
        super()._parse_ckpt_path()
        for key, value in requested.items():
            self.config[subcommand]["model"][key] = value

    def instantiate_classes(self) -> None:
        # our constructors validate their arguments and name them in the message: a bad value in
        # a config is a user error, reported without a traceback
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as error:
            raise ConfigurationError(f"invalid configuration: {error}") from error

    def before_fit(self) -> None:
        trainer = self.trainer
        # Lightning keeps the SyncBatchNorm plugin on the strategy (private attribute; the public
        # flag is not stored); without this check torch fails deep inside DDP's constructor
        if getattr(trainer.strategy, "_layer_sync", None) is not None and isinstance(trainer.accelerator, CPUAccelerator):
            raise SegliteError(
                "--trainer.sync_batchnorm true needs GPUs: torch's SyncBatchNorm does not run on CPU "
                "(DDP on CPU works without it, each process normalising its own batch)"
            )

    def after_fit(self) -> None:
        """Print the final validation scores and where the checkpoints are."""
        trainer, task = self.trainer, self.model
        if not trainer.is_global_zero:
            return
        scores = task.last_scores.get("val")
        if scores is not None:
            print(f"\nFinal validation (step {trainer.global_step}):\n{scores.table(task.class_names)}")
            print(f"val mIoU: {100 * scores.miou:.2f}")
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None:
            if checkpoint.best_model_path:
                score = checkpoint.best_model_score
                shown = f" (val/mIoU {100 * float(score):.2f})" if score is not None else ""
                print(f"best checkpoint: {checkpoint.best_model_path}{shown}")
            if checkpoint.last_model_path:
                print(f"last checkpoint: {checkpoint.last_model_path}")


def run_cli(args: Sequence[str] | None = None) -> SegliteCLI:
    return SegliteCLI(
        SegmentationTask,
        pl.LightningDataModule,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": False},
        args=args,
        auto_configure_optimizers=False,
    )


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of the ``seglite`` console script."""
    try:
        run_cli(args)
    except SegliteError as error:  # a user-facing problem: the message says what to do
        print(f"seglite: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
