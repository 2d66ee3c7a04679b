"""seglite's benchmarks, beside the installed package (as timm keeps its ``benchmark.py``).

Entry scripts, run from a checkout as ``python benchmarks/<name>.py --help``:

- ``benchmark.py``: every model on every backend, with MACs, memory access cost and per-operator profiles;
- ``predictor.py``: ``Predictor.predict`` on every backend against the deployment goals;
- ``training.py``: the Lightning training loop against a bare PyTorch loop;
- ``data.py``: data-loading throughput of one loader worker;
- ``eager_memory.py``, ``large_image_memory.py``: peak memory of one eager forward and of large images;
- ``executorch_etdump.py``: ExecuTorch's own profile.

One harness serves them: ``harness`` (the one interleaved timing loop, its statistics, the machine's
description), ``workers`` (worker processes and their memory figures), ``report`` (tables, CSV, JSON, plot),
``engines`` (the backends, built on ``seglite.inference``'s engines) and ``profiles``
(per-operator profiles).
"""
