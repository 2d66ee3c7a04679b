"""Benchmark worker processes: one per (model, backend, size, batch), driven in alternating rounds.

Each engine lives in its own process, so that its peak memory is its own (native allocators,
ONNX Runtime's arena and TorchInductor keep memory that a per-process measure sees and tracemalloc
does not), and a crash or a hang costs one row, not the run. The parent sends "time one call" to
each worker of a group in turn, round after round (the order shuffled), so load that comes and
goes on the machine hits every engine of the group alike; only one worker computes at a time.

Workers are forked from a fork server that imported torch (and the backends' runtimes) but never
ran an operator, which is safe for OpenMP thread pools. The rounds are ``benchmarks.harness.interleaved``'s,
each worker timing its own call (the pipe's latency is not timed).

Peak memory of a row: the worker's peak resident set size during the timed calls (Linux
``VmHWM``, reset through ``/proc/self/clear_refs`` after the first call, which compiles, plans
and allocates arenas) minus its resident size before the model was built. It covers the weights,
the runtime's state (ONNX Runtime's session and arena, TorchInductor's compiled code), the
activations and the runtime code the calls touch. PyTorch engines on CUDA report
``torch.cuda.max_memory_allocated`` over the timed calls instead (weights included).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import os
import resource
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch

from benchmarks.engines import BACKENDS, Case
from benchmarks.harness import interleaved, timed
from benchmarks.profiles import PROFILERS, OperatorProfile

SIGNATURE_PIXELS = (64, 128)
"""Logits are compared between backends on a strided subsample of about this many pixels."""


class WorkerError(RuntimeError):
    """A worker failed (its message is the reason) or stopped answering."""


# ---------------------------------------------------------------------------------------------
# Memory of this process


def _status_bytes(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def resident_bytes() -> int | None:
    """Current resident set size (Linux), else ``None``."""
    return _status_bytes("VmRSS")


def reset_peak() -> bool:
    """Start a new high-water mark of resident memory (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def peak_bytes() -> int:
    """The high-water mark of resident memory (Linux ``VmHWM``; elsewhere the process's peak, ``ru_maxrss``)."""
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB elsewhere


def _release_free_memory() -> None:
    """Return freed heap memory to the system (glibc), so it is not mistaken for an engine's."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# ---------------------------------------------------------------------------------------------
# The worker


def _signature(output: Any) -> np.ndarray:
    logits = torch.as_tensor(output).detach().float().cpu()
    step_y = max(1, logits.shape[-2] // SIGNATURE_PIXELS[0])
    step_x = max(1, logits.shape[-1] // SIGNATURE_PIXELS[1])
    return logits[..., ::step_y, ::step_x].numpy().copy()


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _worker(connection: Connection, case: Case, seed: int) -> None:
    """Build the engine, then answer the parent's commands until "stop"."""
    try:
        torch.set_num_threads(case.threads)
        if case.device.startswith("cuda"):
            torch.cuda.set_device(torch.device(case.device))
            torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels in warm-up
        baseline = resident_bytes() or peak_bytes()
        torch.manual_seed(seed)  # the same weights in every worker of a model
        backend = BACKENDS[case.backend]
        model = case.model.build().eval()
        target = backend.build(model, case)
        del model
        # PyTorch's CUDA allocator counts what torch engines hold on the GPU; other runtimes
        # (ONNX Runtime's CUDA provider) allocate outside it: their host memory is what is measured
        on_gpu = target.cuda_memory
        _release_free_memory()
        connection.send(("ready", None))
    except BaseException as error:  # anything: the parent reports it as this row's failure
        connection.send(("error", _describe(error)))
        return
    signature = None
    peak_method = None
    calls = 0
    outputs: list[Any] = []
    time_call = timed(lambda: outputs.append(target.call(target.inputs)), lambda: _synchronize(case.device))
    while True:
        command, argument = connection.recv()
        try:
            if command == "time":
                elapsed = time_call()
                output = outputs.pop()
                calls += 1
                if calls == 1:  # the first call compiles, plans or allocates arenas: measure memory after it
                    signature = _signature(output)
                    del output
                    _release_free_memory()
                    if on_gpu:
                        torch.cuda.reset_peak_memory_stats()
                        peak_method = "cuda max_memory_allocated"
                    else:
                        peak_method = "VmHWM after warm-up" if reset_peak() else "peak RSS including loading"
                        if case.device.startswith("cuda"):
                            peak_method += " (host memory only)"
                connection.send(("time", elapsed))
            elif command == "finish":
                if on_gpu:
                    peak = torch.cuda.max_memory_allocated()
                else:
                    peak = peak_bytes() - baseline
                connection.send(("finish", {"peak_bytes": peak, "peak_method": peak_method, "signature": signature}))
            elif command == "profile":
                if backend.profile is None:
                    raise ValueError(f"backend {case.backend!r} has no per-operator profile")
                connection.send(("profile", PROFILERS[backend.profile](target, argument)))
            elif command == "stop":
                connection.send(("stopped", None))
                return
            else:
                raise ValueError(f"unknown command {command!r}")
        except BaseException as error:
            connection.send(("error", _describe(error)))
            return


def _describe(error: BaseException) -> str:
    """One line for the table, the traceback's last frames for the JSON."""
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}\n" + "".join(lines[-3:])


# ---------------------------------------------------------------------------------------------
# The parent side


_CONTEXT = None
_PRELOAD = ["benchmarks.workers"]


def preload_modules(modules: list[str]) -> None:
    """Modules the fork server imports besides torch and the backends (before its first worker)."""
    _PRELOAD.extend(module for module in modules if module not in _PRELOAD)


def _context() -> multiprocessing.context.BaseContext:
    global _CONTEXT
    if _CONTEXT is None:
        # the profiler's C++ logger reports the missing GPU on every profile otherwise
        os.environ.setdefault("KINETO_LOG_LEVEL", "5")
        if "forkserver" in multiprocessing.get_all_start_methods():
            _CONTEXT = multiprocessing.get_context("forkserver")
            # the server imports torch and the backends once; workers fork from it in milliseconds
            _CONTEXT.set_forkserver_preload(list(_PRELOAD))
        else:
            _CONTEXT = multiprocessing.get_context("spawn")
    return _CONTEXT


class Worker:
    """The parent's handle on one worker process."""

    def __init__(self, case: Case, seed: int = 0, timeout: float = 900.0) -> None:
        self.case = case
        self.timeout = timeout
        self.error: str | None = None
        context = _context()
        self._connection, child = context.Pipe()
        # not a daemon: TorchInductor may start compile worker processes of its own
        self._process = context.Process(target=_worker, args=(child, case, seed))
        self._process.start()
        child.close()
        self._expect("ready")

    def _expect(self, reply: str, timeout: float | None = None) -> Any:
        if self.error is not None:
            raise WorkerError(self.error)
        if not self._connection.poll(timeout or self.timeout):
            self.error = f"no answer within {timeout or self.timeout:.0f} s"
            self.close()
            raise WorkerError(self.error)
        try:
            kind, value = self._connection.recv()
        except (EOFError, OSError):
            self._process.join(5)
            self.error = f"the worker process ended (exit code {self._process.exitcode})"
            raise WorkerError(self.error) from None
        if kind == "error":
            self.error = value
            self.close()
            raise WorkerError(value)
        assert kind == reply, (kind, reply)
        return value

    def _ask(self, command: str, argument: Any = None, reply: str | None = None) -> Any:
        if self.error is not None:
            raise WorkerError(self.error)
        try:
            self._connection.send((command, argument))
        except (BrokenPipeError, OSError):
            self.error = f"the worker process ended (exit code {self._process.exitcode})"
            raise WorkerError(self.error) from None
        return self._expect(reply or command)

    def time_call(self) -> float:
        return self._ask("time")

    def finish(self) -> dict:
        return self._ask("finish")

    def profile(self, runs: int) -> OperatorProfile:
        return self._ask("profile", runs)

    def close(self) -> None:
        graceful = self._process.is_alive() and self.error is None
        if graceful:
            try:
                self._connection.send(("stop", None))
                self._connection.poll(10)
            except (BrokenPipeError, OSError):
                graceful = False
        self._process.join(10 if graceful else 1)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._connection.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


@dataclass
class Measurement:
    """What one worker measured: call times after warm-up, peak memory, output signature, or its error."""

    case: Case
    times: list[float] = field(default_factory=list)
    peak_bytes: int | None = None
    peak_method: str | None = None
    signature: np.ndarray | None = None
    error: str | None = None


def run_group(
    cases: list[Case],
    warmup: int,
    rounds: int,
    min_rounds: int = 3,
    time_budget: float | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> list[Measurement]:
    """Time ``cases`` in alternating rounds (``benchmarks.harness.interleaved``), each in its own worker.

    A case that fails keeps its error and drops out; the others go on.
    """
    measurements = [Measurement(case) for case in cases]
    workers: list[Worker | None] = []
    try:
        for measurement in measurements:  # one at a time: exports and compilations need memory
            log(f"  starting {measurement.case.label}")
            try:
                workers.append(Worker(measurement.case))
            except WorkerError as error:
                measurement.error = str(error)
                workers.append(None)
        running = [(measurement, worker) for measurement, worker in zip(measurements, workers) if worker is not None]
        timings = interleaved([worker.time_call for _, worker in running], warmup, rounds, min(min_rounds, rounds),
                              time_budget, failures=(WorkerError,))  # fmt: skip
        for (measurement, worker), timing in zip(running, timings):
            measurement.times, measurement.error = timing.times, timing.error
            if timing.error is not None:
                continue
            try:
                result = worker.finish()
            except WorkerError as error:
                measurement.error = str(error)
                continue
            measurement.peak_bytes = result["peak_bytes"]
            measurement.peak_method = result["peak_method"]
            measurement.signature = result["signature"]
    finally:
        for worker in workers:
            if worker is not None:
                worker.close()
    return measurements


def profile_case(case: Case, runs: int) -> OperatorProfile:
    """The per-operator profile of one case, in a worker of its own (after one warm-up call)."""
    with Worker(case) as worker:
        worker.time_call()
        return worker.profile(runs)
