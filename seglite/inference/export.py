"""Export a segmentation model to ONNX or TorchScript, and check the export against PyTorch.

The exported graph takes the normalised ``(N, 3, H, W)`` float32 image (input ``image``) and
returns ``(N, C, H, W)`` logits at input size (output ``logits``). Class names, palette,
normalisation and input size travel in the file's metadata (ONNX ``metadata_props``,
TorchScript extra file ``seglite.json``), so ``Predictor.from_onnx`` needs nothing else.

ONNX uses the TorchScript-based exporter (``dynamo=False``): the torch.export-based default
needs ``onnxscript``, which seglite does not depend on.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence

import numpy as np
import torch
from torch import nn

from seglite.data.constants import IMAGENET_MEAN, IMAGENET_STD
from seglite.data.transforms import normalize_image
from seglite.errors import OutputExistsError, SegliteError
from seglite.inference.predictor import (
    INPUT_NAME,
    META_CHECKPOINT_SHA256,
    META_CLASS_NAMES,
    META_INPUT_SIZE,
    META_MEAN,
    META_PALETTE,
    META_STD,
    OUTPUT_NAME,
    OnnxRunner,
    Size,
    check_size,
    file_sha256,
    load_task,
)

ExportFormat = Literal["onnx", "torchscript"]
TORCHSCRIPT_METADATA = "seglite.json"
MIN_OPSET = 17
MAX_LOGIT_DIFFERENCE = 1e-3
MIN_ARGMAX_AGREEMENT = 0.999


class ExportError(SegliteError):
    """The model cannot be exported with the requested settings."""


class ExportCheckError(ExportError):
    """The exported model's logits differ from PyTorch's beyond the tolerance."""


@dataclass(frozen=True)
class ParityReport:
    """PyTorch vs. exported model on one batch of random images."""

    size: Size
    batch: int
    max_logit_difference: float
    argmax_agreement: float

    @property
    def passed(self) -> bool:
        return self.max_logit_difference <= MAX_LOGIT_DIFFERENCE and self.argmax_agreement >= MIN_ARGMAX_AGREEMENT

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"{self.batch}x3x{self.size[0]}x{self.size[1]}: max |logit difference| {self.max_logit_difference:.2e} "
            f"(limit {MAX_LOGIT_DIFFERENCE:g}), argmax agreement {100 * self.argmax_agreement:.3f}% "
            f"(limit {100 * MIN_ARGMAX_AGREEMENT:g}%) {verdict}"
        )


def onnx_metadata(
    class_names: Sequence[str] | None,
    palette: Sequence[Sequence[int]] | None,
    input_size: Size | None,
    checkpoint_sha256: str | None = None,
) -> dict[str, str]:
    """The metadata an export carries, JSON-encoded values; ``input_size`` ``None`` for dynamic."""
    metadata = {
        META_CLASS_NAMES: class_names and list(class_names),
        META_PALETTE: palette and [[int(v) for v in color] for color in palette],
        META_MEAN: list(IMAGENET_MEAN),
        META_STD: list(IMAGENET_STD),
        META_INPUT_SIZE: input_size and list(input_size),
        META_CHECKPOINT_SHA256: checkpoint_sha256,
    }
    return {key: json.dumps(value) for key, value in metadata.items() if value is not None}


def sample_batch(size: Size, batch: int, seed: int = 0) -> torch.Tensor:
    """Random RGB images, normalised as at inference: the input of the parity checks."""
    generator = np.random.default_rng(seed)
    images = generator.integers(0, 256, size=(batch, *size, 3), dtype=np.uint8)
    return torch.from_numpy(np.stack([normalize_image(image) for image in images]))


def trace_size(size: Size) -> Size:
    """The size a size-independent export is traced at: both sides odd.

    Models pad inputs to a multiple of their output stride only where needed; tracing records
    only the branch taken, so the trace input must be one that needs padding for the padding
    (with amounts computed from the input's shape) to be in the graph.
    """
    return size[0] | 1, size[1] | 1


def check_sizes(size: Size, dynamic: bool) -> list[Size]:
    """The export size, plus a second, smaller odd size when the export must accept any size."""
    if not dynamic:
        return [size]
    return [size, (max(33, size[0] * 3 // 4) | 1, max(33, size[1] * 3 // 4) | 1)]


def compare(reference: torch.Tensor, candidate: torch.Tensor, size: Size) -> ParityReport:
    if candidate.shape != reference.shape:
        raise ExportCheckError(
            f"the exported model returns logits of shape {tuple(candidate.shape)} for a {len(reference)}"
            f"x3x{size[0]}x{size[1]} input; PyTorch returns {tuple(reference.shape)}"
        )
    difference = float((candidate - reference).abs().max())
    agreement = float((candidate.argmax(dim=1) == reference.argmax(dim=1)).float().mean())
    return ParityReport(size, len(reference), difference, agreement)


def check_export(
    model: nn.Module, run_exported: Callable[[torch.Tensor], torch.Tensor], sizes: Sequence[Size], batch: int
) -> list[ParityReport]:
    """Run PyTorch and the export on the same random batches; ``ExportCheckError`` if any is off."""
    reports = []
    for seed, size in enumerate(sizes):
        images = sample_batch(size, batch, seed)
        with torch.inference_mode():
            reference = model(images).float()
            exported = run_exported(images).float()
        reports.append(compare(reference, exported, size))
    failed = [report for report in reports if not report.passed]
    if failed:
        raise ExportCheckError("the export does not match PyTorch:\n  " + "\n  ".join(map(str, reports)))
    return reports


def check_output(output: str | Path, overwrite: bool) -> Path:
    """``output`` as a ``Path``; ``OutputExistsError`` if it exists and ``overwrite`` is false."""
    output = Path(output)
    if output.is_dir():
        raise OutputExistsError(f"output {output} is a folder; give a file path")
    if output.exists() and not overwrite:
        raise OutputExistsError(f"output {output} exists; pass --overwrite to replace it or choose another path")
    if not output.parent.is_dir():
        raise SegliteError(f"cannot write {output}: folder {output.parent} does not exist")
    return output


def write_atomically(output: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, so a failed export leaves no partial file."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent)
    os.close(descriptor)
    try:
        write(Path(temporary))
        os.replace(temporary, output)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


@contextlib.contextmanager
def _native_stdout_silenced() -> Iterator[None]:
    """Silence writes to the process's stdout: torch 2.14's TorchScript-based exporter leaves its C++
    log switched on (``setup_onnx_logging`` tests the function ``_jit_is_onnx_log_enabled`` instead of
    calling it) and prints the whole graph there when an export fails; the raised error says what failed."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _cpu_eval_copy(model: nn.Module) -> nn.Module:
    # a copy: the exporter toggles training mode, and the caller's model may live on a GPU
    return copy.deepcopy(model).cpu().eval()


def onnx_model_bytes(
    model: nn.Module,
    size: Size = (512, 1024),
    dynamic: bool = False,
    opset: int = MIN_OPSET,
    batch_size: int = 1,
    metadata: dict[str, str] | None = None,
) -> bytes:
    """``model`` as a serialised ONNX model with ``metadata`` (see :func:`export_onnx`), unchecked."""
    import onnx

    size = check_size(size)
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be at least {MIN_OPSET}, got {opset}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    model = _cpu_eval_copy(model)
    example = torch.zeros(batch_size, 3, *(trace_size(size) if dynamic else size))
    axes = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), _native_stdout_silenced():
        # the TorchScript-based exporter announces its deprecation on every call
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        try:
            torch.onnx.export(
                model,
                (example,),
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes} if dynamic else None,
            )
        except torch.onnx.errors.OnnxExporterError as error:
            # the message continues with the whole TorchScript graph: keep its first line
            reason = str(error).strip().splitlines()[0]
            hint = " (a layer whose settings depend on the input size, such as LR-ASPP's 'paper' pooling, needs a fixed size: omit --dynamic)" if dynamic else ""
            raise ExportError(f"cannot export {type(model).__name__} to ONNX opset {opset}{hint}: {reason}") from error
    proto = onnx.load_from_string(buffer.getvalue())
    # the exporter leaves the class axis unnamed after the final crop; state it for consumers
    num_classes = getattr(model, "num_classes", None)
    if num_classes is None:
        with torch.inference_mode():
            num_classes = model(example).shape[1]
    proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value = int(num_classes)
    metadata = {**(metadata or onnx_metadata(None, None, None)), META_INPUT_SIZE: json.dumps(None if dynamic else list(size))}
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def export_onnx(
    model: nn.Module,
    output: str | Path,
    size: Size = (512, 1024),
    dynamic: bool = False,
    opset: int = MIN_OPSET,
    batch_size: int = 1,
    metadata: dict[str, str] | None = None,
    overwrite: bool = False,
) -> list[ParityReport]:
    """Export ``model`` to an ONNX file, after checking it against PyTorch in ONNX Runtime.

    Args:
        model: returns ``(N, C, H, W)`` logits at input size.
        output: the ``.onnx`` file; nothing is written when the check fails (``ExportCheckError``).
        size: ``(height, width)`` of the input; with ``dynamic``, the first size checked.
        dynamic: any batch, height and width; otherwise fixed at ``batch_size`` x ``size``.
        opset: ONNX opset, at least 17.
        batch_size: the fixed batch of a static export.
        metadata: ``metadata_props`` (see :func:`onnx_metadata`); the input size is added.
        overwrite: replace an existing ``output``.

    Returns:
        the parity reports, one per checked size.
    """
    output = check_output(output, overwrite)
    data = onnx_model_bytes(model, size, dynamic, opset, batch_size, metadata)
    sizes = check_sizes(check_size(size), dynamic)
    reports = check_export(_cpu_eval_copy(model), OnnxRunner(data), sizes, 2 if dynamic else batch_size)
    write_atomically(output, lambda path: path.write_bytes(data))
    return reports


def export_torchscript(
    model: nn.Module,
    output: str | Path,
    size: Size = (512, 1024),
    metadata: dict[str, str] | None = None,
    overwrite: bool = False,
) -> list[ParityReport]:
    """Trace ``model`` to a TorchScript file that accepts any batch and input size, checked at two sizes.

    Load it with ``torch.jit.load(path, _extra_files={"seglite.json": ""})`` to read the metadata.
    """
    size = check_size(size)
    output = check_output(output, overwrite)
    model = _cpu_eval_copy(model)
    example = torch.zeros(1, 3, *trace_size(size))
    extra = {TORCHSCRIPT_METADATA: json.dumps({key: json.loads(value) for key, value in (metadata or {}).items()})}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, but it is what C++ / mobile runtimes load today
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*deprecated")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, buffer, _extra_files=extra)
        data = buffer.getvalue()
        loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")
    reports = check_export(model, loaded, check_sizes(size, True), 2)
    write_atomically(output, lambda path: path.write_bytes(data))
    return reports


def export_checkpoint(
    checkpoint: str | Path,
    output: str | Path,
    export_format: ExportFormat = "onnx",
    size: Size = (512, 1024),
    dynamic: bool = False,
    opset: int = MIN_OPSET,
    batch_size: int = 1,
    overwrite: bool = False,
) -> list[ParityReport]:
    """Export the model of a Lightning checkpoint with its class names and palette; returns the parity reports."""
    if export_format not in ("onnx", "torchscript"):
        raise ValueError(f"export_format must be 'onnx' or 'torchscript', got {export_format!r}")
    check_output(output, overwrite)  # before the slow part
    task = load_task(checkpoint)
    metadata = onnx_metadata(task.class_names, task.palette, None, file_sha256(checkpoint))
    if export_format == "torchscript":
        return export_torchscript(task.model, output, size, metadata, overwrite)
    return export_onnx(task.model, output, size, dynamic, opset, batch_size, metadata, overwrite)
