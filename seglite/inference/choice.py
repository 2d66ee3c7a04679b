"""``backend="auto"`` on a CPU: the eligible backends timed on the model, once per machine and model.

Which runtime is fastest depends on the CPU and the model, not on a fixed order: on a 2-core
AMD EPYC with AVX2 only, ONNX Runtime fp32 beat OpenVINO fp32 on LR-ASPP MobileNetV3-Large;
on a Zen 4 with AVX512-BF16, OpenVINO bf16 runs it in half ONNX Runtime's time. So the first
time a model is loaded with ``backend="auto"`` on a machine, every eligible backend segments
one synthetic image a few times (alternating, a second or two in all) and the fastest one is
taken. The choice is kept with its figures in a small JSON file in the conversion cache, keyed
by the CPU, the thread count, the runtimes' versions, the checkpoint and the size, so later
loads take it without measuring again. Delete the file (or the cache) to measure again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import seglite
from seglite.files import write_bytes
from seglite.inference.metadata import Size

MEASURED_SIZE: Size = (512, 1024)
"""Images are timed at this size when the predictor runs each image at its own size."""
MIN_ROUNDS = 3
MAX_ROUNDS = 7
BUDGET_SECONDS = 2.0


@dataclass(frozen=True)
class BackendChoice:
    """What ``backend="auto"`` took: ``label`` (e.g. ``"openvino bf16"``) and every candidate's median ms."""

    label: str
    milliseconds: dict[str, float]
    size: tuple[int, int]
    cpu: str

    @property
    def note(self) -> str:
        """``" (auto: measured 19.8 ms; onnxruntime fp32 41.2 ms, at 512x1024)"``: for descriptions."""
        others = "; ".join(f"{label} {ms:.1f} ms" for label, ms in self.milliseconds.items() if label != self.label)
        height, width = self.size
        return f" (auto: measured {self.milliseconds[self.label]:.1f} ms; {others}, at {height}x{width})"


def cpu_name() -> str:
    """The CPU's model name (Linux: ``/proc/cpuinfo``), else what ``platform`` knows."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> str:
    """The CPU's feature flags (Linux: ``/proc/cpuinfo``; empty elsewhere): they decide every runtime's kernels."""
    return _cpuinfo("flags")


def _cpuinfo(field: str) -> str:
    """The first ``field`` of ``/proc/cpuinfo`` (``"flags"``: the features that decide every runtime's
    kernels); empty where there is no such file."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def choice_key(checkpoint_sha256: str, size: Size | None, precision: str, threads: int, versions: Mapping[str, str]) -> str:
    """The cache key of a choice: machine (CPU name and flags, threads), runtimes, model and settings."""
    parts = (cpu_name(), cpu_flags(), platform.machine(), threads, sorted(versions.items()), checkpoint_sha256, size, precision)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]


def read_choice(path: Path | None, labels: set[str]) -> BackendChoice | None:
    """The choice stored at ``path`` when it is readable and names exactly ``labels``; else None."""
    if path is None or not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
        choice = BackendChoice(stored["label"], {str(k): float(v) for k, v in stored["milliseconds"].items()},
                               tuple(stored["size"]), str(stored["cpu"]))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None  # damaged or from another version: measured again, and replaced
    return choice if set(choice.milliseconds) == labels and choice.label in labels else None


def store_choice(path: Path | None, choice: BackendChoice) -> None:
    """Keep ``choice`` at ``path`` (atomically); a cache that cannot be written is skipped."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, json.dumps(asdict(choice), indent=1).encode())
    except Exception:  # OSError and seglite's write errors: a cache is an optimisation
        pass


def timing_image(size: Size) -> np.ndarray:
    """A fixed street-like RGB image: smooth random regions, so the masks have boundaries as a scene does."""
    import cv2

    coarse = np.random.default_rng(0).integers(0, 256, size=(6, 12, 3), dtype=np.uint8)
    return np.ascontiguousarray(cv2.resize(coarse, (size[1], size[0]), interpolation=cv2.INTER_CUBIC))


def measure(engines: Mapping[str, Any], size: Size) -> dict[str, float]:
    """Median ms of ``engines[label].masks`` on one image, the engines alternating: a warm-up call each,
    then rounds until :data:`BUDGET_SECONDS` have passed (:data:`MIN_ROUNDS` to :data:`MAX_ROUNDS`)."""
    batch = timing_image(size)[None]
    for engine in engines.values():
        engine.masks(batch)
    times: dict[str, list[float]] = {label: [] for label in engines}
    started = time.perf_counter()
    for round_index in range(MAX_ROUNDS):
        for label, engine in engines.items():
            start = time.perf_counter()
            engine.masks(batch)
            times[label].append(time.perf_counter() - start)
        if round_index + 1 >= MIN_ROUNDS and time.perf_counter() - started > BUDGET_SECONDS:
            break
    return {label: 1000 * statistics.median(values) for label, values in times.items()}


def choose(
    builders: Mapping[str, Callable[[], Any]],
    size: Size | None,
    cache_file: Path | None,
) -> tuple[BackendChoice, Any | None]:
    """``(choice, its engine)``: the stored choice (engine None: the caller builds it) or a new measurement.

    Args:
        builders: label (``"openvino bf16"``, ``"onnxruntime fp32"``) -> makes that backend's engine.
        size: the predictor's fixed size, or None (timed at :data:`MEASURED_SIZE`).
        cache_file: where the choice is kept (None: measured every time).
    """
    stored = read_choice(cache_file, set(builders))
    if stored is not None:
        return stored, None
    measured_size = size or MEASURED_SIZE
    engines = {label: build() for label, build in builders.items()}
    milliseconds = measure(engines, measured_size)
    label = min(milliseconds, key=milliseconds.__getitem__)
    choice = BackendChoice(label, milliseconds, tuple(measured_size), cpu_name())
    store_choice(cache_file, choice)
    figures = ", ".join(f"{name} {ms:.1f} ms" for name, ms in milliseconds.items())
    height, width = measured_size
    kept = f"; kept in {cache_file}" if cache_file is not None else ""
    print(f"seglite: backend auto measured this model on {choice.cpu} at {height}x{width}: {figures}; "
          f"took {label}{kept}", file=sys.stderr)  # fmt: skip
    return choice, engines[label]


def backend_candidates(backend: str, device: str, precision: str) -> tuple[list[tuple[str, str]], str]:
    """``([(backend, precision), ...], note)`` a predictor of ``backend`` on ``device`` is built from.

    An explicit backend is its own one candidate (ONNX Runtime and PyTorch run fp32 only); ``"auto"``
    is :func:`auto_candidates`.
    """
    if backend == "auto":
        return auto_candidates(device, precision)
    if backend in ("torch", "onnxruntime") and precision not in ("auto", "fp32"):
        raise ValueError(f"precision={precision!r} is for backend='openvino'; {backend} runs fp32")
    return [(backend, precision if backend == "openvino" else "fp32")], ""


def auto_candidates(device: str, precision: str) -> tuple[list[tuple[str, str]], str]:
    """``([(backend, precision), ...], note)``: what ``backend="auto"`` chooses among for ``device``.

    Two or more are timed on the model (:func:`choose`); one is taken as it is, with ``note``
    saying why (a GPU, a runtime not installed).
    """
    if not str(device).startswith("cpu"):
        return [("torch", "fp32")], f" (auto: {device})"
    from seglite.inference import openvino

    candidates = []
    if openvino.available():
        candidates.append(("openvino", precision if precision != "auto" else openvino.float_precision()))
    elif precision in ("bf16", "int8"):
        raise ValueError(f"precision={precision!r} needs OpenVINO: pip install seglite[openvino]")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        if not candidates:
            return [("torch", "fp32")], " (auto: openvino and onnxruntime not installed)"
        return candidates, " (auto: onnxruntime not installed)"
    if precision in ("bf16", "int8"):
        return candidates, f" (auto: {precision} runs on openvino only)"
    candidates.append(("onnxruntime", "fp32"))
    if len(candidates) == 1:
        return candidates, " (auto: openvino not installed)"
    return candidates, ""


def auto_backend(device: str, precision: str) -> tuple[str, str]:
    """``(backend, note)`` when ``backend="auto"`` has one candidate; ``("auto", "")`` when it measures several."""
    candidates, note = auto_candidates(device, precision)
    return (candidates[0][0], note) if len(candidates) == 1 else ("auto", note)


def runtime_versions() -> dict[str, str]:
    """Versions of the runtimes ``backend="auto"`` times (they decide the kernels): part of a choice's key."""
    from importlib import metadata

    versions = {"seglite": seglite.__version__}
    for package in ("openvino", "onnxruntime"):
        with contextlib.suppress(metadata.PackageNotFoundError):  # not installed: not a candidate either
            versions[package] = metadata.version(package)
    return versions
