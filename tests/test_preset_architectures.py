"""The presets are frozen: a checkpoint of ``seglite.models.Preset`` records the preset by name and is
rebuilt from today's definition, so a preset that changed would load its weights into another network.

Each preset's architecture (every module's type and the settings that shape its computation) is
fingerprinted and compared with ``tests/data/preset_architectures.json``. A failure here means a
preset changed: give the new architecture a new preset name (or a variant) instead, so checkpoints
of the old one keep their meaning. ``python tests/test_preset_architectures.py`` prints every
preset's fingerprint, to add a new preset's to the file.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from seglite.models.factory import PRESETS, architecture_description, build_preset

RECORD = Path(__file__).resolve().parent / "data" / "preset_architectures.json"


def fingerprint(name: str) -> str:
    """The first 16 hex digits of the SHA-256 of the preset's architecture description (built on the meta device)."""
    with torch.device("meta"):
        return hashlib.sha256(architecture_description(build_preset(name)).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_keeps_the_architecture_its_checkpoints_were_trained_with(name):
    recorded = json.loads(RECORD.read_text())
    assert name in recorded, f"new preset {name}: add its fingerprint to {RECORD.name} (run this file)"
    assert fingerprint(name) == recorded[name], (
        f"preset {name} changed: its checkpoints would load into another network; name the new architecture anew"
    )


def test_the_fingerprint_sees_a_change_of_dilation():
    model = build_preset("lraspp_mobilenet_v3_large")
    before = architecture_description(model)
    conv = next(module for module in model.modules() if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3))
    conv.dilation = (2, 2)
    assert architecture_description(model) != before


if __name__ == "__main__":
    json.dump({name: fingerprint(name) for name in sorted(PRESETS)}, sys.stdout, indent=1)
    print()
