"""What the prediction chain needs of its parts: where alerts go and what a local model is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from tbotd.domain.enums import PredictionSource
from tbotd.domain.market import Candle
from tbotd.domain.prediction import Prediction
from tbotd.predictor.outcome import Skip


class EventSink(Protocol):
    """Where operator alerts go (``tbotd.store.Store`` is one)."""

    def record_event(
        self, at: datetime, kind: str, message: str, symbol: str | None = None, **data: Any
    ) -> None:
        """Append an audit event."""
        ...


class LocalModel(Protocol):
    """What the chain needs of a local model (:class:`tbotd.predictor.local.LocalPredictor`)."""

    @property
    def source(self) -> PredictionSource:
        """local-gpu or local-cpu."""
        ...

    @property
    def trained_until(self) -> datetime | None:
        """The end of the models' training data (their age counts from it), when known."""
        ...

    @property
    def model_version(self) -> str:
        """The manifest's model version."""
        ...

    def drift_summary(self) -> dict[str, Any]:
        """Live input drift against the training data (``monitoring.drift``)."""
        ...

    async def predict_partial(
        self, histories: Mapping[str, Sequence[Candle]]
    ) -> tuple[dict[str, Prediction], dict[str, Skip]]:
        """Predictions for the usable histories and why the others were skipped."""
        ...

    def close(self) -> None:
        """Release the executor."""
        ...
