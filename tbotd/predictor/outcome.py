"""What the fallback chain hands the daemon per symbol, and why earlier sources failed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from tbotd.domain.enums import PredictionSource
from tbotd.domain.prediction import Prediction


@dataclass(frozen=True, slots=True)
class SourceFailure:
    """A source that could not give a symbol's prediction: ``remote: timeout``."""

    source: str  # remote, local, local-gpu, local-cpu
    reason: str  # the metrics label: timeout, http_5xx, auth, models_missing, ...
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


class Skip(NamedTuple):
    """Why a local model skipped a symbol: the metrics label and the detail."""

    reason: str  # insufficient_history, out_of_distribution
    detail: str

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True, slots=True)
class PredictionOutcome:
    """The prediction the strategy gets for one symbol, where it came from and what failed."""

    prediction: Prediction
    latency_ms: float
    failures: tuple[SourceFailure, ...] = ()

    @property
    def source(self) -> PredictionSource:
        """remote, local-gpu, local-cpu or neutral."""
        return self.prediction.source

    @property
    def reasons(self) -> tuple[str, ...]:
        """The failures as ``"source: reason"`` strings (for logs and status pages)."""
        return tuple(str(f) for f in self.failures)
