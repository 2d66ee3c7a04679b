"""Lightning-free checkpoint reading: the same model as Lightning rebuilds, only seglite model classes, one-line errors."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_predictor import checkpoint, random_images  # noqa: F401  (fixtures, shared)

import seglite
from seglite import checkpoints as checkpoint_module
from seglite.checkpoints import build_model_from_config, load_checkpoint
from seglite.data import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from seglite.errors import ModelLoadError
from seglite.files import InputNotFoundError

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pytorch_lightning.cli")


def test_rebuilds_the_model_lightning_rebuilds(checkpoint):  # noqa: F811
    from seglite.lit.task import SegmentationTask

    task = SegmentationTask.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    loaded = load_checkpoint(checkpoint)
    assert type(loaded.model) is type(task.model) and not loaded.model.training
    images = torch.randn(2, 3, 61, 97)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(images), task.model(images), rtol=0, atol=0)
    assert loaded.class_names == list(CITYSCAPES_CLASSES) and loaded.palette == CITYSCAPES_PALETTE.tolist()
    assert loaded.num_classes == 19 and loaded.path == Path(checkpoint)
    assert loaded.sha256 == hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    assert loaded.seglite_version == seglite.__version__


def _variant(source: Path, tmp_path: Path, name: str, change) -> Path:
    content = torch.load(source, map_location="cpu", weights_only=True)
    change(content)
    path = tmp_path / f"{name}.ckpt"
    torch.save(content, path)
    return path


def _config_class_path(value: str):
    def change(content):
        content["hyper_parameters"]["model"]["class_path"] = value
    return change


BAD_FILES = {
    "random": lambda path, good: path.write_bytes(random.Random(0).randbytes(4096)),
    "empty": lambda path, good: path.write_bytes(b""),
    "truncated": lambda path, good: path.write_bytes(good.read_bytes()[: good.stat().st_size // 2]),
    "text": lambda path, good: path.write_text("model: lraspp\n"),
    "state_dict_only": lambda path, good: torch.save({"weight": torch.zeros(3)}, path),
    "tensor": lambda path, good: torch.save(torch.zeros(3), path),
    "pickled_module": lambda path, good: torch.save(torch.nn.Linear(2, 2), path),
    "no_model_config": lambda path, good: torch.save({"state_dict": {}, "hyper_parameters": {"lr": 0.1}}, path),
    "no_hyperparameters": lambda path, good: torch.save({"state_dict": {}}, path),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_unusable_files_give_one_line_naming_the_file(checkpoint, tmp_path, kind):  # noqa: F811
    path = tmp_path / f"{kind}.ckpt"
    BAD_FILES[kind](path, Path(checkpoint))
    with pytest.raises(ModelLoadError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    if kind == "pickled_module":
        assert "torch.nn.modules.linear.Linear" in message and "safety" in message
    if kind in ("no_model_config", "no_hyperparameters", "state_dict_only"):
        assert "seglite fit" in message


def test_a_tensor_with_a_bad_crc_is_named(checkpoint, tmp_path):  # noqa: F811
    from helpers import with_a_bad_crc

    path = tmp_path / "bad_crc.ckpt"
    member = with_a_bad_crc(Path(checkpoint), path)
    torch.load(path, map_location="cpu", weights_only=True)  # torch reads it without complaint
    with pytest.raises(ModelLoadError) as caught:
        load_checkpoint(path)
    assert str(caught.value) == (
        f"checkpoint {path} is damaged: {member} fails its CRC-32 check (a bad copy or a failing disk)"
    )


def test_arbitrary_bytes_always_give_a_checkpoint_error(tmp_path):
    """The weights-only unpickler raises many types on arbitrary bytes (IndexError, KeyError, ...): all become one line."""
    generator = random.Random(1)
    prefixes = [b"", b"\x80\x02", b"\x80\x04\x95", b"PK\x03\x04", b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."]
    path = tmp_path / "bytes.ckpt"
    for trial in range(300):
        path.write_bytes(prefixes[trial % len(prefixes)] + generator.randbytes(generator.randrange(1, 600)))
        with pytest.raises(ModelLoadError) as caught:
            load_checkpoint(path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "none.ckpt")
    with pytest.raises(InputNotFoundError, match="is a folder"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "class_path",
    ["os.system", "builtins.eval", "torch.nn.Linear", "seglite.files.write_bytes", "seglite.models.factory.build_model",
     "seglite.models.layers.make_divisible", "seglite.models.NoSuchModel", 42],
)
def test_only_seglite_model_classes_are_built(checkpoint, tmp_path, class_path):  # noqa: F811
    target = tmp_path / "written"
    def change(content):
        content["hyper_parameters"]["model"] = {"class_path": class_path, "init_args": {"path": str(target), "data": b"x"}}
    path = _variant(checkpoint, tmp_path, "foreign", change)
    with pytest.raises(ModelLoadError, match="seglite") as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value) and not target.exists()


def test_a_nested_foreign_class_is_refused(checkpoint, tmp_path):  # noqa: F811
    def change(content):
        foreign = {"class_path": "subprocess.Popen", "init_args": {"args": ["touch", str(tmp_path / "ran")]}}
        content["hyper_parameters"]["model"] = {"class_path": "seglite.models.LRASPP", "init_args": {"backbone": foreign}}
    with pytest.raises(ModelLoadError, match="subprocess.Popen"):
        load_checkpoint(_variant(checkpoint, tmp_path, "nested", change))
    assert not (tmp_path / "ran").exists()


def test_weights_that_do_not_fit_the_config(checkpoint, tmp_path):  # noqa: F811
    def change(content):
        content["hyper_parameters"]["model"]["init_args"]["num_classes"] = 7
        content["hyper_parameters"].pop("class_names"), content["hyper_parameters"].pop("palette")
    with pytest.raises(ModelLoadError, match="do not fit"):
        load_checkpoint(_variant(checkpoint, tmp_path, "other_classes", change))
    def bad_argument(content):
        content["hyper_parameters"]["model"]["init_args"]["no_such_argument"] = 1
    with pytest.raises(ModelLoadError, match="no_such_argument"):
        load_checkpoint(_variant(checkpoint, tmp_path, "bad_argument", bad_argument))


def test_v01_checkpoints_rebuild_their_own_architecture(checkpoint, tmp_path):  # noqa: F811
    """A checkpoint without seglite_version holds a 0.1 model: its config is upgraded before building."""
    from test_predictor import TINY_MODEL

    from seglite.models.compat import upgrade_model_config

    old_model = checkpoint_module.build_model_from_config(upgrade_model_config(TINY_MODEL))
    torch.manual_seed(1)
    for parameter in old_model.parameters():
        parameter.data.normal_()
    old_state = {f"model.{key}": value for key, value in old_model.state_dict().items()}

    def as_v01(content):
        content.pop("seglite_version")
        content["state_dict"] = old_state

    path = _variant(checkpoint, tmp_path, "v01", as_v01)
    loaded = load_checkpoint(path)
    assert loaded.seglite_version is None
    images = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(images), old_model.eval()(images), rtol=0, atol=0)
    # the same weights declared as this version's do not fit this version's defaults: the upgrade mattered
    with pytest.raises(ModelLoadError, match="do not fit"):
        load_checkpoint(_variant(path, tmp_path, "v02", lambda content: content.update(seglite_version=seglite.__version__)))


def test_build_model_from_config_refuses_non_models():
    with pytest.raises(ModelLoadError, match="class_path"):
        build_model_from_config({"init_args": {}})
    with pytest.raises(ModelLoadError, match="segmentation model"):
        build_model_from_config({"class_path": "seglite.models.backbones.MobileNetV3", "init_args": {"variant": "small"}})


BLOCKED = ("pytorch_lightning", "lightning", "lightning_fabric", "segmentation_models_pytorch", "timm", "albumentations")
PROBE = r"""
import importlib.abc, json, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"blocked: {{name}}", name=name)
sys.meta_path.insert(0, Block())
import numpy as np
import seglite.inference.predictor
runtimes_at_import = sorted(m for m in ("onnx", "onnxruntime", "openvino") if m in sys.modules)
import seglite.checkpoints, seglite.inference.export, seglite.inference.graph, seglite.inference.postprocess
import seglite.inference.onnxruntime, seglite.inference.torch_engine, seglite.inference.checkpoint_engine
import seglite.inference.openvino, seglite.inference.metadata
from seglite.inference.predictor import Predictor
image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
masks, backends = {{}}, []
for backend in ["torch", "onnxruntime"] + (["openvino"] if seglite.inference.openvino.available() else []):
    # fp32 everywhere: backend="openvino" would run bf16 by default on a CPU that computes it
    predictor = Predictor.from_checkpoint({checkpoint!r}, backend=backend, precision="fp32", cache_dir=None)
    masks[backend] = predictor.predict(image).tolist()
    backends.append(predictor.description)
print(json.dumps({{"runtimes_at_import": runtimes_at_import, "backends": backends,
                  "agree": all(m == masks["torch"] for m in masks.values()),
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}}))
"""


def test_inference_needs_no_lightning_smp_timm_or_albumentations(checkpoint):  # noqa: F811
    """With those packages made unimportable, every backend still reads a checkpoint and predicts."""
    code = PROBE.format(blocked=BLOCKED, checkpoint=str(checkpoint))
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded"] == []
    assert report["runtimes_at_import"] == []  # import seglite.inference.predictor imports no runtime
    assert all(" fp32" in description for description in report["backends"]), report["backends"]
    assert report["agree"], report["backends"]  # fp32 on every backend: the same masks
