"""Evaluate a checkpoint: mIoU, per-class IoU and pixel accuracy, written as JSON, CSV and a confusion image.

A thin layer over ``seglite test`` (LightningCLI) with ``seglite.lit.evaluation.EvaluationWriter``:
the configs are those of training (or the ``config.yaml`` Lightning saved beside the
checkpoints), inference options left out keep the config's ``model.eval_*`` values, and
further ``--section.key value`` arguments, after the paths, go to LightningCLI.

Examples::

    python tools/test.py configs/lraspp_mnv3.yaml configs/demo.yaml last.ckpt --mode slide --flip
    python tools/test.py configs/lraspp_mnv3.yaml best.ckpt --output results/val --format cityscapes
    CITYSCAPES_DATASET=data/cityscapes CITYSCAPES_RESULTS=results/val/cityscapes \\
        CITYSCAPES_EXPORT_DIR=results/val csEvalPixelLevelSemanticLabeling

``--overwrite`` replaces only what an earlier evaluation wrote into the output folder (its
``.seglite-outputs.json`` lists it); any other file there makes it stop with an error. The new
results are written into a hidden folder inside the output folder and moved in only once the run
has succeeded, so a run that fails, or is stopped by Ctrl-C, leaves earlier results as they were.

Evaluation runs in fp32 (``--trainer.precision 32-true``) whatever precision the config trained
in; pass ``--trainer.precision`` to choose another. The model evaluated is the one the checkpoint
records (its architecture and weights), also when the configs describe another: the tool says so
and ``results.json`` records the model. Ctrl-C stops it with exit code 130, leaving no partial
results.

The split evaluated is ``--split``, or the one ``--data.init_args.test_split`` names: the output
folder's default name, ``results.json`` and the last line printed all name it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seglite.apps import arguments
from seglite.apps.configs import command_line_values, merge_sections, read_config

CONFIG_FILE = "config.yaml"  # Lightning saves the evaluation's config there (seglite.results.CONFIG_FILE)
EVALUATION_PRECISION = "32-true"  # the fp32 reference every deployment path is measured against (README)
INTERRUPTED = 128 + signal.SIGINT  # the shell's exit status after Ctrl-C
SPLIT_OPTION = "--data.init_args.test_split"  # what the tool passes for --split, which a later one overrides
# the staging folder of the run: processes that Lightning starts for DDP inherit it and write there too
STAGING_ENVIRONMENT = "SEGLITE_TEST_STAGING"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="test",
        usage="%(prog)s CONFIG [MORE_CONFIGS...] CHECKPOINT [options] [--section.key value ...]",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # `--over` must not mean --overwrite
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="training config(s), then the checkpoint")
    parser.add_argument("--split", choices=("val", "test"),
                        help="split to evaluate (default: val; Cityscapes test has no public labels)")
    parser.add_argument("--mode", choices=("whole", "slide"), help="whole-image or sliding-window inference (default: the config's)")
    parser.add_argument("--crop-size", type=arguments.positive_int, nargs=2, metavar=("H", "W"), help="sliding-window size")
    parser.add_argument("--stride", type=arguments.positive_int, nargs=2, metavar=("H", "W"), help="sliding-window stride")
    parser.add_argument("--flip", action="store_true", help="horizontal-flip test-time augmentation")
    parser.add_argument("--scales", type=arguments.positive_float, nargs="+", metavar="S",
                        help="multi-scale test-time augmentation, e.g. 0.75 1.0 1.25")
    parser.add_argument("--output", type=Path, help="results folder (default: beside the checkpoint, named after it and the split)")
    parser.add_argument("--format", choices=("cityscapes",), help="also write label-id PNGs for the official Cityscapes evaluation")
    parser.add_argument("--overwrite", action="store_true", help="replace the results an earlier evaluation wrote into the output folder")
    return parser


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = build_parser()
    args, cli_args = parser.parse_known_args(list(argv))
    if len(args.paths) < 2:
        parser.error("give at least one config and the checkpoint: CONFIG [MORE_CONFIGS...] CHECKPOINT")
    # LightningCLI applies a test_split given among its arguments after --split: that split is evaluated
    given = command_line_values(cli_args, "data").get("data", {}).get("init_args", {}).get("test_split")
    if given is not None and args.split is not None and str(given) != args.split:
        parser.error(f"--split {args.split} and {SPLIT_OPTION} {given} disagree: give one of them")
    args.split = str(given) if given is not None else args.split or "val"
    return args, cli_args  # the rest goes to LightningCLI, which rejects what it does not know


def default_output(checkpoint: Path, split: str) -> Path:
    return checkpoint.parent / f"{checkpoint.stem}_{split}"


def output_folder(args: argparse.Namespace) -> Path:
    return args.output or default_output(Path(args.paths[-1]), args.split)


def to_cli_args(
    args: argparse.Namespace, cli_args: Sequence[str], settings: dict[str, Any] | None = None, staging: Path | None = None
) -> list[str]:
    """The ``seglite test`` command line that runs this evaluation; ``settings`` go into ``results.json`` too.

    ``staging``: the folder the run writes into, whose files are moved to the output folder on
    success (default: the output folder itself).
    """
    *configs, checkpoint = args.paths
    output = output_folder(args)
    target = staging or output
    writer = {
        "class_path": "seglite.lit.evaluation.EvaluationWriter",
        "init_args": {
            "output_dir": str(target),
            "export_cityscapes": args.format == "cityscapes",
            "overwrite": args.overwrite and staging is None,
            "settings": {"configs": configs, "checkpoint": checkpoint, "split": args.split, **(settings or {})},
            "destination": str(output),
        },
    }
    overrides = {
        "--model.eval_mode": args.mode,
        "--model.eval_crop_size": args.crop_size,
        "--model.eval_stride": args.stride,
        "--model.eval_flip": True if args.flip else None,
        "--model.eval_scales": args.scales,
    }
    command = ["test"] + [item for config in configs for item in ("--config", config)]
    command += ["--ckpt_path", checkpoint, SPLIT_OPTION, args.split]
    # before the user's arguments, so that an explicit --trainer.precision still wins
    command += ["--trainer.precision", EVALUATION_PRECISION]
    for key, value in overrides.items():
        if value is not None:
            command += [key, value if isinstance(value, str) else json.dumps(value)]
    # no logger: the config Lightning saves (config.yaml) lands in the results folder instead
    command += ["--trainer.logger", "false", "--trainer.default_root_dir", str(target)]
    command += [f"--trainer.callbacks+={json.dumps(writer)}"]
    return command + list(cli_args)


# ----------------------------------------------------------------------------- checks before the run
def stated_model_section(configs: Sequence[dict[str, Any]], cli_args: Sequence[str]) -> dict[str, Any]:
    """The ``model`` section the configs and command line state (LightningCLI's defaults not filled in)."""
    merged: dict[str, Any] = {}
    for sections in [*configs, command_line_values(cli_args)]:
        merged = merge_sections(merged, sections)
    model = merged.get("model")
    return model if isinstance(model, dict) else {}


def _task_default(name: str) -> Any:
    import inspect

    from seglite.lit.task import SegmentationTask

    return inspect.signature(SegmentationTask.__init__).parameters[name].default


def check_inference_options(args: argparse.Namespace, model: dict[str, Any]) -> None:
    """Refuse sliding-window options that would be ignored, or windows that leave pixels unpredicted.

    The values are those the evaluation will use: the option if given, else the configs'
    ``model.eval_*``, else ``SegmentationTask``'s default (a checkpoint's own are not used).
    """
    from seglite.errors import ConfigurationError

    def value(name: str) -> tuple[Any, str]:
        given = getattr(args, name)
        if given is not None:
            return given, f"--{name.replace('_', '-')}"
        if model.get(f"eval_{name}") is not None:
            return model[f"eval_{name}"], f"model.eval_{name}"
        return _task_default(f"eval_{name}"), f"the default of model.eval_{name}"

    window_flags = [flag for flag, given in (("--crop-size", args.crop_size), ("--stride", args.stride)) if given]
    mode, mode_source = value("mode")
    if window_flags and mode != "slide":
        verbs = "set the sliding windows and need" if len(window_flags) > 1 else "sets the sliding windows and needs"
        raise ConfigurationError(
            f"{' and '.join(window_flags)} {verbs} --mode slide ({mode_source} is {mode!r}, which would ignore them)"
        )
    if mode != "slide":
        return
    (crop, crop_source), (stride, stride_source) = value("crop_size"), value("stride")
    if not (isinstance(crop, (list, tuple)) and isinstance(stride, (list, tuple)) and len(crop) == len(stride) == 2):
        return  # a malformed config value: LightningCLI names it
    if any(step > size for step, size in zip(stride, crop)):
        if args.stride is None:
            fix = "pass --stride H W no larger than the crop size on each axis"
        else:
            fix = "pass a --stride no larger than the crop size on each axis" + ("" if args.crop_size else " or a larger --crop-size")
        raise ConfigurationError(
            f"sliding-window stride {' '.join(map(str, stride))} ({stride_source}) is larger than the crop size "
            f"{' '.join(map(str, crop))} ({crop_source}): the pixels between windows would get no prediction; {fix}"
        )


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def model_differences(stated: Any, held: Any, where: str = "") -> list[str]:
    """Where the model the configs state differs from the checkpoint's (only values both give)."""
    from seglite.checkpoints import class_name

    name = where or "model"
    if isinstance(stated, dict) and isinstance(held, dict):
        if class_name(stated) and class_name(held) and class_name(stated) != class_name(held):
            if not where and same_architecture(stated, held):  # e.g. a Preset and the classes it names
                return []
            return [f"{name}: {class_name(held)} in the checkpoint, {class_name(stated)} in the configs"]
        found = []
        for key, value in stated.items():
            if key != "class_path" and key in held:
                inner = where if key == "init_args" else (f"{where}.{key}" if where else key)
                found += model_differences(value, held[key], inner)
        return found
    if _plain(stated) != _plain(held):
        return [f"{name}: {held!r} in the checkpoint, {stated!r} in the configs"]
    return []


def same_architecture(stated: dict[str, Any], held: dict[str, Any]) -> bool:
    """Whether two complete model configs build the same network (built on the meta device: no memory, no weights read)."""
    import torch

    from seglite.checkpoints import CheckpointError, build_model_from_config, without_initial_weights
    from seglite.models.factory import architecture_description

    try:
        with torch.device("meta"):
            models = [build_model_from_config(without_initial_weights(config)) for config in (stated, held)]
    except (CheckpointError, TypeError, ValueError):  # an incomplete config: compared by class name
        return False
    return architecture_description(models[0]) == architecture_description(models[1])


def describe_evaluated_model(checkpoint_path: str, stated_model: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """What the checkpoint holds, for ``results.json``, and a notice when the configs describe another model."""
    from seglite.checkpoints import CheckpointError, describe_checkpoint_model, model_config, read_checkpoint

    checkpoint = read_checkpoint(checkpoint_path)
    step = checkpoint.get("global_step")
    record: dict[str, Any] = {"checkpoint_step": step, "model": describe_checkpoint_model(checkpoint)}
    try:
        held = model_config(checkpoint, checkpoint_path)
    except CheckpointError:
        return record, None  # no model config: Lightning's own loading says what is wrong
    differences = model_differences(stated_model.get("model"), held)
    record["model_differs_from_configs"] = differences
    if not differences:
        return record, None
    shown = "; ".join(differences[:3]) + ("; ..." if len(differences) > 3 else "")
    notice = (
        f"test: evaluating the checkpoint's own model, not the configs': {checkpoint_path} holds {record['model']} "
        f"({shown})"
    )
    return record, notice


# ----------------------------------------------------------------------------- the run
class _Interrupted(BaseException):
    """Ctrl-C during the evaluation.

    Not a ``KeyboardInterrupt``: Lightning turns that into ``sys.exit(1)`` inside ``trainer.test``,
    which seglite's CLI then reports as a training run stopped by Ctrl-C.
    """


def _on_sigint(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break off the clean-up
    raise _Interrupted


class _Outputs:
    """The run's staging folder (``seglite.files.StagedOutputs``) and the folders it made, once there are any."""

    def __init__(self) -> None:
        self.staging = None
        self.created: list[Path] = []
        self.owner = STAGING_ENVIRONMENT not in os.environ  # False in a process Lightning started for DDP
        self.committed = False

    def discard(self) -> bool:
        """Drop what the run staged and the empty folders it made; True if it had staged any file."""
        from seglite.files import remove_empty_folders

        held = self.staging.discard() if self.staging is not None and self.owner else []
        remove_empty_folders(self.created)
        return bool(held)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation; returns the exit code (0, 2 for a user error, 130 after Ctrl-C)."""
    args, cli_args = parse_args(sys.argv[1:] if argv is None else argv)
    output = output_folder(args)
    cityscapes = args.format == "cityscapes"
    # Ctrl-C is ours to handle in the main thread, unless the process was started ignoring it (nohup)
    own_sigint = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    previous_sigint = signal.signal(signal.SIGINT, _on_sigint) if own_sigint else None
    outputs = _Outputs()
    try:
        code = _evaluate(args, cli_args, output, cityscapes, outputs)
        if code != 0:
            outputs.discard()
        return code
    except (KeyboardInterrupt, _Interrupted):
        print(f"test: interrupted; {_interrupted_outcome(output, cityscapes, outputs)}", file=sys.stderr)
        return INTERRUPTED
    except BaseException:
        outputs.discard()
        raise
    finally:
        if outputs.owner:
            os.environ.pop(STAGING_ENVIRONMENT, None)
        if own_sigint:
            signal.signal(signal.SIGINT, previous_sigint)


def _interrupted_outcome(output: Path, cityscapes: bool, outputs: _Outputs) -> str:
    """Drop what this run staged and say so, and which earlier results are kept as they were."""
    from seglite.results import existing_results

    if outputs.committed:  # Ctrl-C held while the results moved in (files.signals_deferred)
        return f"the run had finished: its results are in {output}"
    outcome = "no results written" + (" (the partial ones were discarded)" if outputs.discard() else "")
    earlier = existing_results(output, cityscapes, extra=[CONFIG_FILE])
    if earlier:
        outcome += f"; the earlier results in {output} are kept as they were: {', '.join(path.name for path in earlier)}"
    return outcome


def _evaluate(args: argparse.Namespace, cli_args: list[str], output: Path, cityscapes: bool, outputs: _Outputs) -> int:
    from seglite.errors import SegliteError
    from seglite.files import StagedOutputs, missing_folders, require_file, signals_deferred
    from seglite.results import check_results_writable, result_paths

    try:
        configs = [read_config(require_file(path, "config")) for path in args.paths[:-1]]
        require_file(args.paths[-1], "checkpoint")
        stated_model = stated_model_section(configs, cli_args)
        check_inference_options(args, stated_model)
        record, notice = describe_evaluated_model(args.paths[-1], stated_model)
        check_results_writable(output, cityscapes, args.overwrite, extra=[CONFIG_FILE])
        outputs.created = missing_folders(output)
        # replaced only on success: the run writes beside the earlier results, which stay until it is done
        outputs.staging = StagedOutputs(output, staging=os.environ.get(STAGING_ENVIRONMENT))
        os.environ[STAGING_ENVIRONMENT] = str(outputs.staging.path)
    except SegliteError as error:
        print(f"test: error: {error}", file=sys.stderr)
        return 2
    if notice:
        print(notice, file=sys.stderr)
    command = to_cli_args(args, cli_args, record, outputs.staging.path)

    from seglite.lit.cli import run  # Lightning, torch and the models: only once the checks passed

    def finish(cli) -> None:
        cli.trainer.strategy.barrier("tools/test.py finish")  # every process has written its files
        if outputs.owner:  # the process that made the staging folder moves its files in
            # with --overwrite, an earlier run's results that this one does not rewrite go too
            stale = result_paths(output, cityscapes, [CONFIG_FILE]) if args.overwrite else []
            with signals_deferred():  # a Ctrl-C during the moves is delivered once they are done and noted
                outputs.staging.commit(args.overwrite, stale)
                outputs.committed = True
        scores = cli.model.last_scores.get("test")
        if cli.trainer.is_global_zero and scores is not None and int(scores.confusion.sum()) > 0:
            print(f"{args.split} mIoU: {100 * scores.miou:.2f}  pixel accuracy: {100 * scores.pixel_accuracy:.2f}  results: {output}")

    return run(command, prog="test", on_success=finish)
