"""Choosing where the local models run and how many CPU threads torch may use."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from collections.abc import Sequence

# Idle OpenMP workers sleep instead of spinning: a spinning worker steals the core another job
# needs, which is what made 2 threads slower than 1 on a busy box. Read when torch loads, so it
# must be set before the import; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from tbotd.domain.enums import PredictionSource
from tbotd.domain.errors import ConfigError

# Multiply-adds of one training batch (batch rows × weights of one model) below which intra-op
# threads do not pay: the bundled MLPs (25 features, 64×64 hidden, batches of 1,024: ≈ 6 M) gain
# at most 1.4× from a second core on a quiet box and lose 1.25× when another job holds a core
# (benchmarks/RESULTS.md). Ten times that is a guess at where a second thread starts to pay.
PARALLEL_WORK = 64_000_000


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when ``torch.cuda.is_available()``, else CPU; ``cuda`` without a GPU is a
    configuration error rather than a silent fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA GPU; use auto or cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, not {name!r}")
    return torch.device(name)


def source_for(device: torch.device) -> PredictionSource:
    """``local-gpu`` for CUDA, ``local-cpu`` otherwise."""
    return PredictionSource.LOCAL_GPU if device.type == "cuda" else PredictionSource.LOCAL_CPU


def inference_threads() -> int:
    """Threads for inference: 1.

    The model calls are fixed 64-row blocks through small MLPs (≈ 0.4 M multiply-adds, far below
    :data:`PARALLEL_WORK`), so more threads only add overhead and compete with the asyncio event
    loop and any other job on the box for cores.
    """
    return 1


def batch_work(n_features: int, hidden: Sequence[int], n_outputs: int, batch_size: int) -> int:
    """Multiply-adds of one forward pass of a batch through one MLP (the backward is ~2× more)."""
    widths = [n_features, *hidden, n_outputs]
    return batch_size * sum(a * b for a, b in itertools.pairwise(widths))


def training_threads(work: int, cpus: int, load: float) -> int:
    """``--threads auto``: 1 unless a batch is big enough to split and cores are idle now.

    Small models spend their time in per-op overhead that more threads do not shrink, and a thread
    that finds its core taken holds up every op, so with one core busy 2 threads were slower than
    1 (25.7 s against 20.6 s). One thread also gives the same weights whatever the load.
    Large batches get the cores the 1-minute load average leaves idle.
    """
    if work < PARALLEL_WORK:
        return 1
    return max(1, cpus - math.ceil(load))


def idle_cpus() -> tuple[int, float]:
    """The cores this process may run on and the 1-minute load average (the I/O for the rule)."""
    return len(os.sched_getaffinity(0)), os.getloadavg()[0]


def auto_threads(hidden: Sequence[int], batch_size: int) -> int:
    """:func:`training_threads` for models of this shape on this machine, as it is loaded now."""
    from tbotd.features import FEATURE_NAMES

    cpus, load = idle_cpus()
    return training_threads(batch_work(len(FEATURE_NAMES), hidden, 3, batch_size), cpus, load)


def set_threads(n: int) -> None:
    """Cap torch's intra-op threads (process-wide) at ``n``, and its inter-op pool at 1.

    Nothing here runs ops in parallel across the graph, so the inter-op pool would only be more
    threads to schedule; torch refuses to resize it once it exists, hence the guard.
    """
    if n < 1:
        raise ConfigError(f"threads must be at least 1, not {n}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if torch.get_num_interop_threads() != 1:
        with contextlib.suppress(RuntimeError):  # the pool started: torch allows one setting
            torch.set_num_interop_threads(1)
