"""The ``seglite`` command: LightningCLI over ``SegmentationTask`` and a data module.

What it adds to LightningCLI: the data module's classes linked into the model; options are never
abbreviated (``--trainer.max_step`` is an error, not ``max_steps``); every user error - a bad
config value, an unreadable or mismatched checkpoint, a read-only or full output folder, a data
error inside a loader worker - is one line naming the argument or file, exit code 2; an
interrupt (Ctrl-C, SIGTERM) saves ``last.ckpt`` and says how to resume; a backbone initialised
from ImageNet weights (its ``weights`` option) says what it copied; and the closing summary
prints what the checkpoint files hold, read back from them.
"""

from __future__ import annotations

import errno
import re
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.accelerators import CPUAccelerator
from pytorch_lightning.callbacks import ModelCheckpoint as LightningModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, SaveConfigCallback
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from seglite.checkpoints import model_config, read_checkpoint
from seglite.data.constants import IGNORE_INDEX
from seglite.data.datamodule import SegmentationDataModule
from seglite.errors import ConfigurationError, OutputExistsError, SegliteError
from seglite.files import describe_os_error, make_dir, write_text
from seglite.lit.checkpoint import use_atomic_checkpoint_io
from seglite.lit.lightning_private import CheckpointHyperparametersCLI
from seglite.lit.task import SegmentationTask

EVAL_OPTIONS = ("eval_mode", "eval_crop_size", "eval_stride", "eval_flip", "eval_scales")
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


class TrainingInterrupted(SegliteError):
    """Training stopped on Ctrl-C or SIGTERM; ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _as_lists(palette) -> list[list[int]]:
    return [[int(value) for value in color] for color in palette]


class SegliteArgumentParser(LightningArgumentParser):
    """No abbreviated options, and a parse error is a short message rather than the whole usage."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # `--trainer.max_step 3` must not set max_steps
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error:  # jsonargparse parsing internally, catching its own errors
            return super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"{prog}: error: {condensed(message)}\n(`{prog} --help` lists the accepted options)\n")
        self.exit(2)


def condensed(message: str) -> str:
    """jsonargparse's report on a ``class_path`` section (its union-type dump) as the one line that says what is wrong.

    ``Parser key "data": ... Problem with given class_path 'C': Option 'batchsize' is not accepted ...``
    becomes ``Parser key "data": class_path 'C': Option 'batchsize' is not accepted``; a bad value
    keeps every line nested under the problem (``Parser key "batch_size": Expected a <class 'int'>. Got value: abc``).
    """
    lines = [line for line in message.strip().splitlines() if line.strip()]
    if not any("Does not validate against any of the Union subtypes" in line for line in lines):
        return message.strip()
    for index, line in enumerate(lines):
        problem = line.strip().lstrip("- ")
        if not problem.startswith("Problem with given class_path"):
            continue
        details = []
        for nested in lines[index + 1 :]:
            if _indent(nested) <= _indent(line):
                break
            detail = nested.strip().lstrip("- ")
            if not detail.startswith(_UNION_NOISE):  # a nested union's dump: keep what was expected and given
                details.append(detail)
        if details:
            key = lines[0].strip().rstrip(":")
            return f"{key}: {problem.removeprefix('Problem with given ').rstrip(':')}: {' '.join(details)}"
    return message.strip()


_UNION_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:", "Given value type:")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


class SaveConfig(SaveConfigCallback):
    """Lightning's config saving, written atomically, never through a link, never over an earlier run's file."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        log_dir = trainer.log_dir  # a collective call: every rank makes it
        if trainer.is_global_zero:
            path = Path(log_dir or trainer.default_root_dir) / self.config_filename
            if path.is_symlink():
                raise OutputExistsError(f"{path} is a symbolic link; seglite never writes through links")
            if path.exists() and not self.overwrite:
                raise OutputExistsError(
                    f"{path} exists (an earlier run into the same folder); choose another "
                    "--trainer.default_root_dir, or remove the file"
                )
            make_dir(path.parent, "log folder")
            write_text(path, self.parser.dump(self.config, skip_none=False))
            self.save_config(trainer, pl_module, stage)
        self.already_saved = trainer.strategy.broadcast(True)


def _innermost_value_error(error: BaseException) -> BaseException:
    """The constructor's own ``ValueError``/``TypeError`` under jsonargparse's wrappers (its union-type dumps)."""
    found, seen = error, error
    while seen is not None:
        if isinstance(seen, (ValueError, TypeError)):
            found = seen
        seen = seen.__cause__ or seen.__context__
    return found


class SegliteCLI(CheckpointHyperparametersCLI):
    """LightningCLI with the data module's classes linked into the model, checked inputs and a closing summary."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """LightningCLI's (it parses, instantiates and runs the subcommand); an interrupted run ends in ``TrainingInterrupted``."""
        try:
            super().__init__(*args, **kwargs)
        except BaseException as stop:
            trainer = getattr(self, "trainer", None)
            stopped = isinstance(stop, (SIGTERMException, KeyboardInterrupt, SystemExit)) or (
                trainer is not None and trainer.received_sigterm  # e.g. a loader error from workers the signal ended
            )
            if trainer is None or not trainer.interrupted or not stopped:
                raise
            raise self._interrupted(isinstance(stop, SIGTERMException) or trainer.received_sigterm) from None

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.model.init_args.num_classes", apply_on="instantiate")
        # plain lists, so the checkpoint's hyperparameters hold no numpy objects
        parser.link_arguments("data.class_names", "model.class_names", compute_fn=list, apply_on="instantiate")
        parser.link_arguments("data.palette", "model.palette", compute_fn=_as_lists, apply_on="instantiate")

    def parse_checkpoint_hyperparameters(self) -> None:
        """Rebuild the model of ``--ckpt_path`` (as Lightning does), with three differences.

        - The file is read by seglite's checkpoint reader: a missing, truncated, foreign or
          refused file is one clear error, now.
        - A checkpoint of seglite 0.1 gets its model config made explicit
          (``seglite.checkpoints.model_config``), so it rebuilds the architecture of its weights.
        - This command line's evaluation options are kept: Lightning applies a checkpoint's
          hyperparameters over the whole ``model`` section (Lightning-AI/pytorch-lightning#21455),
          which would silently undo ``seglite test --ckpt_path P --model.eval_mode slide``.
        """
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        path = self.config[subcommand].get("ckpt_path")
        if not path or path in ("last", "best", "hpc", "registry"):  # Lightning's names, resolved later
            return
        checkpoint = read_checkpoint(path)
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if isinstance(hparams.get("model"), dict):
            hparams["model"] = model_config(checkpoint, path)
        model = self.config[subcommand].get("model")
        requested = {key: model[key] for key in EVAL_OPTIONS if key in model} if model is not None else {}
        try:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
        except SystemExit:
            sys.stderr.write(f"the hyperparameters of checkpoint {path} do not parse as a seglite model configuration\n")
            raise
        for key, value in requested.items():
            self.config[subcommand]["model"][key] = value

    def instantiate_classes(self) -> None:
        # our constructors validate their arguments and name them in the message: a bad value in
        # a config is a user error, reported without a traceback or jsonargparse's type dump
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as error:
            cause = _innermost_value_error(error)
            if isinstance(cause, SegliteError):
                raise cause from error
            raise ConfigurationError(f"invalid configuration: {cause}") from error
        # what a backbone's `weights` option copied in (seglite.models.weights.LoadedWeights), on rank 0 only
        for module in self.model.modules():
            loaded = getattr(module, "loaded_weights", None)
            if loaded is not None:
                rank_zero_info(str(loaded))
        self._check_ignore_index()

    def _check_ignore_index(self) -> None:
        """One ignore label: seglite's data modules map each data set's void value to 255 while loading."""
        data = getattr(self, "datamodule", None)
        ignore_index = self.model.hparams.get("ignore_index", IGNORE_INDEX)
        if isinstance(data, SegmentationDataModule) and ignore_index != IGNORE_INDEX:
            raise ConfigurationError(
                f"--model.ignore_index is {ignore_index}, but {type(data).__name__} marks unlabelled pixels with "
                f"{IGNORE_INDEX}, the one ignore label of padding, loss and metrics; set the value your masks use "
                f"for them with --data.init_args.ignore_index {ignore_index} (it is mapped to {IGNORE_INDEX} on loading)"
            )

    def before_fit(self) -> None:
        trainer = self.trainer
        # the Trainer does not keep its sync_batchnorm flag where it can be read: the config holds it;
        # without this check torch fails deep inside DDP's constructor
        if self.config[self.subcommand].trainer.get("sync_batchnorm") and isinstance(trainer.accelerator, CPUAccelerator):
            raise SegliteError(
                "--trainer.sync_batchnorm true needs GPUs: torch's SyncBatchNorm does not run on CPU "
                "(DDP on CPU works without it, each process normalising its own batch)"
            )
        use_atomic_checkpoint_io(trainer)
        for callback in trainer.checkpoint_callbacks:
            if type(callback) is LightningModelCheckpoint and callback.save_last:
                rank_zero_warn(
                    "pytorch_lightning's ModelCheckpoint rewrites last.ckpt only when the monitored metric improves; "
                    "seglite.lit.checkpoint.ModelCheckpoint (same arguments) keeps it current"
                )
        # a read-only output folder: one message now, not a traceback from a logger later
        if trainer.is_global_zero:
            folders = [trainer.default_root_dir] + [logger.save_dir for logger in trainer.loggers if logger.save_dir]
            for folder in dict.fromkeys(folders):
                make_dir(folder, "output folder")

    def _interrupted(self, orderly: bool) -> TrainingInterrupted:
        trainer = self.trainer
        callback = trainer.checkpoint_callback
        cause = getattr(callback, "interrupted_by", None) or ("SIGTERM" if orderly else "Ctrl-C")
        code = 128 + (signal.SIGTERM if cause == "SIGTERM" else signal.SIGINT)
        message = f"training stopped by {cause} at step {trainer.global_step}"
        last = getattr(callback, "last_model_path", "")
        if last and Path(last).is_file():
            message += f"; {_describe_saved(last, callback)}; resume by adding --ckpt_path {last} to the same command"
        else:
            message += "; no checkpoint was saved"
        return TrainingInterrupted(message, int(code))

    def after_fit(self) -> None:
        """Print the final validation scores and where the checkpoints are, as read back from the files."""
        trainer, task = self.trainer, self.model
        if not trainer.is_global_zero:
            return
        scores = task.last_scores.get("val")
        if scores is not None:
            print(f"\nFinal validation (step {trainer.global_step}):\n{scores.table(task.class_names)}")
            print(f"val mIoU: {100 * scores.miou:.2f}")
        callback = trainer.checkpoint_callback
        if not isinstance(callback, LightningModelCheckpoint):
            return
        if callback.best_model_path:
            print(f"best checkpoint: {_describe_saved(callback.best_model_path, callback)}")
            held = _saved_score(callback.best_model_path, callback)
            claimed = None if callback.best_model_score is None else float(callback.best_model_score)
            if held != claimed:
                print(f"warning: {callback.best_model_path} holds {callback.monitor} {held}, not the best {claimed}", file=sys.stderr)
        if callback.last_model_path:
            print(f"last checkpoint: {_describe_saved(callback.last_model_path, callback)}")
            step = read_checkpoint(callback.last_model_path).get("global_step")
            if step != trainer.global_step:
                print(
                    f"warning: {callback.last_model_path} holds step {step}, but training ended at step "
                    f"{trainer.global_step}",
                    file=sys.stderr,
                )


def _saved_score(path: str, callback: LightningModelCheckpoint) -> float | None:
    """The monitored value stored with the checkpoint at ``path`` (the callback's state when it was written)."""
    state = read_checkpoint(path).get("callbacks", {}).get(callback.state_key, {})
    score = state.get("current_score")
    return None if score is None else float(score)


def _describe_saved(path: str, callback: LightningModelCheckpoint) -> str:
    """``path (step N, val/mIoU 76.50)``, the numbers read from the file."""
    checkpoint = read_checkpoint(path)
    details = [f"step {checkpoint.get('global_step')}"]
    score = checkpoint.get("callbacks", {}).get(callback.state_key, {}).get("current_score")
    if callback.monitor and score is not None and Path(path).name != f"{callback.CHECKPOINT_NAME_LAST}.ckpt":
        value = float(score)
        shown = f"{100 * value:.2f}" if "iou" in callback.monitor.lower() or "acc" in callback.monitor.lower() else f"{value:.4g}"
        details.append(f"{callback.monitor} {shown}")
    return f"{path} ({', '.join(details)})"


def run_cli(args: Sequence[str] | None = None, prog: str | None = None) -> SegliteCLI:
    """Parse ``args`` (default: the command line) and run; ``prog`` names the program in messages."""
    with warnings.catch_warnings():
        # tools/*.py pass the arguments they parsed on purpose, with sys.argv also set
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended to run from within Python")
        return SegliteCLI(
            SegmentationTask,
            pl.LightningDataModule,
            subclass_mode_data=True,
            save_config_callback=SaveConfig,
            save_config_kwargs={"overwrite": False},
            parser_class=SegliteArgumentParser,
            parser_kwargs={"prog": prog} if prog else None,
            args=args,
            auto_configure_optimizers=False,
        )


_WORKER_ERROR = re.compile(r"^Caught (\w+) in DataLoader worker process (\d+)\.\nOriginal Traceback", re.S)


def error_message(error: BaseException) -> str:
    """The message to show for a user error: a loader worker's own message, not the traceback torch wraps it in."""
    text = str(error)
    match = _WORKER_ERROR.match(text)
    if match is None:
        return text
    lines = text.rstrip().splitlines()
    name = type(error).__name__
    for index in range(len(lines) - 1, -1, -1):
        head, separator, rest = lines[index].partition(": ")
        if separator and (head == name or head.endswith(f".{name}")):
            return "\n".join([rest, *lines[index + 1 :]]) + f" (in loader worker {match.group(2)})"
    return lines[-1]


def run(
    args: Sequence[str] | None = None, prog: str = "seglite", on_success: Callable[[SegliteCLI], None] | None = None
) -> int:
    """Run the CLI, then ``on_success(cli)``; user errors are printed as one message.

    Returns the exit code: 0; 2 for a user error (bad argument or config value, unreadable or
    mismatched checkpoint, data error, output folder not writable or full); 128 + signal number
    after Ctrl-C or SIGTERM.
    """
    try:
        cli = run_cli(args, prog)
        if on_success is not None:
            on_success(cli)
    except TrainingInterrupted as stop:
        print(f"{prog}: {stop}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:  # before training started (set-up, data checks), or in validate/test
        print(f"{prog}: interrupted by Ctrl-C; nothing was saved", file=sys.stderr)
        return 128 + signal.SIGINT
    except SegliteError as error:  # a user-facing problem: the message says what to do
        print(f"{prog}: error: {error_message(error)}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno not in WRITE_ERRORS or not error.filename:
            raise
        print(f"{prog}: error: cannot write {error.filename}: {describe_os_error(error)}", file=sys.stderr)
        return 2
    except SystemExit as stop:  # argument errors (2) and --help (0)
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    return 0


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of the ``seglite`` console script."""
    sys.exit(run(args))


if __name__ == "__main__":
    main()
