"""Choosing where the local models run and how many CPU threads torch may use."""

from __future__ import annotations

import os

import torch

from tbotd.domain.enums import PredictionSource
from tbotd.domain.errors import ConfigError


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
    """Threads for live inference: all cores but one (at least 1), at most 4.

    The batches are tiny (one row per symbol), so more threads only add overhead, and the asyncio
    event loop needs a core of its own: on a 2-core box this is 1.
    """
    return max(1, min((os.cpu_count() or 1) - 1, 4))


def set_threads(n: int) -> None:
    """Cap torch's intra-op threads (process-wide) at ``n``."""
    if n < 1:
        raise ConfigError(f"threads must be at least 1, not {n}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
