"""benchmarks/predictor.py runs end to end on a tiny checkpoint and prints the goals; the harness's timing loop."""

from __future__ import annotations

import pytest
import torch
from test_predictor import checkpoint  # noqa: F401  (fixture, shared)

from benchmarks import harness
from benchmarks import predictor as benchmark_predictor
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


def test_every_path_takes_its_turn_each_round_after_varying_predecessors():
    order: list[str] = []
    timers = [(lambda name=name: order.append(name) or 0.0) for name in "abcd"]
    timings = harness.interleaved(timers, warmup=1, rounds=11, settle=0)
    rounds = [order[start : start + 4] for start in range(0, len(order), 4)]
    assert len(rounds) == 12 and all(sorted(one) == list("abcd") for one in rounds)
    assert all(len(timing.times) == 11 for timing in timings)
    # within rounds, each path follows more than one other path (a rotating order would keep one)
    before = {name: {one[i - 1] for one in rounds for i in range(1, 4) if one[i] == name} for name in "abcd"}
    assert all(len(predecessors) >= 2 for predecessors in before.values()), before
    order_again: list[str] = []
    harness.interleaved([(lambda name=name: order_again.append(name) or 0.0) for name in "abcd"], 1, 11, settle=0)
    assert order_again == order  # seeded: a run repeats


def test_a_failing_candidate_drops_out_and_the_others_go_on():
    def failing() -> float:
        raise RuntimeError("no memory")

    steps = iter(range(100))
    good, bad, several = harness.interleaved([lambda: 1.0, failing, lambda: [float(next(steps))] * 2], 0, 3,
                                             settle=0, failures=(RuntimeError,))  # fmt: skip
    assert good.times == [1.0] * 3 and good.error is None
    assert bad.times == [] and bad.error == "no memory"
    assert several.times == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]  # a run that times several steps


def test_the_time_budget_stops_after_min_rounds():
    calls = []
    harness.interleaved([lambda: calls.append(1) or 0.0], 0, 10, min_rounds=2, time_budget=0.0, settle=0)
    assert len(calls) == 2


def test_a_noisy_reference_is_named_and_a_steady_one_is_not():
    steady = [0.100, 0.101, 0.102, 0.099, 0.100, 0.103]
    noisy = [0.100, 0.150, 0.240, 0.149, 0.100, 0.200]  # the 149-241 ms swings of a shared machine
    assert harness.noisy_reference_warning("torchvision", steady) is None
    warning = harness.noisy_reference_warning("torchvision", noisy)
    assert warning.startswith("warning: the reference (torchvision) spread ") and "min 100.0 ms" in warning


def test_the_preset_checkpoint_holds_the_preset(tmp_path):
    """Without --checkpoint the benchmark times the preset users train: its checkpoint rebuilds that model."""
    from seglite.checkpoints import load_checkpoint
    from seglite.models import build_preset

    loaded = load_checkpoint(benchmark_predictor.preset_checkpoint(tmp_path)).model
    torch.manual_seed(0)
    preset = build_preset(benchmark_predictor.PRESET)
    assert {k: v.shape for k, v in loaded.state_dict().items()} == {k: v.shape for k, v in preset.state_dict().items()}
    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in preset.state_dict().items())


@pytest.mark.skipif(not openvino.available(), reason="OpenVINO is not installed")
def test_several_int8_scopes_are_timed_in_the_same_rounds(checkpoint, tmp_path, capsys, monkeypatch):  # noqa: F811
    """The per-layer choice of int8: one path per scope, all in one run."""
    monkeypatch.setenv("SEGLITE_CACHE_DIR", str(tmp_path))
    arguments = ["--checkpoint", str(checkpoint), "--height", "64", "--width", "128", "--rounds", "1", "--warmup", "0",
                 "--no-torch", "--calibration-count", "2", "--int8-scope", "all", "backbone"]
    assert benchmark_predictor.main(arguments) == 0
    printed = capsys.readouterr().out
    assert "Predictor openvino int8 (all)" in printed and "Predictor openvino int8 (backbone)" in printed
