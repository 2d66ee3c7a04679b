"""The model options of tools/predict.py and tools/infer_video.py: errors a user can cause are one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import torch
from test_predictor import checkpoint, random_images  # noqa: F401  (fixtures, shared)

from seglite.apps import predict as predict_tool


@pytest.fixture()
def image(tmp_path) -> Path:
    path = tmp_path / "in.png"
    cv2.imwrite(str(path), random_images([(40, 72)])[0])
    return path


def run_predict(capsys, *arguments) -> tuple[int, str]:
    code = predict_tool.main([str(argument) for argument in arguments])
    return code, capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_device_without_cuda_is_a_one_line_error(checkpoint, image, tmp_path, capsys):  # noqa: F811
    for device in ("cuda", "cuda:1"):
        code, err = run_predict(capsys, image, "--checkpoint", checkpoint, "--output", tmp_path / "out", "--device", device)
        assert code == 2 and err.count("\n") == 1
        assert f"--device {device}: CUDA is not available" in err


def test_unknown_device_is_an_argument_error(checkpoint, image, tmp_path, capsys):  # noqa: F811
    """Spelled wrong: refused while parsing, as every argument type (seglite.apps.arguments), before the model loads."""
    for device in ("foo", "cuda:x", "", "cuda:1:2"):
        with pytest.raises(SystemExit) as stop:
            run_predict(capsys, image, "--checkpoint", checkpoint, "--output", tmp_path / "out", "--device", device)
        err = capsys.readouterr().err
        expected = f"predict.py: error: argument --device: expected cpu, cuda or cuda:N, got {device!r}"
        assert stop.value.code == 2 and err.splitlines()[-1] == expected


def test_onnx_folder_is_named_as_a_folder(checkpoint, image, tmp_path, capsys):  # noqa: F811
    folder = tmp_path / "models"
    folder.mkdir()
    for model in (["--onnx", folder], ["--checkpoint", checkpoint, "--onnx", folder]):
        code, err = run_predict(capsys, image, *model, "--output", tmp_path / "out")
        assert (code, err) == (2, f"predict: error: ONNX model not found: {folder} is a folder\n")


def test_fixed_size_onnx_says_it_resizes_and_names_size_flag(checkpoint, image, tmp_path, capsys):  # noqa: F811
    from seglite.inference.export import export_checkpoint
    from seglite.inference.predictor import FixedInputSizeError, Predictor

    fixed = tmp_path / "fixed.onnx"
    export_checkpoint(checkpoint, fixed, size=(32, 64))
    predictor = Predictor.from_onnx(fixed)
    assert predictor.size == (32, 64)
    assert predictor.description.endswith(", fixed input 32x64: images are resized to it")
    assert predictor.predict(random_images([(40, 72)])[0]).shape == (40, 72)
    with pytest.raises(FixedInputSizeError, match="pass size=None or export with --dynamic"):
        Predictor.from_onnx(fixed, size=(16, 16))
    code, err = run_predict(capsys, image, "--onnx", fixed, "--output", tmp_path / "out", "--size", "16", "24")
    assert code == 2 and err == (
        f"predict: error: --size 16 24: {fixed} was exported for a fixed input of 32x64; "
        "drop --size (or give --size 32 64), or export with --dynamic\n"
    )
    code = predict_tool.main([str(image), "--onnx", str(fixed), "--output", str(tmp_path / "out")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "model: onnxruntime fp32" in printed and "fixed input 32x64: images are resized to it\n" in printed
    assert Predictor.from_onnx(fixed, size=(32, 64)).size == (32, 64)  # its own size may be given


def test_bf16_with_an_onnx_model_is_an_argument_error(checkpoint, image, tmp_path, capsys):  # noqa: F811
    for model in (["--onnx", tmp_path / "model.onnx"], ["--checkpoint", checkpoint, "--backend", "onnxruntime"]):
        with pytest.raises(SystemExit) as stop:
            predict_tool.main([str(argument) for argument in (image, *model, "--precision", "bf16", "--output", tmp_path / "o")])
        assert stop.value.code == 2
        assert "--precision bf16 runs in OpenVINO or torch" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
