"""The choices of the deployment options, importable without torch: command lines list them in ``--help``."""

from __future__ import annotations

from typing import Literal, get_args

Backend = Literal["auto", "torch", "onnxruntime", "openvino"]
Precision = Literal["auto", "fp32", "bf16", "int8"]
Int8Scope = Literal["all", "no_depthwise", "backbone"]
ExportFormat = Literal["onnx", "torchscript", "openvino", "executorch", "litert"]
TorchScriptMethod = Literal["script", "trace"]

BACKENDS: tuple[str, ...] = get_args(Backend)
"""``"auto"``: the fastest backend measured accurate on this device (see ``seglite.inference.predictor``)."""
PRECISIONS: tuple[str, ...] = get_args(Precision)
INT8_SCOPES: tuple[str, ...] = get_args(Int8Scope)
"""What int8 quantises: every layer, all but the depthwise convolutions, or the backbone only."""
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
TORCHSCRIPT_METHODS: tuple[str, ...] = get_args(TorchScriptMethod)
