"""Candles and funding rates for a backtest, checked row by row with line numbers.

Candles use the format of ``tbotd train`` (:mod:`tbotd.ml.data`: ``timestamp,open,high,low,close,
volume``, sorted, unique, finite, consistent OHLC). A backtest is stricter about gaps: a missing
candle means the run would fill orders at a price minutes or hours later than the daemon could
have, so gaps are an error naming the lines, unless the caller accepts them (``allow_gaps``).
Funding rates (``timestamp,funding_rate``) must sit on the funding times the paper fill model
settles (00:00, 08:00, 16:00 UTC) and are kept as exact decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from tbotd.backtest.cells import listing, parse_floats, parse_times
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.values import ms_to_datetime, timeframe_ms
from tbotd.ml.data import CSV_COLUMNS, CandleData, validate_frame

FUNDING_COLUMNS = ("timestamp", "funding_rate")
_OLD_PANDAS = tuple(int(x) for x in pd.__version__.split(".")[:2]) < (3, 1)
FUNDING_PERIOD_MS = 8 * 3_600_000  # 00:00, 08:00, 16:00 UTC: multiples of 8 h since the epoch


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


def read_csv_fast(path: Path, dtypes: dict[str, str]) -> pd.DataFrame | None:
    """The CSV with numeric columns parsed by pandas' C reader, or None if a cell is not a number
    (the caller then reads it as text to name the bad lines).

    The round-trip converter (before pandas 3.1 asked for by name; from 3.1 pandas' only one)
    parses like Python's ``float()``, so a price reads back (``repr``) as the exact decimal text
    in the file; tests/unit/test_backtest_inputs.py checks that on awkward inputs.
    """
    extra = {"float_precision": "round_trip"} if _OLD_PANDAS else {}
    try:
        frame = pd.read_csv(path, dtype=dtypes, skip_blank_lines=False, **extra)
    except ValueError:
        return None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_candle_csv(path: Path) -> CandleData:
    """:func:`tbotd.ml.data.read_csv` (same checks and messages), about twice as fast, with the
    numbers parsed exactly as Python's ``float()`` does: prices must read back as the decimal
    text the exchange wrote, since exits and fills are computed from them in Decimal."""
    if not path.is_file():
        raise InvalidDataError(f"{path}: no such file")
    try:
        numeric = read_csv_fast(path, dict.fromkeys(CSV_COLUMNS, "float64"))
        if numeric is None:
            raw = pd.read_csv(path, dtype=str, skip_blank_lines=False, keep_default_na=False)
            raw.columns = [str(c).strip() for c in raw.columns]
            cells = {c: raw[c].to_numpy(dtype=str) for c in CSV_COLUMNS if c in raw.columns}
            numeric = pd.DataFrame({c: parse_floats(v)[0] for c, v in cells.items()})
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as e:
        raise InvalidDataError(f"{path}: not a readable CSV ({e})") from e
    return validate_frame(numeric, str(path))


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


def read_funding(path: Path) -> dict[int, Decimal]:
    """Funding rates by funding time (epoch ms), exact, from ``timestamp,funding_rate``."""
    if not path.is_file():
        raise InvalidDataError(f"{path}: no such file")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as e:
        raise InvalidDataError(f"{path}: not a readable CSV ({e})") from e
    raw.columns = [str(c).strip() for c in raw.columns]
    return funding_rates(raw, str(path))


def funding_rates(raw: pd.DataFrame, origin: str, first_line: int = 2) -> dict[int, Decimal]:
    """Validate a frame with text columns ``timestamp,funding_rate`` (line numbers from 2)."""
    if list(raw.columns) != list(FUNDING_COLUMNS):
        raise InvalidDataError(
            f"{origin}: line 1 (header): expected {','.join(FUNDING_COLUMNS)}, "
            f"got {','.join(map(str, raw.columns))}"
        )
    if raw.empty:
        raise InvalidDataError(f"{origin}: no funding rows after the header")
    lines = np.arange(len(raw), dtype=np.int64) + first_line
    times, found = parse_times(raw["timestamp"].to_numpy(dtype=str), lines)
    rates: dict[int, Decimal] = {}
    for line, t, text in zip(lines, times, raw["funding_rate"].to_numpy(dtype=str), strict=True):
        try:
            rate = Decimal(text.strip())
        except InvalidOperation:
            rate = Decimal("NaN")
        if not rate.is_finite():
            found.append((int(line), f"funding_rate {str(text)!r} is not a finite number"))
        elif abs(rate) >= 1:
            found.append((int(line), f"funding_rate {text} is not a fraction per 8 h"))
        rates[int(t)] = rate
    bad_time = [(int(x), t) for x, t in zip(lines, times, strict=True) if t % FUNDING_PERIOD_MS]
    found.extend(
        (x, f"{ms_to_datetime(int(t)).isoformat()} is not a funding time (00:00/08:00/16:00 UTC)")
        for x, t in bad_time
    )
    if len(times) > 1:
        order = np.flatnonzero(np.diff(times) <= 0) + 1
        found.extend(
            (int(lines[j]), "timestamp is not after the previous row's (duplicate or out of order)")
            for j in order
        )
    if found:
        found.sort()
        raise InvalidDataError(listing(origin, [f"line {k}: {m}" for k, m in found]))
    return rates
