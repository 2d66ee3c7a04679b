"""The engine of a training checkpoint for a chosen backend: its segmenter graph built, cached and loaded.

``Predictor.from_checkpoint`` chooses the backend (:func:`seglite.inference.choice.backend_candidates`)
and calls :func:`checkpoint_engine`, which builds the one candidate's engine or, for ``"auto"``,
times the candidates (:func:`seglite.inference.choice.choose`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from seglite.checkpoints import CheckpointModel
from seglite.checks import check_image
from seglite.errors import SegliteError
from seglite.inference import choice
from seglite.inference.cache import ConversionCache
from seglite.inference.engine import Engine, default_num_threads
from seglite.inference.graph import CoarseMasks, GraphOutput, coarse_stride
from seglite.inference.metadata import Size, export_metadata
from seglite.inference.options import Int8Scope


@dataclass(frozen=True)
class EngineSettings:
    """How an engine runs: the ``Predictor.from_checkpoint`` arguments every backend shares."""

    device: str = "cpu"
    size: Size | None = None
    channels_last: bool = False
    num_threads: int | None = None
    calibration_images: Sequence[np.ndarray] | None = None
    int8_scope: Int8Scope = "all"


def checkpoint_engine(
    loaded: CheckpointModel,
    candidates: list[tuple[str, str]],
    note: str,
    settings: EngineSettings,
    cache: ConversionCache,
    precision: str = "auto",
) -> Engine:
    """The engine of the one ``(backend, precision)`` candidate, or of the fastest one measured among several
    (``precision``, the one asked, is part of the measured choice's key)."""
    if len(candidates) == 1:
        return build_engine(loaded, *candidates[0], settings, cache, note)
    builders = {f"{name} {mode}": (lambda name=name, mode=mode: build_engine(loaded, name, mode, settings, cache))
                for name, mode in candidates}  # fmt: skip
    threads = settings.num_threads or default_num_threads()
    key = choice.choice_key(loaded.sha256 or "", settings.size, precision, threads, choice.runtime_versions())
    chosen, engine = choice.choose(builders, settings.size, cache.folder / f"auto-{key}.json" if cache.folder else None)
    if engine is None:  # a stored choice: only its engine is built
        engine = builders[chosen.label]()
    engine.description += note + chosen.note
    return engine


def build_engine(
    loaded: CheckpointModel, backend: str, precision: str, settings: EngineSettings, cache: ConversionCache, note: str = ""
) -> Engine:
    """The ``torch``, ``onnxruntime`` or ``openvino`` engine of a checkpoint (its converted graphs from ``cache``)."""
    if backend == "torch":
        from seglite.inference.torch_engine import TorchEngine

        if settings.num_threads is not None:
            torch.set_num_threads(settings.num_threads)
        engine = TorchEngine(loaded.model, settings.device, settings.channels_last, settings.size)
        engine.description += note
        return engine
    metadata = export_metadata(loaded.class_names, loaded.palette, None, loaded.sha256)

    def graph(output: GraphOutput, load: Callable[[bytes], Any]) -> Any:
        """``load`` of the serialised segmenter graph, from the cache when it holds a loadable one."""
        from seglite.inference.export import segmenter_onnx_bytes

        def make() -> bytes:
            return segmenter_onnx_bytes(loaded.model, settings.size, output, metadata=metadata)

        return cache.load(make, load, "segmenter", settings.size, output)

    # at the image's own size, the graph stops at the head's coarse logits and NumPy finishes
    # the masks (seglite.inference.postprocess: a fraction of the upsampling's cost)
    stride = coarse_stride(loaded.model) if settings.size is None else None
    first_graph, coarse = ("coarse", CoarseMasks(stride)) if stride else ("masks", None)
    if backend == "onnxruntime":
        from seglite.inference.onnxruntime import OnnxEngine, onnx_session

        threads = settings.num_threads or default_num_threads()

        def session(output: GraphOutput, shown: str) -> Any:
            return graph(output, lambda data: onnx_session(data, shown, settings.device, threads))

        return OnnxEngine(session(first_graph, "the segmenter graph"), lambda: session("logits", "the logits graph"),
                          settings.device, settings.num_threads, note, coarse)  # fmt: skip
    if not str(settings.device).startswith("cpu"):
        raise ValueError(f"backend='openvino' runs on the CPU here, got device={settings.device!r}")
    from seglite.inference import openvino

    if not openvino.available():
        raise SegliteError("backend='openvino' needs OpenVINO: pip install seglite[openvino] (or use backend='auto')")
    if precision == "auto":
        precision = openvino.float_precision()
    masks_model = graph(first_graph, openvino.read_onnx)
    if precision == "int8":
        masks_model = _int8_model(masks_model, settings, cache)
    return openvino.OpenVinoEngine(
        masks_model,
        openvino.float_precision() if precision == "int8" else precision,
        settings.num_threads,
        lambda: graph("logits", openvino.read_onnx),
        note,
        int8=precision == "int8",
        coarse=coarse,
    )


def _int8_model(model: Any, settings: EngineSettings, cache: ConversionCache) -> Any:
    """NNCF int8 of ``model``, from the cache when these images and settings were quantised before."""
    import openvino as ov

    from seglite.inference import openvino

    digest = hashlib.sha256()
    for image in settings.calibration_images or ():
        digest.update(str(check_image(image).shape).encode())
        digest.update(np.ascontiguousarray(image).tobytes())
    return cache.load_ir(lambda: openvino.quantize(model, settings.calibration_images, settings.int8_scope),
                         "int8", settings.size, settings.int8_scope, digest.hexdigest(), ov.__version__)  # fmt: skip
