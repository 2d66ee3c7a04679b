"""Export a segmentation model to ONNX, TorchScript or OpenVINO, and check the export against PyTorch
(phone formats, ExecuTorch and LiteRT: ``seglite.inference.phone_export``).

ONNX and TorchScript files hold the network alone: the normalised ``(N, 3, H, W)`` float32
image in (input ``image``), ``(N, C, H, W)`` logits at input size out (output ``logits``).
An OpenVINO IR holds the segmenter (``seglite.inference.graph.SegmenterGraph``): the
``(N, H, W, 3)`` uint8 RGB image in, and for a ``SegmentationModel`` the head's coarse logits
of the padded image out (``output="coarse"``; ``Predictor.from_openvino`` finishes the masks
with ``seglite.inference.postprocess``), otherwise ``(N, H, W)`` uint8 train ids; fp32 or NNCF int8.
Class names, palette, normalisation and input size travel in the file's metadata (ONNX
``metadata_props``, TorchScript extra file ``seglite.json``, OpenVINO ``rt_info``), so the
predictor needs nothing else.

ONNX uses the TorchScript-based exporter (``dynamo=False``): the torch.export-based default
needs ``onnxscript``, which seglite does not depend on.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import nn

from seglite.checkpoints import load_checkpoint
from seglite.checks import check_choice, check_positive_int, check_size
from seglite.errors import ExportCheckError, ExportError, OutputExistsError, SegliteError  # noqa: F401  (imported from here by users)
from seglite.files import OutputWriteError, check_output_file, write_bytes, write_error
from seglite.inference.graph import CoarseMasks, GraphOutput, SegmenterGraph, coarse_stride, cpu_eval_copy, normalize
from seglite.inference.metadata import (
    INPUT_NAME,
    MASK_OUTPUT_NAME,
    META_GRAPH,
    META_INPUT_SIZE,
    META_OUTPUT_STRIDE,
    META_PRECISION,
    OUTPUT_NAME,
    Size,
    export_metadata,
)
from seglite.inference.onnxruntime import OnnxEngine
from seglite.inference.options import EXPORT_FORMATS, TORCHSCRIPT_METHODS, ExportFormat, TorchScriptMethod

if TYPE_CHECKING:
    import openvino

    from seglite.inference.phone_export import PhoneExport

TORCHSCRIPT_METADATA = "seglite.json"
MIN_OPSET = 17
MAX_LOGIT_DIFFERENCE = 1e-3
MIN_ARGMAX_AGREEMENT = 0.999


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


def sample_batch(size: Size, batch: int, seed: int = 0) -> torch.Tensor:
    """Random RGB images, normalised as at inference: the input of the parity checks."""
    generator = np.random.default_rng(seed)
    images = generator.integers(0, 256, size=(batch, *size, 3), dtype=np.uint8)
    return torch.from_numpy(np.stack([normalize(image) for image in images]))


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


def check_output(output: str | Path, overwrite: bool, inputs: Iterable[str | Path] = ()) -> Path:
    """``output`` as a ``Path`` if it may be written (``seglite.files.check_output_file``): not a link,
    not one of ``inputs``, not existing unless ``overwrite``, in an existing folder."""
    return check_output_file(output, overwrite, inputs, make_parent=False)


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


def max_opset() -> int:
    """The highest ONNX opset the installed torch's TorchScript-based exporter (the one seglite uses) writes.

    Read by :func:`seglite.models.private_api.onnx_exporter_max_opset` (a torch that no longer says
    falls back to 20, what torch 2.1 to 2.14 support)."""
    from seglite.models.private_api import onnx_exporter_max_opset

    value = onnx_exporter_max_opset()
    return value if value is not None and value >= MIN_OPSET else 20


def check_opset(opset: int, name: str = "opset") -> int:
    """``opset`` if the exporter writes it (:data:`MIN_OPSET` to :func:`max_opset`); ``ValueError`` naming ``name`` otherwise."""
    top = max_opset()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= top:
        raise ValueError(f"{name} must be {MIN_OPSET} to {top} (the ONNX opsets torch {torch.__version__} exports here), got {opset!r}")
    return opset


def _traced_onnx(
    module: nn.Module, example: torch.Tensor, opset: int, output_name: str, dynamic_axes: dict | None, failure: str
):
    """``module`` traced at ``example`` by the TorchScript-based exporter, as an ``onnx.ModelProto``;
    an exporter error is an ``ExportError`` starting with ``failure``."""
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings(), _native_stdout_silenced():
        # the TorchScript-based exporter announces its deprecation on every call
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        try:
            torch.onnx.export(
                module,
                (example,),
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[output_name],
                dynamic_axes=dynamic_axes,
            )
        except torch.onnx.errors.OnnxExporterError as error:
            # the message continues with the whole TorchScript graph: keep its first line
            reason = str(error).strip().splitlines()[0]
            raise ExportError(f"{failure}: {reason}") from error
    return onnx.load_from_string(buffer.getvalue())


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

    size = check_size("size", size)
    check_opset(opset)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    model = cpu_eval_copy(model)
    example = torch.zeros(batch_size, 3, *(trace_size(size) if dynamic else size))
    axes = {0: "batch", 2: "height", 3: "width"}
    hint = " (a layer whose settings depend on the input size needs a fixed size: omit --dynamic)" if dynamic else ""
    proto = _traced_onnx(
        model, example, opset, OUTPUT_NAME, {INPUT_NAME: axes, OUTPUT_NAME: axes} if dynamic else None,
        f"cannot export {type(model).__name__} to ONNX opset {opset}{hint}",
    )  # fmt: skip
    # the exporter leaves the class axis unnamed after the final crop; state it for consumers
    num_classes = getattr(model, "num_classes", None)
    if num_classes is None:
        with torch.inference_mode():
            num_classes = model(example).shape[1]
    proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value = int(num_classes)
    metadata = {**(metadata or export_metadata(None, None, None)), META_INPUT_SIZE: json.dumps(None if dynamic else list(size))}
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
    inputs: Iterable[str | Path] = (),
) -> list[ParityReport]:
    """Export ``model`` to an ONNX file, after checking it against PyTorch in ONNX Runtime.

    Args:
        model: returns ``(N, C, H, W)`` logits at input size.
        output: the ``.onnx`` file; nothing is written when the check fails (``ExportCheckError``).
        size: ``(height, width)`` of the input; with ``dynamic``, the first size checked.
        dynamic: any batch, height and width; otherwise fixed at ``batch_size`` x ``size``.
        opset: ONNX opset, at least 17.
        batch_size: the fixed batch of a static export.
        metadata: ``metadata_props`` (see :func:`export_metadata`); the input size is added.
        overwrite: replace an existing ``output``.
        inputs: files ``output`` must not be (the checkpoint).

    Returns:
        the parity reports, one per checked size.
    """
    output = check_output(output, overwrite, inputs)
    data = onnx_model_bytes(model, size, dynamic, opset, batch_size, metadata)
    sizes = check_sizes(check_size("size", size), dynamic)
    exported = OnnxEngine.from_logits_file(data).logits_file
    reports = check_export(cpu_eval_copy(model), exported.network, sizes, 2 if dynamic else batch_size)
    write_bytes(output, data)
    return reports


def export_torchscript(
    model: nn.Module,
    output: str | Path,
    size: Size = (512, 1024),
    metadata: dict[str, str] | None = None,
    overwrite: bool = False,
    inputs: Iterable[str | Path] = (),
    method: TorchScriptMethod = "script",
) -> list[ParityReport]:
    """Compile ``model`` to a TorchScript file that accepts any batch and input size, checked at two sizes.

    ``method="script"`` compiles the Python code itself (every branch, e.g. the padding of sizes
    that are not a multiple of the output stride, stays in the program); ``"trace"`` records
    the operations run on one example input (traced at odd sides, so the padding is recorded).
    Load the file with ``torch.jit.load(path, _extra_files={"seglite.json": ""})`` to read the metadata.
    """
    check_choice("method", method, TORCHSCRIPT_METHODS)
    size = check_size("size", size)
    output = check_output(output, overwrite, inputs)
    model = cpu_eval_copy(model)
    example = torch.zeros(1, 3, *trace_size(size))
    extra = {TORCHSCRIPT_METADATA: json.dumps({key: json.loads(value) for key, value in (metadata or {}).items()})}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, but it is what C++ / mobile runtimes load today
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*deprecated")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        compiled = torch.jit.script(model) if method == "script" else torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(compiled, buffer, _extra_files=extra)
        data = buffer.getvalue()
        loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")
    reports = check_export(model, loaded, check_sizes(size, True), 2)
    write_bytes(output, data)
    return reports


def segmenter_onnx_bytes(
    model: nn.Module,
    size: Size | None = None,
    output: GraphOutput = "masks",
    opset: int = MIN_OPSET,
    metadata: dict[str, str] | None = None,
) -> bytes:
    """``SegmenterGraph(model, size, output)`` as serialised ONNX, dynamic in batch, height and width.

    The graph takes ``(N, H, W, 3)`` uint8 RGB images (input ``image``) and returns ``(N, H, W)``
    uint8 train ids (output ``mask``), ``(N, C, H, W)`` float32 logits (output ``logits``), or
    the coarse logits of ``output="coarse"`` (output ``logits``, see ``SegmenterGraph``).
    Unchecked: :func:`check_segmenter` compares a runtime's result with PyTorch's.
    """
    import onnx

    size = check_size("size", size, allow_none=True)
    graph = SegmenterGraph(cpu_eval_copy(model), size, output).eval()
    # an odd trace size keeps the model's input padding (computed from the input's shape) in the graph
    example = torch.zeros(1, *trace_size((256, 512)), 3, dtype=torch.uint8)
    name = MASK_OUTPUT_NAME if output == "masks" else OUTPUT_NAME
    output_axes = {0: "batch", 1: "height", 2: "width"} if output == "masks" else {0: "batch", 2: "height", 3: "width"}
    graph_kind = {"masks": "segmenter", "logits": "segmenter", "coarse": "coarse"}[output]
    proto = _traced_onnx(
        graph, example, opset, name, {INPUT_NAME: {0: "batch", 1: "height", 2: "width"}, name: output_axes},
        f"cannot export {type(model).__name__} as a segmenter graph",
    )  # fmt: skip
    if output != "masks":
        proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value = int(model.num_classes)
    entries = {
        **(metadata or export_metadata(None, None, None)),
        META_GRAPH: json.dumps(graph_kind),
        META_INPUT_SIZE: json.dumps(size and list(size)),
    }
    if output == "coarse":
        entries[META_OUTPUT_STRIDE] = json.dumps(coarse_stride(model))
    for key, value in entries.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


@dataclass(frozen=True)
class MaskParityReport:
    """PyTorch fp32 vs. an exported segmenter on one batch of random images: share of equal train ids."""

    size: Size
    batch: int
    agreement: float
    enforced: bool = True

    @property
    def passed(self) -> bool:
        return not self.enforced or self.agreement >= MIN_ARGMAX_AGREEMENT

    def __str__(self) -> str:
        if not self.enforced:
            return (
                f"{self.batch}x{self.size[0]}x{self.size[1]}x3 uint8: masks agree on {100 * self.agreement:.3f}% of the "
                "pixels (low precision: random images say little; see the mIoU change)"
            )
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"{self.batch}x{self.size[0]}x{self.size[1]}x3 uint8: masks agree on {100 * self.agreement:.3f}% of the pixels "
            f"(limit {100 * MIN_ARGMAX_AGREEMENT:g}%) {verdict}"
        )


def check_segmenter(
    model: nn.Module, run_exported: Callable[[np.ndarray], np.ndarray], sizes: Sequence[Size], batch: int, enforced: bool = True
) -> list[MaskParityReport]:
    """Masks of PyTorch's fp32 ``SegmenterGraph`` against an export's on random uint8 images."""
    graph = SegmenterGraph(cpu_eval_copy(model)).eval()
    reports = []
    for seed, size in enumerate(sizes):
        images = np.random.default_rng(seed).integers(0, 256, size=(batch, *size, 3), dtype=np.uint8)
        with torch.inference_mode():
            reference = graph(torch.from_numpy(images)).numpy()
        exported = run_exported(images)
        if exported.shape != reference.shape:
            raise ExportCheckError(
                f"the export returns masks of shape {exported.shape} for {images.shape} images; PyTorch {reference.shape}"
            )
        reports.append(MaskParityReport(size, batch, float((exported == reference).mean()), enforced))
    if not all(report.passed for report in reports):
        raise ExportCheckError("the export does not match PyTorch:\n  " + "\n  ".join(map(str, reports)))
    return reports


def openvino_outputs(output: str | Path) -> tuple[Path, Path]:
    """The ``.xml`` and ``.bin`` files of an OpenVINO IR named ``output`` (which must end in ``.xml``)."""
    output = Path(output)
    if output.suffix != ".xml":
        raise ValueError(f"an OpenVINO model is written as NAME.xml (with NAME.bin beside it), got {output}")
    return output, output.with_suffix(".bin")


def export_openvino(
    model: nn.Module,
    output: str | Path,
    size: Size = (512, 1024),
    precision: Literal["fp32", "bf16", "int8"] = "fp32",
    calibration_images: Sequence[np.ndarray] | None = None,
    int8_scope: str = "all",
    metadata: dict[str, str] | None = None,
    overwrite: bool = False,
    inputs: Iterable[str | Path] = (),
) -> list[MaskParityReport]:
    """Export ``model`` as an OpenVINO IR of the whole segmenter, checked against PyTorch.

    Args:
        model: returns ``(N, C, H, W)`` logits at input size.
        output: ``NAME.xml``; the weights go to ``NAME.bin`` beside it.
        size: ``(height, width)`` of the check; the IR accepts any batch and size.
        precision: ``"fp32"``; ``"bf16"`` (the IR is fp32 with bf16 recorded as the preferred
            inference precision, used where the CPU computes bf16); ``"int8"`` (NNCF, needs
            ``calibration_images``).
        calibration_images: RGB uint8 images for int8.
        int8_scope: what int8 quantises (``seglite.inference.openvino.ignored_scope``).
        metadata: seglite metadata entries (see :func:`seglite.inference.metadata.export_metadata`).
        overwrite: replace existing files.
        inputs: files the outputs must not be (the checkpoint).
    """
    from seglite.inference import openvino

    check_choice("precision", precision, ("fp32", "bf16", "int8"))
    size = check_size("size", size)
    xml, weights = openvino_outputs(output)
    for path in (xml, weights):
        check_output(path, overwrite, inputs)
    if not openvino.available():
        raise ExportError("--format openvino needs OpenVINO: pip install seglite[openvino]")
    if precision == "int8" and not calibration_images:
        raise ValueError("precision='int8' needs calibration images")
    stride = coarse_stride(model)
    output_kind = "coarse" if stride else "masks"
    entries = {**(metadata or export_metadata(None, None, None)), META_PRECISION: json.dumps(precision), META_INPUT_SIZE: json.dumps(None)}
    entries[META_GRAPH] = json.dumps("coarse" if stride else "segmenter")
    if stride:
        entries[META_OUTPUT_STRIDE] = json.dumps(stride)
    ov_model = openvino.read_onnx(segmenter_onnx_bytes(model, None, output_kind, metadata=entries))
    if precision == "int8":
        ov_model = openvino.quantize(ov_model, calibration_images, int8_scope)
    openvino.set_metadata(ov_model, entries)
    engine = openvino.OpenVinoEngine(ov_model, "fp32", coarse=CoarseMasks(stride) if stride else None)
    reports = check_segmenter(model, engine.masks, check_sizes(size, True), 1, enforced=precision == "fp32")
    write_openvino(ov_model, xml, weights)
    return reports


def write_openvino(ov_model: openvino.Model, xml: Path, weights: Path) -> None:
    """Write an OpenVINO IR as ``xml`` + ``weights``: saved in a temporary folder beside them, then each
    written atomically, weights first (the ``.xml`` names them). A failure is an ``OutputWriteError``
    naming ``xml``, and leaves no temporary folder behind."""
    from seglite.inference import openvino

    try:
        with tempfile.TemporaryDirectory(prefix=".seglite-export-", dir=xml.parent) as folder:
            openvino.write_ir(ov_model, Path(folder) / "model.xml", Path(folder) / "model.bin")
            write_bytes(weights, (Path(folder) / "model.bin").read_bytes())
            write_bytes(xml, (Path(folder) / "model.xml").read_bytes())
    except OutputWriteError:
        raise
    except OSError as error:  # the temporary folder (a read-only folder) or OpenVINO's writer (a full disk)
        raise write_error(xml, error) from error


def export_checkpoint(
    checkpoint: str | Path,
    output: str | Path,
    export_format: ExportFormat = "onnx",
    size: Size = (512, 1024),
    dynamic: bool = False,
    opset: int = MIN_OPSET,
    batch_size: int = 1,
    overwrite: bool = False,
    precision: Literal["fp32", "bf16", "int8"] = "fp32",
    calibration_images: Sequence[np.ndarray] | None = None,
    int8_scope: str = "all",
    torchscript_method: TorchScriptMethod = "script",
) -> list[ParityReport] | list[MaskParityReport] | PhoneExport:
    """Export the model of a training checkpoint with its class names and palette; returns the parity reports
    (a phone format: its ``seglite.inference.phone_export.PhoneExport``).

    ``precision`` other than fp32 is for ``export_format="openvino"``, and int8 for ``"executorch"``
    (ONNX Runtime int8: ``seglite.inference.quantize.quantize_onnx`` on the fp32 ONNX file).
    """
    check_choice("export_format", export_format, EXPORT_FORMATS)
    check_positive_int("batch_size", batch_size)
    if precision != "fp32" and export_format != "openvino" and not (precision == "int8" and export_format == "executorch"):
        raise ValueError(f"precision={precision!r} is for export_format='openvino' (int8: or 'executorch'); "
                         f"{export_format} exports fp32")  # fmt: skip
    outputs = openvino_outputs(output) if export_format == "openvino" else (Path(output),)
    for path in outputs:
        check_output(path, overwrite, [checkpoint])  # before the slow part
    loaded = load_checkpoint(checkpoint)
    metadata = export_metadata(loaded.class_names, loaded.palette, None, loaded.sha256)
    inputs = [loaded.path]
    if export_format == "torchscript":
        return export_torchscript(loaded.model, output, size, metadata, overwrite, inputs, torchscript_method)
    if export_format == "openvino":
        return export_openvino(loaded.model, output, size, precision, calibration_images, int8_scope, metadata, overwrite, inputs)
    if export_format == "executorch":
        from seglite.inference.phone_export import export_executorch

        return export_executorch(loaded.model, output, size, precision, calibration_images, metadata, overwrite, inputs)
    if export_format == "litert":
        from seglite.inference.phone_export import export_litert

        return export_litert(loaded.model, output, size, metadata, overwrite, inputs)
    return export_onnx(loaded.model, output, size, dynamic, opset, batch_size, metadata, overwrite, inputs)
