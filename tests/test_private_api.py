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

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("seglite", "benchmarks", "tools")
DEPENDENCIES = (
    "torch", "torchvision", "pytorch_lightning", "lightning", "lightning_fabric", "segmentation_models_pytorch",
    "jsonargparse", "albumentations", "cv2", "onnx", "onnxruntime", "openvino", "nncf", "executorch", "torchao", "timm",
)  # fmt: skip
ADAPTERS = {"seglite/models/private_api.py", "seglite/lit/lightning_private.py"}
"""The modules that hold the private uses, each named and tested here."""
NAMED_USES = {
    # ExecuTorch's Python bindings size the XNNPACK thread pool only through these (an app does it in C++);
    # seglite.inference.executorch.set_threads is their one user, tested below
    "seglite/inference/executorch.py": {"_threadpool_get_thread_count", "_unsafe_reset_threadpool"},
    # an ETDump is recorded only by a program loaded through this binding (ExecuTorch 1.5's Runtime API
    # has no etdump switch); a measuring script outside the package
    "benchmarks/executorch_etdump.py": {"_load_for_executorch_from_buffer"},
}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _root(node: ast.AST) -> str | None:
    """The name an attribute chain ``a.b.c`` starts from."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def private_uses(path: Path) -> list[str]:
    """``line: what`` for each private member of a dependency ``path`` uses: imported (``from torch.x._y import z``,
    ``from x import _y``), reached as an attribute of a dependency's module or name (``torch.ops.x._y``,
    ``portable_lib._y``), or called on a library base class (``super()._hook(...)``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bound: set[str] = set()  # names the module binds to a dependency's modules or members
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level and node.module.split(".")[0] in DEPENDENCIES:
            bound.update(alias.asname or alias.name for alias in node.names)
            if any(_private(part) for part in node.module.split(".") + [alias.name for alias in node.names]):
                found.append((node.lineno, f"from {node.module} import {', '.join(a.name for a in node.names)}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in DEPENDENCIES:
                    bound.add(alias.asname or parts[0])
                    if any(_private(part) for part in parts):
                        found.append((node.lineno, f"import {alias.name}"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            call = node.value
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "super":
                found.append((node.lineno, f"super().{node.attr}"))
            elif _root(node.value) in bound:
                found.append((node.lineno, f"{ast.unparse(node)}"))
    return [f"{line}: {what}" for line, what in sorted(set(found))]


def test_private_members_of_dependencies_are_used_only_in_the_adapters():
    offenders = {}
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            if name in ADAPTERS:
                continue
            allowed = NAMED_USES.get(name, set())
            uses = [use for use in private_uses(path) if not any(member in use for member in allowed)]
            if uses:
                offenders[name] = uses
    assert not offenders, f"private members used outside {sorted(ADAPTERS)}: {offenders}"


def test_the_scan_finds_private_imports_attributes_and_super_calls(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        "from torch.utils._pytree import tree_flatten\nimport torch.onnx._constants\n"
        "from pytorch_lightning.callbacks import ModelCheckpoint\n"
        "class C(ModelCheckpoint):\n    def f(self):\n        super()._save_last_checkpoint(1, 2)\n"
        "import torch\nok = torch.ops.mkldnn._is_mkldnn_bf16_supported()\nmine = self._x\n"
    )
    assert [use.split(":")[0] for use in private_uses(source)] == ["1", "2", "6", "8"]


def test_executorch_still_offers_the_thread_pool_setting_set_threads_uses():
    portable_lib = pytest.importorskip("executorch.extension.pybindings.portable_lib")
    assert callable(portable_lib._unsafe_reset_threadpool) and callable(portable_lib._threadpool_get_thread_count)


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
