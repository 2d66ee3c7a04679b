"""What every inference engine offers, and the settings they share (threads, error messages).

An *engine* runs a whole prediction in one runtime: ``(N, H, W, 3)`` uint8 RGB images in,
``(N, H, W)`` uint8 train ids (``masks``) or float32 logits (``logits``) out, normalisation and
resizes included. There is one engine per runtime: :class:`~seglite.inference.torch_engine.TorchEngine`,
:class:`~seglite.inference.onnxruntime.OnnxEngine`, :class:`~seglite.inference.openvino.OpenVinoEngine`,
and for phone files ``ExecuTorchEngine`` and ``LiteRtEngine``. Each runs the export of
:class:`~seglite.inference.graph.SegmenterGraph`, or that module itself in eager PyTorch.
"""

from __future__ import annotations

import os
import re
from typing import Protocol

import numpy as np
import torch

from seglite.inference.graph import CoarseMasks


class Engine(Protocol):
    """A segmenter: the whole prediction of uint8 images in one runtime.

    ``coarse`` is set when the graph stops at the head's coarse logits (each image at its own
    size): ``graph_output`` then returns them and ``masks`` finishes them with it; large images
    are tiled over ``graph_output`` (``seglite.inference.tiling``).
    """

    description: str
    coarse: CoarseMasks | None

    def masks(self, images: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 RGB -> ``(N, H, W)`` uint8 train ids."""

    def logits(self, images: np.ndarray) -> torch.Tensor:
        """``(N, H, W, 3)`` uint8 RGB -> ``(N, C, H, W)`` float32 logits at the images' size."""

    def graph_output(self, images: np.ndarray) -> np.ndarray:
        """What the runtime's graph returns for ``images``: masks, or the coarse logits ``coarse`` finishes."""


def default_num_threads() -> int:
    """Intra-op threads for every runtime: ``OMP_NUM_THREADS`` when set, else PyTorch's setting.

    PyTorch's default is the number of physical cores (hyper-threads do not speed up these
    convolutions), and ``torch.set_num_threads`` changes it: one setting governs all backends.
    """
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.strip().isdigit() and int(value) > 0:
        return int(value)
    return torch.get_num_threads()


_LOCATION_LINE = re.compile(r"^(Exception from \S+:\d+:|Check '.*' failed at \S+:\d+:?|.* failed with \w+:)$")


def error_reason(error: BaseException) -> str:
    """The most informative line of a runtime's error message: OpenVINO's start with source-location
    lines (``Exception from src/...cpp:84:``, ``Check '...' failed at ...``) and say why below them."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [line for line in lines if not _LOCATION_LINE.match(line)]
    return (reasons or lines or [type(error).__name__])[0]


def threads_text(count: int) -> str:
    """``"1 thread"``, ``"2 threads"``: for descriptions."""
    return f"{count} thread{'' if count == 1 else 's'}"
