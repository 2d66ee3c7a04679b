"""Train a seglite model: ``python tools/train.py CONFIG [MORE_CONFIGS...] [--section.key value ...]``.

A thin wrapper over ``seglite fit --config CONFIG --config MORE ...`` (LightningCLI).
Example: ``python tools/train.py configs/lraspp_mnv3.yaml configs/demo.yaml``.
"""

from __future__ import annotations

import sys

from seglite.lit.cli import main


def to_cli_args(argv: list[str]) -> list[str]:
    configs = []
    while argv and not argv[0].startswith("-"):
        configs.append(argv.pop(0))
    if not configs and not any(arg in ("-h", "--help") for arg in argv):
        raise SystemExit("usage: python tools/train.py CONFIG [MORE_CONFIGS...] [--section.key value ...]")
    return ["fit"] + [arg for config in configs for arg in ("--config", config)] + argv


if __name__ == "__main__":
    main(to_cli_args(sys.argv[1:]))
