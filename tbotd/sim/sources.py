"""Where the sim's prices come from: a CSV of real candles or a seeded regime-switching generator.

Both sources hand out bars as integer arrays (prices in units of ``10**-price_exp``, volumes in
units of ``10**-volume_exp``), so they are exact and compact: a year of 5-minute candles is a few
megabytes, not a million Decimal objects. Either source is a pure function of its input (the
file, or the seed and origin) and the time asked for, which makes the market at market-time *t*
reproducible.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from tbotd.domain.errors import InvalidDataError
from tbotd.marketdata.candle_csv import read_candle_csv

IntArray = npt.NDArray[np.int64]
DAY_MS = 86_400_000
MINUTE_MS = 60_000
_CSV_EXP = 8


@dataclass(frozen=True, slots=True)
class Bars:
    """Consecutive bars (gaps allowed) as parallel integer arrays, ordered by open time."""

    times: IntArray
    open: IntArray
    high: IntArray
    low: IntArray
    close: IntArray
    volume: IntArray

    def __len__(self) -> int:
        return len(self.times)

    def slice(self, lo: int, hi: int) -> Bars:
        """Rows ``lo:hi``."""
        return Bars(*(a[lo:hi] for a in self.columns()))

    def columns(self) -> tuple[IntArray, ...]:
        """The six arrays in OHLCV order, times first."""
        return (self.times, self.open, self.high, self.low, self.close, self.volume)


class CandleSource(Protocol):
    """A price series: base bars of ``base_ms`` with integer-scaled prices and volumes."""

    base_ms: int
    price_exp: int
    volume_exp: int
    first_ms: int
    last_ms: int | None  # open time of the last bar, None when the series never ends

    def window(self, start_ms: int, end_ms: int) -> Bars:
        """Bars whose open time is in ``[start_ms, end_ms)``."""
        ...


def _empty() -> Bars:
    z = np.zeros(0, dtype=np.int64)
    return Bars(z, z, z, z, z, z)


class CsvSource:
    """Candles from ``timestamp,open,high,low,close,volume`` (open time in ms), plain or gzipped."""

    price_exp = _CSV_EXP
    volume_exp = _CSV_EXP

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bars = _load_csv(path)
        times = self.bars.times
        diffs = np.diff(times)
        self.base_ms = int(diffs.min()) if len(diffs) else 300_000
        if self.base_ms <= 0 or np.any(times % self.base_ms):
            raise InvalidDataError(f"{path}: timestamps are not aligned to {self.base_ms} ms")
        self.first_ms = int(times[0])
        self.last_ms: int | None = int(times[-1])

    def window(self, start_ms: int, end_ms: int) -> Bars:
        """Bars whose open time is in ``[start_ms, end_ms)``."""
        lo = int(np.searchsorted(self.bars.times, start_ms, side="left"))
        hi = int(np.searchsorted(self.bars.times, end_ms, side="left"))
        return self.bars.slice(lo, hi)


def _load_csv(path: Path) -> Bars:
    """The candles through the one candle-CSV reader, as exact integers."""
    frame = read_candle_csv(path).frame
    values = frame[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)
    if values.max() * 10**_CSV_EXP >= 2**53:
        raise InvalidDataError(f"{path}: a price or volume is too large for the sim")
    scaled = np.rint(values * 10**_CSV_EXP).astype(np.int64)
    times = frame["open_time"].to_numpy(np.int64)
    return Bars(times, *(scaled[:, i] for i in range(5)))


# Regimes of the generator: (drift per minute, volatility multiplier).
_REGIMES = ((0.000004, 1.0), (0.0, 0.6), (-0.000005, 1.5))  # trend up, sideways, trend down
_PULL = 0.05  # share of the log distance to the starting price pulled back each day
_STAY = 0.97  # chance a regime lasts another hour
_SIGMA_1M = 0.0007  # ≈ 0.16 % per 5 minutes, BTC-like
_BASE_VOLUME = 60.0  # coins per minute


class GeneratorSource:
    """A seeded random market: 1-minute bars, Student-t returns, hourly Markov regime switches.

    Days are generated from ``origin_ms`` onwards, each from its own RNG stream seeded by
    ``(seed, asset, day)`` and the previous day's closing state, so any bar is a deterministic
    function of ``(seed, asset, origin, time)``. Only each day's end state and a few recent days
    are kept in memory.
    """

    base_ms = MINUTE_MS
    volume_exp = 3
    last_ms: int | None = None

    def __init__(
        self, seed: int, asset: str, start_price: Decimal, tick: Decimal, origin_ms: int
    ) -> None:
        if origin_ms % DAY_MS:
            raise InvalidDataError("generator origin must be a UTC midnight")
        self.seed = seed
        self.asset_code = int.from_bytes(asset.encode()[:8].ljust(8, b"\0"), "big") % 2**31
        self.price_exp = max(0, -tick.normalize().as_tuple().exponent)  # type: ignore[operator]
        self.first_ms = origin_ms
        start_units = int(start_price.scaleb(self.price_exp))
        self._start_units = start_units
        self._states: list[tuple[int, int]] = [(start_units, 1)]  # (close units, regime) per day
        self._days: OrderedDict[int, Bars] = OrderedDict()

    def window(self, start_ms: int, end_ms: int) -> Bars:
        """Bars whose open time is in ``[start_ms, end_ms)``."""
        start_ms = max(start_ms, self.first_ms)
        if end_ms <= start_ms:
            return _empty()
        first_day = (start_ms - self.first_ms) // DAY_MS
        last_day = (end_ms - 1 - self.first_ms) // DAY_MS
        parts = [self._day(d) for d in range(first_day, last_day + 1)]
        cols = [np.concatenate(c) for c in zip(*(p.columns() for p in parts), strict=True)]
        bars = Bars(*cols)
        lo = int(np.searchsorted(bars.times, start_ms, side="left"))
        hi = int(np.searchsorted(bars.times, end_ms, side="left"))
        return bars.slice(lo, hi)

    def _day(self, day: int) -> Bars:
        cached = self._days.get(day)
        if cached is not None:
            self._days.move_to_end(day)
            return cached
        while len(self._states) <= day:  # walk forward, remembering only each day's end state
            self._generate(len(self._states) - 1)
        bars = self._generate(day)
        self._days[day] = bars
        if len(self._days) > 64:
            self._days.popitem(last=False)
        return bars

    def _generate(self, day: int) -> Bars:
        price, regime = self._states[day]
        rng = np.random.default_rng([self.seed, self.asset_code, day])
        regimes = np.empty(24, dtype=np.int64)
        for hour in range(24):
            if rng.random() > _STAY:
                regime = (regime + 1 + int(rng.integers(0, 2))) % 3
            regimes[hour] = regime
        per_minute = np.repeat(regimes, 60)
        drift = np.array([r[0] for r in _REGIMES])[per_minute]
        vol = _SIGMA_1M * np.array([r[1] for r in _REGIMES])[per_minute]
        noise = rng.standard_t(4, 1440) * math.sqrt(0.5)
        scale = 10.0**self.price_exp
        pull = -_PULL * math.log(price / self._start_units) / 1440
        log_close = math.log(price / scale) + np.cumsum(drift + pull + vol * noise)
        close = np.maximum(np.rint(np.exp(log_close) * scale), 1).astype(np.int64)
        open_ = np.concatenate(([price], close[:-1])).astype(np.int64)
        level = close.astype(np.float64)
        wick_up = np.rint(np.abs(rng.standard_normal(1440)) * vol * 0.6 * level).astype(np.int64)
        wick_dn = np.rint(np.abs(rng.standard_normal(1440)) * vol * 0.6 * level).astype(np.int64)
        high = np.maximum(open_, close) + wick_up
        low = np.maximum(np.minimum(open_, close) - wick_dn, 1)
        move = np.abs(np.log(close / open_.astype(np.float64))) / vol
        volume = _BASE_VOLUME * rng.lognormal(0.0, 0.5, 1440) * (1 + move)
        volume_units = np.rint(volume * 10**self.volume_exp).astype(np.int64)
        times = self.first_ms + day * DAY_MS + np.arange(1440, dtype=np.int64) * MINUTE_MS
        if len(self._states) == day + 1:
            self._states.append((int(close[-1]), regime))
        return Bars(times, open_, high, low, close, volume_units)
