"""A model's metrics over time (pure): the rolling windows of :mod:`tbotd.monitoring.metrics`
evaluated after every graded prediction, for `tbotd models report`'s plots.

Same definitions as the windows (hit rate on long/short calls on bars that moved, always-long
and contrarian on those same bars), computed with cumulative sums so a year of rows costs
milliseconds; a point exists only where the window is full.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from tbotd.monitoring.metrics import SUMMED, Graded, facts

_CALLS, _HITS, _UPS = SUMMED.index("calls"), SUMMED.index("hits"), SUMMED.index("ups")
_AGAINST, _AGAINST_HITS = SUMMED.index("against"), SUMMED.index("against_hits")


@dataclass(frozen=True)
class RollingSeries:
    """After each graded prediction (oldest first): the window's hit rate and baselines."""

    times: list[datetime]
    hit_rate: NDArray[np.float64]  # NaN where the window is not full or has no calls
    always_long: NDArray[np.float64]
    contrarian: NDArray[np.float64]


def rolling(rows: Sequence[Graded], window: int) -> RollingSeries:
    """The rolling metrics over the newest ``window`` scored predictions at each row."""
    per_row = np.array([facts(g) for g in rows], dtype=np.float64).reshape(len(rows), len(SUMMED))
    totals = np.vstack([np.zeros(len(SUMMED)), np.cumsum(per_row, axis=0)])
    n = np.arange(1, len(rows) + 1)
    lo = np.maximum(n - window, 0)
    inside = totals[n] - totals[lo]  # the window ending at each row

    def share(num: int, den: int) -> NDArray[np.float64]:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = inside[:, num] / inside[:, den]
        out[(n < window) | (inside[:, den] == 0)] = np.nan
        return np.asarray(out, dtype=np.float64)

    return RollingSeries(
        [g.prediction.candle_time for g in rows],
        share(_HITS, _CALLS),
        share(_UPS, _CALLS),
        share(_AGAINST_HITS, _AGAINST),
    )
