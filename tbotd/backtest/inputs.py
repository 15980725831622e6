"""Candles and funding rates for a backtest, checked row by row with line numbers.

Candles are read by the one candle-CSV reader (:mod:`tbotd.marketdata.candle_csv`, the same for
``train``, ``backtest`` and ``sim``). A backtest is stricter about gaps: a missing
candle means the run would fill orders at a price minutes or hours later than the daemon could
have, so gaps are an error naming the lines, unless the caller accepts them (``allow_gaps``).
Funding rates (``timestamp,funding_rate``) must sit on the funding times the paper fill model
settles (00:00, 08:00, 16:00 UTC) and are kept as exact decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.errors import InvalidDataError
from tbotd.domain.values import ms_to_datetime, timeframe_ms
from tbotd.marketdata.candle_csv import read_candle_csv
from tbotd.marketdata.cells import listing
from tbotd.ml.data import CandleData


@dataclass(frozen=True)
class Gap:
    """Candles missing before the row on ``line`` (``missing`` whole bars)."""

    line: int
    after_ms: int
    missing: int

    def __str__(self) -> str:
        after = ms_to_datetime(self.after_ms).isoformat()
        return f"line {self.line}: {self.missing} candle(s) missing after {after}"


def find_gaps(open_ms: NDArray[np.int64], step_ms: int, first_line: int = 2) -> list[Gap]:
    """Every place where consecutive rows are more than one bar apart."""
    steps = np.diff(open_ms)
    at = np.flatnonzero(steps != step_ms)
    return [Gap(int(j) + 1 + first_line, int(open_ms[j]), int(steps[j] // step_ms) - 1) for j in at]


def read_candles(
    path: Path, timeframe: str, allow_gaps: bool = False
) -> tuple[CandleData, list[Gap]]:
    """Candles from CSV for ``timeframe``; gaps raise InvalidDataError unless ``allow_gaps``."""
    data = read_candle_csv(path)
    if data.timeframe != timeframe:
        raise InvalidDataError(
            f"{path}: candles are {data.timeframe} apart but the config trades {timeframe} "
            "(exchange.timeframe)"
        )
    gaps = find_gaps(data.frame["open_time"].to_numpy(np.int64), timeframe_ms(timeframe))
    if gaps and not allow_gaps:
        problems = [str(g) for g in gaps]
        raise InvalidDataError(
            listing(str(path), problems, "gap(s) between candles")
            + "\n  (pass --allow-gaps to backtest across them: orders then fill at the next "
            "candle present)"
        )
    return data, gaps
