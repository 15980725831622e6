"""The reliability harnesses: chaos (SIGKILL at random instants), the fault matrix and the soak.

Shared by the benchmark scripts (``benchmarks/chaos.py``, ``benchmarks/fault_matrix.py``,
``benchmarks/soak.py``: full runs, figures in docs/RELIABILITY.md) and by their short versions in
``tests/reliability`` (run by pytest in CI). Everything runs the real processes: ``tbotd sim``
(accelerated, with its admin routes) and ``tbotd run`` in live mode against it, with an
in-process "oracle" ML server (:mod:`.oracle`) that gives confident signals in a fixed pattern.
"""
