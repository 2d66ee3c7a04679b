"""The PyTorch engine: :class:`~seglite.inference.graph.SegmenterGraph` run eagerly, the exact fp32 reference."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from seglite.inference.engine import threads_text
from seglite.inference.graph import CoarseMasks, GraphOutput, SegmenterGraph, coarse_stride
from seglite.inference.metadata import Size


class TorchEngine:
    """Runs a model's ``SegmenterGraph`` under ``torch.inference_mode`` on ``device``.

    The model itself is put in eval mode and moved (not a copy). ``masks`` and ``logits`` are
    the exact graphs; a ``SegmentationModel`` run at each image's own size (``size=None``) also
    has the coarse graph, which ``graph_output`` runs for tiled large images.

    Args:
        model: a ``SegmentationModel``, or any module returning ``(N, C, h, w)`` logits at its input size.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        channels_last: run the network in the channels-last memory format.
        size: ``(height, width)`` the network runs at; ``None``: each image's own size.
    """

    def __init__(
        self, model: nn.Module, device: str | torch.device = "cpu", channels_last: bool = False, size: Size | None = None
    ) -> None:
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.eval().to(self.device, memory_format=self.memory_format)
        stride = coarse_stride(model) if size is None else None
        self.coarse = CoarseMasks(stride) if stride else None
        outputs: tuple[GraphOutput, ...] = ("masks", "logits", "coarse") if stride else ("masks", "logits")
        self._graphs = {output: SegmenterGraph(self.model, size, output).to(self.device) for output in outputs}
        for graph in self._graphs.values():
            graph.memory_format = self.memory_format
        layout = ", channels_last" if channels_last else ""
        threads = f", {threads_text(torch.get_num_threads())}" if self.device.type == "cpu" else ""
        self.description = f"torch fp32 ({self.device}{layout}{threads})"

    def _run(self, images: np.ndarray, output: GraphOutput) -> torch.Tensor:
        with torch.inference_mode():
            return self._graphs[output](torch.from_numpy(images).to(self.device)).cpu()

    def masks(self, images: np.ndarray) -> np.ndarray:
        return self._run(images, "masks").numpy()

    def logits(self, images: np.ndarray) -> torch.Tensor:
        return self._run(images, "logits")

    def graph_output(self, images: np.ndarray) -> np.ndarray:
        """The head's coarse logits of ``images`` (each at its own size) when ``coarse`` is set, else the masks."""
        return self._run(images, "coarse" if self.coarse is not None else "masks").numpy()
