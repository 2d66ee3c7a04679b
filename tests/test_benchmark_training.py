"""benchmarks/training.py: options, the paper recipe, the report, and one tiny run of both loops."""

from __future__ import annotations

import pytest
import torch

from benchmarks import training as benchmark_training


def test_paper_recipe_settings_and_explicit_flags_win() -> None:
    args = benchmark_training.parse_args(["--paper-recipe"])
    assert (args.batch_size, args.crop, args.precision, args.channels_last) == (16, (768, 768), "bf16-mixed", True)
    args = benchmark_training.parse_args(["--paper-recipe", "--precision", "fp32", "--batch-size", "4"])
    assert (args.batch_size, args.crop, args.precision) == (4, (768, 768), "fp32")
    assert benchmark_training.parse_args([]).precision == "fp32"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["--steps", "2"], "argument --steps: expected an integer >= 3 (2 warm-up steps and one timed), got '2'"),
     (["--crop", "16", "16"], "argument --crop: expected an integer >= 32, got '16'"),
     (["--device", "tpu"], "argument --device: expected cpu, cuda or cuda:N, got 'tpu'"), (["--precision", "fp16"], "invalid choice")],
)  # fmt: skip
def test_bad_options_are_named(arguments: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit):
        benchmark_training.parse_args(arguments)
    assert message in capsys.readouterr().err


def test_bf16_needs_native_support() -> None:
    problem = benchmark_training.check_device("cpu", "bf16-mixed")
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert problem is None
    else:
        assert "--precision bf16-mixed" in problem and "--precision fp32" in problem
    assert benchmark_training.check_device("cpu", "fp32") is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_cuda_without_a_gpu_is_refused(capsys) -> None:
    assert benchmark_training.main(["--device", "cuda", "--precision", "fp32"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_report_gives_images_per_second_and_schedule_hours() -> None:
    args = benchmark_training.parse_args(["--paper-recipe", "--device", "cuda"])
    text = benchmark_training.report(args, {"bare": [0.5, 0.4, 0.6], "lightning": [0.55] * 3})
    assert "| bare | 500.0 | 32.00 | 22.2 |" in text  # 16 images / 0.5 s; 160000 x 0.5 s = 22.2 h
    assert "| lightning | 550.0 | 29.09 | 24.4 |" in text
    assert "Lightning overhead: +10.0%" in text


def test_both_loops_run(capsys) -> None:
    code = benchmark_training.main(
        ["--preset", "lraspp_mobilenet_v3_small", "--batch-size", "2", "--crop", "64", "64", "--steps", "3",
         "--repeats", "1", "--threads", "1", "--channels-last"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "| bare |" in out and "| lightning |" in out and "Lightning overhead" in out
