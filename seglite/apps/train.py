"""Train a seglite model: ``python tools/train.py CONFIG [MORE_CONFIGS...] [--section.key value ...]``.

A thin layer over ``seglite fit --config CONFIG --config MORE ...`` (LightningCLI).
Example: ``python tools/train.py configs/lraspp_mnv3.yaml configs/demo.yaml``.
Resume a stopped run by adding ``--ckpt_path .../checkpoints/last.ckpt`` to the same command.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = "usage: python tools/train.py CONFIG [MORE_CONFIGS...] [--section.key value ...]"


def to_cli_args(argv: Sequence[str]) -> list[str]:
    """The ``seglite fit`` command line: the leading paths become ``--config`` options."""
    argv = list(argv)
    configs = []
    while argv and not argv[0].startswith("-"):
        configs.append(argv.pop(0))
    return ["fit"] + [arg for config in configs for arg in ("--config", config)] + argv


def main(argv: Sequence[str] | None = None) -> int:
    """Run training; returns the exit code (0, 2 for a user error, 128 + signal after an interrupt)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and not any(arg in ("-h", "--help") for arg in argv)):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        from seglite.lit.cli import run  # Lightning, torch and the models: only once there is work to do
    except KeyboardInterrupt:  # Ctrl-C while the libraries load (a few seconds)
        print("train: interrupted by Ctrl-C; nothing was saved", file=sys.stderr)
        return 130
    return run(to_cli_args(argv), prog="train")
