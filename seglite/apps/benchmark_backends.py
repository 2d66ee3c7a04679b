"""The backends ``tools/benchmark.py`` measures: one table entry each, with its runner and its profiler.

A backend turns an eval-mode ``nn.Module`` into a runner (normalised ``(N, 3, H, W)`` float32 batch
in, logits out) and may profile it per operator. Adding one (TensorRT, ...) is one entry
of ``BACKENDS``: a ``build`` function, an ``unavailable`` check and optionally a ``profile``
function; the benchmark, its tables, CSV, JSON and plot pick it up by name.

Everything here runs inside a benchmark worker process (see ``benchmark_workers``), except
``Backend.unavailable``, which the parent calls to choose what to run.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seglite.apps.benchmark_profiles import OperatorProfile, profile_onnxruntime, profile_openvino, profile_torch
from seglite.models.complexity import squeeze_excite_paths

REFERENCE = "torchvision-lraspp"
"""Name of the reference model: torchvision's LR-ASPP MobileNetV3-Large with the paper's settings."""


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


class TorchvisionReference(nn.Module):
    """torchvision's LR-ASPP MobileNetV3-Large as the MobileNetV3 paper configures it for Cityscapes:
    dilated (output stride 16) and reduced tail. The public builder ignores ``reduced_tail``,
    hence the private one. Returns the logits tensor rather than torchvision's dict."""

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v3_large
        from torchvision.models.segmentation.lraspp import _lraspp_mobilenetv3

        backbone = mobilenet_v3_large(weights=None, dilated=True, reduced_tail=True)
        self.model = _lraspp_mobilenetv3(backbone, num_classes=num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


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


# ---------------------------------------------------------------------------------------------
# Runners


class TorchModelRunner:
    """An eager (optionally channels-last, bf16-autocast or compiled) PyTorch model under inference mode."""

    def __init__(
        self,
        model: nn.Module,
        device: str,
        channels_last: bool = False,
        autocast_dtype: torch.dtype | None = None,
        compile: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.eval().to(self.device, memory_format=self.memory_format)
        self.autocast_dtype = autocast_dtype
        self.forward = torch.compile(self.model) if compile else self.model
        self.profile_model = None if compile else self.model  # compiled kernels have no module scopes

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """The input as the runner takes it: on its device (the timed call starts from there)."""
        return batch.to(self.device)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        autocast = (
            torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype else nullcontext()
        )
        with torch.inference_mode(), autocast:
            return self.forward(batch.contiguous(memory_format=self.memory_format))


class OnnxModelRunner:
    """The model exported by ``seglite.inference.export`` and run by ``seglite.inference``'s ``OnnxRunner``."""

    def __init__(self, model_bytes: bytes, device: str, squeeze_excite: set[str], threads: int) -> None:
        from seglite.inference.predictor import OnnxRunner

        self.model_bytes = model_bytes
        self.device = device
        self.squeeze_excite = squeeze_excite
        self.threads = threads
        self.runner = OnnxRunner(model_bytes, device=device, num_threads=threads)

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        return batch  # ONNX Runtime reads host memory

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.runner(batch)


class OpenVinoModelRunner:
    """The ONNX export of ``seglite.inference.export``, read and compiled by OpenVINO with the settings
    of ``seglite.inference.openvino.OpenVinoEngine`` (latency hint, one stream, ``threads``).

    ``precision``: ``"fp32"``, ``"bf16"`` (OpenVINO's inference precision hint) or ``"int8"`` (NNCF
    with ``seglite.inference.openvino.quantize``'s per-layer choice, calibrated on ``calibration``).
    The returned logits are OpenVINO's output buffer, valid until the next call (no copy is timed).
    """

    def __init__(
        self,
        model_bytes: bytes,
        precision: str,
        squeeze_excite: set[str],
        threads: int,
        calibration: list[np.ndarray] | None = None,
        batch_size: int = 1,
    ) -> None:
        from seglite.inference import openvino

        model = openvino.read_onnx(model_bytes)
        if precision == "int8":
            model = openvino.quantize(model, calibration or [])  # calibrated one image at a time
        shape = list(model.input(0).get_partial_shape().to_shape())
        if shape[0] != batch_size:  # the int8 model is calibrated at batch 1, then reshaped
            model.reshape({0: [batch_size, *shape[1:]]})
        self.model = model
        self.squeeze_excite = squeeze_excite
        self.config = {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            # int8 leaves some layers in float: bf16 where the CPU computes it, as the Predictor runs them
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" or (precision == "int8" and openvino.cpu_has_bf16()) else "f32",
        }
        self.request = openvino.core().compile_model(model, "CPU", self.config).create_infer_request()

    def prepare(self, batch: torch.Tensor) -> np.ndarray:
        return batch.numpy()  # OpenVINO reads host memory

    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        self.request.infer({0: batch})
        return torch.from_numpy(self.request.get_output_tensor(0).data)

    def profile(self, batch: np.ndarray, runs: int) -> OperatorProfile:
        from seglite.inference import openvino

        compiled = openvino.core().compile_model(self.model, "CPU", {**self.config, "PERF_COUNT": "YES"})
        return profile_openvino(compiled, {0: batch}, runs, self.squeeze_excite)


class ExecuTorchModelRunner:
    """The model lowered to XNNPACK by ``seglite.inference.executorch.lower_module`` at the case's fixed
    input, run by ExecuTorch's Python runtime (``case.threads``: set in the worker before its one program loads).

    The same graph as the ONNX Runtime backend (normalised float32 in, logits at input size out),
    not the phone file's (uint8 in, coarse logits out: ``tools/benchmark_predictor.py --phone-model``).
    """

    def __init__(self, model: nn.Module, case: Case, precision: str) -> None:
        from seglite.inference import executorch

        example = torch.zeros(case.batch_size, 3, *case.size)
        samples = _random_calibration(case) if precision == "int8" else []
        calibration = [torch.from_numpy(sample).repeat(case.batch_size, 1, 1, 1) for sample in samples]
        data, self.delegation = executorch.lower_module(model.eval(), example, precision, calibration)
        self.method, self._program, self.threads = executorch.load_method(data, case.threads)

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.contiguous()  # ExecuTorch reads host memory

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.method.execute([batch])[0]


class LiteRtModelRunner:
    """The model converted by ``seglite.inference.litert.convert_module`` (fp32) at the case's fixed
    input, run by LiteRT's interpreter with its default XNNPACK delegate and ``case.threads``."""

    def __init__(self, model: nn.Module, case: Case) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from seglite.inference import litert

        data = litert.convert_module(model.eval(), torch.zeros(case.batch_size, 3, *case.size))
        self.interpreter = Interpreter(model_content=data, num_threads=case.threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]

    def prepare(self, batch: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(batch.numpy())

    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        self.interpreter.set_tensor(self.input, batch)
        self.interpreter.invoke()
        return torch.from_numpy(self.interpreter.get_tensor(self.output))


def _onnx_bytes(model: nn.Module, case: Case) -> bytes:
    from seglite.inference.export import onnx_model_bytes

    return onnx_model_bytes(model, case.size, dynamic=False, batch_size=case.batch_size)


def build_eager(model: nn.Module, case: Case) -> TorchModelRunner:
    return TorchModelRunner(model, case.device)


def build_channels_last(model: nn.Module, case: Case) -> TorchModelRunner:
    return TorchModelRunner(model, case.device, channels_last=True)


def build_bf16(model: nn.Module, case: Case) -> TorchModelRunner:
    return TorchModelRunner(model, case.device, channels_last=True, autocast_dtype=torch.bfloat16)


def build_compile(model: nn.Module, case: Case) -> TorchModelRunner:
    return TorchModelRunner(model, case.device, channels_last=True, compile=True)


def build_compile_bf16(model: nn.Module, case: Case) -> TorchModelRunner:
    return TorchModelRunner(model, case.device, channels_last=True, autocast_dtype=torch.bfloat16, compile=True)


def build_onnxruntime(model: nn.Module, case: Case) -> OnnxModelRunner:
    return OnnxModelRunner(_onnx_bytes(model, case), case.device, squeeze_excite_paths(model), case.threads)


def build_onnxruntime_int8(model: nn.Module, case: Case) -> OnnxModelRunner:
    """QDQ int8 (``seglite.inference.quantize``), calibrated on random images: speed does not
    depend on calibration quality (accuracy does: ``tools/export.py --int8`` measures it)."""
    from seglite.inference.quantize import quantize_onnx

    generator = np.random.default_rng(0)
    images = [generator.integers(0, 256, (*case.size, 3), dtype=np.uint8) for _ in range(4)]
    with tempfile.TemporaryDirectory(prefix="seglite-int8-") as folder:
        fp32 = Path(folder) / "model.onnx"
        fp32.write_bytes(_onnx_bytes(model, case))
        int8 = quantize_onnx(fp32, Path(folder) / "model.int8.onnx", images)
        data = Path(int8).read_bytes()
    return OnnxModelRunner(data, case.device, squeeze_excite_paths(model), case.threads)


def _random_calibration(case: Case, count: int = 4) -> list[np.ndarray]:
    """Normalised random inputs: speed does not depend on calibration quality (accuracy does:
    ``tools/export.py --format openvino --precision int8`` measures it on real images)."""
    generator = np.random.default_rng(0)
    return [generator.standard_normal((3, *case.size)).astype(np.float32) for _ in range(count)]


def _build_openvino(precision: str) -> Callable[[nn.Module, Case], OpenVinoModelRunner]:
    def build(model: nn.Module, case: Case) -> OpenVinoModelRunner:
        if precision == "int8":  # NNCF feeds calibration samples one by one: quantise the batch-1 graph
            from seglite.inference.export import onnx_model_bytes

            graph = onnx_model_bytes(model, case.size, dynamic=False, batch_size=1)
            return OpenVinoModelRunner(graph, precision, squeeze_excite_paths(model), case.threads,
                                       _random_calibration(case), case.batch_size)  # fmt: skip
        return OpenVinoModelRunner(_onnx_bytes(model, case), precision, squeeze_excite_paths(model), case.threads,
                                   batch_size=case.batch_size)  # fmt: skip

    return build


def build_executorch(model: nn.Module, case: Case) -> ExecuTorchModelRunner:
    return ExecuTorchModelRunner(model, case, "fp32")


def build_executorch_int8(model: nn.Module, case: Case) -> ExecuTorchModelRunner:
    """PT2E int8 calibrated on random inputs: speed does not depend on calibration quality (accuracy
    does: ``tools/export.py --format executorch --precision int8`` measures it on real images)."""
    return ExecuTorchModelRunner(model, case, "int8")


def build_litert(model: nn.Module, case: Case) -> LiteRtModelRunner:
    return LiteRtModelRunner(model, case)


def _profile_openvino(runner: OpenVinoModelRunner, batch: np.ndarray, runs: int) -> OperatorProfile:
    return runner.profile(batch, runs)


# ---------------------------------------------------------------------------------------------
# Availability: why a backend cannot run on a device (None: it can)


def _needs_cuda(device: str) -> str | None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        return "no CUDA device visible to PyTorch"
    return None


def _torch_unavailable(device: str) -> str | None:
    return _needs_cuda(device)


def _bf16_unavailable(device: str) -> str | None:
    if device.startswith("cuda"):
        return _needs_cuda(device) or (None if torch.cuda.is_bf16_supported() else "this GPU has no bf16")
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "this CPU has no native bf16 (AVX-512 BF16 or AMX); PyTorch would emulate it slowly"
    return None


def _compile_unavailable(device: str) -> str | None:
    if device.startswith("cuda"):
        if importlib.util.find_spec("triton") is None:
            return "TorchInductor needs triton on CUDA"
        return _needs_cuda(device)
    if not any(shutil.which(compiler) for compiler in ("c++", "g++", "clang++")):
        return "TorchInductor needs a C++ compiler on CPU (none on PATH)"
    return None


def _compile_bf16_unavailable(device: str) -> str | None:
    return _compile_unavailable(device) or _bf16_unavailable(device)


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


def _openvino_unavailable(device: str) -> str | None:
    if device != "cpu":
        return "seglite runs OpenVINO on the CPU only"
    if importlib.util.find_spec("openvino") is None or importlib.util.find_spec("onnx") is None:
        return "openvino is not installed (pip install 'seglite[openvino]')"
    return None


def _openvino_bf16_unavailable(device: str) -> str | None:
    unavailable = _openvino_unavailable(device)
    if unavailable is None:
        from seglite.inference import openvino

        if not openvino.cpu_has_bf16():
            if openvino.cpu_computes_bf16():
                return f"{openvino.PRECISION_ENVIRONMENT}=f32 runs OpenVINO in fp32"
            return "this CPU has no bf16 arithmetic (AMX or AVX512-BF16); OpenVINO would run fp32"
    return unavailable


def _openvino_int8_unavailable(device: str) -> str | None:
    unavailable = _openvino_unavailable(device)
    if unavailable is None and importlib.util.find_spec("nncf") is None:
        return "nncf is not installed (pip install 'seglite[openvino]')"
    return unavailable


def _executorch_unavailable(device: str) -> str | None:
    if device != "cpu":
        return "seglite runs ExecuTorch on the CPU only (XNNPACK)"
    if importlib.util.find_spec("executorch") is None:
        return "executorch is not installed (pip install 'seglite[executorch]')"
    return None


def _litert_unavailable(device: str) -> str | None:
    if device != "cpu":
        return "seglite runs LiteRT on the CPU only (XNNPACK)"
    if importlib.util.find_spec("litert_torch") is None or importlib.util.find_spec("ai_edge_litert") is None:
        return "litert-torch and ai-edge-litert are not installed (pip install 'seglite[litert]')"
    return None


# ---------------------------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Backend:
    """A way to run a model. ``build(model, case)`` returns a runner (``runner(batch)`` -> logits,
    ``runner.prepare(batch)`` -> the input as the timed call receives it); ``unavailable(device)``
    says why it cannot run there (``None``: it can); ``profile(runner, batch, runs)`` gives its
    per-operator times. ``default``: measured when no ``--backends`` are given."""

    name: str
    summary: str
    build: Callable[[nn.Module, Case], Any]
    unavailable: Callable[[str], str | None]
    profile: Callable[[Any, torch.Tensor, int], OperatorProfile] | None = None
    default: bool = True
    preload: tuple[str, ...] = ()
    """Modules the workers' fork server imports, so that their memory is in every worker's
    baseline rather than in this backend's peak."""


_ONNX_MODULES = ("onnx", "onnxruntime", "seglite.inference.export", "seglite.inference.predictor")
_OPENVINO_MODULES = ("onnx", "openvino", "seglite.inference.export", "seglite.inference.openvino")

BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend("eager", "PyTorch eager, fp32, NCHW", build_eager, _torch_unavailable, profile_torch),
        Backend("channels-last", "PyTorch eager, fp32, channels-last (NHWC)", build_channels_last,
                _torch_unavailable, profile_torch),
        Backend("bf16", "PyTorch eager, channels-last, bf16 autocast", build_bf16, _bf16_unavailable, profile_torch),
        # opt-in: compiling takes about a minute per model and input shape on 2 CPU cores
        Backend("compile", "torch.compile (TorchInductor), fp32, channels-last", build_compile,
                _compile_unavailable, default=False),
        Backend("compile-bf16", "torch.compile (TorchInductor), channels-last, bf16 autocast", build_compile_bf16,
                _compile_bf16_unavailable, default=False),
        Backend("onnxruntime", "ONNX Runtime fp32 (seglite.inference export and OnnxRunner)", build_onnxruntime,
                _onnxruntime_unavailable, profile_onnxruntime, preload=_ONNX_MODULES),
        # opt-in: slower than fp32 on the CPUs measured so far (README), and calibration takes a while
        Backend("onnxruntime-int8", "ONNX Runtime int8 QDQ (seglite.inference.quantize)", build_onnxruntime_int8,
                _onnxruntime_int8_unavailable, profile_onnxruntime, default=False,
                preload=(*_ONNX_MODULES, "seglite.inference.quantize")),
        Backend("openvino", "OpenVINO fp32 (the ONNX export, compiled as seglite.inference.openvino does)",
                _build_openvino("fp32"), _openvino_unavailable, _profile_openvino, preload=_OPENVINO_MODULES),
        Backend("openvino-bf16", "OpenVINO bf16 inference precision (CPUs with AMX or AVX512-BF16)",
                _build_openvino("bf16"), _openvino_bf16_unavailable, _profile_openvino, preload=_OPENVINO_MODULES),
        Backend("openvino-int8", "OpenVINO int8 (NNCF, logit classifiers kept float: seglite.inference.openvino)",
                _build_openvino("int8"), _openvino_int8_unavailable, _profile_openvino,
                preload=(*_OPENVINO_MODULES, "nncf")),
        # phones' runtimes on this CPU through XNNPACK, as on Android: a proxy, not phone figures (README,
        # "On a phone"). Opt-in: lowering or converting takes 20-60 s per model and size on 2 cores
        Backend("executorch", "ExecuTorch fp32 on XNNPACK (seglite.inference.executorch)", build_executorch,
                _executorch_unavailable, default=False),
        Backend("executorch-int8", "ExecuTorch int8 (PT2E XNNPACKQuantizer) on XNNPACK", build_executorch_int8,
                _executorch_unavailable, default=False),
        Backend("litert", "LiteRT fp32, XNNPACK delegate (seglite.inference.litert)", build_litert,
                _litert_unavailable, default=False),
    )
}  # fmt: skip
