"""What a benchmark run measures (``Plan``) and the machine's physical cores: shared by the command
line (``seglite.apps.benchmark``) and the measuring code (``seglite.apps.benchmark_run``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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


@dataclass(frozen=True)
class Plan:
    """What a run measures, resolved against this machine."""

    presets: list[str]
    backends: list[str]
    profile_backends: list[str]
    unavailable: dict[str, str]
