"""configs/: one base.yaml, short model configs that compose it and name their model's preset."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import yaml

from seglite.apps.configs import read_config
from seglite.models import PRESETS
from seglite.models.factory import PresetName

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BASE = CONFIGS / "base.yaml"
OVERLAYS = ("demo.yaml", "camvid_cpu.yaml")  # composed after a model config on the command line
MODEL_CONFIGS = sorted(path for path in CONFIGS.glob("*.yaml") if path.name not in (*OVERLAYS, BASE.name))
# what a model config may set besides its model: its output folder, and a data set's own schedule
OWN_KEYS = {"config", "trainer.default_root_dir", "trainer.logger", "model.model"}
DATA_SET_KEYS = {"trainer.max_steps", "trainer.val_check_interval", "model.lr", "model.warmup_steps", "data"}


def test_base_holds_the_shared_trainer_callbacks_optimiser_and_data() -> None:
    base = yaml.safe_load(BASE.read_text())
    assert {"max_steps", "precision", "callbacks"} <= set(base["trainer"])
    assert {"optimizer", "lr", "losses", "warmup_steps"} <= set(base["model"])
    assert base["data"]["class_path"] == "seglite.data.CityscapesDataModule"
    assert "model" not in base["model"] and "logger" not in base["trainer"]  # each model config's own


@pytest.mark.parametrize("config", MODEL_CONFIGS, ids=lambda path: path.stem)
def test_a_model_config_composes_base_and_names_its_preset(config: Path) -> None:
    text = config.read_text()
    assert text.startswith("config: base.yaml"), "the first line names what the config builds on"
    keys = yaml.safe_load(text)
    # no `trainer:` or `model:` section: jsonargparse would replace base.yaml's whole section with it
    assert set(keys) <= OWN_KEYS | DATA_SET_KEYS, set(keys) - OWN_KEYS - DATA_SET_KEYS
    assert keys["model.model"]["class_path"] == "seglite.models.Preset"
    assert keys["model.model"]["init_args"]["name"] in PRESETS
    assert keys["trainer.default_root_dir"] == f"outputs/{config.stem}"
    base = read_config(BASE)
    for key in set(keys) & DATA_SET_KEYS - {"data"}:  # never a copy of base.yaml's value
        section, name = key.split(".")
        assert keys[key] != base[section][name], key


def test_preset_names_are_the_presets() -> None:
    assert list(typing.get_args(PresetName)) == list(PRESETS)


def test_the_tools_read_a_model_config_as_the_cli_does(capsys) -> None:
    """``seglite.apps.configs`` (the tools' data: section) composes ``config:`` and dotted keys as jsonargparse."""
    from seglite.lit.cli import run

    config = CONFIGS / "lraspp_mnv3_camvid.yaml"
    assert run(["fit", f"--config={config}", "--print_config"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    composed = read_config(config)
    assert composed["data"]["class_path"] == resolved["data"]["class_path"] == "seglite.data.CamVidDataModule"
    assert all(resolved["data"]["init_args"][key] == value for key, value in composed["data"]["init_args"].items())
    for section in ("trainer", "model"):
        for key, value in composed[section].items():
            if key not in ("callbacks", "logger", "model"):
                assert resolved[section][key] == value, (section, key)
    assert resolved["trainer"]["logger"][0]["init_args"]["name"] == "lraspp_mnv3_camvid"
    assert len(resolved["trainer"]["callbacks"]) == 3  # base.yaml's, kept under the model config's dotted keys
    assert resolved["model"]["model"]["init_args"]["name"] == "lraspp_mobilenet_v3_large"
