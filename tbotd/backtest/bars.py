"""The per-bar record of a backtest: balance, side, quantity and entry price after each bar.

The exact step records every bar it visits and the fast path the stretches in between, always
in bar order, and most consecutive writes carry the state the one before did (a hold, a refused
entry, a quiet stretch). Writing each into four arrays cost four NumPy slice assignments per
step; keeping runs of one state and filling the arrays once, when they are read, costs a
comparison per step. The arrays are the same: the runs are applied in the order they were
written, so a later write over the same bars wins exactly as an immediate one did.
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


@dataclass(slots=True)
class _Run:
    start: int
    stop: int
    state: BarState


class BarRecord:
    """``write(start, stop, state)``: bars ``[start, stop)`` end in ``state``."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._runs: list[_Run] = []
        self._arrays: Arrays | None = None

    def write(self, start: int, stop: int, state: BarState) -> None:
        """Bars ``[start, stop)`` end with ``state`` (the last run grows when it goes on)."""
        if stop <= start:
            return
        self._arrays = None
        runs = self._runs
        if runs:
            last = runs[-1]
            if last.state is state and last.stop == start:
                last.stop = stop
                return
        runs.append(_Run(start, stop, state))

    def arrays(self) -> Arrays:
        """Balance, side sign, quantity and entry price per bar (a bar never written: balance
        unset, no position)."""
        if self._arrays is None:
            n = self.n
            balance, sign = np.empty(n), np.zeros(n, dtype=np.int8)
            qty, entry = np.zeros(n), np.zeros(n)
            for run in self._runs:
                s, state = slice(run.start, run.stop), run.state
                balance[s] = state.balance
                sign[s] = state.sign
                if state.sign:
                    qty[s] = state.qty
                    entry[s] = state.entry
            self._arrays = balance, sign, qty, entry
        return self._arrays
