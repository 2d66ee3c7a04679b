"""Where an ExecuTorch ``.pte`` of seglite spends its time: ExecuTorch's own profile (ETDump), summed by operator.

    python benchmarks/executorch_etdump.py demo.int8.pte
    python benchmarks/executorch_etdump.py demo.pte --runs 10 --threads 1

The file runs ``--runs`` times on a uniform-noise image of its input size (after one warm-up
run) with event tracing on; the ETDump's events are read with ``executorch.devtools.Inspector``
and summed by name (XNNPACK's kernels such as ``Convolution (NHWC, QC8) DWConv``, numbered per
node, are summed per kind). ``DELEGATE_CALL`` is the time inside XNNPACK, ``OPERATOR_CALL`` the
time in ExecuTorch's portable kernels outside it (the ``native_call_*`` rows name them).
Needs ``pip install -e ".[executorch]"``.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
from pathlib import Path


def profile(path: Path, runs: int, threads: int | None = None) -> tuple[dict[str, float], dict[str, int]]:
    """(median milliseconds per run, event count) of every event name of ``path``'s ``forward``, on
    ``threads`` XNNPACK threads (default: ExecuTorch's, one per core)."""
    import numpy as np
    import torch
    from executorch.devtools import Inspector
    from executorch.extension.pybindings import portable_lib

    from seglite.inference.executorch import METADATA_METHOD
    from seglite.inference.metadata import META_INPUT_SIZE

    if threads is not None:
        from seglite.inference.executorch import set_threads

        set_threads(threads)  # before the first program is loaded
    program = path.read_bytes()
    # the input size from the file's metadata, read by a module of its own (calling the constant
    # method of a module that records an ETDump crashed ExecuTorch 1.5.1)
    metadata = json.loads(portable_lib._load_for_executorch_from_buffer(program).run_method(METADATA_METHOD, ())[0])
    height, width = json.loads(metadata[META_INPUT_SIZE])
    module = portable_lib._load_for_executorch_from_buffer(program, enable_etdump=True, debug_buffer_size=0)
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, height, width, 3), dtype=np.uint8))
    for _ in range(runs + 1):
        module.forward((image,))
    with tempfile.TemporaryDirectory() as folder:
        etdump = Path(folder) / "profile.etdp"
        module.write_etdump_result_to_file(str(etdump))
        inspector = Inspector(etdump_path=str(etdump))
    totals: dict[str, float] = collections.defaultdict(float)
    counts: dict[str, int] = collections.Counter()
    for block in inspector.event_blocks:
        if block.name != "Execute":
            continue
        for event in block.events:
            if event.perf_data is None:
                continue
            name = re.sub(r" #\d+$", "", event.name)  # XNNPACK numbers its nodes: sum them per kind
            totals[name] += float(np.median(event.perf_data.raw[1:] or event.perf_data.raw))
            counts[name] += 1
    return dict(totals), dict(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pte", type=Path, help="a .pte written by tools/export.py --format executorch")
    parser.add_argument("--runs", type=int, default=5, help="timed runs after one warm-up (default 5)")
    parser.add_argument("--top", type=int, default=16, help="rows to print (default 16)")
    parser.add_argument("--threads", type=int, default=None, help="XNNPACK threads (default: one per core)")
    args = parser.parse_args(argv)
    totals, counts = profile(args.pte, args.runs, args.threads)
    execute = totals.get("Method::execute", sum(totals.values()))
    threads = f", {args.threads} thread(s)" if args.threads else ""
    print(f"{args.pte}: median of {args.runs} runs{threads}, ExecuTorch's ETDump")
    for name, milliseconds in sorted(totals.items(), key=lambda item: -item[1])[: args.top]:
        print(f"  {milliseconds:8.2f} ms  {100 * milliseconds / execute:5.1f}%  x{counts[name]:<3d} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
