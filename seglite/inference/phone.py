"""What the phone formats share (ExecuTorch ``.pte``, LiteRT ``.tflite``): the graph, its metadata, its check, its engine.

A phone file holds ``SegmenterGraph(model, output="coarse")`` exported at one fixed input size:
``(1, H, W, 3)`` uint8 RGB in; ImageNet normalisation, the zero padding to the backbone's output
stride and the network inside; the head's logits of the padded image out, ``(1, C, h, w)`` float32
with ``h = ceil(H / stride) * stride / 8`` (LR-ASPP: 1/8 of the padded input). The app finishes
the mask as ``seglite.inference.postprocess.upsampled_argmax`` does (README, "On a phone").

A fixed size is what makes the graph one XNNPACK partition: the LR-ASPP gate pool then is one
constant average pool (``seglite.models.heads.lraspp.WindowAvgPool2d``), and no shape arithmetic
is left for the runtime to do off the delegate.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seglite.inference.graph import CoarseMasks, SegmenterGraph, coarse_stride, resize_image
from seglite.inference.metadata import (
    META_GRAPH,
    META_INPUT_SIZE,
    META_OUTPUT_STRIDE,
    META_PRECISION,
    Size,
    export_metadata,
)
from seglite.models.segmentor import padded_size

FP32_LOGIT_LIMIT = 1e-3
"""Largest |coarse logit difference| an fp32 phone file may have against PyTorch. XNNPACK sums in
another order and fuses multiply-adds: 6.8e-5 at 512x1024 on the demo LR-ASPP (issue 17)."""
MIN_ARGMAX_AGREEMENT = 0.999


def phone_graph(model: nn.Module) -> SegmenterGraph:
    """The graph a phone file holds (module docstring); ``ValueError`` for a model that is no ``SegmentationModel``."""
    if coarse_stride(model) is None:
        raise ValueError(f"a phone export needs a seglite SegmentationModel (its coarse logits), got {type(model).__name__}")
    return SegmenterGraph(model, None, "coarse").eval()


def example_input(size: Size) -> torch.Tensor:
    """The ``(1, H, W, 3)`` uint8 input a phone graph is exported at."""
    return torch.zeros(1, *size, 3, dtype=torch.uint8)


def phone_metadata(metadata: dict[str, str] | None, size: Size, stride: int, precision: str) -> dict[str, str]:
    """seglite's metadata entries of a phone file: the export's, plus graph kind, fixed size, stride and precision."""
    return {
        **(metadata or export_metadata(None, None, None)),
        META_GRAPH: json.dumps("coarse"),
        META_INPUT_SIZE: json.dumps(list(size)),
        META_OUTPUT_STRIDE: json.dumps(stride),
        META_PRECISION: json.dumps(precision),
    }


@dataclass(frozen=True)
class Delegation:
    """How much of a lowered graph runs on XNNPACK: its partitions, and what runs outside them.

    ``outside`` counts operator names; operators on 0-d tensors (constants a decomposition
    leaves, e.g. hardsigmoid's 3 and 6 cast to float) are counted apart, as ``"name (0-d)"``.
    """

    partitions: int
    outside: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        plural = "" if self.partitions == 1 else "s"
        if not self.outside:
            return f"XNNPACK: {self.partitions} partition{plural}, no operator outside"
        listed = ", ".join(f"{name} x{count}" for name, count in sorted(self.outside.items()))
        return f"XNNPACK: {self.partitions} partition{plural}; outside: {listed}"


def count_outside(entries: Sequence[tuple[str, bool]]) -> dict[str, int]:
    """``{name: count}`` of ``(operator name, on a 0-d tensor)`` pairs (see :class:`Delegation`)."""
    return dict(Counter(f"{name} (0-d)" if scalar else name for name, scalar in entries))


@dataclass(frozen=True)
class PhoneParity:
    """PyTorch fp32 vs. a phone file on one random uint8 image: coarse logits and their argmax."""

    size: Size
    max_logit_difference: float
    argmax_agreement: float
    enforced: bool = True

    @property
    def passed(self) -> bool:
        if not self.enforced:
            return True
        return self.max_logit_difference <= FP32_LOGIT_LIMIT and self.argmax_agreement >= MIN_ARGMAX_AGREEMENT

    def __str__(self) -> str:
        text = (
            f"1x{self.size[0]}x{self.size[1]}x3 uint8: max |coarse logit difference| {self.max_logit_difference:.2e}, "
            f"argmax agreement {100 * self.argmax_agreement:.3f}%"
        )
        if not self.enforced:
            return text + " (int8: random images say little; see the mIoU change)"
        limits = f" (limits {FP32_LOGIT_LIMIT:g}, {100 * MIN_ARGMAX_AGREEMENT:g}%)"
        return text + limits + (" ok" if self.passed else " FAILED")


def check_phone_graph(
    model: nn.Module, run: Callable[[np.ndarray], np.ndarray], size: Size, enforced: bool = True, images: int = 2
) -> list[PhoneParity]:
    """``run`` (uint8 ``(1, H, W, 3)`` -> coarse logits) against PyTorch's fp32 phone graph on random images."""
    graph = phone_graph(model)
    reports = []
    for seed in range(images):
        image = np.random.default_rng(seed).integers(0, 256, size=(1, *size, 3), dtype=np.uint8)
        with torch.inference_mode():
            reference = graph(torch.from_numpy(image)).numpy()
        exported = np.asarray(run(image), dtype=np.float32)
        if exported.shape != reference.shape:
            raise ValueError(f"the export returns coarse logits of shape {exported.shape}; PyTorch {reference.shape}")
        difference = float(np.abs(exported - reference).max())
        agreement = float((exported.argmax(1) == reference.argmax(1)).mean())
        reports.append(PhoneParity(size, difference, agreement, enforced))
    return reports


class FixedSizeEngine:
    """The ``Engine`` of a phone file: one image at a time at the file's fixed size, masks finished in NumPy.

    Subclasses give :meth:`run` (``(1, H, W, 3)`` uint8 -> ``(1, C, h, w)`` coarse logits). An image
    of another size is resized bilinearly to the fixed size, and its logits back to the image's
    size (as ``Predictor`` does with a fixed-size ONNX model).
    """

    description = "phone file"

    def __init__(self, input_size: Size, stride: int) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.stride = int(stride)
        self._coarse = CoarseMasks(self.stride)

    def run(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def graph_output(self, images: np.ndarray) -> np.ndarray:
        """Coarse logits of each image (resized to the fixed size), ``(N, C, h, w)``."""
        return np.concatenate([self.run(np.ascontiguousarray(resize_image(image, self.input_size))[None]) for image in images])

    def masks(self, images: np.ndarray) -> np.ndarray:
        if tuple(images.shape[1:3]) == self.input_size:
            return self._coarse(self.graph_output(images), self.input_size)
        return self.logits(images).argmax(dim=1).to(torch.uint8).numpy()

    def logits(self, images: np.ndarray) -> torch.Tensor:
        height, width = self.input_size
        padded = padded_size(height, width, self.stride)
        coarse = torch.from_numpy(self.graph_output(images))
        # SegmentationModel.forward: logits upsampled to the padded input, cropped to the input
        logits = F.interpolate(coarse, size=padded, mode="bilinear", align_corners=False)[..., :height, :width]
        if tuple(images.shape[1:3]) != self.input_size:
            logits = F.interpolate(logits, size=images.shape[1:3], mode="bilinear", align_corners=False)
        return logits
