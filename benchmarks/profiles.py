"""Per-operator profiles of the benchmark's backends: where one forward pass spends its time.

PyTorch: ``torch.profiler``, each top-level aten operator attributed to the module it ran in.
ONNX Runtime: its own profiler's JSON, per graph node, categorised from the optimised graph.
OpenVINO: ``OpenVinoEngine.profile`` (the compiled model's per-layer counters).
Every entry gets one of ``seglite.models.complexity.CATEGORIES``, so time shares can be set
beside MAC and memory-access shares. Each reads a ``benchmarks.engines.Target``.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmarks.engines import Target, openvino
from benchmarks.harness import interleaved, timed
from seglite.models.complexity import ModuleScope, conv_category, inside, operator_category


@dataclass(frozen=True)
class TimedOperator:
    """One operator (or graph node) of a profile: seconds per forward pass, averaged over the profiled runs."""

    name: str
    operator: str
    category: str
    seconds: float


@dataclass(frozen=True)
class OperatorProfile:
    """Where one forward pass spends its time: ``total`` = the operators' sum + ``overhead``."""

    backend: str
    operators: list[TimedOperator] = field(default_factory=list)
    total: float = 0.0
    runs: int = 0

    @property
    def overhead(self) -> float:
        """Time outside operators: Python, dispatch, executor bookkeeping (and the profiler's own cost)."""
        return max(self.total - sum(op.seconds for op in self.operators), 0.0)


def profile_torch(target: Target, runs: int) -> OperatorProfile:
    """``torch.profiler`` over ``runs`` timed calls; each top-level aten operator is attributed
    to the innermost module it ran in (``record_function`` ranges opened by module hooks)."""
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile

    model = target.model
    if model is None:
        raise ValueError("a compiled model has no per-module profile; profile 'eager' or 'channels-last'")
    ranges: list[ExitStack] = []

    def enter(path: str) -> None:
        stack = ExitStack()
        stack.enter_context(record_function(f"module::{path}"))
        ranges.append(stack)

    def leave(path: str) -> None:
        ranges.pop().close()

    activities = [ProfilerActivity.CPU]
    on_cuda = target.device.startswith("cuda")
    if on_cuda:
        activities.append(ProfilerActivity.CUDA)
    with ModuleScope(model, enter, leave):
        target.call(target.inputs)  # warm-up
        with profile(activities=activities, record_shapes=True) as profiler:
            for _ in range(runs):
                with record_function("benchmark::forward"):
                    target.call(target.inputs)
                if on_cuda:
                    torch.cuda.synchronize()
    operators: list[TimedOperator] = []
    forwards = []
    for event in profiler.events():
        if event.name == "benchmark::forward":
            forwards.append(event.device_time_total if on_cuda else event.cpu_time_total)
            continue
        if not event.name.startswith("aten::"):
            continue
        parent, path = event.cpu_parent, None
        while parent is not None:
            if parent.name.startswith("aten::"):
                break  # nested inside another aten operator: counted there
            if path is None and parent.name.startswith("module::"):
                path = parent.name[len("module::") :]
            parent = parent.cpu_parent
        if parent is not None:
            continue
        shapes = event.input_shapes or []
        input_shape = shapes[0] if len(shapes) > 1 and shapes[0] else None
        weight_shape = shapes[1] if len(shapes) > 1 and shapes[1] else None
        path = path or ""
        category = operator_category(event.name, inside(path, target.squeeze_excite), input_shape, weight_shape)
        microseconds = event.device_time_total if on_cuda else event.cpu_time_total
        operators.append(TimedOperator(path or "(model)", event.name, category, microseconds * 1e-6 / runs))
    total = sum(forwards) * 1e-6 / max(len(forwards), 1)
    return OperatorProfile("", _merge(operators), total, runs)


def _merge(operators: list[TimedOperator]) -> list[TimedOperator]:
    """One entry per (name, operator, category), in first-seen order, times added."""
    merged: dict[tuple[str, str, str], float] = {}
    for op in operators:
        key = (op.name, op.operator, op.category)
        merged[key] = merged.get(key, 0.0) + op.seconds
    return [TimedOperator(*key, seconds) for key, seconds in merged.items()]


# ONNX (and OpenVINO) operator types in PyTorch's names, so one categorisation serves all runtimes
_GRAPH_OPERATORS = {
    "Conv": "convolution", "FusedConv": "convolution", "QLinearConv": "convolution", "ConvInteger": "convolution",
    "Convolution": "convolution", "GroupConvolution": "convolution",  # OpenVINO
    "Gemm": "addmm", "MatMul": "mm", "FullyConnected": "addmm",
    "Relu": "relu", "Clip": "hardtanh", "HardSwish": "hardswish", "HSwish": "hardswish",
    "HardSigmoid": "hardsigmoid", "HSigmoid": "hardsigmoid", "Sigmoid": "sigmoid", "LeakyRelu": "leaky_relu",
    "Resize": "upsample", "Upsample": "upsample", "Interpolate": "upsample",
    "BatchNormalization": "batch_norm", "BatchNormInference": "batch_norm",
    "Concat": "cat", "Pad": "pad", "Transpose": "transpose", "ReorderInput": "reorderinput",
    "ReorderOutput": "reorderoutput", "Reorder": "reorder", "Split": "split", "Slice": "slice", "Cast": "cast",
    "Convert": "convert",
}  # fmt: skip


def module_path_of_node(node_name: str) -> str:
    """The module path of an ONNX node named by the TorchScript exporter's scopes.

    ``/backbone/layer1/layer1.0/block/block.1/scale_activation/HardSigmoid`` ->
    ``backbone.layer1.0.block.1.scale_activation``:
    each scope repeats its parent's name before a numbered child (``layer1.0``). A segmenter
    graph's scopes start with ``/model`` (``SegmenterGraph.model``), which is dropped.
    """
    if not node_name.startswith("/"):
        return ""
    scopes = node_name.split("/")[1:-1]
    parts: list[str] = []
    previous = ""
    for scope in scopes:
        parts.append(scope[len(previous) + 1 :] if previous and scope.startswith(previous + ".") else scope)
        previous = scope
    path = ".".join(parts)
    return path[len("model.") :] if path.startswith("model.") else path


def graph_node_category(
    op_type: str, node_name: str, squeeze_excite: set[str], weight_shape: list[int] | None, groups: int = 1
) -> str:
    """The category of a runtime graph node (ONNX Runtime node, OpenVINO layer) of an exported seglite model."""
    in_squeeze_excite = inside(module_path_of_node(node_name), squeeze_excite)
    name = _GRAPH_OPERATORS.get(op_type, op_type.lower())
    if name == "convolution" and not in_squeeze_excite:
        if weight_shape is None or len(weight_shape) < 3:
            return "kxk conv"
        return conv_category(groups * int(weight_shape[1]), weight_shape)
    return operator_category(name, in_squeeze_excite)


def _onnx_weight_shapes(model_path: Path) -> dict[str, tuple[list[int] | None, int]]:
    """Node name -> (weight shape, groups) of every convolution of an (optimised) ONNX model."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}

    def weight_shape(name: str, depth: int = 0) -> list[int] | None:
        if name in shapes or depth > 4:
            return shapes.get(name)
        node = producers.get(name)  # a quantised weight comes through DequantizeLinear / reorders
        return weight_shape(node.input[0], depth + 1) if node is not None and node.input else None

    found = {}
    for node in graph.node:
        if _GRAPH_OPERATORS.get(node.op_type) == "convolution" and len(node.input) > 1:
            index = 3 if node.op_type == "QLinearConv" else 1  # QLinearConv: x, x_scale, x_zero_point, w, ...
            groups = next((attribute.i for attribute in node.attribute if attribute.name == "group"), 1)
            found[node.name] = (weight_shape(node.input[index]), max(int(groups), 1))
    return found


def profile_onnxruntime(target: Target, runs: int) -> OperatorProfile:
    """ONNX Runtime's own profiler (``enable_profiling``) on a second session of the target's graph
    and threads, grouped by node; the optimised graph (fusions, NCHWc layout) gives each node's kernel.
    The engine's session cannot profile: ONNX Runtime turns profiling on when a session is made."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="seglite-ort-profile-") as folder:
        options = ort.SessionOptions()
        options.intra_op_num_threads = target.threads
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(folder, "profile")
        options.optimized_model_filepath = os.path.join(folder, "optimized.onnx")
        options.log_severity_level = 3  # the optimised-model file's hardware-specific warning
        cuda = ["CUDAExecutionProvider"] if target.device.startswith("cuda") else []
        session = ort.InferenceSession(target.graph, options, providers=[*cuda, "CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: target.inputs}
        for _ in range(runs + 1):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
        weights = _onnx_weight_shapes(Path(folder) / "optimized.onnx")
    model_runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])[1:]  # skip warm-up
    windows = [(e["ts"], e["ts"] + e["dur"]) for e in model_runs]
    operators = []
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        if not any(start <= event["ts"] <= end for start, end in windows):
            continue
        node = event["name"][: -len("_kernel_time")]
        op_type = event.get("args", {}).get("op_name", "")
        weight_shape, groups = weights.get(node, (None, 1))
        category = graph_node_category(op_type, node, target.squeeze_excite, weight_shape, groups)
        operators.append(TimedOperator(node, op_type, category, event["dur"] * 1e-6 / len(windows)))
    total = statistics.fmean(end - start for start, end in windows) * 1e-6 if windows else 0.0
    return OperatorProfile("", _merge(operators), total, len(windows))


def _openvino_convolutions(graph: bytes) -> dict[str, tuple[list[int], int]]:
    """Layer name -> (weight shape, groups) of every convolution of the OpenVINO model of ``graph``.

    A grouped convolution's weights (``[groups, out/groups, in/groups, k, k]``) are folded into
    ``[out, in/groups, k, k]``; the CPU plugin keeps a convolution's name when it fuses activations,
    batch norm and sums into it, so the profile's layers find theirs.
    """
    convolutions: dict[str, tuple[list[int], int]] = {}
    for op in openvino.read_onnx(graph).get_ordered_ops():
        if op.get_type_name() not in ("Convolution", "GroupConvolution"):
            continue
        weights = op.input(1).get_partial_shape()
        if weights.is_dynamic:
            continue
        shape = [int(dimension.get_length()) for dimension in weights]
        groups = shape[0] if len(shape) == 5 else 1
        convolutions[op.get_friendly_name()] = ([shape[0] * shape[1], *shape[2:]] if len(shape) == 5 else shape, groups)
    return convolutions


def profile_openvino(target: Target, runs: int) -> OperatorProfile:
    """``OpenVinoEngine.profile``: each executed layer's median time over ``runs`` (fused layers -
    activations, batch norm, sums folded into a convolution - are not run and cost nothing on
    their own), beside the median wall time of the timed call."""
    convolutions = _openvino_convolutions(target.graph)
    operators = []
    for row in target.engine.profile(target.inputs, rounds=runs):
        weight_shape, groups = convolutions.get(row["name"], (None, 1))
        category = graph_node_category(row["type"], row["name"], target.squeeze_excite, weight_shape, groups)
        operators.append(TimedOperator(row["name"], row["type"], category, row["milliseconds"] / 1000))
    (wall,) = interleaved([timed(lambda: target.call(target.inputs))], warmup=1, rounds=runs)
    # the counters time each layer on its own, their clock reads included: on a small model they can
    # add up to a little more than the wall time of the call, which then bounds nothing
    total = max(statistics.median(wall.times), sum(op.seconds for op in operators))
    return OperatorProfile("", operators, total, runs)


PROFILERS: dict[str, Callable[[Target, int], OperatorProfile]] = {
    "torch": profile_torch,
    "onnxruntime": profile_onnxruntime,
    "openvino": profile_openvino,
}
"""The per-operator profilers, by the name a backend of ``benchmarks.engines.BACKENDS`` gives."""
