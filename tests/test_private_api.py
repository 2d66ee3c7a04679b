"""Public APIs of dependencies only, except in the adapters that name each private use (ARCHITECTURE.md).

Two kinds of test: a static scan that no other module imports a private (underscore) module or
name of a dependency or calls a private method of a library base class, and one test per member
an adapter holds, asserting it still exists and behaves as seglite uses it, so that an upgrade
which moves or changes it fails here by name.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import torch

PACKAGE = Path(__file__).resolve().parents[1] / "seglite"
DEPENDENCIES = (
    "torch", "torchvision", "pytorch_lightning", "lightning", "lightning_fabric", "segmentation_models_pytorch",
    "jsonargparse", "albumentations", "cv2", "onnx", "onnxruntime", "openvino", "nncf", "executorch", "timm",
)  # fmt: skip
ADAPTERS = {"seglite/models/private_api.py", "seglite/lit/lightning_private.py"}


def private_uses(path: Path) -> list[str]:
    """``line: what`` for each private import of a dependency and each ``super()._method`` call in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] in DEPENDENCIES:
                parts = node.module.split(".") + [alias.name for alias in node.names]
                if any(part.startswith("_") and not part.startswith("__") for part in parts):
                    found.append(f"{node.lineno}: from {node.module} import {', '.join(a.name for a in node.names)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in DEPENDENCIES and any(part.startswith("_") for part in parts):
                    found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            call = node.value
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "super":
                found.append(f"{node.lineno}: super().{node.attr}")
    return found


def test_private_members_of_dependencies_are_used_only_in_the_adapters():
    root = PACKAGE.parent
    offenders = {
        str(path.relative_to(root)): uses
        for path in sorted(PACKAGE.rglob("*.py"))
        if str(path.relative_to(root)) not in ADAPTERS and (uses := private_uses(path))
    }
    assert not offenders, f"private members used outside {sorted(ADAPTERS)}: {offenders}"


def test_the_scan_finds_private_imports_and_super_calls(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        "from torch.utils._pytree import tree_flatten\nimport torch.onnx._constants\n"
        "from pytorch_lightning.callbacks import ModelCheckpoint\n"
        "class C(ModelCheckpoint):\n    def f(self):\n        super()._save_last_checkpoint(1, 2)\n"
    )
    assert [use.split(":")[0] for use in private_uses(source)] == ["1", "2", "6"]


# --------------------------------------------------------------------- seglite.models.private_api
def test_torch_dispatch_mode_sees_every_operator_with_its_tensors():
    from seglite.models.private_api import TorchDispatchMode

    seen = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append((str(func.overloadpacket), [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]))
            return func(*args, **(kwargs or {}))

    with Record():
        torch.ones(2, 3) @ torch.ones(3, 4)
    assert ("aten.mm", [(2, 3), (3, 4)]) in seen


def test_torch_still_says_which_opset_its_onnx_exporter_writes():
    from seglite.models.private_api import onnx_exporter_max_opset

    opset = onnx_exporter_max_opset()
    assert isinstance(opset, int) and opset >= 17, f"torch {torch.__version__} moved torch.onnx._constants: {opset!r}"


def test_smp_encoder_mixin_offers_what_seglite_encoders_rely_on():
    from seglite.models.private_api import smp_encoder_mixin

    mixin = smp_encoder_mixin()
    assert inspect.isclass(mixin)
    # SegliteEncoder sets _out_channels, _depth and _in_channels; smp reads them through these
    assert isinstance(inspect.getattr_static(mixin, "out_channels"), property)
    for method in ("set_in_channels", "make_dilated"):
        assert callable(getattr(mixin, method)), method


@pytest.mark.parametrize("module", ["seglite.models.complexity", "seglite.models.smp", "seglite.inference.export"])
def test_the_adapted_modules_import(module):
    __import__(module)
