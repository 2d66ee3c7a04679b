"""LiteRT (TensorFlow Lite): converting the phone graph to a ``.tflite``, and running one on the desktop with XNNPACK.

The model is ``litert_torch.convert`` of ``seglite.inference.phone.phone_graph`` at a fixed size,
fp32. LiteRT's interpreter applies its XNNPACK delegate by default, on Android as here.
seglite's metadata is an entry ``seglite`` of the flatbuffer's ``metadata`` table (the TFLite
schema's place for it): one JSON object of the entries, readable in an app from the model
buffer (``Model.metadata`` in the generated schema API).

int8 is not offered: LiteRT's PT2E int8 of this graph left the 19 int8 HARD_SWISH and the
average pool off XNNPACK (20 partitions), ran slower than fp32 and cost 1.71 val mIoU
(issue 17's measurement on the demo LR-ASPP MobileNetV3-Large); ExecuTorch's int8 pays.

Install with ``pip install seglite[litert]``; this module imports LiteRT only when called.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seglite.errors import ModelLoadError
from seglite.inference.engine import default_num_threads, threads_text
from seglite.inference.metadata import decode_metadata
from seglite.inference.phone import Delegation, FixedSizeEngine, count_outside, example_input, phone_graph

METADATA_NAME = "seglite"
"""Name of the flatbuffer ``metadata`` entry that holds seglite's entries as one JSON object."""


def available() -> bool:
    """True when litert-torch (conversion) and ai-edge-litert (the interpreter) can be imported."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
        import litert_torch  # noqa: F401
    except ImportError:
        return False
    return True


def runtime_available() -> bool:
    """True when the LiteRT interpreter (ai-edge-litert) can be imported: enough to run a ``.tflite``."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def convert_module(module: nn.Module, example: torch.Tensor) -> bytes:
    """The fp32 ``.tflite`` bytes of ``module`` exported at ``example`` (no metadata)."""
    import litert_torch

    # the converter reports each stage on stdout; its errors are raised
    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        return litert_torch.convert(module, (example,)).model_content()


def convert(model: nn.Module, size: tuple[int, int], metadata: dict[str, str] | None = None) -> bytes:
    """The fp32 ``.tflite`` bytes of ``model``'s phone graph at ``size``, with seglite's metadata."""
    return with_metadata(convert_module(phone_graph(model), example_input(size)), metadata or {})


def with_metadata(data: bytes, metadata: dict[str, str]) -> bytes:
    """``data`` (a ``.tflite`` flatbuffer) with seglite's entries as its ``seglite`` metadata."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
    model.buffers = [*(model.buffers or []), buffer]
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [item for item in (model.metadata or []) if item.name not in (METADATA_NAME, METADATA_NAME.encode())]
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_metadata(data: bytes) -> dict[str, object]:
    """seglite's metadata of a ``.tflite`` flatbuffer, decoded; empty when it has none."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        if entry.Name() in (METADATA_NAME, METADATA_NAME.encode()):
            return decode_metadata(json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()))
    return {}


def delegation_of(interpreter) -> Delegation:
    """Partitions and operators outside XNNPACK of an interpreter whose delegate is applied.

    The interpreter lists every node of the model plus one ``DELEGATE`` node per partition; the
    nodes that still run are the ones whose outputs are needed: walked back from the model's
    outputs through the partitions' inputs (a node taken into a partition feeds only its partition).
    """
    nodes = interpreter._get_ops_details()  # ai-edge-litert's op listing (no public one)
    producer = {tensor: node for node in nodes for tensor in node["outputs"]}
    delegates = [node for node in nodes if node["op_name"] == "DELEGATE"]
    for node in delegates:  # a partition's outputs come from the partition
        for tensor in node["outputs"]:
            producer[tensor] = node
    needed = [detail["index"] for detail in interpreter.get_output_details()]
    running, seen = [], set()
    while needed:
        tensor = needed.pop()
        node = producer.get(tensor)
        if node is None or node["index"] in seen:
            continue
        seen.add(node["index"])
        if node["op_name"] != "DELEGATE":
            shape = interpreter._get_tensor_details(node["outputs"][0], 0)["shape"] if len(node["outputs"]) else []
            running.append((node["op_name"], len(shape) == 0))
        needed.extend(int(index) for index in node["inputs"] if index >= 0)
    return Delegation(len(delegates), count_outside(running))


class LiteRtEngine(FixedSizeEngine):
    """Runs a seglite ``.tflite`` (a file or its bytes) in LiteRT's interpreter with its XNNPACK delegate.

    Args:
        model: the ``.tflite`` path or bytes.
        num_threads: interpreter threads (default :func:`seglite.inference.engine.default_num_threads`).
    """

    def __init__(self, model: str | Path | bytes, num_threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        shown = "the converted model" if isinstance(model, bytes) else str(model)
        data = model if isinstance(model, bytes) else Path(model).read_bytes()
        self.num_threads = num_threads or default_num_threads()
        try:
            self.metadata = read_metadata(data)
            self.interpreter = Interpreter(model_content=data, num_threads=self.num_threads)
            self.interpreter.allocate_tensors()
        except Exception as error:  # flatbuffers and the interpreter raise their own errors on a bad file
            raise ModelLoadError(f"cannot load LiteRT model {shown}: {str(error).strip().splitlines()[0]}") from error
        if self.metadata.get("seglite.graph") != "coarse":
            raise ModelLoadError(f"{shown} is not a seglite phone model (export it with tools/export.py --format litert)")
        super().__init__(self.metadata["seglite.input_size"], self.metadata["seglite.output_stride"])
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        height, width = self.input_size
        self.description = f"litert fp32 (XNNPACK), {threads_text(self.num_threads)}, fixed input {height}x{width}"

    def run(self, image: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self._input, image)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output)  # a copy

    def delegation(self) -> Delegation:
        """What this interpreter runs on XNNPACK (:func:`delegation_of`)."""
        return delegation_of(self.interpreter)
