"""The backends the benchmarks run, each built on an engine of ``seglite.inference``.

The other benchmark modules import ``seglite.inference`` directly where they use it (the Predictor,
its accuracy comparison, the CPU's name); the backends' construction is all here.

A backend turns an eval-mode ``nn.Module`` into a :class:`Target`: the product's engine for it
(``Predictor.from_model``'s PyTorch engine, ``OnnxEngine``, ``OpenVinoEngine`` with its precision
settings, ``ExecuTorchEngine``, ``LiteRtEngine``), the call that is timed (``(N, H, W, 3)`` uint8
images in, ``(N, C, H, W)`` logits at the images' size out: normalisation, the network and its
upsampling, as the Predictor runs them) and its input. Adding one (TensorRT, ...) is one entry of
``BACKENDS``: a ``build`` function, an ``unavailable`` check and optionally a ``profile``
function (``benchmarks.profiles``); the benchmark, its tables, CSV, JSON and plot pick it up by name.

Everything here runs inside a benchmark worker process (``benchmarks.workers``), except
``Backend.unavailable``, which the parent calls to choose what to run.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seglite.inference import executorch, litert, openvino
from seglite.inference.choice import cpu_flags
from seglite.inference.export import onnx_model_bytes, segmenter_onnx_bytes
from seglite.inference.graph import coarse_stride, normalize
from seglite.inference.onnxruntime import OnnxEngine, onnx_session
from seglite.inference.phone import phone_metadata
from seglite.inference.predictor import Predictor
from seglite.models.complexity import squeeze_excite_paths

REFERENCE = "torchvision-lraspp"
"""Name of the reference model: torchvision's LR-ASPP MobileNetV3-Large with the paper's settings."""


def torchvision_reference(num_classes: int = 19) -> nn.Module:
    """torchvision's LR-ASPP MobileNetV3-Large as the MobileNetV3 paper configures it for Cityscapes:
    dilated (output stride 16) and reduced tail. The public builder ignores ``reduced_tail``, so the
    model is put together from torchvision's public parts as its private ``_lraspp_mobilenetv3``
    does (``tests/test_benchmark.py`` checks they are the same model). The benchmarks' one reference builder."""
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.feature_extraction import create_feature_extractor
    from torchvision.models.segmentation import LRASPP

    model = mobilenet_v3_large(weights=None, dilated=True, reduced_tail=True)
    # _lraspp_mobilenetv3's taps: the last stride-8 block (features.4, 40 channels) and the last layer
    # (features.16, 480 with the reduced tail)
    low, high = model.features[4], model.features[16]
    backbone = create_feature_extractor(model, {"features.4": "low", "features.16": "high"})
    return LRASPP(backbone, low.out_channels, high.out_channels, num_classes)


class TorchvisionReference(nn.Module):
    """:func:`torchvision_reference` returning the logits tensor rather than torchvision's dict, as the engines expect."""

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.model = torchvision_reference(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


@dataclass(frozen=True)
class ModelSpec:
    """A model a worker builds: a seglite preset with options, or the torchvision reference."""

    preset: str
    options: tuple[tuple[str, Any], ...] = ()
    num_classes: int = 19

    @property
    def is_reference(self) -> bool:
        return self.preset == REFERENCE

    @property
    def label(self) -> str:
        extra = " ".join(f"{key}={value}" for key, value in self.options)
        return f"{self.preset} {extra}".strip()

    def build(self) -> nn.Module:
        if self.is_reference:
            return TorchvisionReference(self.num_classes)
        from seglite.models import build_preset

        return build_preset(self.preset, num_classes=self.num_classes, **dict(self.options))


@dataclass(frozen=True)
class Case:
    """One thing to time: a model on a backend at an input size and batch, on a device, with threads."""

    model: ModelSpec
    backend: str
    size: tuple[int, int]
    batch_size: int
    device: str = "cpu"
    threads: int = 1

    @property
    def label(self) -> str:
        height, width = self.size
        return f"{self.model.label} | {self.backend} | {self.batch_size}x{height}x{width}"


@dataclass
class Target:
    """An engine ready to time: ``call(inputs)`` is the timed call, logits at the input size out.

    ``model``: the PyTorch module whose submodules a profile names (``None``: compiled, or not PyTorch);
    ``graph``: the serialised ONNX graph the runtime runs; ``squeeze_excite``: the module paths of
    the model's squeeze-and-excitation blocks (``benchmarks.profiles`` categorises with them).
    """

    engine: Any
    call: Callable[[np.ndarray], Any]
    inputs: np.ndarray
    device: str = "cpu"
    threads: int = 1
    model: nn.Module | None = None
    graph: bytes | None = None
    squeeze_excite: set[str] = field(default_factory=set)
    cuda_memory: bool = False
    """PyTorch's CUDA allocator holds what it computes (its peak memory is read there)."""


def images(case: Case) -> np.ndarray:
    """The same random ``(N, H, W, 3)`` uint8 batch in every worker."""
    return np.random.default_rng(0).integers(0, 256, (case.batch_size, *case.size, 3), dtype=np.uint8)


def calibration_images(case: Case, count: int = 4) -> list[np.ndarray]:
    """Random images: speed does not depend on calibration quality (accuracy does: ``tools/export.py``
    measures it on real images with ``--int8`` or ``--precision int8``)."""
    generator = np.random.default_rng(1)
    return [generator.integers(0, 256, (*case.size, 3), dtype=np.uint8) for _ in range(count)]


# ---------------------------------------------------------------------------------------------
# Builders


def _torch(model: nn.Module, case: Case, channels_last: bool = False, bf16: bool = False, compile: bool = False) -> Target:
    """``Predictor.from_model``'s PyTorch engine (eager, optionally channels-last, bf16 autocast or compiled)."""
    profiled = None if compile else model  # compiled kernels have no module scopes to attribute time to
    engine = Predictor.from_model(torch.compile(model) if compile else model, device=case.device,
                                  channels_last=channels_last).engine  # fmt: skip
    device_type = torch.device(case.device).type

    def call(batch: np.ndarray) -> torch.Tensor:
        with torch.autocast(device_type, dtype=torch.bfloat16) if bf16 else nullcontext():
            return engine.logits(batch)

    return Target(engine, call, images(case), case.device, case.threads, profiled, None, squeeze_excite_paths(model),
                  cuda_memory=device_type == "cuda")  # fmt: skip


def build_eager(model: nn.Module, case: Case) -> Target:
    return _torch(model, case)


def build_channels_last(model: nn.Module, case: Case) -> Target:
    return _torch(model, case, channels_last=True)


def build_bf16(model: nn.Module, case: Case) -> Target:
    return _torch(model, case, channels_last=True, bf16=True)


def build_compile(model: nn.Module, case: Case) -> Target:
    return _torch(model, case, channels_last=True, compile=True)


def build_compile_bf16(model: nn.Module, case: Case) -> Target:
    return _torch(model, case, channels_last=True, bf16=True, compile=True)


def _logits_graph(model: nn.Module) -> bytes:
    """The Predictor's ONNX segmenter graph with logits out (uint8 images in, dynamic batch and size)."""
    return segmenter_onnx_bytes(model, None, "logits")


def build_onnxruntime(model: nn.Module, case: Case) -> Target:
    graph = _logits_graph(model)
    session = onnx_session(graph, "the logits graph", case.device, case.threads)
    engine = OnnxEngine(session, lambda: session, case.device, case.threads)
    return Target(engine, engine.logits, images(case), case.device, case.threads, None, graph, squeeze_excite_paths(model))


def logits_model_engine(graph: bytes, device: str = "cpu", threads: int | None = None) -> OnnxEngine:
    """``OnnxEngine`` over an ONNX logits model (normalised float32 batch in: the files ``tools/export.py``
    writes); its ``graph_output`` is the model call alone."""
    return OnnxEngine(onnx_session(graph, "the logits model", device, threads), None, device, threads)


def build_onnxruntime_int8(model: nn.Module, case: Case) -> Target:
    """QDQ int8 of ``seglite.inference.quantize``: the ONNX logits file ``tools/export.py --int8`` writes
    (normalised float32 input: its timed call starts after the normalisation), calibrated on random images."""
    from seglite.inference.quantize import quantize_onnx

    with tempfile.TemporaryDirectory(prefix="seglite-int8-") as folder:
        fp32 = Path(folder) / "model.onnx"
        fp32.write_bytes(onnx_model_bytes(model, case.size, dynamic=False, batch_size=case.batch_size))
        graph = Path(quantize_onnx(fp32, Path(folder) / "model.int8.onnx", calibration_images(case))).read_bytes()
    engine = logits_model_engine(graph, case.device, case.threads)
    batch = np.stack([normalize(image) for image in images(case)])
    return Target(engine, engine.graph_output, batch, case.device, case.threads, None, graph, squeeze_excite_paths(model))


def _build_openvino(precision: str) -> Callable[[nn.Module, Case], Target]:
    def build(model: nn.Module, case: Case) -> Target:
        graph = _logits_graph(model)
        network = openvino.read_onnx(graph)
        if precision == "int8":  # its float layers at the Predictor's precision
            network = openvino.quantize(network, calibration_images(case))
            hint = openvino.float_precision()
        else:
            hint = precision
        engine = openvino.OpenVinoEngine(network, hint, case.threads, int8=precision == "int8")
        # the compiled model for the input's shape, its output buffer returned (no copy is timed)
        return Target(engine, engine.graph_output, images(case), "cpu", case.threads, None, graph, squeeze_excite_paths(model))

    return build


def _phone_target(engine: Any, model: nn.Module, case: Case) -> Target:
    """A phone engine: the file's fixed-size graph, one image at a time, its coarse logits upsampled as the model does."""
    return Target(engine, engine.logits, images(case), "cpu", case.threads, None, None, squeeze_excite_paths(model))


def build_executorch(model: nn.Module, case: Case, precision: str = "fp32") -> Target:
    """The ``.pte`` ``tools/export.py --format executorch`` writes, lowered to XNNPACK at the case's size."""
    entries = phone_metadata(None, case.size, coarse_stride(model), precision)
    calibration = calibration_images(case) if precision == "int8" else None
    data, _ = executorch.lower(model, case.size, precision, calibration, entries)
    return _phone_target(executorch.ExecuTorchEngine(data, case.threads), model, case)


def build_executorch_int8(model: nn.Module, case: Case) -> Target:
    """PT2E int8 (``XNNPACKQuantizer``), calibrated on random images."""
    return build_executorch(model, case, "int8")


def build_litert(model: nn.Module, case: Case) -> Target:
    data = litert.convert(model, case.size, phone_metadata(None, case.size, coarse_stride(model), "fp32"))
    return _phone_target(litert.LiteRtEngine(data, case.threads), model, case)


# ---------------------------------------------------------------------------------------------
# Availability: why a backend cannot run on a device (None: it can). The parent process asks, so
# the runtimes are looked up, not imported


def _needs_cuda(device: str) -> str | None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        return "no CUDA device visible to PyTorch"
    return None


def cpu_computes_bf16() -> bool:
    """True when this CPU has bf16 arithmetic (AMX or AVX512-BF16): OpenVINO's answer
    (``seglite.inference.openvino.cpu_computes_bf16``), the CPU's flags where OpenVINO is not installed."""
    if openvino.available():
        return openvino.cpu_computes_bf16()
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags().split()))


def bf16_unavailable(device: str, runtime: str = "PyTorch") -> str | None:
    """Why ``runtime`` cannot compute bf16 on ``device`` (``None``: it can): the benchmarks' one bf16 check."""
    if device.startswith("cuda"):
        return _needs_cuda(device) or (None if torch.cuda.is_bf16_supported() else "this GPU has no bf16")
    if not cpu_computes_bf16():
        return f"this CPU has no bf16 arithmetic (AMX or AVX512-BF16); {runtime} would emulate it slowly or run fp32"
    if runtime == "OpenVINO" and not openvino.cpu_has_bf16():
        return f"{openvino.PRECISION_ENVIRONMENT}=f32 runs OpenVINO in fp32"
    return None


def _compile_unavailable(device: str) -> str | None:
    if device.startswith("cuda"):
        if importlib.util.find_spec("triton") is None:
            return "TorchInductor needs triton on CUDA"
        return _needs_cuda(device)
    if not any(shutil.which(compiler) for compiler in ("c++", "g++", "clang++")):
        return "TorchInductor needs a C++ compiler on CPU (none on PATH)"
    return None


def _onnxruntime_unavailable(device: str) -> str | None:
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        return "onnx and onnxruntime are not installed (pip install 'seglite[deploy]')"
    if device.startswith("cuda"):
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "this onnxruntime has no CUDA provider (install onnxruntime-gpu)"
    return None


def _onnxruntime_int8_unavailable(device: str) -> str | None:
    if device.startswith("cuda"):
        return "int8 QDQ models run on the CPU provider only"
    return _onnxruntime_unavailable(device)


def _cpu_runtime_unavailable(cpu_only: str, modules: tuple[str, ...], missing: str) -> Callable[[str], str | None]:
    """The check of a runtime seglite runs on the CPU only: ``cpu_only`` on another device, ``missing``
    where one of ``modules`` is not installed (``find_spec``: the parent checks every backend and must
    not import their runtimes)."""

    def unavailable(device: str) -> str | None:
        if device != "cpu":
            return cpu_only
        if any(importlib.util.find_spec(module) is None for module in modules):
            return missing
        return None

    return unavailable


_openvino_unavailable = _cpu_runtime_unavailable(
    "seglite runs OpenVINO on the CPU only", ("openvino", "onnx"), "openvino is not installed (pip install 'seglite[openvino]')"
)


def _openvino_bf16_unavailable(device: str) -> str | None:
    return _openvino_unavailable(device) or bf16_unavailable(device, "OpenVINO")


def _openvino_int8_unavailable(device: str) -> str | None:
    unavailable = _openvino_unavailable(device)
    if unavailable is None and importlib.util.find_spec("nncf") is None:
        return "nncf is not installed (pip install 'seglite[openvino]')"
    return unavailable


_executorch_unavailable = _cpu_runtime_unavailable(
    "seglite runs ExecuTorch on the CPU only (XNNPACK)", ("executorch",),
    "executorch is not installed (pip install 'seglite[executorch]')",
)
_litert_unavailable = _cpu_runtime_unavailable(
    "seglite runs LiteRT on the CPU only (XNNPACK)", ("litert_torch", "ai_edge_litert"),
    "litert-torch and ai-edge-litert are not installed (pip install 'seglite[litert]')",
)


# ---------------------------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Backend:
    """A way to run a model. ``build(model, case)`` returns a :class:`Target`; ``unavailable(device)``
    says why it cannot run there (``None``: it can); ``profile(target, runs)`` gives its per-operator
    times (``benchmarks.profiles``). ``default``: measured when no ``--backends`` are given."""

    name: str
    summary: str
    build: Callable[[nn.Module, Case], Target]
    unavailable: Callable[[str], str | None]
    profile: str | None = None
    """The profiler of ``benchmarks.profiles.PROFILERS`` that reads this backend."""
    default: bool = True
    preload: tuple[str, ...] = ()
    """Modules the workers' fork server imports, so that their memory is in every worker's
    baseline rather than in this backend's peak."""


_ONNX_MODULES = ("onnx", "onnxruntime")
_OPENVINO_MODULES = ("onnx", "openvino")

BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend("eager", "PyTorch eager, fp32, NCHW (Predictor.from_model's engine)", build_eager, _needs_cuda, "torch"),
        Backend("channels-last", "PyTorch eager, fp32, channels-last (NHWC)", build_channels_last, _needs_cuda, "torch"),
        Backend("bf16", "PyTorch eager, channels-last, bf16 autocast", build_bf16, bf16_unavailable, "torch"),
        # opt-in: compiling takes about a minute per model and input shape on 2 CPU cores
        Backend("compile", "torch.compile (TorchInductor), fp32, channels-last", build_compile,
                _compile_unavailable, default=False),
        Backend("compile-bf16", "torch.compile (TorchInductor), channels-last, bf16 autocast", build_compile_bf16,
                lambda device: _compile_unavailable(device) or bf16_unavailable(device), default=False),
        Backend("onnxruntime", "ONNX Runtime fp32 (the Predictor's segmenter graph in OnnxEngine)", build_onnxruntime,
                _onnxruntime_unavailable, "onnxruntime", preload=_ONNX_MODULES),
        # opt-in: slower than fp32 on the CPUs measured so far (README), and calibration takes a while
        Backend("onnxruntime-int8", "ONNX Runtime int8 QDQ (seglite.inference.quantize)", build_onnxruntime_int8,
                _onnxruntime_int8_unavailable, "onnxruntime", default=False,
                preload=(*_ONNX_MODULES, "seglite.inference.quantize")),
        Backend("openvino", "OpenVINO fp32 (the Predictor's segmenter graph in OpenVinoEngine)",
                _build_openvino("fp32"), _openvino_unavailable, "openvino", preload=_OPENVINO_MODULES),
        Backend("openvino-bf16", "OpenVINO bf16 inference precision (CPUs with AMX or AVX512-BF16)",
                _build_openvino("bf16"), _openvino_bf16_unavailable, "openvino", preload=_OPENVINO_MODULES),
        Backend("openvino-int8", "OpenVINO int8 (NNCF, logit classifiers kept float: seglite.inference.openvino)",
                _build_openvino("int8"), _openvino_int8_unavailable, "openvino", preload=(*_OPENVINO_MODULES, "nncf")),
        # phones' runtimes on this CPU through XNNPACK, as on Android: a proxy, not phone figures (README,
        # "On a phone"). Opt-in: lowering or converting takes 20-60 s per model and size on 2 cores
        Backend("executorch", "ExecuTorch fp32 on XNNPACK (seglite.inference.executorch's engine)", build_executorch,
                _executorch_unavailable, default=False),
        Backend("executorch-int8", "ExecuTorch int8 (PT2E XNNPACKQuantizer) on XNNPACK", build_executorch_int8,
                _executorch_unavailable, default=False),
        Backend("litert", "LiteRT fp32, XNNPACK delegate (seglite.inference.litert's engine)", build_litert,
                _litert_unavailable, default=False),
    )
}  # fmt: skip
