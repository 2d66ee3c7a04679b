"""Names and metadata shared by the exporters and the runtimes: the bottom of ``seglite.inference``.

An exported graph carries what a predictor needs besides the weights (class names, palette,
normalisation, input size, the checkpoint it came from) as JSON-encoded strings under the keys
below: ONNX ``metadata_props``, OpenVINO ``rt_info``, the TorchScript extra file ``seglite.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from seglite.data.constants import IMAGENET_MEAN, IMAGENET_STD

Size = tuple[int, int]

# inputs and outputs of the exported graphs
INPUT_NAME = "image"
"""Logits graph (ONNX, TorchScript): normalised ``(N, 3, H, W)`` float32."""
OUTPUT_NAME = "logits"
"""Logits graph: ``(N, C, H, W)`` float32 at input size."""
MASK_OUTPUT_NAME = "mask"
"""Segmenter graph (OpenVINO export, the predictor's fast path): ``(N, H, W)`` uint8 train ids;
its input ``image`` is the ``(N, H, W, 3)`` uint8 RGB image itself."""

META_CLASS_NAMES = "seglite.class_names"
META_PALETTE = "seglite.palette"
META_MEAN = "seglite.mean"
META_STD = "seglite.std"
META_INPUT_SIZE = "seglite.input_size"
META_CHECKPOINT_SHA256 = "seglite.checkpoint_sha256"
META_GRAPH = "seglite.graph"
"""``"logits"`` (absent in files of seglite 0.1), ``"segmenter"`` (uint8 image in, mask out) or
``"coarse"`` (uint8 image in, the head's logits of the padded image out: see
``seglite.inference.postprocess``)."""
META_OUTPUT_STRIDE = "seglite.output_stride"
"""Of a ``"coarse"`` graph: the multiple its input is padded to."""
META_PRECISION = "seglite.precision"
"""``"fp32"``, ``"bf16"`` (a runtime setting, recorded) or ``"int8"`` (quantised weights)."""


def export_metadata(
    class_names: Sequence[str] | None,
    palette: Sequence[Sequence[int]] | None,
    input_size: Size | None,
    checkpoint_sha256: str | None = None,
) -> dict[str, str]:
    """The metadata an export carries, JSON-encoded values; ``input_size`` ``None`` for dynamic."""
    metadata = {
        META_CLASS_NAMES: class_names and list(class_names),
        META_PALETTE: palette and [[int(v) for v in color] for color in palette],
        META_MEAN: list(IMAGENET_MEAN),
        META_STD: list(IMAGENET_STD),
        META_INPUT_SIZE: input_size and list(input_size),
        META_CHECKPOINT_SHA256: checkpoint_sha256,
    }
    return {key: json.dumps(value) for key, value in metadata.items() if value is not None}


onnx_metadata = export_metadata  # seglite 0.1's name (the metadata is not ONNX's alone any more)


def decode_metadata(entries: dict[str, str]) -> dict[str, object]:
    """seglite's entries of an export's metadata, JSON-decoded (other keys are ignored)."""
    return {key: json.loads(value) for key, value in entries.items() if key.startswith("seglite.")}
