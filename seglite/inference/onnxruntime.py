"""The ONNX Runtime engine: segmenter graphs (uint8 images in) and tools/export.py's logits files.

ONNX Runtime is imported only when a session is made.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from seglite.errors import ModelLoadError
from seglite.inference.engine import default_num_threads, threads_text
from seglite.inference.graph import CoarseMasks, normalize, resize_image
from seglite.inference.metadata import Size, decode_metadata


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


class OnnxEngine:
    """Runs a model in ONNX Runtime: a :class:`~seglite.inference.graph.SegmenterGraph` export, or a logits file.

    A segmenter graph (dynamic batch and size; what ``Predictor.from_checkpoint`` builds) does
    everything inside the runtime. A logits file (:meth:`from_logits_file`: ``tools/export.py``'s
    ONNX format, the network alone on a normalised ``(N, 3, h, w)`` float32 batch) gets its
    normalisation and resizes in NumPy/OpenCV and its upsampling and argmax in PyTorch.

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
        self.logits_file: _LogitsFile | None = None
        self.description = f"onnxruntime fp32, {threads_text(self.num_threads)}{note}"

    @classmethod
    def from_logits_file(
        cls, model: str | os.PathLike | bytes, device: str = "cpu", num_threads: int | None = None, size: Size | None = None
    ) -> OnnxEngine:
        """The engine of an ONNX logits file (a path or its bytes), run at ``size`` (``None``: each image's own).

        Its ``logits_file`` holds what the file says of itself: ``input_size`` and ``batch_size``
        where exported static, ``num_classes`` and the ``metadata``.
        """
        shown = "the exported model" if isinstance(model, bytes) else str(model)
        session = onnx_session(model if isinstance(model, bytes) else str(model), shown, device, num_threads)
        engine = cls(session, None, device, num_threads)
        engine.logits_file = _LogitsFile(session, shown, size)
        engine.description += " (pre- and post-processing in NumPy/PyTorch)"
        return engine

    def _session(self, graph: bytes | Any, shown: str) -> Any:
        return onnx_session(graph, shown, self.device, self.num_threads) if isinstance(graph, bytes) else graph

    def graph_output(self, images: np.ndarray) -> np.ndarray:
        """What the graph returns for ``images``: masks, or the coarse logits ``coarse`` finishes."""
        if self.logits_file is not None:
            return self.masks(images)
        return self._masks.run(None, {self._masks.get_inputs()[0].name: images})[0]

    def masks(self, images: np.ndarray) -> np.ndarray:
        if self.logits_file is not None:
            return self.logits(images).argmax(dim=1).to(torch.uint8).numpy()
        output = self.graph_output(images)
        return output if self.coarse is None else self.coarse(output, images.shape[1:3])

    def logits(self, images: np.ndarray) -> torch.Tensor:
        if self.logits_file is not None:
            return self.logits_file.logits(images)
        if self._logits is None:
            if self._logits_graph is None:
                raise ModelLoadError("this ONNX segmenter returns masks only; it has no logits output")
            self._logits = self._session(self._logits_graph(), "the logits graph")
        return torch.from_numpy(self._logits.run(None, {self._logits.get_inputs()[0].name: images})[0])


class _LogitsFile:
    """An ONNX logits file's session with what it says of itself, and its NumPy pre- and post-processing."""

    def __init__(self, session: Any, shown: str, size: Size | None) -> None:
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs) < 1 or len(outputs[0].shape) != 4:
            raise ModelLoadError(
                f"{shown} is not a segmentation model of tools/export.py: expected one (N, 3, H, W) input "
                f"and (N, C, H, W) logits, found inputs {[i.shape for i in inputs]} and outputs {[o.shape for o in outputs]}"
            )
        self.session, self.input_name = session, inputs[0].name
        batch, _, height, width = inputs[0].shape
        # exported sizes are ints where static and names (strings) where dynamic
        self.batch_size = batch if isinstance(batch, int) else None
        self.input_size = (height, width) if isinstance(height, int) and isinstance(width, int) else None
        self.size = size
        self.metadata = decode_metadata(session.get_modelmeta().custom_metadata_map)
        self.num_classes = outputs[0].shape[1]
        if not isinstance(self.num_classes, int):
            raise ModelLoadError(f"{shown}: the class axis of the logits has no fixed size; export it with tools/export.py")

    def network(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits of a normalised ``(N, 3, h, w)`` float32 batch (a fixed-batch file gets it filled up with zeros)."""
        count = len(batch)
        if self.batch_size is not None and count < self.batch_size:
            batch = torch.cat([batch, batch.new_zeros((self.batch_size - count, *batch.shape[1:]))])
        return torch.from_numpy(self.session.run(None, {self.input_name: batch.numpy()})[0][:count])

    def logits(self, images: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(np.stack([normalize(resize_image(image, self.size)) for image in images]))
        logits = self.network(batch).float()
        if logits.shape[-2:] != images.shape[1:3]:
            logits = F.interpolate(logits, size=images.shape[1:3], mode="bilinear", align_corners=False)
        return logits
