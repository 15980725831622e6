"""What the cycle needs of its adapters (the predictor chain and the candle feed), as
protocols: the cycle is wired with real ones by the app and with in-memory ones by the tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from tbotd.domain.market import Candle
from tbotd.domain.prediction import Prediction
from tbotd.execution.broker import PriceRef


class Outcome(Protocol):
    """What the predictor returns per symbol (see tbotd.predictor.fallback)."""

    @property
    def prediction(self) -> Prediction:
        """The prediction for the candle that just closed."""
        ...

    @property
    def latency_ms(self) -> float:
        """How long it took to get it."""
        ...


class Predictor(Protocol):
    """remote → local → neutral, always answering within its deadline."""

    async def predict(
        self, histories: Mapping[str, Sequence[Candle]], candle_time: datetime
    ) -> Mapping[str, Outcome]:
        """One prediction per symbol for the candle that opened at ``candle_time``."""
        ...


class Feed(Protocol):
    """What the cycle needs of the candle feed."""

    async def wait_closed(self, open_time: datetime, timeout_s: float) -> dict[str, Candle]:
        """The closed candles of ``open_time`` that arrived before the deadline."""
        ...

    def price(self, symbol: str) -> PriceRef:
        """The price an order placed now would fill near."""
        ...
