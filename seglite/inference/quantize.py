"""Int8 static quantisation of an exported ONNX model for ONNX Runtime, and its effect on mIoU and speed.

``onnxruntime.quantization.quantize_static`` in QDQ format with per-channel weights, calibrated
with min-max ranges on dataset images that go through the predictor's own preprocessing.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quant_pre_process, quantize_static

from seglite.data import CityscapesDataset
from seglite.files import atomic_write, require_file
from seglite.inference.export import check_output
from seglite.inference.predictor import Predictor, Size
from seglite.metrics import SegmentationScores, confusion_matrix, scores_from_confusion


def dataset_images(root: str | Path, split: Literal["train", "val", "test"] = "train", count: int | None = 32) -> list[np.ndarray]:
    """``count`` RGB images spread evenly over a Cityscapes-layout split (all with ``None``)."""
    dataset = CityscapesDataset(str(root), split)
    total = len(dataset) if count is None else min(count, len(dataset))
    indices = np.linspace(0, len(dataset) - 1, total).round().astype(int) if total else []
    return [dataset[int(index)]["image"] for index in indices]


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
    reader = _CalibrationReader(predictor, predictor.runner.input_name, calibration_images)
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


@dataclass(frozen=True)
class ModelEvaluation:
    """Scores of one model on a split and its median time per image (``Predictor.predict``, pre- and postprocessing included)."""

    name: str
    scores: SegmentationScores
    median_seconds: float


def evaluate_predictors(
    predictors: Mapping[str, Predictor],
    root: str | Path,
    split: Literal["train", "val"] = "val",
    limit: int | None = None,
    ignore_index: int = 255,
) -> list[ModelEvaluation]:
    """mIoU of each predictor on a Cityscapes-layout split, and its median time per image.

    The models take turns on every image (after one warm-up image each), so that a machine
    that gets busier or quieter during the run affects them alike.
    """
    if not predictors:
        raise ValueError("predictors is empty")
    dataset = CityscapesDataset(str(root), split)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    num_classes = {predictor.num_classes for predictor in predictors.values()}
    if len(num_classes) != 1:
        raise ValueError(f"the predictors disagree on the number of classes: {sorted(num_classes)}")
    classes = min(num_classes)
    confusions = {name: torch.zeros(classes, classes, dtype=torch.int64) for name in predictors}
    times: dict[str, list[float]] = {name: [] for name in predictors}
    for predictor in predictors.values():
        predictor.predict(dataset[0]["image"])
    for index in range(count):
        sample = dataset[index]
        target = torch.from_numpy(sample["mask"].astype(np.int64))
        for name, predictor in predictors.items():
            start = time.perf_counter()
            mask = predictor.predict(sample["image"])
            times[name].append(time.perf_counter() - start)
            confusions[name] += confusion_matrix(torch.from_numpy(mask), target, classes, ignore_index)
    return [
        ModelEvaluation(name, scores_from_confusion(confusions[name]), statistics.median(times[name]))
        for name in predictors
    ]


def comparison_table(evaluations: Sequence[ModelEvaluation]) -> str:
    """A plain-text table of mIoU and time per image, with the change against the first row."""
    base = evaluations[0]
    width = max(8, *(len(evaluation.name) for evaluation in evaluations))
    lines = [f"{'model':<{width}}  mIoU (%)  change   ms/image  speed-up", "-" * (width + 42)]
    for evaluation in evaluations:
        change = 100 * (evaluation.scores.miou - base.scores.miou)
        speedup = base.median_seconds / evaluation.median_seconds if evaluation.median_seconds > 0 else float("nan")
        lines.append(
            f"{evaluation.name:<{width}}  {100 * evaluation.scores.miou:8.2f}  {change:+6.2f}  "
            f"{1000 * evaluation.median_seconds:9.1f}  {speedup:7.2f}x"
        )
    return "\n".join(lines)
