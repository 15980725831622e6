"""Checking candles row by row (from a CSV file: :mod:`tbotd.marketdata.candle_csv`; or from a
tbotd store: :func:`read_store`).

Bad rows are reported with their CSV line numbers (the header is line 1) and end the command with
exit code 2: training on silently repaired data would make every reported number a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tbotd.domain.errors import InvalidDataError
from tbotd.domain.values import timeframe_ms
from tbotd.features import CANDLE_COLUMNS, candles_to_frame

CSV_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
_MAX_LISTED = 20
_TIMEFRAMES = {
    timeframe_ms(tf): tf for tf in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "1d")
}


@dataclass(frozen=True)
class CandleData:
    """A validated candle frame (``open_time`` ms, float64 OHLCV) and where it came from."""

    frame: pd.DataFrame
    source: str
    timeframe: str
    gaps: int

    def describe(self) -> dict[str, object]:
        """Report/manifest form: source, rows, window, timeframe, gaps."""
        t = self.frame["open_time"]
        return {
            "source": self.source,
            "rows": len(self.frame),
            "timeframe": self.timeframe,
            "first_open_time": pd.Timestamp(int(t.iloc[0]), unit="ms", tz="UTC").isoformat(),
            "last_open_time": pd.Timestamp(int(t.iloc[-1]), unit="ms", tz="UTC").isoformat(),
            "gaps": self.gaps,
        }


def _problems(frame: pd.DataFrame, first_line: int, unit: str) -> list[str]:
    """Every problem as 'line N: ...', vectorised (a year of bars is checked in milliseconds)."""
    line = np.arange(len(frame)) + first_line
    found: list[tuple[int, str]] = []

    def flag(mask: np.ndarray, message: str) -> None:
        found.extend((int(n), message) for n in line[mask])

    raw_t = pd.to_numeric(frame["timestamp"], errors="coerce")
    values = {
        c: pd.to_numeric(frame[c], errors="coerce").to_numpy(np.float64) for c in CSV_COLUMNS[1:]
    }
    t = raw_t.to_numpy(np.float64)
    bad_t = ~np.isfinite(t) | (t != np.floor(t)) | (t < 0)
    flag(bad_t, "timestamp is not a non-negative integer of milliseconds")
    for name, v in values.items():
        flag(~np.isfinite(v), f"{name} is not a finite number")
    o, h, low, c, v = (values[k] for k in ("open", "high", "low", "close", "volume"))
    with np.errstate(invalid="ignore"):
        flag(np.isfinite(low) & (low <= 0), "low is not a positive price")
        flag(h < low, "high is below low")
        flag((h < o) | (h < c), "high is below open or close")
        flag((low > o) | (low > c), "low is above open or close")
        flag(v < 0, "volume is negative")
        order = np.diff(t) <= 0
        flag(
            np.concatenate([[False], order & np.isfinite(t[1:]) & np.isfinite(t[:-1])]),
            "timestamp is not after the previous row's (duplicate or out of order)",
        )
    found.sort()
    return [f"{unit} {n}: {m}" for n, m in found]


def _timeframe(t: np.ndarray, source: str) -> tuple[str, int]:
    steps = np.diff(t)
    if len(steps) == 0:
        raise InvalidDataError(f"{source}: needs more than one candle")
    step = int(np.bincount(np.minimum(steps, 10**9).astype(np.int64) // 1000).argmax()) * 1000
    if step not in _TIMEFRAMES:
        raise InvalidDataError(f"{source}: candles are {step} ms apart, not a known timeframe")
    misaligned = np.flatnonzero(t % step)
    if len(misaligned):
        raise InvalidDataError(
            f"{source}: {len(misaligned)} timestamp(s) not aligned to {_TIMEFRAMES[step]}, "
            f"first at row {int(misaligned[0]) + 1}"
        )
    return _TIMEFRAMES[step], int(np.count_nonzero(steps != step))


def validate_frame(
    raw: pd.DataFrame, source: str, first_line: int = 2, unit: str = "line"
) -> CandleData:
    """Check a frame with CSV columns; raise InvalidDataError listing bad rows by line number."""
    missing = [c for c in CSV_COLUMNS if c not in raw.columns]
    if missing:
        raise InvalidDataError(
            f"{source}: header must be {','.join(CSV_COLUMNS)}; missing {', '.join(missing)}"
        )
    if len(raw) < 2:
        raise InvalidDataError(f"{source}: needs more than one candle, found {len(raw)}")
    problems = _problems(raw, first_line, unit)
    if problems:
        listed = "\n  ".join(problems[:_MAX_LISTED])
        more = (
            f"\n  … and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        )
        raise InvalidDataError(f"{source}: {len(problems)} bad row(s):\n  {listed}{more}")
    frame = pd.DataFrame({"open_time": raw["timestamp"].astype(np.int64)})
    for name in CANDLE_COLUMNS[1:]:
        frame[name] = pd.to_numeric(raw[name]).astype(np.float64)
    timeframe, gaps = _timeframe(frame["open_time"].to_numpy(), source)
    return CandleData(frame.reset_index(drop=True), source, timeframe, gaps)


def read_store(path: Path, symbol: str, timeframe: str) -> CandleData:
    """Read the ``candles`` table of a tbotd SQLite store for one symbol and timeframe."""
    from tbotd.store import Store

    if not path.is_file():
        raise InvalidDataError(f"{path}: no such database")
    store = Store.open(path)
    try:
        candles = store.candles(symbol, timeframe)
    finally:
        store.close()
    if not candles:
        raise InvalidDataError(f"{path}: no {timeframe} candles for {symbol}")
    frame = candles_to_frame(candles)
    raw = frame.rename(columns={"open_time": "timestamp"})
    return validate_frame(raw, f"{path} [{symbol} {timeframe}]", first_line=1, unit="row")
