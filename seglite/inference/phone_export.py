"""Export a segmentation model to a phone file (ExecuTorch ``.pte``, LiteRT ``.tflite``), checked against PyTorch.

The file is the graph of ``seglite.inference.phone`` at a fixed size, with seglite's metadata
inside. Before anything is written the file runs in its runtime on the desktop (XNNPACK, as on
the phone) next to PyTorch on random images: fp32 must stay within
``seglite.inference.phone.FP32_LOGIT_LIMIT`` with 99.9% argmax agreement, else nothing is
written (``ExportCheckError``); int8 is reported, and judged by its val mIoU change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from torch import nn

from seglite.checks import check_choice, check_size
from seglite.errors import ExportCheckError, ExportError
from seglite.files import check_output_file, write_bytes
from seglite.inference.graph import coarse_stride, cpu_eval_copy
from seglite.inference.metadata import Size
from seglite.inference.phone import Delegation, PhoneParity, check_phone_graph, phone_metadata

SUFFIXES = {"executorch": ".pte", "litert": ".tflite"}
"""The file name ending of each phone format (the predictor and the tools tell them apart by it)."""


@dataclass(frozen=True)
class PhoneExport:
    """What a phone export wrote: its checks against PyTorch, its XNNPACK delegation, its size."""

    reports: list[PhoneParity]
    delegation: Delegation
    file_bytes: int


def _failed(reports: Sequence[PhoneParity]) -> None:
    if not all(report.passed for report in reports):
        raise ExportCheckError("the export does not match PyTorch:\n  " + "\n  ".join(map(str, reports)))


def _prepare(model: nn.Module, output: str | Path, export_format: str, size: Size, overwrite: bool,
             inputs: Iterable[str | Path]) -> tuple[nn.Module, Path, Size, int]:  # fmt: skip
    size = check_size("size", size)
    output = Path(output)
    if output.suffix != SUFFIXES[export_format]:
        raise ValueError(f"--format {export_format} writes NAME{SUFFIXES[export_format]}, got {output}")
    output = check_output_file(output, overwrite, inputs, make_parent=False)
    stride = coarse_stride(model)
    if stride is None:
        raise ExportError(f"--format {export_format} needs a seglite SegmentationModel, got {type(model).__name__}")
    return cpu_eval_copy(model), output, size, stride


def export_executorch(
    model: nn.Module,
    output: str | Path,
    size: Size = (512, 1024),
    precision: Literal["fp32", "int8"] = "fp32",
    calibration_images: Sequence[np.ndarray] | None = None,
    metadata: dict[str, str] | None = None,
    overwrite: bool = False,
    inputs: Iterable[str | Path] = (),
    num_threads: int | None = None,
) -> PhoneExport:
    """Lower ``model`` to an ExecuTorch ``.pte`` on XNNPACK at ``size``, checked in ExecuTorch against PyTorch.

    Args:
        model: a ``SegmentationModel``.
        output: ``NAME.pte``.
        size: the fixed ``(height, width)`` of the input.
        precision: ``"fp32"`` or ``"int8"`` (PT2E, ``XNNPACKQuantizer``; needs ``calibration_images``).
        calibration_images: RGB uint8 images (resized to ``size``).
        metadata: seglite metadata entries (``seglite.inference.metadata.export_metadata``).
        overwrite: replace an existing ``output``.
        inputs: files ``output`` must not be (the checkpoint).
        num_threads: ExecuTorch threads of the check.
    """
    from seglite.inference import executorch

    check_choice("precision", precision, ("fp32", "int8"))
    model, output, size, stride = _prepare(model, output, "executorch", size, overwrite, inputs)
    if not executorch.available():
        raise ExportError("--format executorch needs ExecuTorch: pip install seglite[executorch]")
    if precision == "int8" and not calibration_images:
        raise ValueError("precision='int8' needs calibration images")
    entries = phone_metadata(metadata, size, stride, precision)
    data, delegation = executorch.lower(model, size, precision, calibration_images, entries)
    engine = executorch.ExecuTorchEngine(data, num_threads)
    reports = check_phone_graph(model, engine.run, size, enforced=precision == "fp32")
    _failed(reports)
    write_bytes(output, data)
    return PhoneExport(reports, delegation, len(data))


def export_litert(
    model: nn.Module,
    output: str | Path,
    size: Size = (512, 1024),
    metadata: dict[str, str] | None = None,
    overwrite: bool = False,
    inputs: Iterable[str | Path] = (),
    num_threads: int | None = None,
) -> PhoneExport:
    """Convert ``model`` to an fp32 LiteRT ``.tflite`` at ``size``, checked in LiteRT (XNNPACK) against PyTorch.

    Arguments as :func:`export_executorch` (LiteRT int8 does not pay: ``seglite.inference.litert``).
    """
    from seglite.inference import litert

    model, output, size, stride = _prepare(model, output, "litert", size, overwrite, inputs)
    if not litert.available():
        raise ExportError("--format litert needs litert-torch and ai-edge-litert: pip install seglite[litert]")
    data = litert.convert(model, size, phone_metadata(metadata, size, stride, "fp32"))
    engine = litert.LiteRtEngine(data, num_threads)
    reports = check_phone_graph(model, engine.run, size)
    _failed(reports)
    write_bytes(output, data)
    return PhoneExport(reports, engine.delegation(), len(data))
