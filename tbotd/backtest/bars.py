"""The per-bar record of a backtest: balance, side, quantity and entry price after each bar.

The exact step records every bar it visits and the fast path the stretches in between, always
in bar order, and most consecutive writes carry the state the one before did (a hold, a refused
entry, a quiet stretch). Writing each into four arrays cost four NumPy slice assignments per
step; keeping runs of one state and filling the arrays once, when they are read, costs a
comparison per step. The arrays are those writing each bar at once would leave (quantity and
entry 0 where flat): the runs apply in the order they were written, so a later write over the
same bars wins exactly as an immediate one would (runs in bar order, the simulators' way, are
filled in one pass).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]
Arrays = tuple[Floats, NDArray[np.int8], Floats, Floats]


@dataclass(frozen=True, slots=True)
class BarState:
    """A position as the record keeps it (floats: for curves and ratios only)."""

    balance: float
    sign: int = 0
    qty: float = 0.0
    entry: float = 0.0


class BarRecord:
    """``write(start, stop, state)``: bars ``[start, stop)`` end in ``state``."""

    def __init__(self, n: int) -> None:
        self.n = n
        # the runs, as three parallel lists (read back into arrays at once)
        self._starts: list[int] = []
        self._stops: list[int] = []
        self._states: list[BarState] = []
        self._arrays: Arrays | None = None

    def write(self, start: int, stop: int, state: BarState) -> None:
        """Bars ``[start, stop)`` end with ``state`` (the last run grows when it goes on)."""
        if stop <= start:
            return
        self._arrays = None
        stops = self._stops
        if stops and stops[-1] == start and self._states[-1] is state:
            stops[-1] = stop
            return
        self._starts.append(start)
        stops.append(stop)
        self._states.append(state)

    def arrays(self) -> Arrays:
        """Balance, side sign, quantity and entry price per bar (a bar never written: balance
        unset, no position)."""
        if self._arrays is None:
            self._arrays = _filled(self.n, self._starts, self._stops, self._states)
        return self._arrays


def _filled(n: int, start: list[int], stop: list[int], states: list[BarState]) -> Arrays:
    """The arrays the runs leave, applied in order (a later run wins over an earlier one)."""
    balance, sign = np.empty(n), np.zeros(n, dtype=np.int8)
    qty, entry = np.zeros(n), np.zeros(n)
    starts, stops = np.array(start, dtype=np.int64), np.array(stop, dtype=np.int64)
    if np.all(np.diff(starts) >= 0) and np.all(np.diff(stops) >= 0):
        # in bar order (as the simulators write): each run owns its bars up to the next run's
        # start, so every bar is written once, all at a time
        ends = np.minimum(stops, np.append(starts[1:], n))
        lengths = np.maximum(ends - starts, 0)
        bars = np.arange(int(lengths.sum())) + np.repeat(
            starts - (np.cumsum(lengths) - lengths), lengths
        )
        balance[bars] = np.repeat([s.balance for s in states], lengths)
        sign[bars] = np.repeat(np.array([s.sign for s in states], np.int8), lengths)
        qty[bars] = np.repeat([s.qty for s in states], lengths)
        entry[bars] = np.repeat([s.entry for s in states], lengths)
        return balance, sign, qty, entry
    for a, b, state in zip(start, stop, states, strict=True):
        s = slice(a, b)
        balance[s], sign[s], qty[s], entry[s] = state.balance, state.sign, state.qty, state.entry
    return balance, sign, qty, entry
