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


def test_unknown_device_is_a_one_line_error(checkpoint, image, tmp_path, capsys):  # noqa: F811
    for device in ("foo", "cuda:x", ""):
        code, err = run_predict(capsys, image, "--checkpoint", checkpoint, "--output", tmp_path / "out", "--device", device)
        assert code == 2 and err.count("\n") == 1
        assert f"--device must be cpu, cuda or cuda:N, got {device!r}" in err
