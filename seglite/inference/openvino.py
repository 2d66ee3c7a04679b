"""OpenVINO: the CPU runtime of ``backend="openvino"`` (fp32, bf16 where the CPU has it, int8 from NNCF).

The graph OpenVINO runs is the ONNX export of :class:`~seglite.inference.graph.SegmenterGraph`
(uint8 images in, uint8 masks out), read into OpenVINO and compiled once for dynamic batch and
size. bf16 is OpenVINO's ``INFERENCE_PRECISION_HINT``: it runs in bf16 only on CPUs that have
bf16 arithmetic (AMX or AVX512-BF16), and OpenVINO then keeps precision-sensitive operations in
fp32 itself; elsewhere it silently runs fp32, so :class:`OpenVinoEngine` reports the precision it
got, not the one asked for. int8 is NNCF post-training quantisation, calibrated on images.

``SEGLITE_OPENVINO_PRECISION=f32`` in the environment makes a CPU that computes bf16 behave as
one that does not: every model is compiled with ``INFERENCE_PRECISION_HINT=f32``, ``"auto"``
resolves to fp32, and a bf16 request runs fp32 and says so. It lets such a machine run, and test,
what a CPU without bf16 runs. ``bf16`` (OpenVINO's default) can be named too, but bf16 arithmetic
cannot be emulated where the CPU lacks it: there OpenVINO still runs fp32.

Install with ``pip install seglite[openvino]``.
"""

from __future__ import annotations

import errno
import functools
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from seglite.errors import ModelLoadError
from seglite.inference.engine import default_num_threads, error_reason, threads_text
from seglite.inference.graph import CoarseMasks
from seglite.inference.metadata import decode_metadata
from seglite.inference.options import INT8_SCOPES, Int8Scope

if TYPE_CHECKING:
    import openvino

Precision = Literal["fp32", "bf16", "int8"]  # what a compiled model runs ("auto" is resolved before)
PRECISION_ENVIRONMENT = "SEGLITE_OPENVINO_PRECISION"
"""Environment variable: ``f32`` runs OpenVINO in fp32 even where the CPU computes bf16 (module docstring)."""
STATIC_SHAPES = 4
"""Input shapes an :class:`OpenVinoEngine` keeps a compiled model for (see its docstring)."""
RT_INFO_KEY = "seglite"
"""``rt_info`` section of an OpenVINO IR written by seglite: the metadata entries, JSON-encoded."""


def available() -> bool:
    """True when the ``openvino`` package can be imported."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def core() -> openvino.Core:
    """The process's one OpenVINO ``Core`` (each ``Core`` loads the device plugins again)."""
    import openvino as ov

    return ov.Core()


def forced_precision() -> Literal["f32", "bf16"] | None:
    """``$SEGLITE_OPENVINO_PRECISION`` (``"f32"`` or ``"bf16"``), or None when it is unset or empty."""
    value = os.environ.get(PRECISION_ENVIRONMENT, "")
    if value == "":
        return None
    if value not in ("f32", "bf16"):
        raise ValueError(f"{PRECISION_ENVIRONMENT} must be 'f32' or 'bf16' (OpenVINO's INFERENCE_PRECISION_HINT), got {value!r}")
    return value


def cpu_computes_bf16() -> bool:
    """True when this CPU has bf16 arithmetic that OpenVINO uses (AMX or AVX512-BF16), whatever
    ``$SEGLITE_OPENVINO_PRECISION`` says."""
    return "BF16" in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def cpu_has_bf16() -> bool:
    """True when OpenVINO runs bf16 here: the CPU computes it (:func:`cpu_computes_bf16`) and
    ``$SEGLITE_OPENVINO_PRECISION`` is not ``f32``."""
    return forced_precision() != "f32" and cpu_computes_bf16()


def float_precision() -> Literal["fp32", "bf16"]:
    """The precision float layers run at when none is asked (``"auto"``): bf16 where OpenVINO runs it here.

    Also that of the layers an int8 model leaves in float: on a 2-core Zen 4 the int8 LR-ASPP's
    graph took 36.1 ms with them in fp32 and 24.1 ms in bf16 (its depthwise convolutions stay float
    in OpenVINO 2026.4 whatever NNCF does, with reorders around them).
    """
    return "bf16" if cpu_has_bf16() else "fp32"


def read_onnx(data: bytes) -> openvino.Model:
    """An OpenVINO model of serialised ONNX bytes."""
    return core().read_model(data)


def set_metadata(model: openvino.Model, metadata: dict[str, str]) -> None:
    """Store seglite's metadata entries (JSON strings) in the model's ``rt_info``."""
    for key, value in metadata.items():
        model.set_rt_info(value, [RT_INFO_KEY, key])


def get_metadata(model: openvino.Model) -> dict[str, Any]:
    """seglite's metadata of an OpenVINO model (empty when it has none), decoded."""
    if not model.has_rt_info([RT_INFO_KEY]):
        return {}
    keys = model.get_rt_info([RT_INFO_KEY]).astype(dict)
    return decode_metadata({str(key): model.get_rt_info([RT_INFO_KEY, key]).astype(str) for key in keys})


def read_ir(path: str | Path) -> openvino.Model:
    """An OpenVINO IR (``.xml`` with its ``.bin`` beside it); ``ModelLoadError`` naming the file otherwise."""
    weights = Path(path).with_suffix(".bin")
    if not weights.is_file():
        reason = "is a folder" if weights.is_dir() else "does not exist"
        raise ModelLoadError(f"cannot read OpenVINO model {path}: its weights file {weights} {reason}")
    try:
        return core().read_model(str(path))
    except Exception as error:  # OpenVINO raises RuntimeError subclasses of its own
        raise ModelLoadError(f"cannot read OpenVINO model {path}: {error_reason(error)}") from error


FULL_DISK_BYTES = 1 << 20
"""Free space below which a failed OpenVINO write is put down to a full disk (its writer does not say why)."""


def write_ir(model: openvino.Model, xml: Path, bin_path: Path) -> None:
    """Save ``model`` as ``xml`` + ``bin_path`` (the caller moves them into place).

    A failed write is an ``OSError`` naming ``xml``: OpenVINO's writer raises a bare
    ``RuntimeError`` (``basic_ios::clear: iostream error`` on a full disk), which no caller
    would take for a write error.
    """
    import openvino as ov

    try:
        ov.save_model(model, str(xml), compress_to_fp16=False)
    except OSError:
        raise
    except Exception as error:  # OpenVINO's own RuntimeError subclasses
        raise _write_failure(xml, error) from error
    written_bin = xml.with_suffix(".bin")
    if written_bin != bin_path:
        written_bin.replace(bin_path)


def _write_failure(path: Path, error: BaseException) -> OSError:
    """The ``OSError`` for OpenVINO's failure to write ``path``: ``ENOSPC`` when its disk is (nearly) full,
    checked while the partial file still takes its space, else ``EIO`` with OpenVINO's reason."""
    try:
        status = os.statvfs(path.parent)
        full = status.f_bavail * status.f_frsize < FULL_DISK_BYTES
    except OSError:
        full = False
    if full:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return OSError(errno.EIO, f"OpenVINO could not write it: {error_reason(error)}", str(path))


class OpenVinoEngine:
    """Runs a segmenter model on the CPU with OpenVINO: uint8 images in, masks out.

    Args:
        model: the OpenVINO model of a ``SegmenterGraph`` with ``output="masks"``, or
            ``"coarse"`` with ``coarse`` to finish it.
        precision: ``"fp32"`` or ``"bf16"`` (a hint; see the module docstring). An int8 model
            (quantised by :func:`quantize`) runs its quantised layers in int8 either way.
        num_threads: inference threads (default :func:`default_num_threads`).
        logits_model: makes the ``output="logits"`` model, on the first :meth:`logits` call.
        note: appended to :attr:`description` (why this backend was chosen, ...).
        int8: ``model`` is quantised (reported in :attr:`description`).
        coarse: turns the coarse graph's output into masks.

    Images run on a model compiled for their exact shape (batch, height, width), kept for the
    :data:`STATIC_SHAPES` most recent shapes: OpenVINO then skips its per-call shape inference and
    plans memory once, and one shape always runs the same kernels, so the same image always gets
    the same mask (a model compiled for any shape picks other kernels: its bf16 logits differed by
    up to 0.05 from the static model's). Measured on a 2-core Zen 4 with the demo LR-ASPP
    MobileNetV3-Large in bf16: 18.3 ms per 512x1024 call against 20.6 for the dynamic model; a new
    shape costs a compilation of 0.14-0.26 s (256x512 to 3000x4000), where the dynamic model's
    first call at a new shape also cost 0.01-1.4 s more than its next.
    """

    def __init__(
        self,
        model: openvino.Model,
        precision: Literal["fp32", "bf16"] = "fp32",
        num_threads: int | None = None,
        logits_model: Callable[[], openvino.Model] | None = None,
        note: str = "",
        int8: bool = False,
        coarse: CoarseMasks | None = None,
    ) -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16' for a compiled model, got {precision!r}")
        forced_f32 = forced_precision() == "f32"
        self.core = core()
        self.num_threads = num_threads or default_num_threads()
        self.coarse = coarse
        self.config = {
            "INFERENCE_NUM_THREADS": self.num_threads,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" and not forced_f32 else "f32",
        }
        self._source_model = model
        self._static: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._logits_model = logits_model
        self._logits = None
        # compiled once for any shape: a model the CPU plugin cannot take fails here, and the
        # precision it runs is read off it
        got = str(self.core.compile_model(model, "CPU", self.config).get_property("INFERENCE_PRECISION_HINT"))
        self.precision = "int8" if int8 else ("bf16" if "bf16" in got or "bfloat16" in got else "fp32")
        if precision == "bf16" and not int8 and self.precision != "bf16":
            reason = f"{PRECISION_ENVIRONMENT}=f32" if forced_f32 else "this CPU has no bf16 arithmetic (AMX or AVX512-BF16)"
            note = f"{note}; bf16 asked, but {reason}"
        self.description = f"openvino {self.precision}, {threads_text(self.num_threads)}{note}"

    def _compile(self, model: openvino.Model):
        return self.core.compile_model(model, "CPU", self.config).create_infer_request()

    def graph_output(self, images: np.ndarray) -> np.ndarray:
        """What the compiled graph returns for ``images``: masks, or the coarse logits ``coarse`` finishes.

        A view of the request's output buffer, valid until the next call."""
        request = self._request(images.shape)
        request.infer({0: images})
        return request.get_output_tensor(0).data

    def _request(self, shape: tuple[int, ...]) -> Any:
        """The infer request of the model compiled for ``shape`` (compiled now when it is not kept)."""
        request = self._static.get(shape)
        if request is not None:
            self._static.move_to_end(shape)
            return request
        self._static[shape] = request = self._compile(self._reshaped(shape))
        if len(self._static) > STATIC_SHAPES:
            self._static.popitem(last=False)
        return request

    def _reshaped(self, shape: tuple[int, ...]) -> openvino.Model:
        model = self._source_model.clone()
        model.reshape({0: list(shape)})
        return model

    def masks(self, images: np.ndarray) -> np.ndarray:
        output = self.graph_output(images)
        return output.copy() if self.coarse is None else self.coarse(output, images.shape[1:3])

    def logits(self, images: np.ndarray) -> torch.Tensor:
        if self._logits is None:
            if self._logits_model is None:
                raise ModelLoadError("this OpenVINO model returns masks only; it has no logits output")
            self._logits = self._compile(self._logits_model())
        self._logits.infer({0: images})
        return torch.from_numpy(self._logits.get_output_tensor(0).data.copy())

    def profile(self, images: np.ndarray, rounds: int = 5) -> list[dict[str, Any]]:
        """Per-layer times of the masks model (OpenVINO's performance counters), slowest first.

        Each entry: ``name``, ``type`` (operation), ``exec_type`` (kernel, e.g. ``jit_avx2_I8``),
        ``milliseconds`` (median over ``rounds``).
        """
        import openvino as ov

        compiled = self.core.compile_model(self._reshaped(images.shape), "CPU", {**self.config, "PERF_COUNT": True})
        request = compiled.create_infer_request()
        samples: dict[str, list[float]] = {}
        info: dict[str, tuple[str, str]] = {}
        for _ in range(rounds + 1):
            request.infer({0: images})
            for entry in request.get_profiling_info():
                if entry.status != ov.ProfilingInfo.Status.EXECUTED:
                    continue
                samples.setdefault(entry.node_name, []).append(entry.real_time.total_seconds() * 1000)
                info[entry.node_name] = (entry.node_type, entry.exec_type)
        rows = [
            # the first round is warm-up; a layer OpenVINO ran in that round only keeps its one sample
            {"name": name, "type": info[name][0], "exec_type": info[name][1], "milliseconds": float(np.median(times[1:] or times))}
            for name, times in samples.items()
        ]
        return sorted(rows, key=lambda row: -row["milliseconds"])


def ignored_scope(model: openvino.Model, scope: Int8Scope):
    """NNCF's ``IgnoredScope`` for a per-layer choice of what stays in float.

    The 1x1 convolutions that produce class logits (``classifier`` in their names: LR-ASPP's
    ``low_classifier`` and ``high_classifier``, the DeepLab heads' ``classifier``) always stay
    float: they are a sliver of the work, and quantising them moves logits straight into the
    argmax - on a demo-trained LR-ASPP MobileNetV3-Small, int8 of everything else cost 0.3 mIoU,
    int8 of the low-level classifier too cost 12 (measured; tests/test_deploy_accuracy.py).

    ``"all"``: every other convolution quantised. ``"no_depthwise"``: depthwise (grouped)
    convolutions stay float too. ``"backbone"``: only the backbone is quantised; the head
    (names containing ``/head/``) and the post-processing stay float.
    """
    import nncf

    if scope not in INT8_SCOPES:
        raise ValueError(f"int8 scope must be one of {INT8_SCOPES}, got {scope!r}")
    kept = "/head/" if scope == "backbone" else "classifier"
    names = [op.get_friendly_name() for op in model.get_ordered_ops() if kept in op.get_friendly_name()]
    types = ["GroupConvolution"] if scope == "no_depthwise" else []
    return nncf.IgnoredScope(names=names, types=types, validate=False)


def quantize(
    model: openvino.Model,
    calibration_images: Sequence[np.ndarray],
    scope: Int8Scope = "all",
) -> openvino.Model:
    """An int8 copy of a segmenter model by NNCF post-training quantisation.

    Args:
        model: the OpenVINO segmenter (uint8 images in).
        calibration_images: ``(H, W, 3)`` uint8 RGB images, e.g. a few dozen training images.
        scope: what stays in float (see :func:`ignored_scope`).
    """
    import logging

    import nncf

    if not calibration_images:
        raise ValueError("calibration_images is empty; give some training images")
    dataset = nncf.Dataset([np.ascontiguousarray(image)[None] for image in calibration_images])
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.ERROR)  # NNCF logs one line per layer it leaves alone
    try:
        return nncf.quantize(
            model,
            dataset,
            subset_size=len(calibration_images),
            ignored_scope=ignored_scope(model, scope),
            model_type=None,
        )
    finally:
        nncf_logger.setLevel(level)
