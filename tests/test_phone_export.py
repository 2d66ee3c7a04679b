"""Phone exports (ExecuTorch ``.pte``, LiteRT ``.tflite``): one XNNPACK partition, parity with PyTorch,
metadata round trip, the Predictor and tools/predict.py on the file. Each runtime's tests skip,
saying why, where its extra is not installed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seglite.inference import executorch, litert
from seglite.inference.metadata import export_metadata
from seglite.inference.phone import phone_graph
from seglite.inference.phone_export import export_executorch, export_litert
from seglite.inference.predictor import Predictor
from seglite.models import build_preset

# not a multiple of the output stride (16): the padding inside the graph is exercised
SIZE = (60, 90)
NAMES = ["road", "car", "sky", "tree", "person"]
PALETTE = [[128, 64, 128], [0, 0, 142], [70, 130, 180], [107, 142, 35], [220, 20, 60]]
# what may run outside XNNPACK: the uint8 image's NHWC -> NCHW permute and its cast to float (portable
# kernels: XNNPACK has no uint8 permute or uint8 -> float convert), and 0-d constants of decompositions
INPUT_OPERATORS = {"aten.permute_copy", "dim_order_ops._to_dim_order_copy", "TRANSPOSE", "CAST"}

needs_executorch = pytest.mark.skipif(
    not executorch.available(), reason="ExecuTorch is not installed (pip install -e '.[executorch]')"
)
needs_litert = pytest.mark.skipif(
    not litert.available(),
    reason="LiteRT is not installed (pip install -e '.[litert]'; kept out of the dev extra: README, 'On a phone')",
)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_preset("lraspp_mobilenet_v3_small", num_classes=len(NAMES), width_mult=0.25).eval()
    for module in model.modules():  # non-trivial statistics, so that the logits are not all alike
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module")
def pte(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("pte") / "model.pte"
    if not executorch.available():
        pytest.skip("ExecuTorch is not installed (pip install -e '.[executorch]')")
    return path, export_executorch(model, path, SIZE, metadata=export_metadata(NAMES, PALETTE, None), num_threads=1)


@pytest.fixture(scope="module")
def tflite(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("tflite") / "model.tflite"
    if not litert.available():
        pytest.skip("LiteRT is not installed (pip install -e '.[litert]')")
    return path, export_litert(model, path, SIZE, metadata=export_metadata(NAMES, PALETTE, None), num_threads=1)


def _reference_masks(model, images: np.ndarray) -> np.ndarray:
    return Predictor.from_model(model).predict_batch(list(images))


def _check_file(model, path, export) -> None:
    assert path.is_file() and path.stat().st_size == export.file_bytes
    assert all(report.passed and report.max_logit_difference < 1e-4 for report in export.reports)
    # the whole network in one XNNPACK partition: only the input's layout and type change stay outside
    assert export.delegation.partitions == 1, export.delegation
    assert {name.removesuffix(" (0-d)") for name in export.delegation.outside} <= INPUT_OPERATORS, export.delegation
    predictor = Predictor.from_phone_file(path, batch_size=2, num_threads=1)
    assert predictor.class_names == NAMES and predictor.palette == PALETTE
    assert predictor.engine.input_size == SIZE and predictor.engine.metadata["seglite.precision"] == "fp32"
    images = np.random.default_rng(5).integers(0, 256, size=(2, *SIZE, 3), dtype=np.uint8)
    masks = np.stack(predictor.predict_batch(list(images)))
    assert (masks == np.stack(_reference_masks(model, images))).mean() > 0.999
    with torch.inference_mode():
        reference = model(torch.from_numpy(np.stack([predictor.preprocess(image).numpy() for image in images])))
    assert torch.allclose(predictor.engine.logits(images), reference, atol=1e-4)
    # another size is resized to the file's, and its mask back
    assert predictor.predict(images[0, :40, :50]).shape == (40, 50)


@needs_executorch
def test_executorch_fp32_export_checks_delegates_and_round_trips(model, pte):
    path, export = pte
    _check_file(model, path, export)
    assert "executorch fp32 (XNNPACK), 1 thread" in Predictor.from_executorch(path).description


@needs_executorch
def test_executorch_thread_pool_adapter_still_reaches_the_private_bindings():
    """``seglite.inference.executorch.set_threads`` is the one user of these private names (STYLE 21)."""
    from executorch.extension.pybindings import portable_lib

    assert callable(portable_lib._unsafe_reset_threadpool) and callable(portable_lib._threadpool_get_thread_count)


@needs_executorch
def test_tools_predict_runs_a_pte(pte, tmp_path):
    import cv2

    from seglite.apps import predict

    path, _ = pte
    image = np.random.default_rng(1).integers(0, 256, size=(*SIZE, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "photo.png"), image)
    assert predict.main([str(tmp_path / "photo.png"), "--model", str(path), "--output", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "photo_mask.png").is_file()
    assert predict.main([str(tmp_path / "photo.png"), "--model", str(path), "--size", "32", "32",
                         "--output", str(tmp_path / "out2")]) == 2  # fmt: skip


def test_the_etdump_profile_names_what_runs_inside_and_outside_xnnpack(pte, capsys):
    """benchmarks/executorch_etdump.py: ExecuTorch's own profile of a seglite .pte, summed by operator."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "executorch_etdump.py"
    spec = importlib.util.spec_from_file_location("executorch_etdump", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(pte[0]), "--runs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "Method::execute" in printed and "DELEGATE_CALL" in printed and "Convolution (NHWC" in printed


def test_phone_export_refuses_a_wrong_suffix_before_any_work(model, tmp_path):
    with pytest.raises(ValueError, match=r"--format executorch writes NAME\.pte"):
        export_executorch(model, tmp_path / "model.tflite", SIZE)
    with pytest.raises(ValueError, match=r"--format litert writes NAME\.tflite"):
        export_litert(model, tmp_path / "model.pte", SIZE)
    assert not list(tmp_path.iterdir())


def test_phone_graph_needs_a_segmentation_model():
    with pytest.raises(ValueError, match="SegmentationModel"):
        phone_graph(torch.nn.Conv2d(3, 5, 1))


@needs_litert
def test_litert_fp32_export_checks_delegates_and_round_trips(model, tflite):
    path, export = tflite
    _check_file(model, path, export)
    assert "litert fp32 (XNNPACK), 1 thread" in Predictor.from_litert(path).description
