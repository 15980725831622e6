"""The candle windows the cycle hands the predictor and the strategy, kept in memory."""

from __future__ import annotations

from collections import deque
from datetime import datetime

from tbotd.domain.market import Candle
from tbotd.store import Store


class Histories:
    """The last ``size`` closed candles per symbol, loaded once and extended incrementally.

    Reading a thousand candles from SQLite every cycle for every symbol would dominate the
    cycle's latency; the store stays the source of truth and only new rows are read.
    """

    def __init__(self, store: Store, timeframe: str, size: int) -> None:
        self._store, self._timeframe, self._size = store, timeframe, size
        self._data: dict[str, deque[Candle]] = {}

    def upto(self, symbol: str, candle_time: datetime) -> list[Candle]:
        """Candles of ``symbol`` up to and including the one that opened at ``candle_time``."""
        window = self._data.get(symbol)
        if window is None:
            window = deque(
                self._store.candles(symbol, self._timeframe, limit=self._size), maxlen=self._size
            )
            self._data[symbol] = window
        elif window:
            newest = window[-1].open_time
            fresh = self._store.candles(symbol, self._timeframe, since=newest)
            window.extend(c for c in fresh if c.open_time > newest)
        return [c for c in window if c.open_time <= candle_time]
