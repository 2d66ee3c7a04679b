"""The benchmarks' one timing loop (interleaved rounds after warm-up), its statistics and the machine's cores.

Every benchmark times its candidates with :func:`interleaved`: each candidate takes its turn in
every round, in an order shuffled anew each round (seeded, so a run repeats), so load that comes
and goes on the machine hits them alike and no candidate always follows the same one (a rotating
order keeps each candidate's predecessor, and with it whatever the predecessor's threads leave
behind: the default predict seemed 30% faster than the same OpenVINO path at 1024x2048 that way). Results are medians, minimums and
interquartile ranges (:func:`timing_stats`).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Timer = Callable[[], float | Sequence[float]]
"""One timed run of a candidate: the seconds it took, or several (the step times of a training run)."""

NOISY_SPREAD_PERCENT = 20.0
"""A reference whose interquartile range exceeds this share of its median makes ratios unreliable."""


def log(message: str) -> None:
    """Progress on stderr (the tables go to stdout)."""
    print(message, file=sys.stderr, flush=True)


@dataclass
class Timing:
    """What :func:`interleaved` measured of one candidate: its times after warm-up, or why it dropped out."""

    times: list[float] = field(default_factory=list)
    error: str | None = None


def timed(call: Callable[[], object], synchronize: Callable[[], None] | None = None) -> Timer:
    """A :data:`Timer` of ``call`` in this process (``synchronize`` waits for a device before the clock is read)."""

    def timer() -> float:
        if synchronize is not None:
            synchronize()
        start = time.perf_counter()
        call()
        if synchronize is not None:
            synchronize()
        return time.perf_counter() - start

    return timer


def interleaved(
    timers: Sequence[Timer],
    warmup: int,
    rounds: int,
    min_rounds: int | None = None,
    time_budget: float | None = None,
    settle: float = 0.02,
    failures: tuple[type[BaseException], ...] = (),
) -> list[Timing]:
    """Time ``timers`` in rounds, each in a shuffled order: ``warmup`` untimed rounds, then up to ``rounds`` timed ones.

    The timed rounds stop early (after at least ``min_rounds``, default all) once they have taken
    ``time_budget`` seconds. A timer that raises one of ``failures`` keeps that error and drops out;
    the others go on. Before each run the loop waits ``settle`` seconds: OpenMP and ONNX Runtime
    threads spin for a while after a call, and must not take the cores from the next candidate.
    """
    results = [Timing() for _ in timers]
    min_rounds = rounds if min_rounds is None else min_rounds
    started = None
    shuffle = random.Random(0).shuffle
    order = list(range(len(timers)))
    for round_index in range(warmup + rounds):
        if round_index == warmup:
            started = time.perf_counter()
        shuffle(order)
        for index in order:
            if results[index].error is not None:
                continue
            time.sleep(settle)
            try:
                sample = timers[index]()
            except failures as error:
                results[index].error = str(error)
                continue
            if round_index >= warmup:
                results[index].times.extend(sample if isinstance(sample, Sequence) else [sample])
        timed_rounds = round_index + 1 - warmup
        over_budget = started is not None and time_budget is not None and time.perf_counter() - started > time_budget
        if over_budget and timed_rounds >= min_rounds:
            break
    return results


def timing_stats(times: Sequence[float]) -> tuple[float, float, float]:
    """(median ms, min ms, interquartile range as % of the median)."""
    median = statistics.median(times)
    if len(times) >= 2:
        first, _, third = statistics.quantiles(times, n=4, method="inclusive")
        spread = 100 * (third - first) / median
    else:
        spread = 0.0
    return 1000 * median, 1000 * min(times), spread


def noisy_reference_warning(label: str, times: Sequence[float]) -> str | None:
    """A one-line warning when the reference's timings spread more than :data:`NOISY_SPREAD_PERCENT`, else None."""
    if len(times) < 4:
        return None
    median, fastest, spread = timing_stats(times)
    if spread <= NOISY_SPREAD_PERCENT:
        return None
    return (f"warning: the reference ({label}) spread {spread:.0f}% of its median (interquartile range; "
            f"median {median:.1f} ms, min {fastest:.1f} ms): the machine is busy, ratios to it are unreliable; "
            "compare within one run, or run again with more rounds on a quiet machine")  # fmt: skip


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once), from Linux's CPU topology."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:
        return os.cpu_count() or 1
    cores = set()
    for cpu in allowed:
        try:
            siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip()
        except OSError:
            siblings = str(cpu)
        cores.add(siblings)
    return max(len(cores), 1)
