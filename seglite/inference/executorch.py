"""ExecuTorch: lowering the phone graph to a ``.pte`` on XNNPACK (fp32, PT2E int8), and running one on the desktop.

The program is ``torch.export`` of ``seglite.inference.phone.phone_graph`` at a fixed size,
lowered with ``to_edge_transform_and_lower(partitioner=[XnnpackPartitioner()])`` (ExecuTorch's
documented XNNPACK flow), so the same file runs in ExecuTorch's Android AAR and iOS frameworks.
int8 is PT2E post-training quantisation with ``XNNPACKQuantizer`` (symmetric, per-channel
weights), calibrated on images. seglite's metadata is a constant method of the program,
``seglite_metadata``, that returns the JSON object of the entries (``Module.execute("seglite_metadata")``
in an app).

Install with ``pip install seglite[executorch]``; this module imports ExecuTorch only when called.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seglite.errors import ModelLoadError
from seglite.inference.engine import default_num_threads, threads_text
from seglite.inference.metadata import decode_metadata
from seglite.inference.phone import Delegation, FixedSizeEngine, count_outside, example_input, phone_graph

METADATA_METHOD = "seglite_metadata"
"""The program's constant method that returns seglite's metadata entries as one JSON object."""


def available() -> bool:
    """True when ExecuTorch and its XNNPACK backend can be imported."""
    try:
        import executorch.backends.xnnpack.partition.xnnpack_partitioner
        import executorch.runtime  # noqa: F401
    except ImportError:
        return False
    return True


_loaded_programs = 0
"""Programs this process has loaded: ExecuTorch's thread pool must not change after the first."""


def set_threads(count: int) -> int:
    """Size ExecuTorch's process-wide thread pool (XNNPACK's threads) to ``count``; returns the size it has.

    Only before the first program is loaded: a reset after it hangs or aborts the next run
    (``pthread_mutex_lock`` assertion, ExecuTorch 1.5.1 on x86), so then the pool stays as it is
    and the caller reports the size it got. ExecuTorch's Python bindings have no public setting
    (an app sets it in C++, ``executorch::extension::threadpool``): this is the one use of the
    bindings' private ``_unsafe_reset_threadpool`` (``tests/test_phone_export.py`` fails when it goes away).
    """
    from executorch.extension.pybindings import portable_lib

    current = int(portable_lib._threadpool_get_thread_count())
    if current != count and _loaded_programs == 0:
        portable_lib._unsafe_reset_threadpool(count)
        current = int(portable_lib._threadpool_get_thread_count())
    return current


def quantize(graph: nn.Module, example: torch.Tensor, calibration: Sequence[torch.Tensor]) -> nn.Module:
    """PT2E int8 of ``graph`` for XNNPACK (symmetric, per-channel weights), calibrated on inputs shaped as ``example``."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if not calibration:
        raise ValueError("int8 needs calibration inputs (a few dozen training images)")
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(graph, (example,)).module(), quantizer)
    with torch.no_grad():
        for batch in calibration:
            prepared(batch)
    return convert_pt2e(prepared)


def lower_module(
    module: nn.Module,
    example: torch.Tensor,
    precision: str = "fp32",
    calibration: Sequence[torch.Tensor] = (),
    metadata: dict[str, str] | None = None,
) -> tuple[bytes, Delegation]:
    """The ``.pte`` bytes of ``module`` exported at ``example`` and lowered to XNNPACK, and what XNNPACK took of it."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be 'fp32' or 'int8' for ExecuTorch, got {precision!r}")
    if precision == "int8":
        module = quantize(module, example, calibration)
    with torch.no_grad():
        program = torch.export.export(module, (example,))
    constants = {METADATA_METHOD: json.dumps(metadata or {})}
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()], constant_methods=constants)
    delegation = delegation_of(edge.exported_program().graph_module)
    return bytes(edge.to_executorch().buffer), delegation


def lower(
    model: nn.Module,
    size: tuple[int, int],
    precision: str = "fp32",
    calibration_images: Sequence[np.ndarray] | None = None,
    metadata: dict[str, str] | None = None,
) -> tuple[bytes, Delegation]:
    """The ``.pte`` of ``model``'s phone graph at ``size`` (:func:`lower_module`); int8 calibrated on
    ``(H, W, 3)`` uint8 images (resized to ``size``)."""
    from seglite.inference.graph import resize_image

    batches = [torch.from_numpy(np.ascontiguousarray(resize_image(image, size)))[None] for image in calibration_images or []]
    return lower_module(phone_graph(model), example_input(size), precision, batches, metadata)


def load_method(program: bytes, num_threads: int):
    """The ``forward`` method of a ``.pte``'s bytes, on a thread pool of ``num_threads`` where it can still be set
    (:func:`set_threads`); returns ``(method, program, threads got)`` (the method needs its program alive)."""
    global _loaded_programs
    from executorch.runtime import Runtime

    threads = set_threads(num_threads)
    loaded = Runtime.get().load_program(program)
    method = loaded.load_method("forward")
    _loaded_programs += 1
    return method, loaded, threads


def delegation_of(graph_module: torch.fx.GraphModule) -> Delegation:
    """Partitions and operators outside XNNPACK of a lowered edge graph (``getitem`` of a partition's outputs aside)."""
    partitions, outside = 0, []
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if "executorch_call_delegate" in name:
            partitions += 1
        elif name != "getitem":
            value = node.meta.get("val")
            outside.append((name.removesuffix(".default"), isinstance(value, torch.Tensor) and value.dim() == 0))
    return Delegation(partitions, count_outside(outside))


class ExecuTorchEngine(FixedSizeEngine):
    """Runs a seglite ``.pte`` (a file or its bytes) in ExecuTorch's Python runtime.

    Args:
        program: the ``.pte`` path or bytes.
        num_threads: ExecuTorch's thread pool size (default :func:`seglite.inference.engine.default_num_threads`).
            The pool is the process's, and fixed by the first program loaded (:func:`set_threads`):
            :attr:`num_threads` and the description say what the engine got.
    """

    def __init__(self, program: str | Path | bytes, num_threads: int | None = None) -> None:
        shown = "the exported program" if isinstance(program, bytes) else str(program)
        try:
            data = program if isinstance(program, bytes) else Path(program).read_bytes()
            self._method, loaded, self.num_threads = load_method(data, num_threads or default_num_threads())
            constants = loaded.load_method(METADATA_METHOD) if METADATA_METHOD in loaded.method_names else None
            entries = json.loads(constants.execute([])[0]) if constants is not None else {}
        except Exception as error:  # the runtime raises RuntimeError/ValueError with its own codes
            raise ModelLoadError(f"cannot load ExecuTorch program {shown}: {str(error).strip().splitlines()[0]}") from error
        self.metadata = decode_metadata(entries)
        if self.metadata.get("seglite.graph") != "coarse":
            raise ModelLoadError(f"{shown} is not a seglite phone model (export it with tools/export.py --format executorch)")
        self._program = loaded  # the method needs its program alive
        super().__init__(self.metadata["seglite.input_size"], self.metadata["seglite.output_stride"])
        precision = self.metadata.get("seglite.precision", "fp32")
        height, width = self.input_size
        self.description = f"executorch {precision} (XNNPACK), {threads_text(self.num_threads)}, fixed input {height}x{width}"

    def run(self, image: np.ndarray) -> np.ndarray:
        return self._method.execute([torch.from_numpy(image)])[0].numpy()  # copied out by the runtime
