"""The sections of ``benchmarks/benchmark.py``: the models x backends table, the width and resolution
sweep and the per-operator profile, each measured in worker processes, with MAC counts and ratios."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from benchmarks.engines import BACKENDS, REFERENCE, Case, ModelSpec
from benchmarks.harness import log, noisy_reference_warning, physical_cores, timing_stats
from benchmarks.profiles import OperatorProfile
from benchmarks.report import (
    MEGA,
    ProfileRow,
    ResultRow,
    SweepRow,
    TopOperator,
    plot_latency,
    profile_table,
    result_table,
    sweep_table,
    top_table,
    write_csv,
    write_json,
)
from benchmarks.workers import Measurement, WorkerError, preload_modules, profile_case, run_group
from seglite.inference.choice import cpu_name
from seglite.models.complexity import CATEGORIES, GraphCost, count_costs

if TYPE_CHECKING:
    from benchmarks.benchmark import Plan

OVERHEAD = "overhead (outside operators)"


@cache
def graph_cost(model: ModelSpec, size: tuple[int, int], batch_size: int) -> GraphCost:
    """MACs and memory access cost of ``model``, counted on the meta device (nothing is computed)."""
    with torch.device("meta"):
        network = model.build()
    return count_costs(network, size, batch_size)


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:  # not installed, or broken: the environment just says so
        return None


def describe_environment(device: str, threads: int) -> dict:
    environment = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "threads": threads,
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "onnxruntime": _version("onnxruntime"),
        "openvino": _version("openvino"),
        "load_average_start": list(os.getloadavg()),
    }
    if device.startswith("cuda"):
        environment["gpu"] = torch.cuda.get_device_name(torch.device(device))
        environment["cuda"] = torch.version.cuda
        # PyTorch's defaults: fp32 convolutions may use TF32 tensor cores, matrix products do not
        environment["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        environment["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
        environment["cudnn_benchmark"] = True
    return environment


def compare_outputs(candidate: np.ndarray | None, reference: np.ndarray | None) -> tuple[float | None, float | None]:
    """(max |difference| / max |reference|, argmax agreement) of two logit subsamples."""
    if candidate is None or reference is None or candidate.shape != reference.shape:
        return None, None
    scale = float(np.abs(reference).max()) or 1.0
    difference = float(np.abs(candidate - reference).max()) / scale
    agreement = float((candidate.argmax(axis=1) == reference.argmax(axis=1)).mean())
    return difference, agreement


def result_row(measurement: Measurement, cost: GraphCost) -> ResultRow:
    case = measurement.case
    row = ResultRow(
        model=case.model.label, preset=case.model.preset, backend=case.backend, device=case.device,
        threads=case.threads, height=case.size[0], width=case.size[1], batch_size=case.batch_size,
        params=cost.params, gmacs=cost.macs / case.batch_size / 1e9,
        memory_mb=cost.memory_bytes / case.batch_size / MEGA, weight_mb=cost.weight_bytes / case.batch_size / MEGA,
        rounds=len(measurement.times), error=measurement.error,
    )  # fmt: skip
    if measurement.times:
        row.median_ms, row.min_ms, row.iqr_percent = timing_stats(measurement.times)
        row.images_per_second = 1000 * case.batch_size / row.median_ms
    if measurement.peak_bytes is not None:
        row.peak_mb = measurement.peak_bytes / MEGA
        row.peak_method = measurement.peak_method
    return row


def _group_options(args: argparse.Namespace) -> dict:
    return {
        "warmup": args.warmup,
        "rounds": args.rounds,
        "min_rounds": args.min_rounds,
        "time_budget": args.group_seconds or None,
        "log": log,
    }


def measure_table(args: argparse.Namespace, plan: Plan, threads: int) -> list[ResultRow]:
    """Every preset x size x batch on every backend, each group timed with the reference."""
    rows: list[ResultRow] = []
    groups = [(size, batch, preset) for size in args.sizes for batch in args.batch_sizes for preset in plan.presets]
    reference_times: dict[tuple, list[float]] = defaultdict(list)
    reference_measurements: dict[tuple, Measurement] = {}
    by_shape: dict[tuple, list[ResultRow]] = defaultdict(list)
    for index, (size, batch, preset) in enumerate(groups, 1):
        log(f"[table {index}/{len(groups)}] {preset}, {batch}x{size[0]}x{size[1]}: "
            f"{', '.join(plan.backends)} + reference")  # fmt: skip
        spec = ModelSpec(preset, num_classes=args.num_classes)
        reference = Case(ModelSpec(REFERENCE, num_classes=args.num_classes), "eager", size, batch, args.device, threads)
        cases = [Case(spec, backend, size, batch, args.device, threads) for backend in plan.backends]
        measurements = run_group(cases + [reference], **_group_options(args))
        reference_measurement = measurements.pop()
        reference_times[(size, batch)] += reference_measurement.times
        reference_measurements.setdefault((size, batch), reference_measurement)
        reference_ms = 1000 * statistics.median(reference_measurement.times) if reference_measurement.times else None
        eager = next((m for m in measurements if m.case.backend == "eager" and m.signature is not None), None)
        for measurement in measurements:
            row = result_row(measurement, graph_cost(spec, size, batch))
            if row.median_ms is not None and reference_ms:
                row.reference_ms = reference_ms
                row.reference_ratio = row.median_ms / reference_ms
            if eager is not None and measurement is not eager:
                difference = compare_outputs(measurement.signature, eager.signature)
                row.max_relative_difference, row.argmax_agreement = difference
            by_shape[(size, batch)].append(row)
    for size in args.sizes:
        for batch in args.batch_sizes:
            first = reference_measurements[(size, batch)]
            pooled = Measurement(first.case, reference_times[(size, batch)], first.peak_bytes, first.peak_method,
                                 error=None if reference_times[(size, batch)] else first.error)  # fmt: skip
            reference_row = result_row(pooled, graph_cost(first.case.model, size, batch))
            if reference_row.median_ms is not None:
                reference_row.reference_ms, reference_row.reference_ratio = reference_row.median_ms, 1.0
            rows.append(reference_row)
            rows += by_shape[(size, batch)]
            warning = noisy_reference_warning(f"{REFERENCE}, {batch}x{size[0]}x{size[1]}", reference_times[(size, batch)])
            if warning:
                log(warning)
    return rows


def sweep_points(args: argparse.Namespace) -> list[tuple[float, float]]:
    """(alpha, rho) pairs: each alpha at full resolution, each rho at full width; (1, 1) first."""
    points = [(1.0, 1.0)]
    points += [(alpha, 1.0) for alpha in args.alphas if alpha != 1.0]
    points += [(1.0, rho) for rho in args.rhos if rho != 1.0]
    return list(dict.fromkeys(points))


def scaled_size(size: tuple[int, int], rho: float) -> tuple[int, int]:
    """``size`` times ``rho``, each side rounded to a multiple of 16 (at least 32)."""
    return tuple(max(32, round(side * rho / 16) * 16) for side in size)  # type: ignore[return-value]


def measure_sweep(args: argparse.Namespace, plan: Plan, threads: int) -> list[SweepRow]:
    """The MobileNet paper's alpha and rho on the first size, batch 1; all points of a backend alternate."""
    base = args.sizes[0]
    points = sweep_points(args)
    specs = [
        ModelSpec(args.sweep_preset, (("width_mult", alpha),) if alpha != 1.0 else (), args.num_classes)
        for alpha, _ in points
    ]
    sizes = [scaled_size(base, rho) for _, rho in points]
    costs = [graph_cost(spec, size, 1) for spec, size in zip(specs, sizes, strict=True)]
    rows: list[SweepRow] = []
    for index, backend in enumerate(plan.backends, 1):
        log(f"[sweep {index}/{len(plan.backends)}] {args.sweep_preset} on {backend}: {len(points)} (alpha, rho) points")
        cases = [Case(spec, backend, size, 1, args.device, threads) for spec, size in zip(specs, sizes, strict=True)]
        measurements = run_group(cases, **_group_options(args))
        base_ms = 1000 * statistics.median(measurements[0].times) if measurements[0].times else None
        for (alpha, rho), size, cost, measurement in zip(points, sizes, costs, measurements, strict=True):
            median_ms = 1000 * statistics.median(measurement.times) if measurement.times else None
            rows.append(SweepRow(
                backend=backend, alpha=alpha, rho=rho, height=size[0], width=size[1], gmacs=cost.macs / 1e9,
                memory_mb=cost.memory_bytes / MEGA, macs_ratio=cost.macs / costs[0].macs,
                expected_macs_ratio=alpha**2 * (size[0] * size[1]) / (base[0] * base[1]),
                memory_ratio=cost.memory_bytes / costs[0].memory_bytes, median_ms=median_ms,
                latency_ratio=median_ms / base_ms if median_ms and base_ms else None, error=measurement.error,
            ))  # fmt: skip
    return rows


def profile_rows(model: str, backend: str, profile: OperatorProfile, cost: GraphCost) -> list[ProfileRow]:
    """One row per category plus the overhead row; their milliseconds add up to ``profile.total``."""
    totals = cost.by_category()
    macs, memory = max(cost.macs, 1), max(cost.memory_bytes, 1)
    seconds = defaultdict(float)
    for op in profile.operators:
        seconds[op.category] += op.seconds
    total = profile.total or 1.0
    rows = [
        ProfileRow(model, backend, category, 1000 * seconds[category], seconds[category] / total,
                   totals[category].macs / macs, totals[category].memory_bytes / memory)
        for category in CATEGORIES
    ]  # fmt: skip
    rows.append(ProfileRow(model, backend, OVERHEAD, 1000 * profile.overhead, profile.overhead / total, 0.0, 0.0))
    return rows


def top_operators(backend: str, profile: OperatorProfile, count: int) -> list[TopOperator]:
    ranked = sorted(profile.operators, key=lambda op: op.seconds, reverse=True)[:count]
    total = profile.total or 1.0
    return [
        TopOperator(backend, op.name, op.operator, op.category, 1000 * op.seconds, op.seconds / total) for op in ranked
    ]


def measure_profile(
    args: argparse.Namespace, plan: Plan, threads: int
) -> tuple[list[ProfileRow], list[TopOperator], dict[str, float]]:
    spec = ModelSpec(args.profile_preset, num_classes=args.num_classes)
    size = args.sizes[0]
    cost = graph_cost(spec, size, 1)
    rows: list[ProfileRow] = []
    tops: list[TopOperator] = []
    totals: dict[str, float] = {}
    for index, backend in enumerate(plan.profile_backends, 1):
        log(f"[profile {index}/{len(plan.profile_backends)}] {args.profile_preset}, 1x{size[0]}x{size[1]} on {backend}")
        try:
            profile = profile_case(Case(spec, backend, size, 1, args.device, threads), args.profile_runs)
        except WorkerError as error:
            log(f"  profile on {backend} failed: {str(error).splitlines()[0]}")
            continue
        rows += profile_rows(spec.label, backend, profile, cost)
        tops += top_operators(backend, profile, args.top)
        totals[backend] = 1000 * profile.total
    return rows, tops, totals


def _print_section(title: str, text: str) -> None:
    print(f"\n## {title}\n\n{text}", flush=True)


def run(args: argparse.Namespace, plan: Plan, paths: dict[str, Path]) -> int:
    """Measure the chosen sections, print their tables and write the files of ``paths``."""
    threads = args.threads or physical_cores()
    torch.set_num_threads(threads)
    preload_modules([module for name in {*plan.backends, *plan.profile_backends} for module in BACKENDS[name].preload])
    started = time.perf_counter()
    environment = describe_environment(args.device, threads)
    print(f"seglite benchmark: {environment['cpu']} ({environment['cpu_capability']}), {args.device}, "
          f"{threads} threads; torch {environment['torch']}, onnxruntime {environment['onnxruntime']}; "
          f"load average {environment['load_average_start'][0]:.2f}", flush=True)  # fmt: skip
    if plan.unavailable:
        print("not available here: " + "; ".join(f"{k} ({v})" for k, v in plan.unavailable.items()), flush=True)
    load = environment["load_average_start"][0]
    if load > 0.5 * (os.cpu_count() or 1):
        log(f"warning: load average {load:.2f} on {os.cpu_count()} CPUs: other work is running, timings will be noisy")
    document: dict = {"environment": environment, "settings": _settings(args, plan)}
    rows: list[ResultRow] = []
    sweep: list[SweepRow] = []
    profile: list[ProfileRow] = []
    if "table" in args.sections:
        rows = measure_table(args, plan, threads)
        _print_section(f"Latency ({threads} threads, {args.device}; 'vs reference': latency / torchvision LR-ASPP "
                       "eager, timed in the same rounds)", result_table(rows))  # fmt: skip
        document["results"] = rows
        _warn_about_differences(rows)
    if "sweep" in args.sections:
        sweep = measure_sweep(args, plan, threads)
        _print_section(f"Width (alpha) and resolution (rho) sweep of {args.sweep_preset}, batch 1", sweep_table(sweep))
        document["sweep"] = sweep
    if "profile" in args.sections:
        profile, tops, totals = measure_profile(args, plan, threads)
        size = args.sizes[0]
        _print_section(f"Where the time goes: {args.profile_preset}, 1x{size[0]}x{size[1]}, per forward pass under "
                       f"the profiler ({args.profile_runs} runs)", profile_table(profile))  # fmt: skip
        if tops:
            _print_section(f"Slowest {args.top} operators per backend", top_table(tops))
        document["profile"] = profile
        document["profile_top"] = tops
        document["profile_total_ms"] = totals
    environment["load_average_end"] = list(os.getloadavg())
    environment["seconds"] = round(time.perf_counter() - started, 1)
    print(f"\nload average at the end {environment['load_average_end'][0]:.2f}; "
          f"{environment['seconds']:.0f} s in all", flush=True)  # fmt: skip
    if "csv" in paths:
        write_csv(paths["csv"], rows, ResultRow)
    if "sweep" in paths:
        write_csv(paths["sweep"], sweep, SweepRow)
    if "profile" in paths:
        write_csv(paths["profile"], profile, ProfileRow)
    if "plot" in paths:
        title = (f"{environment['cpu']} ({args.device}), {threads} threads, torch {environment['torch']}, "
                 f"onnxruntime {environment['onnxruntime']}")  # fmt: skip
        plot_latency(paths["plot"], rows, title)
    write_json(paths["json"], document)
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return 0


def _settings(args: argparse.Namespace, plan: Plan) -> dict:
    return {
        "presets": plan.presets, "backends": plan.backends, "profile_backends": plan.profile_backends,
        "unavailable_backends": plan.unavailable, "sizes": args.sizes, "batch_sizes": args.batch_sizes,
        "warmup": args.warmup, "rounds": args.rounds, "min_rounds": args.min_rounds,
        "group_seconds": args.group_seconds, "sweep_preset": args.sweep_preset, "alphas": args.alphas,
        "rhos": args.rhos, "profile_preset": args.profile_preset, "profile_runs": args.profile_runs,
        "num_classes": args.num_classes,
    }  # fmt: skip


def _warn_about_differences(rows: list[ResultRow]) -> None:
    """A backend whose logits drift from eager fp32 beyond float rounding is named, not hidden."""
    for row in rows:
        if row.argmax_agreement is not None and row.argmax_agreement < 0.99:
            print(f"note: {row.model} on {row.backend} ({row.batch_size}x{row.size}) agrees with eager fp32 on "
                  f"{100 * row.argmax_agreement:.1f}% of sampled pixels (max relative logit difference "
                  f"{row.max_relative_difference:.1e})")  # fmt: skip
