"""The benchmarks' one report writer: Markdown tables, CSV, JSON, and the latency-against-GMACs plot
of ``benchmarks/benchmark.py`` with its rows.

Plain Python (matplotlib only inside ``plot_latency``); every file goes through ``seglite.files``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from seglite.files import atomic_write, write_text

MEGA = 1e6


@dataclass
class ResultRow:
    """One model on one backend at one input size and batch. MACs and memory access cost are per
    image; latency is per batch (one call), throughput in images per second."""

    model: str
    preset: str
    backend: str
    device: str
    threads: int
    height: int
    width: int
    batch_size: int
    params: int
    gmacs: float
    memory_mb: float
    weight_mb: float
    median_ms: float | None = None
    min_ms: float | None = None
    iqr_percent: float | None = None
    images_per_second: float | None = None
    peak_mb: float | None = None
    peak_method: str | None = None
    reference_ratio: float | None = None
    reference_ms: float | None = None
    max_relative_difference: float | None = None
    argmax_agreement: float | None = None
    rounds: int = 0
    error: str | None = None

    @property
    def size(self) -> str:
        return f"{self.height}x{self.width}"


@dataclass
class SweepRow:
    """One point of the width (alpha) or resolution (rho) sweep, with its ratios to alpha = rho = 1."""

    backend: str
    alpha: float
    rho: float
    height: int
    width: int
    gmacs: float
    memory_mb: float
    macs_ratio: float
    expected_macs_ratio: float
    memory_ratio: float
    median_ms: float | None = None
    latency_ratio: float | None = None
    error: str | None = None


@dataclass
class ProfileRow:
    """One category of a per-operator profile: its share of time beside its share of MACs and bytes."""

    model: str
    backend: str
    category: str
    ms: float
    time_share: float
    macs_share: float
    memory_share: float


@dataclass
class TopOperator:
    """One of the slowest operators (PyTorch: module and aten operator; runtimes: graph node)."""

    backend: str
    name: str
    operator: str
    category: str
    ms: float
    time_share: float


def _cell(value: Any, digits: int = 1) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else str(value)
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def result_table(rows: Sequence[ResultRow]) -> str:
    headers = [
        "model", "backend", "input", "params (M)", "GMACs/img", "MAC MB/img", "median ms", "min ms",
        "IQR %", "images/s", "peak MB", "vs reference",
    ]  # fmt: skip
    body = []
    for row in rows:
        if row.error:
            reason = row.error.splitlines()[0]
            body.append([row.model, row.backend, f"{row.batch_size}x{row.size}"] + [""] * 8 + [f"failed: {reason}"])
            continue
        body.append([
            row.model, row.backend, f"{row.batch_size}x{row.size}", _cell(row.params / MEGA, 2), _cell(row.gmacs, 2),
            _cell(row.memory_mb, 0), _cell(row.median_ms), _cell(row.min_ms), _cell(row.iqr_percent, 0),
            _cell(row.images_per_second, 2), _cell(row.peak_mb, 0),
            "" if row.reference_ratio is None else f"{row.reference_ratio:.2f}x",
        ])  # fmt: skip
    return markdown_table(headers, body)


def sweep_table(rows: Sequence[SweepRow]) -> str:
    headers = [
        "backend", "alpha", "rho", "input", "GMACs", "MACs ratio", "alpha^2 rho^2", "MAC MB ratio", "median ms",
        "latency ratio",
    ]  # fmt: skip
    body = [
        [
            row.backend, f"{row.alpha:g}", f"{row.rho:g}", f"{row.height}x{row.width}", _cell(row.gmacs, 2),
            _cell(row.macs_ratio, 3), _cell(row.expected_macs_ratio, 3), _cell(row.memory_ratio, 3),
            _cell(row.median_ms) if not row.error else f"failed: {row.error.splitlines()[0]}",
            _cell(row.latency_ratio, 3),
        ]
        for row in rows
    ]  # fmt: skip
    return markdown_table(headers, body)


def profile_table(rows: Sequence[ProfileRow]) -> str:
    headers = ["backend", "category", "ms", "time %", "MACs %", "memory access %"]
    body = [
        [row.backend, row.category, _cell(row.ms, 2), _cell(100 * row.time_share), _cell(100 * row.macs_share),
         _cell(100 * row.memory_share)]
        for row in rows
    ]  # fmt: skip
    return markdown_table(headers, body)


def top_table(rows: Sequence[TopOperator]) -> str:
    headers = ["backend", "module / node", "operator", "category", "ms", "time %"]
    body = [[r.backend, r.name, r.operator, r.category, _cell(r.ms, 2), _cell(100 * r.time_share)] for r in rows]
    return markdown_table(headers, body)


def csv_text(rows: Sequence[Any], row_type: type) -> str:
    """``rows`` (dataclass instances) as CSV with one column per field."""
    buffer = io.StringIO()
    names = [f.name for f in fields(row_type)]
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        values = asdict(row)
        if values.get("error"):
            values["error"] = values["error"].splitlines()[0]
        writer.writerow(values)
    return buffer.getvalue()


def write_csv(path: Path, rows: Sequence[Any], row_type: type) -> Path:
    return write_text(path, csv_text(rows, row_type))


def write_json(path: Path, document: dict) -> Path:
    def default(value: Any) -> Any:
        if hasattr(value, "__dataclass_fields__"):
            return asdict(value)
        if isinstance(value, Path):
            return str(value)
        raise TypeError(f"cannot write {type(value).__name__} to JSON")

    return write_text(path, json.dumps(document, indent=2, default=default) + "\n")


def short_name(model: str) -> str:
    """A compact plot label: ``lraspp_mobilenet_v3_large`` -> ``lraspp mnv3-large``."""
    return (
        model.replace("mobilenet_v", "mnv").replace("shufflenet_v", "snv").replace("_large", "-L")
        .replace("_small", "-S").replace("deeplabv3plus", "dlv3+").replace("deeplabv3", "dlv3").replace("_", " ")
    )  # fmt: skip


def plot_latency(path: Path, rows: Sequence[ResultRow], title: str) -> Path:
    """Latency against GMACs, one point per model and backend (batch-1 rows), one panel per input size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")

    points = [row for row in rows if row.batch_size == 1 and row.median_ms is not None]
    sizes = sorted({(row.height, row.width) for row in points}) or [(0, 0)]
    backends = list(dict.fromkeys(row.backend for row in points if row.preset != "torchvision-lraspp"))
    markers = "osD^v<>ph*"
    figure, axes = plt.subplots(1, len(sizes), figsize=(7.5 * len(sizes), 6), squeeze=False)
    for axis, (height, width) in zip(axes[0], sizes, strict=True):
        for index, backend in enumerate(backends):
            chosen = [r for r in points if r.backend == backend and (r.height, r.width) == (height, width)
                      and r.preset != "torchvision-lraspp"]  # fmt: skip
            axis.scatter([r.gmacs for r in chosen], [r.median_ms for r in chosen], marker=markers[index % len(markers)],
                         label=backend, s=36, zorder=3)  # fmt: skip
            for r in chosen:
                axis.annotate(short_name(r.model), (r.gmacs, r.median_ms), fontsize=6, alpha=0.8,
                              xytext=(3, 2), textcoords="offset points")  # fmt: skip
        reference = [r for r in points if r.preset == "torchvision-lraspp" and (r.height, r.width) == (height, width)]
        if reference:
            axis.scatter([r.gmacs for r in reference], [r.median_ms for r in reference], marker="*", s=160,
                         color="black", label="torchvision LR-ASPP (reference, eager)", zorder=4)  # fmt: skip
        axis.set_xscale("log")
        axis.set_yscale("log")
        for ticks in (axis.xaxis, axis.yaxis):
            ticks.set_major_formatter(plain)
            ticks.set_minor_formatter(plain)
        axis.tick_params(which="both", labelsize=7)
        axis.set_xlabel("GMACs per image")
        axis.set_ylabel("median latency, batch 1 (ms)")
        axis.set_title(f"{height}x{width}")
        axis.grid(True, which="both", alpha=0.3)
        if axis.get_legend_handles_labels()[0]:  # a panel with no batch-1 result has nothing to name
            axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    try:
        atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=120))
    finally:
        plt.close(figure)
    return path
