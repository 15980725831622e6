"""Turning each symbol's candle history into float arrays, cheaply, every cycle.

Converting Decimals to floats is the slowest part of a live prediction (≈0.6 µs per candle ×
hundreds of candles × dozens of symbols). Candles are frozen, so a candle *object* seen in the
previous cycle still has the same values: :class:`SeriesCache` keeps the last conversion per symbol
and, when the new history is the old one shifted by a few candles (the normal case), converts only
the new ones. Reuse needs the very same candle objects (or equal ones), never merely equal time
stamps, so a corrected candle is always converted afresh.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.market import Candle
from tbotd.domain.values import datetime_to_ms, timeframe_ms
from tbotd.features import FEATURE_NAMES, Bars, latest_features
from tbotd.ml.errors import InsufficientHistoryError


def newest(history: Sequence[Candle], n: int) -> list[Candle]:
    """A snapshot list of the newest ``n`` candles (works for lists, tuples and deques)."""
    size = len(history)
    if isinstance(history, list | tuple):
        return list(history[max(size - n, 0) :])
    return list(itertools.islice(history, max(size - n, 0), size))


@dataclass(frozen=True)
class Series:
    """One symbol's newest candles as arrays: int64 open times, float64 OHLCV [T, 5]."""

    candles: list[Candle]
    open_time: NDArray[np.int64]
    values: NDArray[np.float64]


def _convert(candles: Sequence[Candle]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    times = np.array([datetime_to_ms(c.open_time) for c in candles], dtype=np.int64)
    values = np.array(
        [
            (float(c.open), float(c.high), float(c.low), float(c.close), float(c.volume))
            for c in candles
        ],
        dtype=np.float64,
    ).reshape(len(candles), 5)
    return times, values


def overlap(old: list[Candle], new: list[Candle]) -> int:
    """Index in ``old`` where ``new`` starts when ``new`` continues ``old``; -1 if it does not.

    List equality compares identical objects without calling ``__eq__`` (a C loop), and equal
    frozen candles carry equal values, so a reused conversion is always the right one.
    """
    if not old or not new:
        return -1
    first = new[0]
    for start in range(len(old)):
        if old[start] is first:
            shared = len(old) - start
            return start if shared <= len(new) and old[start:] == new[:shared] else -1
    return -1


class SeriesCache:
    """Per-symbol arrays of the newest ``length`` candles; converts only candles not seen before."""

    def __init__(self, length: int, timeframe: str) -> None:
        self.length = length
        self.timeframe = timeframe
        self._step = timeframe_ms(timeframe)
        self._series: dict[str, Series] = {}
        self._lock = threading.Lock()

    def series(self, symbol: str, candles: list[Candle]) -> Series:
        """Arrays for ``candles`` (the newest ``length`` of a symbol), checked to be consecutive."""
        if len(candles) < self.length:
            raise InsufficientHistoryError(
                f"{symbol}: {len(candles)} closed candles, the local models need {self.length}"
            )
        candles = candles[len(candles) - self.length :]
        last = candles[-1]
        if last.timeframe != self.timeframe:
            raise InsufficientHistoryError(
                f"{symbol}: candles are {last.timeframe}, the local models were trained on "
                f"{self.timeframe}"
            )
        with self._lock:
            cached = self._series.get(symbol)
        start = overlap(cached.candles, candles) if cached else -1
        if cached is not None and start >= 0:
            shared = len(cached.candles) - start
            times, values = _convert(candles[shared:])
            times = np.concatenate([cached.open_time[start:], times])
            values = np.concatenate([cached.values[start:], values])
        else:
            times, values = _convert(candles)
        steps = np.diff(times)
        if len(steps) and not np.all(steps == self._step):
            bad = int(np.flatnonzero(steps != self._step)[0])
            after = candles[bad].open_time.isoformat()
            raise InsufficientHistoryError(
                f"{symbol}: the newest {self.length} candles are not consecutive "
                f"{self.timeframe} bars (gap or disorder after {after})"
            )
        series = Series(candles, times, values)
        with self._lock:
            self._series[symbol] = series
        return series

    def forget(self, symbol: str) -> None:
        """Drop a symbol's cached arrays (e.g. when it leaves the configured universe)."""
        with self._lock:
            self._series.pop(symbol, None)


def latest_feature_rows(
    cache: SeriesCache, histories: Mapping[str, Sequence[Candle]], length: int
) -> tuple[list[str], list[Series], NDArray[np.float64], dict[str, str]]:
    """Features [S, F] of the newest candle of every symbol whose history is usable.

    Returns (symbols, their series, the feature matrix in that order, {symbol: problem} for the
    symbols left out because their newest ``length`` candles are too few, gappy or of another
    timeframe). Used by the local predictor and by the remote OIP client, which sends exactly
    the features the local models would see.
    """
    symbols: list[str] = []
    series: list[Series] = []
    problems: dict[str, str] = {}
    for symbol, history in histories.items():
        try:
            series.append(cache.series(symbol, newest(history, length)))
            symbols.append(symbol)
        except InsufficientHistoryError as e:
            problems[symbol] = str(e)
    if not series:
        return [], [], np.zeros((0, len(FEATURE_NAMES))), problems
    times = np.stack([s.open_time for s in series])
    values = np.stack([s.values for s in series])
    bars = Bars(times, *(np.ascontiguousarray(values[:, :, k]) for k in range(5)))
    return symbols, series, latest_features(bars), problems
