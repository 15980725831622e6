"""The one reader of funding-rate CSV files (``timestamp,funding_rate``), for ``tbotd backtest``
and ``tbotd sim``: rates must sit on the funding times the fill models settle (00:00, 08:00,
16:00 UTC) and are kept as exact decimals; bad rows are named by line.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import pandas as pd

from tbotd.domain.errors import InvalidDataError
from tbotd.domain.values import ms_to_datetime
from tbotd.marketdata.cells import listing, parse_times

FUNDING_COLUMNS = ("timestamp", "funding_rate")
FUNDING_PERIOD_MS = 8 * 3_600_000  # 00:00, 08:00, 16:00 UTC: multiples of 8 h since the epoch


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
    texts = raw["funding_rate"].to_numpy(dtype=str).tolist()
    for line, t, text in zip(lines.tolist(), times.tolist(), texts, strict=True):
        try:
            rate = Decimal(text.strip())
        except InvalidOperation:
            rate = Decimal("NaN")
        if not rate.is_finite():
            found.append((line, f"funding_rate {text!r} is not a finite number"))
        elif abs(rate) >= 1:
            found.append((line, f"funding_rate {text} is not a fraction per 8 h"))
        rates[t] = rate
    off = np.flatnonzero(times % FUNDING_PERIOD_MS)
    bad_time = zip(lines[off].tolist(), times[off].tolist(), strict=True)
    found.extend(
        (x, f"{ms_to_datetime(t).isoformat()} is not a funding time (00:00/08:00/16:00 UTC)")
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
