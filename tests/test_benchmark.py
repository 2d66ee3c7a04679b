"""benchmarks/benchmark.py: end to end on a tiny preset, its workers, its profiles and its sweep (no timing assertions)."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import benchmark, harness
from benchmarks.engines import BACKENDS, REFERENCE, Case, ModelSpec
from benchmarks.profiles import PROFILERS, module_path_of_node
from benchmarks.sections import OVERHEAD, graph_cost, profile_rows, scaled_size, sweep_points
from benchmarks.workers import run_group
from seglite.models import build_preset
from seglite.models.complexity import CATEGORIES, count_params_and_macs

TINY = "lraspp_mobilenet_v3_small"
SIZE = (64, 128)


def run_tool(*arguments: str) -> int:
    return benchmark.main([*arguments, "--threads", "1"])


def test_end_to_end_writes_table_csv_json_and_plot(tmp_path: Path, capsys) -> None:
    output = tmp_path / "out"
    code = run_tool(
        "--presets", TINY, "--sizes", "64x128", "--batch-sizes", "1", "--backends", "eager", "onnxruntime",
        "--warmup", "0", "--rounds", "1", "--sections", "table", "--output-dir", str(output),
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr()
    assert "| torchvision-lraspp | eager | 1x64x128 |" in printed.out

    rows = list(csv.DictReader((output / "benchmark.csv").open()))
    assert [(row["preset"], row["backend"]) for row in rows] == [
        (REFERENCE, "eager"), (TINY, "eager"), (TINY, "onnxruntime"),
    ]  # fmt: skip
    for row in rows:
        assert not row["error"], row["error"]
        assert float(row["median_ms"]) > 0 and int(row["rounds"]) == 1
        assert float(row["peak_mb"]) > 0
    assert float(rows[0]["reference_ratio"]) == 1.0
    # MACs and parameters against an independent count (FlopCounterMode)
    params, macs = count_params_and_macs(build_preset(TINY), SIZE)
    assert int(rows[1]["params"]) == params
    assert float(rows[1]["gmacs"]) == pytest.approx(macs / 1e9)
    # ONNX Runtime computes what eager PyTorch computes
    assert float(rows[2]["max_relative_difference"]) < 1e-3
    assert float(rows[2]["argmax_agreement"]) > 0.99

    document = json.loads((output / "benchmark.json").read_text())
    assert document["environment"]["threads"] == 1
    assert len(document["results"]) == 3 and "sweep" not in document

    plot = output / "latency_vs_gmacs.png"
    if importlib.util.find_spec("matplotlib") is None:  # the plot needs the 'bench' extra (part of 'dev')
        assert not plot.exists() and "no plot: matplotlib is not installed" in printed.err
    else:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_end_to_end_sweep_of_alpha_and_rho(tmp_path: Path) -> None:
    code = run_tool(
        "--sizes", "64x128", "--backends", "eager", "--warmup", "0", "--rounds", "1", "--sections", "sweep",
        "--alphas", "1", "0.5", "--rhos", "0.5", "--output-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["benchmark.json", "sweep.csv"]
    sweep = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert [(float(row["alpha"]), float(row["rho"])) for row in sweep] == [(1.0, 1.0), (0.5, 1.0), (1.0, 0.5)]
    half_width = next(row for row in sweep if float(row["alpha"]) == 0.5 and row["backend"] == "eager")
    _, base_macs = count_params_and_macs(build_preset("lraspp_mobilenet_v3_large"), SIZE)
    _, half_macs = count_params_and_macs(build_preset("lraspp_mobilenet_v3_large", width_mult=0.5), SIZE)
    assert float(half_width["macs_ratio"]) == pytest.approx(half_macs / base_macs)
    assert float(half_width["expected_macs_ratio"]) == 0.25
    half_resolution = next(row for row in sweep if float(row["rho"]) == 0.5 and row["backend"] == "eager")
    assert (int(half_resolution["height"]), int(half_resolution["width"])) == (32, 64)
    assert float(half_resolution["expected_macs_ratio"]) == 0.25
    _, small_macs = count_params_and_macs(build_preset("lraspp_mobilenet_v3_large"), (32, 64))
    assert float(half_resolution["macs_ratio"]) == pytest.approx(small_macs / base_macs)
    assert all(float(row["median_ms"]) > 0 and not row["error"] for row in sweep)
    assert float(sweep[0]["latency_ratio"]) == 1.0


def test_outputs_are_never_overwritten_unasked(tmp_path: Path, capsys) -> None:
    (tmp_path / "benchmark.json").write_text("keep")
    code = run_tool("--presets", TINY, "--sections", "sweep", "--output-dir", str(tmp_path))
    assert code == 2
    assert "benchmark.json exists" in capsys.readouterr().err
    assert (tmp_path / "benchmark.json").read_text() == "keep"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--presets", "lraspp_nothing"], "unknown preset 'lraspp_nothing'"),
        (["--backends", "tensorflow"], "unknown backend 'tensorflow'"),
        (["--profile-backends", "compile"], "has no per-operator profile"),
    ],
)
def test_bad_settings_are_named(arguments: list[str], message: str, tmp_path: Path, capsys) -> None:
    assert run_tool(*arguments, "--output-dir", str(tmp_path)) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_bad_sizes_are_argument_errors(capsys) -> None:
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--sizes", "512by1024"])
    assert "expected HEIGHTxWIDTH" in capsys.readouterr().err


def test_a_misspelt_device_is_an_argument_error(capsys) -> None:
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--device", "tpu"])
    assert "argument --device: expected cpu, cuda or cuda:N, got 'tpu'" in capsys.readouterr().err


def test_min_rounds_above_rounds_is_an_argument_error(capsys) -> None:
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--rounds", "2", "--min-rounds", "5"])
    assert "--min-rounds 5 is more than --rounds 2" in capsys.readouterr().err
    assert benchmark.parse_args(["--rounds", "2"]).min_rounds == 2  # the default follows fewer rounds
    assert benchmark.parse_args([]).min_rounds == 3


def test_quick_defaults() -> None:
    args = benchmark.parse_args(["--quick"])
    assert args.sizes == [(512, 1024)] and args.batch_sizes == [1] and args.rounds == 5
    plan = benchmark.resolve(args)
    assert plan.presets == list(benchmark.QUICK_PRESETS)
    assert "compile" not in plan.backends and "eager" in plan.backends


def test_a_failing_case_costs_its_row_only() -> None:
    good = Case(ModelSpec(TINY), "eager", (32, 64), 1)
    bad = Case(ModelSpec(TINY, (("width_mult", -1.0),)), "eager", (32, 64), 1)
    failed, measured = run_group([bad, good], warmup=0, rounds=2, min_rounds=1)
    assert "width_mult" in failed.error and not failed.times
    assert measured.error is None and len(measured.times) == 2 and measured.peak_bytes is not None


def test_sweep_points_and_sizes() -> None:
    args = benchmark.parse_args(["--alphas", "0.5", "1.0", "--rhos", "0.75", "1.0"])
    assert sweep_points(args) == [(1.0, 1.0), (0.5, 1.0), (1.0, 0.75)]
    assert scaled_size((512, 1024), 0.75) == (384, 768)
    assert scaled_size((512, 1024), 0.3) == (160, 304)  # multiples of 16


def _check_profile(profile, model_name: str, backend: str) -> list:
    cost = graph_cost(ModelSpec(model_name), SIZE, 1)
    rows = profile_rows(model_name, backend, profile, cost)
    assert [row.category for row in rows] == [*CATEGORIES, OVERHEAD]
    # the categories add up to the profiled forward pass, and the MAC and byte shares to one
    assert sum(row.ms for row in rows) == pytest.approx(1000 * profile.total)
    assert sum(row.time_share for row in rows) == pytest.approx(1.0)
    assert sum(row.macs_share for row in rows) == pytest.approx(1.0)
    assert sum(row.memory_share for row in rows) == pytest.approx(1.0)
    return rows


def _profile(backend: str):
    """The profile of the tiny preset on ``backend``, in this process (the workers' run it the same way)."""
    torch.manual_seed(0)
    model = build_preset(TINY).eval()
    target = BACKENDS[backend].build(model, Case(ModelSpec(TINY), backend, SIZE, 1))
    return PROFILERS[BACKENDS[backend].profile](target, 1), model


def test_torch_profile_categories_sum_to_the_total() -> None:
    profile, model = _profile("eager")
    rows = {row.category: row for row in _check_profile(profile, TINY, "eager")}
    for category in ("depthwise conv", "1x1 conv", "squeeze-excite", "activation", "batch norm", "resize"):
        assert rows[category].ms > 0, category
    assert all(op.name == "(model)" or op.name in dict(model.named_modules()) for op in profile.operators)


def test_onnxruntime_profile_categories_sum_to_the_total() -> None:
    profile, _ = _profile("onnxruntime")
    rows = {row.category: row for row in _check_profile(profile, TINY, "onnxruntime")}
    for category in ("depthwise conv", "1x1 conv", "squeeze-excite", "resize"):
        assert rows[category].ms > 0, category
    assert profile.runs == 1


def test_openvino_profile_categories_sum_to_the_total() -> None:
    pytest.importorskip("openvino")
    profile, _ = _profile("openvino")
    rows = {row.category: row for row in _check_profile(profile, TINY, "openvino")}
    for category in ("depthwise conv", "1x1 conv", "kxk conv", "squeeze-excite", "resize"):
        assert rows[category].ms > 0, category


def test_openvino_backends_compute_what_eager_computes(tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    output = tmp_path / "out"
    code = run_tool(
        "--presets", TINY, "--sizes", "64x128", "--batch-sizes", "2", "--backends", "eager", "openvino", "openvino-int8",
        "--warmup", "0", "--rounds", "1", "--sections", "table", "--output-dir", str(output),
    )  # fmt: skip
    assert code == 0
    rows = {(row["preset"], row["backend"]): row for row in csv.DictReader((output / "benchmark.csv").open())}
    fp32, int8 = rows[(TINY, "openvino")], rows[(TINY, "openvino-int8")]
    assert not fp32["error"] and not int8["error"], (fp32["error"], int8["error"])
    assert float(fp32["max_relative_difference"]) < 1e-3
    # int8 of random weights is not close to fp32, but it is the same model: not orders of magnitude off
    assert float(int8["max_relative_difference"]) < 1.0
    assert float(int8["median_ms"]) > 0 and float(int8["peak_mb"]) > 0


def test_onnx_node_names_map_to_modules() -> None:
    modules = dict(build_preset(TINY).named_modules())
    path = module_path_of_node("/backbone/layer1/layer1.0/block/block.1/scale_activation/HardSigmoid_output_0_nchwc")
    assert path == "backbone.layer1.0.block.1.scale_activation" and path in modules
    assert module_path_of_node("/backbone/stem/stem.0/stem.0.0/Conv") == "backbone.stem.0.0"
    # a segmenter graph's nodes sit under its "model" scope
    assert module_path_of_node("/model/backbone/stem/stem.0/stem.0.0/Conv") == "backbone.stem.0.0"
    assert module_path_of_node("ReorderOutput_token_12") == ""


def test_every_backend_is_described() -> None:
    for name, backend in BACKENDS.items():
        assert backend.name == name and backend.summary
        assert backend.unavailable("cpu") is None or isinstance(backend.unavailable("cpu"), str)
    assert BACKENDS["eager"].unavailable("cpu") is None


def test_physical_cores() -> None:
    import os

    assert 1 <= harness.physical_cores() <= (os.cpu_count() or 1)


def test_reference_is_torchvisions_lraspp_with_the_papers_settings() -> None:
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.segmentation.lraspp import _lraspp_mobilenetv3

    torch.manual_seed(0)
    ours = ModelSpec(REFERENCE).build().eval()
    torch.manual_seed(0)
    theirs = _lraspp_mobilenetv3(mobilenet_v3_large(weights=None, dilated=True, reduced_tail=True), num_classes=19)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        np.testing.assert_array_equal(ours(x).numpy(), theirs.eval()(x)["out"].numpy())
    # torchvision's tail keeps 672 channels in the stride-2 block: 1.747M, not Table 7's 1.51M
    # (torchvision/models/mobilenetv3.py::_mobilenet_v3_conf, reduce_divider)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    assert sum(p.numel() for p in ours.parameters()) == pytest.approx(1.747e6, abs=500)


def test_eager_memory_measures_a_forward_in_fresh_processes(capsys):
    """benchmarks/eager_memory.py: seglite's preset beside torchvision's reference, a MiB figure each."""
    from benchmarks import eager_memory

    assert eager_memory.main(["--preset", "lraspp_mobilenet_v3_small", "--size", "256", "512", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("peak memory of one eager forward at 256x512")
    figures = [float(line.split(": ")[1].split(" MiB")[0]) for line in lines[1:]]
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "seglite lraspp_mobilenet_v3_small", "torchvision lraspp_mobilenet_v3_large"]
    # a 256x512 forward holds megabytes of activations, not nothing and not gigabytes
    assert all(1 < figure < 1000 for figure in figures), figures
