"""Checkpoints of seglite 0.1: their model configs rebuild the 0.1 architecture after upgrade_model_config.

The reference is ``tests/data/seglite_0.1_models.json``, written by running the 0.1 code (commit
d11d3ec) on every config file: the model config as LightningCLI stored it (every argument,
defaults included) and the state dict that code built.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from seglite.models.compat import upgrade_model_config

OLD_MODELS = json.loads((Path(__file__).parent / "data" / "seglite_0.1_models.json").read_text())
CONFIG_NAMES = sorted(name for name in OLD_MODELS if name != "about")


def instantiate(node: Any) -> Any:
    """Build ``{"class_path", "init_args"}`` configs recursively, as LightningCLI does for a checkpoint."""
    if isinstance(node, dict) and "class_path" in node:
        module, name = node["class_path"].rsplit(".", 1)
        model_class = getattr(importlib.import_module(module), name)
        return model_class(**{key: instantiate(value) for key, value in node.get("init_args", {}).items()})
    return node


def shapes(model: torch.nn.Module) -> list[list]:
    return [[key, list(value.shape)] for key, value in model.state_dict().items()]


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_upgraded_old_configs_rebuild_the_old_architecture(name: str) -> None:
    old = OLD_MODELS[name]
    with torch.device("meta"):
        model = instantiate(upgrade_model_config(old["config"]))
    pairs = shapes(model)
    assert len(pairs) == old["num_tensors"]
    assert hashlib.sha256(json.dumps(pairs).encode()).hexdigest() == old["shapes_sha256"]


@pytest.mark.parametrize("name", ["lraspp_mnv3", "lraspp_mnv3_small", "raspp_mnv3"])
def test_old_state_dicts_load_into_upgraded_models(name: str) -> None:
    old = OLD_MODELS[name]
    generator = torch.Generator().manual_seed(0)
    state_dict = {
        key: torch.randint(0, 100, shape) if key.endswith("num_batches_tracked") else torch.randn(shape, generator=generator)
        for key, shape in old["state_dict_shapes"]
    }
    model = instantiate(upgrade_model_config(old["config"]))
    model.load_state_dict(state_dict)  # strict: every key, every shape
    for key, value in model.state_dict().items():
        assert torch.equal(value, state_dict[key]), key
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 19, 64, 64)


@pytest.mark.parametrize("name", ["lraspp_mnv3", "lraspp_mnv3_small"])
def test_without_upgrade_the_new_defaults_are_another_architecture(name: str) -> None:
    """What the upgrade is for: 0.2's defaults are the authors' model, which 0.1 weights do not fit."""
    old = OLD_MODELS[name]
    config = copy.deepcopy(old["config"])
    del config["init_args"]["pooling"]  # 0.2 replaced it
    with torch.device("meta"):
        model = instantiate(config)
    assert shapes(model) != old["state_dict_shapes"]


def test_upgrade_is_explicit_idempotent_and_leaves_its_input_alone() -> None:
    old = OLD_MODELS["lraspp_mnv3"]["config"]
    before = copy.deepcopy(old)
    upgraded = upgrade_model_config(old)
    assert old == before
    assert upgrade_model_config(upgraded) == upgraded
    backbone = upgraded["init_args"]["backbone"]["init_args"]
    assert (backbone["tail_reduction"], backbone["dilation_rule"]) == ("outputs", "deeplab")
    head = upgraded["init_args"]
    assert "pooling" not in head
    assert (head["pool_kernel"], head["gate_activation"], head["gate_bias"], head["low_feature"]) == (
        None,
        "sigmoid",
        False,
        "layer2",
    )
    # the 0.1 "paper" pooling, and a minimal config as written in a YAML file
    minimal = {
        "class_path": "seglite.models.segmentor.LRASPP",
        "init_args": {
            "backbone": {"class_path": "seglite.models.backbones.mobilenet_v3.MobileNetV3", "init_args": {"reduced_tail": True}},
            "pooling": "paper",
        },
    }
    upgraded = upgrade_model_config(minimal)
    assert upgraded["init_args"]["pool_kernel"] == [49, 49] and upgraded["init_args"]["pool_stride"] == [16, 20]
    assert upgraded["init_args"]["backbone"]["init_args"]["tail_reduction"] == "outputs"
    with torch.device("meta"):
        assert instantiate(upgraded).backbone.layer4[0].depthwise_channels == 672


def test_upgrade_refuses_what_it_cannot_read() -> None:
    with pytest.raises(TypeError, match="upgrade_model_config: config must be a mapping"):
        upgrade_model_config(["seglite.models.LRASPP"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"LR-ASPP pooling must be one of \('global', 'paper'\), got 'max'"):
        upgrade_model_config({"class_path": "seglite.models.LRASPP", "init_args": {"pooling": "max"}})


@pytest.mark.parametrize(("pooling", "kernel", "stride"), [("global", None, (4, 5)), ("paper", (49, 49), (16, 20))])
def test_deprecated_lraspp_pooling_of_0_1_config_files_still_parses(pooling, kernel, stride):
    from seglite.models import LRASPP
    from seglite.models.backbones import MobileNetV3

    backbone = MobileNetV3("small", width_mult=0.5, output_stride=16)
    with pytest.warns(FutureWarning, match="pool_kernel"):
        model = LRASPP(backbone, num_classes=3, pooling=pooling)
    expected = LRASPP(MobileNetV3("small", width_mult=0.5, output_stride=16), num_classes=3, pool_kernel=kernel, pool_stride=stride)
    assert str(model.head) == str(expected.head)
    with pytest.raises(ValueError, match="pooling must be one of"):
        LRASPP(backbone, num_classes=3, pooling="average")
