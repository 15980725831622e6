"""What a classic strategy is made of, and the per-symbol :class:`Tracker` the daemon feeds.

A classic strategy names its indicator values (``Values``: name → array, NaN during warm-up),
computes them for a whole history (:meth:`ClassicStrategy.batch`) or opens TA-Lib streams on a
history and carries them one bar at a time (:meth:`ClassicStrategy.open`), and turns values into
opinions with :meth:`ClassicStrategy.rule`. A rule may also read the previous bar's value of
some names (``prev_<name>``), e.g. to see a crossing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import talib.abstract
from talib import InsufficientHistory  # type: ignore[attr-defined]  # not in talib's stubs

from tbotd.domain.market import Candle
from tbotd.domain.values import datetime_to_ms, timeframe_ms
from tbotd.strategy.kinds import ClassicName
from tbotd.strategy.signal import Floats, Opinions

Values = Mapping[str, Floats]


class Streams(Protocol):
    """Open TA-Lib streams of one strategy for one symbol."""

    def update(self, high: float, low: float, close: float) -> dict[str, float]:
        """Feed one closed candle; the strategy's values at that bar."""
        ...


class ClassicStrategy(Protocol):
    """A rule strategy: its indicators (batch and streaming) and its rule."""

    @property
    def name(self) -> ClassicName:
        """Which one it is."""
        ...

    @property
    def outputs(self) -> tuple[str, ...]:
        """The names of its values."""
        ...

    @property
    def previous(self) -> tuple[str, ...]:
        """Values whose previous bar the rule reads as ``prev_<name>``."""
        ...

    @property
    def bars_to_open(self) -> int:
        """The shortest history :meth:`open` may be given (the most any indicator needs)."""
        ...

    def batch(self, high: Floats, low: Floats, close: Floats) -> dict[str, Floats]:
        """Every bar's values (NaN until the indicators' warm-up is complete)."""
        ...

    def open(self, high: Floats, low: Floats, close: Floats) -> tuple[Streams, dict[str, Floats]]:
        """Streams positioned at the last bar, and the batch values over the history."""
        ...

    def rule(self, values: Values) -> Opinions:
        """Opinions from values (and ``prev_`` values), one per element."""
        ...


def bars_to_open(function: str, **parameters: float) -> int:
    """The history TA-Lib needs to open ``function``'s stream: its lookback, plus the bar whose
    value the stream starts from.

    Why ask before opening instead of catching ``InsufficientHistory``: on a shorter history
    ta-lib 0.8.2's ``open_and_fill`` hands the C opener an output pointer past the end of its
    output array, and the answer then depends on what lies next to it on the heap — usually
    ``InsufficientHistory``, sometimes ``TA_BAD_PARAM`` (seen once in CI, reproduced in a worker
    thread: 623 of 20,000 such calls).
    """
    described = talib.abstract.Function(function, **parameters)  # type: ignore[attr-defined]
    return int(described.lookback) + 1


def with_previous(values: dict[str, Floats], names: Sequence[str]) -> dict[str, Floats]:
    """``values`` plus ``prev_<name>``: each array shifted one bar later (NaN first)."""
    out = dict(values)
    for name in names:
        v = values[name]
        out[f"prev_{name}"] = np.concatenate([[np.nan], v[:-1]]) if len(v) else v
    return out


class Tracker:
    """One symbol's indicator streams in the daemon, fed the candles it has not seen yet.

    The first call (or one after a gap in the candles) opens the streams on the whole history
    given; later calls feed only the new closed candles, O(1) each. Until the history is long
    enough for every indicator the values are NaN, and the rule abstains (warm-up).
    """

    def __init__(self, strategy: ClassicStrategy) -> None:
        self.strategy = strategy
        self._streams: Streams | None = None
        self._last_ms: int | None = None
        self._step_ms = 0
        self._bars: tuple[list[float], list[float], list[float]] = ([], [], [])
        self._current: dict[str, float] = {}
        self._previous: dict[str, float] = {}

    def values(self, history: Sequence[Candle]) -> dict[str, Floats]:
        """The values (``prev_`` included) at the newest candle of ``history``, as length-1
        arrays for :meth:`ClassicStrategy.rule`."""
        if history:
            step = timeframe_ms(history[-1].timeframe)
            last = self._last_ms
            first_new = len(history)
            while last is not None and first_new and _ms(history[first_new - 1]) > last:
                first_new -= 1
            fresh = list(history[first_new:])
            contiguous = (
                last is not None
                and step == self._step_ms
                and (not fresh or _ms(fresh[0]) == last + step)
            )
            if not contiguous:
                self.reset()
                self._step_ms = step
                fresh = list(history)
            for c in fresh:
                self.push(_ms(c), float(c.high), float(c.low), float(c.close))
        return self.current()

    def reset(self) -> None:
        """Forget everything (the next candles open the streams again)."""
        self._streams, self._last_ms = None, None
        self._bars = ([], [], [])
        self._current, self._previous = {}, {}

    def push(self, open_ms: int, high: float, low: float, close: float) -> None:
        """Feed one closed candle."""
        self._last_ms = open_ms
        self._previous = self._current
        if self._streams is not None:
            self._current = self._streams.update(high, low, close)
            return
        highs, lows, closes = self._bars
        highs.append(high)
        lows.append(low)
        closes.append(close)
        arrays = np.array(highs), np.array(lows), np.array(closes)
        streams: Streams | None = None
        if len(closes) >= self.strategy.bars_to_open:
            try:
                streams, series = self.strategy.open(*arrays)
            except InsufficientHistory:  # a seeding that wants more than the lookback
                streams = None
        if streams is None:  # warming up: the few bars so far, in batch
            series = self.strategy.batch(*arrays)
        else:
            self._streams, self._bars = streams, ([], [], [])
        self._current = {k: float(v[-1]) for k, v in series.items()}
        self._previous = {k: float(v[-2]) if len(v) > 1 else np.nan for k, v in series.items()}

    def current(self) -> dict[str, Floats]:
        """The newest values as length-1 arrays (NaN where not known yet)."""
        out: dict[str, Floats] = {}
        for name in self.strategy.outputs:
            out[name] = np.array([self._current.get(name, np.nan)])
        for name in self.strategy.previous:
            out[f"prev_{name}"] = np.array([self._previous.get(name, np.nan)])
        return out


def _ms(candle: Candle) -> int:
    return datetime_to_ms(candle.open_time)
