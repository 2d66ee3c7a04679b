"""tools/benchmark_predictor.py runs end to end on a tiny checkpoint and prints both goals."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_predictor import checkpoint  # noqa: F401  (fixture, shared)

from seglite.apps import benchmark_predictor
from seglite.data import CITYSCAPES_CLASSES
from seglite.inference import openvino

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def test_benchmark_prints_every_path_and_the_goals(checkpoint, tmp_path, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SEGLITE_CACHE_DIR", str(tmp_path))
    arguments = ["--checkpoint", str(checkpoint), "--height", "64", "--width", "128", "--rounds", "2", "--warmup", "1",
                 "--no-torch", "--no-int8"]
    assert benchmark_predictor.main(arguments) == 0
    printed = capsys.readouterr().out
    assert "torchvision eager, model call (reference)" in printed and "onnxruntime fp32, model call" in printed
    assert "Predictor default" in printed and "goal 1: default predict / reference model call" in printed
    # --no-int8: bf16 is the one low-precision path, where OpenVINO runs it
    if openvino.available() and openvino.cpu_has_bf16():
        assert "goal 2: ONNX Runtime fp32 model call / Predictor openvino bf16 = " in printed
    else:
        assert "goal 2: no low-precision path on this machine" in printed
    # every stage of the default predict is named, and the post-processing's share stated where counted
    assert "stages of the default predict" in printed and "runtime graph: uint8 in" in printed
    assert "predict, end to end" in printed


def test_every_path_takes_its_turn_in_a_rotating_order():
    order: list[str] = []
    calls = {name: (lambda name=name: order.append(name)) for name in "abc"}
    times = benchmark_predictor.measure(calls, warmup=1, rounds=3, settle=0)
    assert order == list("abc" "bca" "cab" "abc") and all(len(values) == 3 for values in times.values())


def test_a_noisy_reference_is_named_and_a_steady_one_is_not():
    from seglite.apps.benchmark_run import noisy_reference_warning

    steady = [0.100, 0.101, 0.102, 0.099, 0.100, 0.103]
    noisy = [0.100, 0.150, 0.240, 0.149, 0.100, 0.200]  # the 149-241 ms swings of a shared machine
    assert noisy_reference_warning("torchvision", steady) is None
    warning = noisy_reference_warning("torchvision", noisy)
    assert warning.startswith("warning: the reference (torchvision) spread ") and "min 100.0 ms" in warning


def test_the_preset_is_the_model_of_the_paper_config():
    """The benchmark times the model users train: configs/lraspp_mnv3.yaml names the preset, which its copy may not leave."""
    from seglite.apps.configs import read_config
    from seglite.checkpoints import build_model_from_config
    from seglite.models import build_preset

    config = Path(__file__).resolve().parents[1] / "configs" / "lraspp_mnv3.yaml"
    assert read_config(config)["model"]["model"] == {"class_path": "seglite.models.Preset",
                                                     "init_args": {"name": "lraspp_mobilenet_v3_large"}}
    expected = build_preset("lraspp_mobilenet_v3_large", num_classes=len(CITYSCAPES_CLASSES))
    copied = build_model_from_config(benchmark_predictor.PRESET_CONFIG)
    assert str(copied) == str(expected)  # the same modules, every option included


@pytest.mark.skipif(not openvino.available(), reason="OpenVINO is not installed")
def test_several_int8_scopes_are_timed_in_the_same_rounds(checkpoint, tmp_path, capsys, monkeypatch):  # noqa: F811
    """The per-layer choice of int8: one path per scope, all in one run."""
    monkeypatch.setenv("SEGLITE_CACHE_DIR", str(tmp_path))
    arguments = ["--checkpoint", str(checkpoint), "--height", "64", "--width", "128", "--rounds", "1", "--warmup", "0",
                 "--no-torch", "--calibration-count", "2", "--int8-scope", "all", "backbone"]
    assert benchmark_predictor.main(arguments) == 0
    printed = capsys.readouterr().out
    assert "Predictor openvino int8 (all)" in printed and "Predictor openvino int8 (backbone)" in printed
