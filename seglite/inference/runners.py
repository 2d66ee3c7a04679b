"""What runs a network for the predictor: PyTorch and ONNX Runtime (OpenVINO: ``seglite.inference.openvino``).

Two kinds of runner:

- A *segmenter* (``Engine``) runs the whole prediction as one graph: ``(N, H, W, 3)`` uint8 RGB
  images in, ``(N, H, W)`` uint8 train ids out, with normalisation, the optional resize to the
  inference size and back, and the argmax inside the graph (:class:`SegmenterGraph`). Upsampling
  19 channels of logits to 512x1024 and taking their argmax costs as much as the network itself
  when done in NumPy or eager PyTorch; inside the runtime it is fused and threaded.
- A *logits runner* (``Runner``; :class:`TorchRunner`, :class:`OnnxRunner`) maps a normalised
  ``(N, 3, h, w)`` float32 batch to logits: what exported ONNX files of seglite 0.1 contain.

ONNX Runtime and OpenVINO are imported only when a runner of theirs is made.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seglite.data.constants import IMAGENET_MEAN, IMAGENET_STD
from seglite.errors import ModelLoadError
from seglite.inference.metadata import Size, decode_metadata

GraphOutput = Literal["masks", "logits", "coarse"]

Runner = Callable[[torch.Tensor], torch.Tensor]
"""Normalised (N, 3, h, w) float32 CPU batch -> (N, C, h, w) logits (on any device)."""


class Engine(Protocol):
    """A segmenter: the whole prediction of uint8 images in one runtime."""

    description: str

    def masks(self, images: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 RGB -> ``(N, H, W)`` uint8 train ids."""

    def logits(self, images: np.ndarray) -> torch.Tensor:
        """``(N, H, W, 3)`` uint8 RGB -> ``(N, C, H, W)`` float32 logits at the images' size."""


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


class TorchRunner:
    """Runs an ``nn.Module`` under ``torch.inference_mode`` on ``device``, optionally channels-last.

    The module itself is put in eval mode, moved and converted (not a copy). Callable on a
    normalised batch (a logits runner); ``Predictor`` runs uint8 images through it with its
    ``SegmenterGraph`` built once (``seglite.inference.predictor``).
    """

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", channels_last: bool = False) -> None:
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.eval().to(self.device, memory_format=self.memory_format)
        layout = ", channels_last" if channels_last else ""
        threads = f", {threads_text(torch.get_num_threads())}" if self.device.type == "cpu" else ""
        self.description = f"torch fp32 ({self.device}{layout}{threads})"

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            batch = batch.to(self.device, memory_format=self.memory_format, non_blocking=True)
            return self.model(batch).float()


def onnx_session(model: str | bytes, shown: str, device: str, num_threads: int | None):
    """An ONNX Runtime session of a file or serialised model; ``ModelLoadError`` naming ``shown`` when it cannot load."""
    import onnxruntime as ort

    providers: list = ["CPUExecutionProvider"]
    if str(device).startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError(
                f"device={device!r}: this onnxruntime has no CUDA provider (available: "
                f"{ort.get_available_providers()}); install onnxruntime-gpu or use device='cpu'"
            )
        index = str(device).partition(":")[2] or "0"
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(index)}))
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads or default_num_threads()
    # ONNX Runtime's idle threads spin after each run by default: the next thing the process runs
    # (another runtime, a video decoder) then shares the cores with them. Measured on a 2-core Zen 4
    # at 512x1024: an OpenVINO predict right after an ONNX Runtime run took 38.6 ms instead of 23.7;
    # without spinning ONNX Runtime's own run took 56.8 ms instead of 56.2.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model, options, providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types for malformed models
        raise ModelLoadError(f"cannot load ONNX model {shown}: {str(error).strip().splitlines()[0]}") from error


@functools.cache
def onnxruntime_max_opset(highest: int) -> int:
    """The highest ONNX opset (default domain) the installed ONNX Runtime loads, at most ``highest``.

    ONNX Runtime has no public query for it; each release refuses models stamped with an opset
    it does not support yet (1.16: up to 19). Found by loading a one-node model per opset, from
    ``highest`` down (milliseconds).
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [value],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    for opset in range(highest, 6, -1):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
        try:
            ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception:  # refused: not supported by this release
            continue
        return opset
    return onnx.defs.onnx_opset_version()


class OnnxRunner:
    """Runs an ONNX logits model (a file path or its serialised bytes) in ONNX Runtime.

    ``num_threads`` defaults to :func:`default_num_threads`.
    """

    def __init__(self, model: str | os.PathLike | bytes, device: str = "cpu", num_threads: int | None = None) -> None:
        source = model if isinstance(model, bytes) else str(model)
        shown = "the exported model" if isinstance(model, bytes) else str(model)
        self.session = onnx_session(source, shown, device, num_threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs) < 1 or len(outputs[0].shape) != 4:
            raise ModelLoadError(
                f"{shown} is not a segmentation model of tools/export.py: expected one (N, 3, H, W) input "
                f"and (N, C, H, W) logits, found inputs {[i.shape for i in inputs]} and outputs {[o.shape for o in outputs]}"
            )
        self.input_name = inputs[0].name
        batch, _, height, width = inputs[0].shape
        # exported sizes are ints where static and names (strings) where dynamic
        self.batch_size = batch if isinstance(batch, int) else None
        self.input_size = (height, width) if isinstance(height, int) and isinstance(width, int) else None
        self.metadata = decode_metadata(self.session.get_modelmeta().custom_metadata_map)
        self.num_classes = outputs[0].shape[1]
        if not isinstance(self.num_classes, int):
            raise ModelLoadError(f"{shown}: the class axis of the logits has no fixed size; export it with tools/export.py")
        threads = self.session.get_session_options().intra_op_num_threads
        self.description = f"onnxruntime fp32, {threads_text(threads)} (pre- and post-processing in NumPy/PyTorch)"

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        count = len(batch)
        if self.batch_size is not None and count < self.batch_size:
            # a model exported for a fixed batch takes only that: fill up with zeros, drop their logits
            batch = torch.cat([batch, batch.new_zeros((self.batch_size - count, *batch.shape[1:]))])
        logits = self.session.run(None, {self.input_name: batch.numpy()})[0]
        return torch.from_numpy(logits[:count])


class OnnxEngine:
    """Runs :class:`SegmenterGraph` exports (dynamic batch and size) in ONNX Runtime.

    Args:
        masks_graph: the serialised ONNX segmenter with ``output="masks"``, or ``"coarse"``
            with ``coarse`` to finish it (or a session of it: :func:`onnx_session`).
        logits_graph: makes the ``output="logits"`` one (bytes or a session), called on the first :meth:`logits`.
        coarse: turns the coarse graph's output into masks.
    """

    def __init__(
        self,
        masks_graph: bytes | Any,
        logits_graph: Callable[[], bytes | Any] | None = None,
        device: str = "cpu",
        num_threads: int | None = None,
        note: str = "",
        coarse: CoarseMasks | None = None,
    ) -> None:
        self.device, self.num_threads = device, num_threads or default_num_threads()
        self.coarse = coarse
        self._masks = self._session(masks_graph, "the segmenter graph")
        self._logits_graph = logits_graph
        self._logits = None
        self.description = f"onnxruntime fp32, {threads_text(self.num_threads)}{note}"

    def _session(self, graph: bytes | Any, shown: str) -> Any:
        return onnx_session(graph, shown, self.device, self.num_threads) if isinstance(graph, bytes) else graph

    def graph_output(self, images: np.ndarray) -> np.ndarray:
        """What the graph returns for ``images``: masks, or the coarse logits ``coarse`` finishes."""
        return self._masks.run(None, {self._masks.get_inputs()[0].name: images})[0]

    def masks(self, images: np.ndarray) -> np.ndarray:
        output = self.graph_output(images)
        return output if self.coarse is None else self.coarse(output, images.shape[1:3])

    def logits(self, images: np.ndarray) -> torch.Tensor:
        if self._logits is None:
            if self._logits_graph is None:
                raise ModelLoadError("this ONNX segmenter returns masks only; it has no logits output")
            self._logits = self._session(self._logits_graph(), "the logits graph")
        return torch.from_numpy(self._logits.run(None, {self._logits.get_inputs()[0].name: images})[0])


class LogitsEngine:
    """An ``Engine`` over a logits runner: normalisation and resizes in NumPy/OpenCV, argmax in PyTorch.

    The path of exported ONNX logits files (``Predictor.from_onnx``) and of custom runners.
    """

    def __init__(self, runner: Runner, size: Size | None = None) -> None:
        self.runner = runner
        self.size = size
        self.description = getattr(runner, "description", type(runner).__name__)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """``(3, h, w)`` float32: resized to ``size`` (bilinear) if set, ImageNet-normalised."""
        return normalize(resize_image(image, self.size))

    def logits(self, images: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(np.stack([self.preprocess(image) for image in images]))
        logits = self.runner(batch).float()
        if logits.shape[-2:] != images.shape[1:3]:
            logits = F.interpolate(logits, size=images.shape[1:3], mode="bilinear", align_corners=False)
        return logits

    def masks(self, images: np.ndarray) -> np.ndarray:
        return self.logits(images).argmax(dim=1).to(torch.uint8).cpu().numpy()


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
