"""The package's layering (ARCHITECTURE.md): imports only go down, never in a circle.

Read statically from the source (every ``import`` statement, also those inside functions, since a
lazy import is still a dependency), plus one run-time check that the deployment and model layers
load no training libraries.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seglite"

# (layer number, module prefixes), bottom first; a module may import its own layer and those below
LAYERS = [
    (0, ("seglite.errors", "seglite.checks", "seglite.files")),
    (1, ("seglite.models", "seglite.metrics", "seglite.sliding", "seglite.visualization", "seglite.checkpoints")),
    (2, ("seglite.data",)),
    (3, ("seglite.results",)),
    (4, ("seglite.lit",)),
    (5, ("seglite.inference",)),
    (6, ("seglite.apps",)),
]

# third-party packages a layer must not import (statically, anywhere in the module)
TRAINING_ONLY = ("pytorch_lightning", "lightning", "lightning_fabric", "torchmetrics", "jsonargparse")
FORBIDDEN = {
    0: ("torch", "torchvision", "albumentations", *TRAINING_ONLY),
    1: ("albumentations", "onnx", "onnxruntime", "openvino", *TRAINING_ONLY),
    2: ("onnx", "onnxruntime", "openvino"),
    3: TRAINING_ONLY,
    5: ("albumentations", "segmentation_models_pytorch", "timm", *TRAINING_ONLY),
}
# the Lightning objects outside lit/: allowed their training imports
LIGHTNING_OBJECTS = {"seglite.data.datamodule"}
# the smp encoder registry, and the adapter naming smp's EncoderMixin (a private module), are the model
# modules that import segmentation-models-pytorch
SMP_BRIDGE = ("seglite.models.smp", "seglite.models.private_api")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, relative imports resolved.

    Imports under ``if TYPE_CHECKING:`` count: a type needed from a module that imports this one
    is a knot even if it costs nothing at run time (move the type to the module that owns it).
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            # "from seglite.x import y" may import the submodule seglite.x.y
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def layer_of(name: str) -> int | None:
    for number, prefixes in LAYERS:
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            return number
    return None


def internal_graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {target for target in imports_of(name, path) if target in known} - {name}
        for name, path in known.items()
    }


def test_every_module_has_a_layer():
    unplaced = [name for name in modules() if name != "seglite" and layer_of(name) is None]
    assert not unplaced, f"add these modules to a layer in ARCHITECTURE.md and LAYERS: {unplaced}"


def test_imports_only_go_down():
    upward = []
    for name, targets in internal_graph().items():
        if name == "seglite":  # the facade names everything lazily
            continue
        for target in targets:
            if target != "seglite" and layer_of(target) > layer_of(name):
                upward.append(f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_type_checking_imports_count(tmp_path: Path) -> None:
    source = tmp_path / "a.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n", encoding="utf-8")
    assert "pkg.b" in imports_of("pkg.a", source)


def test_no_import_cycles():
    # counting imports made for annotations only (if TYPE_CHECKING:): those are knots too
    graph = internal_graph()
    graph.pop("seglite", None)
    # Tarjan's strongly connected components: any component of two or more modules is a cycle
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target == "seglite" or target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in graph:
        if node not in index:
            visit(node)
    # a package importing its own submodules (its __init__) is not a cycle of design
    cycles = [c for c in cycles if not all(m.startswith(c[0] + ".") or m == c[0] for m in c)]
    assert not cycles, f"import cycles: {cycles}"


def test_layers_import_only_their_libraries():
    wrong = []
    for name, path in modules().items():
        layer = layer_of(name)
        forbidden = FORBIDDEN.get(layer, ())
        if name in LIGHTNING_OBJECTS:
            forbidden = tuple(p for p in forbidden if p not in TRAINING_ONLY)
        for target in imports_of(name, path):
            top = target.split(".")[0]
            if top in forbidden or (top in ("segmentation_models_pytorch", "timm") and name not in SMP_BRIDGE and layer == 1):
                wrong.append(f"{name} imports {target}")
    assert not wrong, "imports a layer must not make:\n" + "\n".join(sorted(wrong))


def test_deployment_does_not_reach_into_the_training_layer():
    """inference/ sits above lit/ but imports none of it (Lightning stays out of deployment, even lazily)."""
    wrong = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if name.startswith("seglite.inference")
        for target in imports_of(name, path)
        if target == "seglite.lit" or target.startswith("seglite.lit.")
    ]
    assert not wrong, "\n".join(sorted(wrong))


@pytest.mark.parametrize(
    "statement",
    [
        "import seglite",
        "import seglite.models",
        "import seglite.inference.predictor, seglite.inference.video, seglite.inference.export",
        "import seglite.apps.predict, seglite.apps.infer_video",
    ],
)
def test_inference_and_models_load_no_training_libraries(statement):
    code = (
        f"{statement}\nimport sys\n"
        "heavy = ['pytorch_lightning', 'lightning', 'segmentation_models_pytorch', 'timm', 'albumentations', 'torchmetrics']\n"
        "print([name for name in heavy if name in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"{statement} loads {result.stdout.strip()}"


def test_the_facade_imports_nothing_heavy():
    code = "import seglite, sys\nprint([m for m in ('torch', 'numpy', 'cv2') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_importing_seglite_makes_no_network_call():
    """No network at run time: albumentations' update check, for one, is switched off."""
    code = (
        "import os, socket\n"
        "os.environ.pop('NO_ALBUMENTATIONS_UPDATE', None)\n"
        "attempts = []\n"
        "def refuse(self, address, *args):\n"
        "    attempts.append(address)\n"
        "    raise OSError('no network in this test')\n"
        "socket.socket.connect = refuse\n"
        "socket.socket.connect_ex = refuse\n"
        "import seglite.data.transforms, seglite.lit.task, seglite.inference.predictor, seglite.apps.train\n"
        "print(attempts)"
    )
    environment = {key: value for key, value in os.environ.items() if key != "NO_ALBUMENTATIONS_UPDATE"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment)
    assert result.stdout.strip() == "[]", result.stdout
