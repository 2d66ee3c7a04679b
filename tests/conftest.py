"""Shared fixtures: a tiny synthetic Cityscapes-layout data set written by the real generator."""

import subprocess
from pathlib import Path

import pytest

from seglite.data.synthetic import make_demo_dataset


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto`` (pytest.ini): one worker per CPU this process may use, a cgroup CPU quota included
    (a container may see the host's CPUs but be allowed two). Every worker runs torch on one thread."""
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(int(quota) // int(period), 1))
    except (OSError, ValueError):
        pass
    return cpus


def _cpu_info() -> tuple[str, set[str]]:
    """The CPU's model name and feature flags as Linux names them (``("", set())`` elsewhere)."""
    name, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not name:
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return name, flags


def pytest_report_header(config) -> str:
    """The CPU class the suite runs on: what a runtime computes by default depends on it (OpenVINO
    runs bf16 where the CPU computes bf16), and $SEGLITE_OPENVINO_PRECISION=f32 runs a bf16 CPU as one
    without it."""
    import torch

    from seglite.inference import openvino

    name, flags = _cpu_info()
    features = [flag for flag in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
                if flag in flags]
    line = (f"cpu: {name or 'unknown'} ({', '.join(features) or 'no flags read'}, {pytest_xdist_auto_num_workers(config)} usable CPUs); "
            f"torch kernels {torch.backends.cpu.get_cpu_capability()}")
    if openvino.available():
        computes = openvino.cpu_computes_bf16()
        runs = "bf16" if openvino.cpu_has_bf16() else "fp32"
        line += f"; OpenVINO default precision {runs} (the CPU {'computes' if computes else 'has no'} bf16"
        forced = openvino.forced_precision()
        line += f", {openvino.PRECISION_ENVIRONMENT}={forced})" if forced else ")"
    return line


def pytest_configure(config) -> None:
    """A run asked to exercise the bf16 branch ($SEGLITE_OPENVINO_PRECISION=bf16) refuses a CPU that cannot
    compute bf16, where it would silently run fp32 twice; a misspelt value is refused too."""
    from seglite.inference import openvino

    try:
        forced = openvino.forced_precision()
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    if forced == "bf16" and not (openvino.available() and openvino.cpu_computes_bf16()):
        raise pytest.UsageError(
            f"{openvino.PRECISION_ENVIRONMENT}=bf16, but OpenVINO computes no bf16 on this CPU (it needs AMX or "
            f"AVX512-BF16, and OpenVINO installed): bf16 cannot be emulated; unset it or use f32"
        )


@pytest.fixture(scope="session")
def tiny_cityscapes(tmp_path_factory) -> Path:
    """8 train / 4 val / 2 test images of 64x128 in the Cityscapes layout."""
    root = tmp_path_factory.mktemp("tiny_cityscapes")
    return make_demo_dataset(root, num_train=8, num_val=4, num_test=2, size=(64, 128), seed=1, video=False)


@pytest.fixture(scope="session", autouse=True)
def private_model_cache(tmp_path_factory):
    """Converted graphs (seglite.inference's cache) go to a temporary folder, never the user's ~/.cache."""
    import os

    previous = os.environ.get("SEGLITE_CACHE_DIR")
    os.environ["SEGLITE_CACHE_DIR"] = str(tmp_path_factory.mktemp("seglite-cache"))
    yield
    if previous is None:
        os.environ.pop("SEGLITE_CACHE_DIR", None)
    else:
        os.environ["SEGLITE_CACHE_DIR"] = previous


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tests run tiny inputs, which gain nothing from intra-op threads; on a busy machine
    spinning OpenMP threads cost seconds per test.

    ``OMP_NUM_THREADS`` is 1 too, whatever the user's shell says: the runtimes follow it before
    torch's setting (``seglite.inference.engine.default_num_threads``), and so do the tools the
    tests start. Tests of that rule set or unset it themselves.
    """
    import os

    import torch

    threads = torch.get_num_threads()
    omp_threads = os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    torch.set_num_threads(threads)
    if omp_threads is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = omp_threads


@pytest.fixture()
def mount_tmpfs(tmp_path):
    """``mount_tmpfs(size_kb, read_only=False)``: a real, tiny tmpfs (a truly full or read-only disk).

    Skips the test where mounting is not allowed (not root, or no ``mount``); the injected-error
    tests cover the same code paths everywhere.
    """
    mounted = []

    def mount(size_kb: int, read_only: bool = False) -> Path:
        target = tmp_path / f"tmpfs{len(mounted)}"
        target.mkdir()
        options = f"size={size_kb}k,mode=0777" + (",ro" if read_only else "")
        try:
            result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, text=True)
        except OSError as error:
            pytest.skip(f"cannot mount a tmpfs here: {error}")
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", str(target)], capture_output=True)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_cityscapes, tmp_path_factory) -> Path:
    """A 19-class checkpoint of the tiny test model after 2 steps, written by ``seglite fit``."""
    from helpers import fit_args, run_config

    from seglite.lit.cli import run_cli

    folder = tmp_path_factory.mktemp("tiny_checkpoint")
    cli = run_cli(fit_args(run_config(folder, "run"), tiny_cityscapes, "--trainer.max_steps=2",
                           "--trainer.val_check_interval=2"))
    return Path(cli.trainer.checkpoint_callback.last_model_path)
