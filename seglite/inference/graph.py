"""The graph every runtime runs: a segmentation network with the predictor's pre- and post-processing.

:class:`SegmenterGraph` takes ``(N, H, W, 3)`` uint8 RGB images and returns masks, logits or the
head's coarse logits; it is what ONNX Runtime, OpenVINO, ExecuTorch and LiteRT run (exported)
and what :class:`~seglite.inference.torch_engine.TorchEngine` runs eagerly. Upsampling 19
channels of logits to 512x1024 and taking their argmax costs as much as the network itself when
done in NumPy or eager PyTorch; inside the runtime it is fused and threaded, and at each image's
own size the graph stops at the coarse logits, which :class:`CoarseMasks` finishes exactly at a
fraction of that cost. The pad-to-stride rule is the model's own
(:func:`seglite.models.segmentor.padded_size`).
"""

from __future__ import annotations

import copy
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seglite.data.constants import IMAGENET_MEAN, IMAGENET_STD
from seglite.inference.metadata import Size

GraphOutput = Literal["masks", "logits", "coarse"]


class SegmenterGraph(nn.Module):
    """A segmentation network with the predictor's pre- and post-processing, as one module to export.

    ``forward`` takes ``(N, H, W, 3)`` uint8 RGB images: ImageNet normalisation (the training
    constants of ``seglite.data.constants``), a bilinear resize to ``size`` when set, the network,
    logits resized bilinearly back to ``(H, W)``, and with ``output="masks"`` the argmax as uint8.

    ``output="coarse"`` (a ``SegmentationModel`` and ``size=None``) stops before the upsampling:
    the head's logits of the input padded to a multiple of the backbone's output stride, which
    :func:`seglite.inference.postprocess.upsampled_argmax` turns into the same masks at a
    fraction of the cost (:class:`CoarseMasks`).

    Args:
        model: returns ``(N, C, h, w)`` logits at its input size (a ``SegmentationModel``).
        size: ``(height, width)`` the network runs at; ``None``: each image's own size.
        output: ``"masks"`` (uint8 train ids), ``"logits"`` (float32) or ``"coarse"``.
    """

    def __init__(self, model: nn.Module, size: Size | None = None, output: GraphOutput = "masks") -> None:
        super().__init__()
        if output not in ("masks", "logits", "coarse"):
            raise ValueError(f"output must be 'masks', 'logits' or 'coarse', got {output!r}")
        if output == "coarse" and (size is not None or coarse_stride(model) is None):
            raise ValueError("output='coarse' needs a SegmentationModel and size=None")
        self.model = model
        self.size = size
        self.output = output
        self.memory_format = torch.contiguous_format
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        # (x / 255 - mean) / std as one multiply-add
        self.register_buffer("scale", (1.0 / (255.0 * std)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", (-mean / std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch = images.permute(0, 3, 1, 2).float() * self.scale + self.shift
        batch = batch.contiguous(memory_format=self.memory_format)
        if self.output == "coarse":
            # SegmentationModel.forward up to its upsampling: zero padding at the bottom and right
            return self.model.head(self.model.backbone(self.model.pad_input(batch))).float()
        if self.size is not None:
            batch = F.interpolate(batch, size=self.size, mode="bilinear", align_corners=False)
        logits = self.model(batch)
        if self.size is not None:
            logits = F.interpolate(logits, size=images.shape[1:3], mode="bilinear", align_corners=False)
        if self.output == "logits":
            return logits.float()
        return logits.argmax(dim=1).to(torch.uint8)


def cpu_eval_copy(model: nn.Module) -> nn.Module:
    """A CPU copy of ``model`` in eval mode, for an exporter (ONNX, TorchScript, ExecuTorch, LiteRT):
    exporters toggle modes, and the caller's model may live on a GPU."""
    return copy.deepcopy(model).cpu().eval()


def coarse_stride(model: nn.Module) -> int | None:
    """The padding multiple of a ``SegmentationModel`` (its backbone's output stride); ``None`` for other modules."""
    from seglite.models.segmentor import SegmentationModel

    if isinstance(model, SegmentationModel):
        return int(model.backbone.output_stride)
    return None


class CoarseMasks:
    """Masks at image size from a ``SegmenterGraph(output="coarse")``'s logits (``upsampled_argmax``)."""

    def __init__(self, stride: int) -> None:
        self.stride = stride

    def __call__(self, coarse: np.ndarray, image_size: Size) -> np.ndarray:
        from seglite.inference.postprocess import upsampled_argmax
        from seglite.models.segmentor import padded_size

        return upsampled_argmax(coarse, padded_size(*image_size, self.stride), tuple(image_size))


def resize_image(image: np.ndarray, size: Size | None) -> np.ndarray:
    """``image`` resized bilinearly to ``size`` (``(height, width)``); unchanged for ``None`` or its own size."""
    if size is None or image.shape[:2] == tuple(size):
        return image
    import cv2

    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def normalize(image: np.ndarray) -> np.ndarray:
    """``(3, H, W)`` float32 of an ``(H, W, 3)`` uint8 RGB image, ImageNet-normalised as in training."""
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    return np.ascontiguousarray(((image.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1))
