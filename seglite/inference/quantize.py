"""Int8 static quantisation of an exported ONNX model for ONNX Runtime (its effect on mIoU and speed: ``seglite.inference.accuracy``).

``onnxruntime.quantization.quantize_static`` in QDQ format with per-channel weights, calibrated
with min-max ranges on dataset images that go through the predictor's own preprocessing.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quant_pre_process, quantize_static

from seglite.files import atomic_write, require_file
from seglite.inference.accuracy import (  # noqa: F401  (imported from here before seglite 0.3)
    ModelEvaluation,
    comparison_table,
    dataset_images,
    evaluate_predictors,
)
from seglite.inference.export import check_output
from seglite.inference.predictor import Predictor, Size


class _CalibrationReader(CalibrationDataReader):
    """Feeds ``quantize_static`` one preprocessed image at a time."""

    def __init__(self, predictor: Predictor, input_name: str, images: Sequence[np.ndarray]) -> None:
        self._batches = ({input_name: predictor.preprocess(image)[None].numpy()} for image in images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_onnx(
    model: str | Path,
    output: str | Path,
    calibration_images: Sequence[np.ndarray],
    size: Size | None = None,
    per_channel: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write an int8 (QDQ, u8 activations, s8 weights) copy of an fp32 ONNX model; metadata is kept.

    Args:
        model: the fp32 ``.onnx`` file of ``tools/export.py``.
        output: the int8 file.
        calibration_images: RGB uint8 images (a few dozen training images) for the activation ranges.
        size: calibration input size of a dynamic-size model (default: each image's own);
            a static model uses its own size.
        per_channel: one weight scale per output channel (much closer to fp32 for depthwise convs).
    """
    model = require_file(model, "ONNX model")
    output = check_output(output, overwrite, [model])
    if not calibration_images:
        raise ValueError("calibration_images is empty; give some training images")
    predictor = Predictor.from_onnx(model, size=size)
    reader = _CalibrationReader(predictor, predictor.engine.logits_file.input_name, calibration_images)
    with tempfile.TemporaryDirectory() as folder:
        prepared = Path(folder) / "prepared.onnx"
        # shape inference and graph fusion first, as ONNX Runtime recommends before static quantisation;
        # its symbolic shape inference logs a warning for every padded dimension it cannot compare
        onnx_logger = logging.getLogger("onnxruntime.tools.symbolic_shape_infer")
        level = onnx_logger.level
        onnx_logger.setLevel(logging.ERROR)
        try:
            quant_pre_process(str(model), str(prepared))
        finally:
            onnx_logger.setLevel(level)

        def write(path: Path) -> None:
            quantize_static(
                str(prepared),
                str(path),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                # the logit-producing classifiers stay float, as in seglite.inference.openvino.ignored_scope
                nodes_to_exclude=[node.name for node in onnx.load(str(prepared)).graph.node if "classifier" in node.name],
            )

        atomic_write(output, write)
    return output
